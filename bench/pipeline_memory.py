"""Pipeline memory: peak resident memory of every stage process under the supervisor.

Run: ``.venv/bin/python bench/pipeline_memory.py [--quick]``. The last line printed is one JSON
object of figures; the "pipeline-memory" section of ``docs/benchmarks.md`` is rewritten.

Every stage runs under the supervisor (``python -m rigwatch.pipeline.supervisor``) on
synthetic grating images (``--n``, ``--quick``: 500) imported from a folder: collector, one
processor (grating analysis, ``max_intensity``), reporter (CSV and plot, matplotlib),
compressor (zstd), syncer (to a local folder) and retention (ring buffer of 100). The
resident set size (RSS) and the proportional set size (PSS: shared pages divided among the
processes sharing them) of each stage process and of the supervisor they are forked from are
sampled every ``--interval`` seconds with psutil until every artifact went through every
stage. Any other process under the supervisor (a fork server, multiprocessing's resource
tracker: ``launcher``, ``resource-tracker``; a stage just started, not yet in
``supervisor.json``) counts in the simultaneous total. Reported: each process's peak, the sum
of the stage processes' peaks (``peak_rss_mb_total``, an upper bound: pages shared by the
forked stages are counted once per process), the same sum with the supervisor (and any
launcher), and the largest simultaneous PSS total of all of them (what the pipeline really
took from the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _common import machine_line, update_docs

from rigwatch.pipeline.config import load_pipeline_config
from rigwatch.pipeline.phorest_import import dump_toml
from rigwatch.pipeline.stages.build import open_manifest
from rigwatch.pipeline.stages.status import read_status
from support.pipeline_stages import base_config, image_folder, tiny_roi_manifest

KEEP = 100
MB = 2**20


def _config(tmp: Path) -> dict[str, Any]:
    return base_config(
        tmp,
        manifest={"url": "manifest.sqlite", "lease_s": 10.0, "batch": 25},
        collector={
            "interval_s": 0.05,
            "min_free_bytes": 0,
            "camera": {
                "enabled": True,
                "type": "folder",
                "folder": {"source_dir": "src", "per_cycle": 100},
            },
        },
        processor={
            "poll_s": 0.05,
            "plugins": {
                "image": [
                    {
                        "name": "grating",
                        "options": {"roi_manifest": "roi.json", "method": "max_intensity"},
                    }
                ]
            },
        },
        reporter={
            "poll_s": 0.05,
            "handlers": [{"type": "csv_plot", "plot": "plot.png", "plot_interval_s": 1.0}],
        },
        compressor={"enabled": True, "codec": "zstd", "skip_suffixes": [], "poll_s": 0.05},
        sync={"enabled": True, "share": "share", "poll_s": 0.05},
        retention={"max_count": KEEP, "poll_s": 0.05},
        supervisor={"restart_min_s": 0.5, "stop_timeout_s": 20.0},
    )


def _finished(counts: dict[str, dict[str, int]], n: int) -> bool:
    flow = ("collect", "process", "report", "compress", "sync")
    return (
        all(counts.get(s, {}).get("done", 0) == n for s in flow)
        and counts.get("retention", {}).get("done", 0) == n - KEEP
    )


def _memory(pid: int) -> tuple[int, int] | None:
    """``(rss, pss)`` bytes of a process, or ``None`` when it is gone."""
    try:
        full = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    return int(full.rss), int(getattr(full, "pss", full.rss))


def _helper_kind(process: psutil.Process) -> str | None:
    """``launcher`` for a fork server, ``resource-tracker`` for multiprocessing's resource
    tracker, ``None`` for anything else (a stage process)."""
    try:
        cmdline = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None
    if "forkserver" in cmdline:
        return "launcher"
    if "resource_tracker" in cmdline:
        return "resource-tracker"
    return None


def run(n: int, interval_s: float, timeout_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rw-pipeline-memory-") as d:
        tmp = Path(d)
        image_folder(tmp / "src", n)
        tiny_roi_manifest(tmp / "roi.json")
        (tmp / "share").mkdir()
        config_path = tmp / "pipeline.toml"
        config_path.write_text(dump_toml(_config(tmp)))
        config = load_pipeline_config(config_path)
        state_dir = Path(config.paths.state_dir)
        manifest = open_manifest(config)
        started = time.monotonic()
        sup = subprocess.Popen(
            [sys.executable, "-m", "rigwatch.pipeline.supervisor", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak_rss: dict[str, int] = {}
        peak_pss: dict[str, int] = {}
        peak_pss_total = 0
        samples = 0
        finished = False
        try:
            deadline = started + timeout_s
            next_count = 0.0
            while time.monotonic() < deadline and sup.poll() is None:
                procs: dict[str, int] = {"supervisor": sup.pid}
                state = read_status(state_dir / "supervisor.json") or {}
                for name, child in state.get("children", {}).items():
                    if child.get("pid"):
                        procs[name] = int(child["pid"])
                unlisted: list[int] = []  # a stage just started: in the total only
                try:
                    for c in psutil.Process(sup.pid).children():
                        if c.pid not in procs.values():
                            kind = _helper_kind(c)
                            if kind is None:
                                unlisted.append(c.pid)
                            else:
                                procs[kind] = c.pid
                except psutil.NoSuchProcess:
                    pass
                pss_total = 0
                for name, pid in [*procs.items(), *(("", pid) for pid in unlisted)]:
                    mem = _memory(pid)
                    if mem is None:
                        continue
                    pss_total += mem[1]
                    if name:
                        peak_rss[name] = max(peak_rss.get(name, 0), mem[0])
                        peak_pss[name] = max(peak_pss.get(name, 0), mem[1])
                peak_pss_total = max(peak_pss_total, pss_total)
                samples += 1
                now = time.monotonic()
                if now >= next_count:
                    next_count = now + 0.5
                    if _finished(manifest.counts(), n):
                        finished = True
                        break
                time.sleep(interval_s)
            elapsed = time.monotonic() - started
        finally:
            sup.send_signal(signal.SIGTERM)
            sup.wait(timeout=60)
            manifest.close()
        if not finished:
            raise SystemExit(f"the pipeline did not finish {n} artifacts in {timeout_s} s")
        helpers = ("supervisor", "launcher", "resource-tracker")
        stages = {k: v for k, v in peak_rss.items() if k not in helpers}
        return {
            "artifacts": n,
            "elapsed_s": round(elapsed, 1),
            "samples": samples,
            "peak_rss_mb": {k: round(v / MB, 1) for k, v in sorted(peak_rss.items())},
            "peak_pss_mb": {k: round(v / MB, 1) for k, v in sorted(peak_pss.items())},
            "peak_rss_mb_total": round(sum(stages.values()) / MB, 1),
            "peak_rss_mb_total_with_supervisor": round(sum(peak_rss.values()) / MB, 1),
            "peak_pss_mb_concurrent": round(peak_pss_total / MB, 1),
        }


def _markdown(r: dict[str, Any], command: str) -> str:
    lines = [
        "## Pipeline memory (`bench/pipeline_memory.py`)",
        "",
        f"Every stage under the supervisor, {r['artifacts']} synthetic grating images through "
        f"collector, processor (grating), reporter (CSV + plot), compressor (zstd), syncer and "
        f"retention ({r['elapsed_s']} s, {r['samples']} samples); {machine_line()}. "
        f"Reproduce: `{command}`.",
        "",
        "| process | peak RSS (MB) | peak PSS (MB) |",
        "|---|---:|---:|",
    ]
    for name, rss in r["peak_rss_mb"].items():
        lines.append(f"| {name} | {rss} | {r['peak_pss_mb'].get(name, '')} |")
    lines += [
        "",
        f"- Sum of the stage processes' peak RSS (`peak_rss_mb_total`): "
        f"**{r['peak_rss_mb_total']} MB**; with the supervisor: "
        f"{r['peak_rss_mb_total_with_supervisor']} MB. RSS counts pages shared by the forked "
        f"stages once per process, so these sums are upper bounds.",
        f"- Largest simultaneous PSS total of all pipeline processes (shared pages divided "
        f"among their sharers): **{r['peak_pss_mb_concurrent']} MB**.",
        "- Stage processes are forked from the supervisor, which imports only what they all "
        "share (configuration, manifest, SQLAlchemy, Alembic); each stage imports its own "
        "libraries after the fork, when its work needs them (`src/rigwatch/pipeline/launcher.py`).",
        "- Target: within a few hundred MB on a Raspberry Pi 4 (4 GiB models and up).",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="500 artifacts")
    ap.add_argument("--n", type=int, default=None, help="artifacts (default 2000, quick 500)")
    ap.add_argument("--interval", type=float, default=0.1, help="sampling interval, s")
    ap.add_argument("--timeout", type=float, default=600.0, help="give up after, s")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args()
    n = args.n if args.n is not None else (500 if args.quick else 2000)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    r = run(n, args.interval, args.timeout)
    command = ".venv/bin/python bench/pipeline_memory.py" + (" --quick" if args.quick else "")
    if args.n is not None:
        command += f" --n {args.n}"
    if not args.no_docs:
        update_docs("pipeline-memory", _markdown(r, command))
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
