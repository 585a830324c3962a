"""The reporter's fleet handler: one wire-v1 status message per artifact in the agent's SQLite
outbox, exactly once per artifact although the reporter runs over the same items again (a
reporter that died after delivering, ones that died between the outbox and the ledger, a stale
worker redoing every item); a message the agent already sent is put again only as the very
same message (same ``seq``), which the fleet server drops as a duplicate."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from rigwatch.agent.outbox import Outbox
from rigwatch.pipeline.config import FleetHandler
from rigwatch.pipeline.manifest import Lease, Manifest
from rigwatch.pipeline.stages.build import build_stage, open_manifest
from rigwatch.pipeline.stages.collector import Collector
from rigwatch.pipeline.stages.handlers.fleet import Fleet
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.pipeline.stages.reporter import LEDGER_NAME
from rigwatch.timefmt import iso_utc
from rigwatch.wire import validate_status
from support.pipeline_stages import (
    T0_NS,
    base_config,
    folder_camera,
    grating_plugins,
    image_folder,
    run_until,
    tiny_roi_manifest,
    write_config,
)

N = 12
MACHINE = "rig-07"
METRICS = {"resonance_px": "ROI_A1_1.max_intensity.Median", "brightness": "brightness"}


def _pipeline(tmp: Path) -> tuple[Any, Manifest, Path]:
    image_folder(tmp / "src", N)
    tiny_roi_manifest(tmp / "roi.json")
    outbox = tmp / "agent" / "outbox.sqlite"
    data = base_config(
        tmp,
        collector={
            "interval_s": 0.01,
            "min_free_bytes": 0,
            "camera": folder_camera(),
        },
        processor={
            "poll_s": 0.02,
            "plugins": grating_plugins(),
        },
        reporter={
            "poll_s": 0.02,
            "handlers": [
                {
                    "type": "fleet",
                    "outbox": "agent/outbox.sqlite",
                    "machine_id": MACHINE,
                    "metrics": METRICS,
                }
            ],
        },
    )
    _, cfg = write_config(tmp, data)
    manifest = open_manifest(cfg)
    Collector(manifest, cfg).cycle(threading.Event())
    processor = build_stage("processor", cfg, manifest)
    assert run_until(processor, lambda: manifest.counts()["process"].get("done", 0) == N)
    return cfg, manifest, outbox


def _outbox_messages(path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{message id: [decoded bodies]}`` of the pending messages."""
    out: dict[str, list[dict[str, Any]]] = {}
    with Outbox(path, 64 * 2**20) as box:
        for item in box.peek(10 * N):
            out.setdefault(item.message_id, []).append(json.loads(item.body))
    return out


def test_fleet_messages_enter_the_outbox_once_per_artifact(tmp_path: Path) -> None:
    cfg, manifest, outbox = _pipeline(tmp_path)
    handler_cfg = cfg.reporter.handlers[0]
    assert isinstance(handler_cfg, FleetHandler)

    # a reporter delivered artifact 1 and died before completing it (its lease runs out)
    dead = build_stage("reporter", cfg, manifest)
    lease = manifest.claim("report", "dead-reporter", 1, lease_s=0.01)[0]
    assert lease.artifact_id == 1
    dead.handle(lease)  # type: ignore[attr-defined]
    dead.close()
    # others put artifacts 2 and 3 into the outbox and died before recording it in the
    # ledger; the agent sent the message of artifact 3 to the server, which confirmed it
    ledger = Ledger(Path(cfg.paths.reports_dir) / LEDGER_NAME)
    stray = Fleet(handler_cfg, ledger)
    first: dict[int, dict[str, Any]] = {}
    for i in (2, 3):
        a = manifest.get(i)
        result = manifest.result(i, "process")
        assert result is not None
        stray.deliver(ReportRecord(a, dict(result.payload), a.captured_ns or a.created_ns))
    stray.close()
    ledger.close()
    with Outbox(outbox, handler_cfg.outbox_max_bytes) as box:
        sent = {item.message_id: json.loads(item.body) for item in box.peek(10)}
        first = {2: sent["pipeline-2"], 3: sent["pipeline-3"]}
        assert box.ack(["pipeline-3"]) == 1

    reporter = build_stage("reporter", cfg, manifest)
    assert run_until(reporter, lambda: manifest.counts()["report"].get("done", 0) == N)
    assert manifest.counts()["report"] == {"done": N}

    # a stale reporter redoes every item (its leases were taken over meanwhile)
    stale = build_stage("reporter", cfg, manifest)
    for i in range(1, N + 1):
        a = manifest.get(i)
        stale.handle(Lease(a, "report", "stale-reporter", 1, T0_NS))  # type: ignore[attr-defined]
    stale.close()

    messages = _outbox_messages(outbox)
    assert sorted(messages) == sorted(f"pipeline-{i}" for i in range(1, N + 1))
    assert all(len(bodies) == 1 for bodies in messages.values()), messages
    seqs = [bodies[0]["seq"] for bodies in messages.values()]
    assert len(set(seqs)) == N
    # the message still pending was not put again; the one the server already has was put
    # again as the same message (same seq), which the server drops as a duplicate
    assert messages["pipeline-2"][0] == first[2]
    assert messages["pipeline-3"][0] == first[3]
    for i in range(1, N + 1):
        body = messages[f"pipeline-{i}"][0]
        msg = validate_status(json.dumps(body).encode())
        assert msg.schema_version == 1 and msg.machine_id == MACHINE
        assert body["backfill"] is True and body["status"] == "online"
        # the metrics are the artifact's own results, stamped with its capture time
        a = manifest.get(i)
        result = manifest.result(i, "process")
        assert result is not None
        roi = result.payload["image_analysis"][1]
        assert body["sensor_data"]["resonance_px"] == roi["max_intensity"]["Median"]
        assert body["sensor_data"]["resonance_px"] == 8 + (i - 1) % 16  # the drawn peak
        assert (
            body["sensor_data"]["brightness"] == result.payload["image_analysis"][0]["brightness"]
        )
        assert body["sensor_errors"] == {}
        assert body["timestamp"] == iso_utc(a.captured_ns or 0)
    report2 = manifest.result(2, "report")
    assert report2 is not None
    assert report2.payload["delivered"]["fleet"]["message_id"] == "pipeline-2"
    manifest.close()
