"""A station's closed Parquet segment through collector, processor (vibration plugin) and
reporter (CSV): the CWRU inner-race recording (data/cwru, 12 kHz drive-end channel) written as
a station segment, its envelope line within 2 % of BPFI, reported once."""

from __future__ import annotations

import csv
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from rigwatch.channels import ChannelInfo, StreamInfo
from rigwatch.pipeline.manifest import Manifest
from rigwatch.pipeline.stages.build import build_stage, open_manifest
from rigwatch.pipeline.stages.worker import StageLoop, wait_until
from rigwatch.recordings.files import tmp_path as work_file_of
from rigwatch.recordings.files import write_table_atomically
from rigwatch.recordings.layout import recording_schema, rows_to_batch
from rigwatch.timefmt import file_stamp
from support.pipeline_stages import T0_NS, base_config, run_until, write_config

CWRU = Path(__file__).resolve().parents[3] / "data" / "cwru"
INNER_RACE = CWRU / "1797_IR_7_DE12.npz"
RATE_HZ = 12_000.0
RPM = 1797.0
BPFI_HZ = 162.2  # CWRU Bearing Data Center: 5.4152 x shaft speed (29.95 Hz)
SKF_6205 = {"n_elements": 9, "element_diameter": 0.3126, "pitch_diameter": 1.537}
"""Drive-end bearing of the CWRU rig (inches), as published by the CWRU Bearing Data Center."""


def write_station_segment(folder: Path, signal: np.ndarray, start_ns: int) -> Path:
    """``signal`` (g) as the station writes a closed segment: ``<device>_<UTC stamp>.parquet``
    in the recordings layout (timestamp column, one float32 channel, rigwatch metadata)."""
    info = StreamInfo(
        device="de_bearing",
        driver="replay",
        sample_rate_hz=RATE_HZ,
        channels=(ChannelInfo("DE", "g"),),
        extra={"source": INNER_RACE.name},
    )
    schema = recording_schema(info, station="bearing-rig", start_index=0)
    ts = start_ns + np.round(np.arange(signal.size) * (1e9 / RATE_HZ)).astype(np.int64)
    batch = rows_to_batch(schema, ts, signal.astype(np.float32).reshape(-1, 1))
    path = folder / f"{info.device}_{file_stamp(start_ns)}.parquet"
    return write_table_atomically(pa.Table.from_batches([batch]), schema, path)


@contextmanager
def running(stage: StageLoop) -> Iterator[threading.Event]:
    """Run ``stage`` on a thread while the block runs; stop and join it after."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            stage.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), f"{stage.name} did not stop"
    if errors:
        raise errors[0]


def count_cycles(stage: StageLoop) -> list[float]:
    """Wrap ``stage.cycle`` so each finished cycle appends to the returned list."""
    done: list[float] = []
    inner = stage.cycle

    def counted(stop: threading.Event) -> float:
        wait = inner(stop)
        done.append(wait)
        return wait

    stage.cycle = counted  # type: ignore[method-assign]
    return done


def _done(manifest: Manifest, stage: str, n: int) -> bool:
    return manifest.counts().get(stage, {}).get("done", 0) >= n


def test_cwru_segment_collected_processed_and_reported_once(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    data = base_config(
        tmp_path,
        collector={
            "interval_s": 0.02,
            "min_free_bytes": 0,
            "camera": {"enabled": False},
            "segments": {"enabled": True, "folder": "recordings"},
        },
        processor={
            "poll_s": 0.02,
            "plugins": {
                "segment": [
                    {
                        "name": "vibration",
                        # no sample_rate_hz: the rate must come from the segment's metadata
                        "options": {
                            "channel": "DE",
                            "search_tolerance": 0.1,
                            "bearing": {**SKF_6205, "shaft_speed_rpm": RPM},
                        },
                    }
                ]
            },
        },
        reporter={"poll_s": 0.02, "handlers": [{"type": "csv_plot", "plot": ""}]},
    )
    _, cfg = write_config(tmp_path, data)
    manifest = open_manifest(cfg)
    signal = np.load(INNER_RACE)["DE"][:, 0]

    collector = build_stage("collector", cfg, manifest)
    cycles = count_cycles(collector)
    with running(collector):
        # the collector watches the folder: a segment still open (its work file) is not taken
        work = work_file_of(recordings / f"de_bearing_{file_stamp(T0_NS - 10**9)}.parquet")
        work.write_bytes(b"PAR1 still being written")
        seen = len(cycles)
        assert wait_until(lambda: len(cycles) >= seen + 2, 10), "the collector does not cycle"
        assert manifest.counts().get("collect", {}) == {}
        # the closed one is, once it appears
        segment = write_station_segment(recordings, signal, T0_NS)
        assert wait_until(lambda: _done(manifest, "collect", 1), 10), manifest.counts()
    assert manifest.counts()["collect"] == {"done": 1}
    artifact = manifest.get(1)
    assert artifact.kind == "segment"
    assert Path(artifact.path).name == segment.name
    assert Path(artifact.path).read_bytes() == segment.read_bytes()
    assert artifact.captured_ns == T0_NS
    assert artifact.meta["device"] == "de_bearing"
    assert artifact.meta["sample_rate_hz"] == RATE_HZ
    assert artifact.meta["rows"] == signal.size

    processor = build_stage("processor", cfg, manifest)
    assert run_until(processor, lambda: _done(manifest, "process", 1)), manifest.stages_of(1)
    stored = manifest.result(1, "process")
    assert stored is not None and stored.ok
    row = stored.payload
    assert row["analysis"] == "vibration"
    assert row["sample_rate_hz"] == RATE_HZ and row["samples"] == signal.size
    assert row["defect_frequencies"]["bpfi_hz"] == pytest.approx(5.4152 * RPM / 60, rel=1e-4)
    bpfi = row["defect_lines"]["bpfi"]
    assert abs(bpfi["frequency_hz"] - BPFI_HZ) / BPFI_HZ < 0.02, bpfi
    # a real line: far above the envelope spectrum's floor, and the strongest defect line
    assert bpfi["prominence"] > 14, bpfi
    others = [v["prominence"] for k, v in row["defect_lines"].items() if k != "bpfi"]
    assert bpfi["prominence"] > max(others), row["defect_lines"]
    # the results log holds the same row, once
    assert manifest.results_log is not None
    lines = list(manifest.results_log.read())
    assert [x["artifact_id"] for x in lines] == [1]

    reporter = build_stage("reporter", cfg, manifest)
    assert run_until(reporter, lambda: _done(manifest, "report", 1)), manifest.stages_of(1)
    # a restarted collector does not take the segment again; nothing more is reported
    build_stage("collector", cfg, manifest).cycle(threading.Event())
    assert manifest.counts()["collect"] == {"done": 1}
    assert manifest.counts()["report"] == {"done": 1}
    csv_path = Path(cfg.paths.reports_dir) / "communicating_results_segment.csv"
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["artifact_id"]) for r in rows] == [1]
    assert rows[0]["filename"] == segment.name
    assert float(rows[0]["defect_lines.bpfi.frequency_hz"]) == bpfi["frequency_hz"]
    report = manifest.result(1, "report")
    assert report is not None
    assert report.payload["delivered"]["csv_plot"] == {"file": csv_path.name, "rows": 1}
    manifest.close()
