"""Crash safety: 2 000 artifacts through every stage under the supervisor while random stage
processes are SIGKILLed; afterwards every artifact is processed and reported exactly once,
none is lost or stuck, everything is on the share with its checksum, and retention deleted
only synced artifacts."""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
import random
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from rigwatch.pipeline.manifest.models import Artifact
from rigwatch.pipeline.stages.build import open_manifest
from rigwatch.pipeline.stages.files import sha256_file
from rigwatch.pipeline.stages.status import read_status
from rigwatch.pipeline.stages.worker import wait_until
from support.pipeline_stages import (
    base_config,
    folder_camera,
    grating_plugins,
    image_folder,
    start_supervisor,
    tiny_roi_manifest,
    write_config,
)

N = int(os.environ.get("RW_CRASH_N", "2000"))
KEEP = 100


def _counts_done(counts: dict[str, dict[str, int]]) -> bool:
    flow_done = all(
        counts.get(s, {}).get("done", 0) == N
        for s in ("collect", "process", "report", "compress", "sync")
    )
    return flow_done and counts.get("retention", {}).get("done", 0) == N - KEEP


def _diagnose(manifest: Any, state_dir: Path) -> str:
    """What the stuck rows look like, and every live stage's thread stacks (SIGUSR1)."""
    import time

    from rigwatch.pipeline.manifest.models import StageStatus as SS

    now = time.time_ns()
    lines = []
    with manifest.engine.connect() as conn:
        rows = conn.execute(
            select(
                SS.stage,
                SS.status,
                SS.attempts,
                SS.next_attempt_ns,
                SS.lease_owner,
                SS.lease_expires_ns,
                SS.last_error,
                SS.artifact_id,
            )
            .where(SS.status.in_(["pending", "leased", "failed"]))
            .order_by(SS.stage, SS.artifact_id)
        ).all()
        conn.rollback()
    by = Counter((r.stage, r.status) for r in rows)
    lines.append(f"stuck: {dict(by)}")
    for r in rows[:40]:
        lines.append(
            f"  {r.stage} {r.artifact_id} {r.status} att={r.attempts} "
            f"next={(r.next_attempt_ns - now) / 1e9:.2f}s owner={r.lease_owner} "
            f"exp={None if r.lease_expires_ns is None else (r.lease_expires_ns - now) / 1e9} "
            f"err={r.last_error}"
        )
    state = read_status(state_dir / "supervisor.json") or {}
    dumped = []
    for name, child in state.get("children", {}).items():
        st = read_status(state_dir / f"{name}.status.json")
        lines.append(f"{name}: {child} {st}")
        if child.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child["pid"], signal.SIGUSR1)
                dumped.append(state_dir / f"{name}.log")
    wait_until(lambda: all("Thread 0x" in p.read_text(errors="replace") for p in dumped), 3)
    for log_file in [state_dir.parent / "supervisor.err", *sorted(state_dir.glob("*.log"))]:
        lines.append(f"--- {log_file.name}")
        lines += log_file.read_text(errors="replace").splitlines()[-60:]
    return "\n".join(lines)


def test_pipeline_survives_sigkilled_workers(tmp_path: Path) -> None:
    sources = image_folder(tmp_path / "src", N)
    tiny_roi_manifest(tmp_path / "roi.json")
    (tmp_path / "share").mkdir()
    data = base_config(
        tmp_path,
        manifest={
            "url": "manifest.sqlite",
            "lease_s": 1.5,
            "heartbeat_s": 0.4,
            "batch": 25,
            "backoff_base_s": 0.05,
            "max_attempts": 50,
        },
        collector={
            "interval_s": 0.05,
            "min_free_bytes": 0,
            "camera": folder_camera(per_cycle=100),
        },
        processor={
            "poll_s": 0.05,
            "workers": 2,
            "plugins": grating_plugins(),
        },
        compressor={"enabled": True, "codec": "gzip", "skip_suffixes": [], "poll_s": 0.05},
        sync={"enabled": True, "share": "share", "poll_s": 0.05},
        retention={"max_count": KEEP, "poll_s": 0.05},
        supervisor={"restart_min_s": 0.1, "restart_max_s": 0.5, "stop_timeout_s": 10.0},
    )
    config_path, config = write_config(tmp_path, data)
    state_dir = Path(config.paths.state_dir)
    sup_log = tmp_path / "supervisor.err"
    sup = start_supervisor(config_path, sup_log)
    manifest = None
    kills: list[str] = []
    stop_killing = threading.Event()

    def killer() -> None:
        # kill stage processes while they work (holding leases), not while they import; the
        # collector (working whenever the others wait for it) at most twice, lest it starve
        # the others
        rng = random.Random(7)
        while not stop_killing.wait(rng.uniform(0.15, 0.45)):
            state = read_status(state_dir / "supervisor.json") or {}
            live = [(n, c["pid"]) for n, c in state.get("children", {}).items() if c.get("pid")]
            working = [
                (n, pid)
                for n, pid in live
                if (st := read_status(state_dir / f"{n}.status.json")) is not None
                and st.get("pid") == pid
                and st.get("state") == "running"
                and not (n == "collector" and kills.count(n) >= 2)
            ]
            if not working:
                continue
            name, pid = rng.choice(working)
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(name)
            except ProcessLookupError:
                pass

    thread = threading.Thread(target=killer, daemon=True)
    try:
        assert wait_until(lambda: (state_dir / "supervisor.json").exists(), 30)
        thread.start()
        manifest = open_manifest(config)
        # kill for a while (10 kills, or fewer when the pipeline gets through all its work
        # first: a kill lands only on a stage holding leases), then let it finish on its own;
        # deadlines are generous: on a busy machine the pipeline is slower, not wrong
        assert wait_until(lambda: len(kills) >= 10 or _counts_done(manifest.counts()), 120, 0.1), (
            f"only {len(kills)} kills and the work not done"
        )
        assert len(kills) >= 5, f"only {len(kills)} kills landed while stages held leases"
        stop_killing.set()
        thread.join()
        finished = wait_until(lambda: _counts_done(manifest.counts()), 240, 0.5)
        diag = "" if finished else _diagnose(manifest, state_dir)
        assert finished, f"not finished: {manifest.counts()} after kills {Counter(kills)}\n{diag}"
    finally:
        stop_killing.set()
        sup.send_signal(signal.SIGTERM)
        sup.wait(timeout=60)
    assert sup.returncode == 0, sup_log.read_text()[-3000:]
    assert len(set(kills)) >= 3, f"kills spread over too few stages: {Counter(kills)}"

    counts = manifest.counts()
    for stage, by_status in counts.items():
        assert "leased" not in by_status and "failed" not in by_status, (stage, by_status)

    results = {s: manifest.results(stage=s, limit=10 * N) for s in ("process", "report", "sync")}
    retained = manifest.results(stage="retention", limit=10 * N)
    with manifest.engine.connect() as conn:
        artifacts = {
            r.id: r for r in conn.execute(select(Artifact.id, Artifact.path, Artifact.checksum))
        }
        conn.rollback()
    # kills hit workers holding leases: some items were taken over after their lease expired
    assert max(r.attempt for rs in results.values() for r in rs) >= 2, "no lease was taken over"

    # processed and reported exactly once, by id
    assert sorted(r.artifact_id for r in results["process"]) == list(range(1, N + 1))
    assert sorted(r.artifact_id for r in results["report"]) == list(range(1, N + 1))
    assert all(r.ok for r in results["process"])
    with open(Path(config.paths.reports_dir) / "communicating_results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    per_id = Counter(int(r["artifact_id"]) for r in rows)
    assert set(per_id) == set(range(1, N + 1)) and set(per_id.values()) == {1}

    # every source image on the share, byte for byte (compressed), none lost
    share_files = {p.name: p for p in (tmp_path / "share" / "image").iterdir()}
    assert not [n for n in share_files if n.startswith(".")], "temporary files left"
    for src in random.Random(1).sample(sources, 50):
        assert gzip.decompress(share_files[src.name + ".gz"].read_bytes()) == src.read_bytes()
    assert {Path(a.path).name for a in artifacts.values()} <= set(share_files)
    # retention: the newest KEEP remain locally, every deleted one was synced first
    local = [p for p in Path(config.paths.data_dir).iterdir() if not p.name.startswith(".")]
    assert len(local) == KEEP
    synced = {r.artifact_id: r for r in results["sync"]}
    for r in retained:
        sync = synced[r.artifact_id]
        assert sync.ok and sync.recorded_ns <= r.recorded_ns
        dest = Path(sync.payload["synced_to"])
        assert sha256_file(dest)[0] == artifacts[r.artifact_id].checksum
    manifest.close()
