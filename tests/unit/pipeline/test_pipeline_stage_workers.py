"""Processor, reporter, compressor, syncer and retention each on their own: a corrupt image
fails alone, CSV rows appended exactly once, compression recorded atomically, a missing share
stops only the syncer, retention never deletes what is not synced."""

from __future__ import annotations

import csv
import gzip
import threading
from pathlib import Path
from typing import Any

import zstandard

from rigwatch.pipeline.manifest import Manifest
from rigwatch.pipeline.stages.build import build_stage, open_manifest
from rigwatch.pipeline.stages.collector import Collector
from rigwatch.pipeline.stages.files import sha256_file
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.reporter import LEDGER_NAME
from support.pipeline_stages import (
    base_config,
    image_folder,
    run_until,
    tiny_roi_manifest,
    write_config,
)

GRATING = {
    "image": [
        {"name": "grating", "options": {"roi_manifest": "roi.json", "method": "max_intensity"}}
    ]
}


def _pipeline(tmp: Path, n: int, **sections: Any) -> tuple[Any, Manifest]:
    image_folder(tmp / "src", n)
    tiny_roi_manifest(tmp / "roi.json")
    (tmp / "share").mkdir(exist_ok=True)
    data = base_config(
        tmp,
        collector={
            "interval_s": 0.01,
            "min_free_bytes": 0,
            "camera": {"enabled": True, "type": "folder", "folder": {"source_dir": "src"}},
        },
        processor={"poll_s": 0.02, "plugins": GRATING},
        **sections,
    )
    _, cfg = write_config(tmp, data)
    manifest = open_manifest(cfg)
    Collector(manifest, cfg).cycle(threading.Event())
    return cfg, manifest


def _done(manifest: Manifest, stage: str, n: int) -> bool:
    by = manifest.counts()[stage]
    return by.get("done", 0) + by.get("failed", 0) >= n


def test_processor_fails_a_corrupt_image_and_goes_on(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(tmp_path, 6)
    bad = manifest.get(3)
    Path(bad.path).write_bytes(Path(bad.path).read_bytes()[:60])  # truncated PNG
    processor = build_stage("processor", cfg, manifest)
    assert run_until(processor, lambda: _done(manifest, "process", 6))
    states = manifest.stages_of(3)
    assert states["process"].status == "failed"
    assert "truncated" in (states["process"].last_error or "")
    assert states["report"].status == "blocked"
    assert manifest.counts()["process"] == {"done": 5, "failed": 1}
    ok = manifest.result(1, "process")
    assert ok is not None and ok.payload["image_analysis"][1]["max_intensity"]["Median"] == 8.0
    lines = list(manifest.results_log.read()) if manifest.results_log else []
    assert sorted(x["artifact_id"] for x in lines) == [1, 2, 3, 4, 5, 6]
    assert [x["processing_successful"] for x in lines if x["artifact_id"] == 3] == [False]
    assert processor.status.data["failed"] == 1
    manifest.close()


def test_reporter_appends_each_artifact_once_across_a_crash(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(
        tmp_path,
        8,
        reporter={
            "poll_s": 0.02,
            "handlers": [{"type": "csv_plot", "plot": "plot.png", "plot_interval_s": 0.01}],
        },
    )
    assert run_until(build_stage("processor", cfg, manifest), lambda: _done(manifest, "process", 8))
    csv_path = Path(cfg.paths.reports_dir) / "communicating_results.csv"
    # a reporter delivered artifact 1 and died before completing it; another appended rows
    # for artifact 2 and died before recording them in the ledger
    reporter = build_stage("reporter", cfg, manifest)
    lease = manifest.claim("report", "dead-reporter", 1, lease_s=0.01)[0]
    reporter.handle(lease)  # type: ignore[attr-defined]
    with open(csv_path, "a") as fh:
        fh.write("2023-11-14T22:13:20Z,2,image_x.png,ROI_A1_1,max_intensity,9.0\n")
    assert run_until(reporter, lambda: _done(manifest, "report", 8))
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(int(r["artifact_id"]) for r in rows) == list(range(1, 9))
    assert list(rows[0]) == [
        "timestamp",
        "artifact_id",
        "image_filename",
        "ROI-label",
        "Analysis-method",
        "max_intensity",
    ]
    assert (Path(cfg.paths.reports_dir) / "plot.png").stat().st_size > 1000
    report = manifest.result(1, "report")
    assert report is not None and report.payload["delivered"]["csv_plot"]["rows"] == 1
    assert Ledger(Path(cfg.paths.reports_dir) / LEDGER_NAME).count("csv_plot") == 8
    manifest.close()


def test_compressor_records_new_file_atomically(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(
        tmp_path,
        4,
        compressor={"enabled": True, "codec": "zstd", "poll_s": 0.02, "skip_suffixes": []},
    )
    originals = {
        i: (manifest.get(i).path, Path(manifest.get(i).path).read_bytes()) for i in (1, 2, 3, 4)
    }
    assert run_until(build_stage("processor", cfg, manifest), lambda: _done(manifest, "process", 4))
    assert run_until(
        build_stage("compressor", cfg, manifest), lambda: _done(manifest, "compress", 4)
    )
    for i, (old_path, raw) in originals.items():
        a = manifest.get(i)
        assert a.path == old_path + ".zst" and not Path(old_path).exists()
        assert (a.checksum, a.size_bytes) == sha256_file(Path(a.path))
        assert a.meta["codec"] == "zstd" and a.meta["original_size"] == len(raw)
        assert zstandard.ZstdDecompressor().decompress(Path(a.path).read_bytes()) == raw
    manifest.close()


def test_compressor_leaves_png_alone_by_default_and_gzips_json(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(
        tmp_path, 1, compressor={"enabled": True, "codec": "gzip", "poll_s": 0.02}
    )
    from rigwatch.pipeline.manifest import NewArtifact

    j = Path(cfg.paths.data_dir) / "temperature_x.json"
    j.write_text('{"data": {"chip": 23.1}}' * 20)
    manifest.add(NewArtifact("temperature", j, *sha256_file(j)))
    assert run_until(build_stage("processor", cfg, manifest), lambda: _done(manifest, "process", 2))
    assert run_until(
        build_stage("compressor", cfg, manifest), lambda: _done(manifest, "compress", 2)
    )
    png = manifest.result(1, "compress")
    assert png is not None and png.payload == {
        "compressed": False,
        "reason": "already a compressed format (.png)",
    }
    t = manifest.get(2)
    assert t.path.endswith(".json.gz")
    assert gzip.decompress(Path(t.path).read_bytes()) == ('{"data": {"chip": 23.1}}' * 20).encode()
    manifest.close()


def test_missing_share_stops_only_the_syncer_and_it_resumes(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(tmp_path, 5, sync={"enabled": True, "share": "share", "poll_s": 0.02})
    share = tmp_path / "share"
    share.rename(tmp_path / "share-away")
    assert run_until(build_stage("processor", cfg, manifest), lambda: _done(manifest, "process", 5))
    assert run_until(build_stage("reporter", cfg, manifest), lambda: _done(manifest, "report", 5))
    syncer = build_stage("syncer", cfg, manifest)
    stop = threading.Event()
    syncer.cycle(stop)  # type: ignore[attr-defined]
    assert syncer.status.state == "waiting"
    assert syncer.status.reason == f"share {share} is missing (not a folder)"
    assert manifest.counts()["sync"] == {"pending": 5}
    (tmp_path / "share-away").rename(share)
    assert run_until(syncer, lambda: _done(manifest, "sync", 5))
    for i in range(1, 6):
        a = manifest.get(i)
        dest = share / "image" / Path(a.path).name
        assert sha256_file(dest)[0] == a.checksum
    assert not list(share.rglob(".*"))  # no temporary files left
    manifest.close()


def test_retention_deletes_only_synced_oldest(tmp_path: Path) -> None:
    cfg, manifest = _pipeline(
        tmp_path,
        10,
        sync={"enabled": True, "share": "share", "poll_s": 0.02},
        retention={"max_count": 2, "poll_s": 0.02},
    )
    for stage in ("processor", "reporter"):
        name = {"processor": "process", "reporter": "report"}[stage]
        assert run_until(build_stage(stage, cfg, manifest), lambda n=name: _done(manifest, n, 10))
    # sync only the first four
    syncer = build_stage("syncer", cfg, manifest)
    leases = manifest.claim("sync", "test-syncer", 4)
    for lease in leases:
        manifest.complete(lease, syncer.handle(lease).result)  # type: ignore[attr-defined]
    retention = build_stage("retention", cfg, manifest)
    assert run_until(retention, lambda: manifest.counts()["retention"].get("done", 0) == 4)
    stop = threading.Event()
    retention.cycle(stop)  # nothing more may go: the other six are not synced
    deleted = [r.artifact_id for r in manifest.results(stage="retention")]
    assert sorted(deleted) == [1, 2, 3, 4]
    for i in range(1, 11):
        assert Path(manifest.get(i).path).exists() == (i > 4)
    manifest.close()
