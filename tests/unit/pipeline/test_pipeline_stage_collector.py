"""The collector on its own: synthetic camera, folder import, DS18B20 over a fake sysfs tree,
the station's segments, a full disk, orphans adopted after a crash."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rigwatch.errors import SensorError
from rigwatch.pipeline.stages import collector as collector_module
from rigwatch.pipeline.stages.build import open_manifest
from rigwatch.pipeline.stages.collector import Collector
from rigwatch.pipeline.stages.files import sha256_file
from rigwatch.pipeline.stages.sources.ds18b20 import Ds18b20Bus, parse_w1_slave
from rigwatch.pipeline.stages.sources.names import parse_image_name
from support.pipeline_stages import T0_NS, base_config, image_folder, write_config

GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
BAD_CRC = "72 01 4b 46 7f ff 0e 10 57 : crc=12 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


class FlakyFile:
    """A w1_slave file whose content changes on each read (a sensor with bad CRCs first)."""

    def __init__(self, path: Path, texts: list[str]) -> None:
        self.path, self.texts = path, texts

    def advance(self) -> None:
        if len(self.texts) > 1:
            self.texts.pop(0)
        self.path.write_text(self.texts[0])


def _sensor(root: Path, dev: str, text: str) -> Path:
    d = root / dev
    d.mkdir(parents=True)
    (d / "w1_slave").write_text(text)
    return d / "w1_slave"


def test_w1_slave_parsing() -> None:
    assert parse_w1_slave(GOOD) == 23.125
    with pytest.raises(SensorError, match="CRC"):
        parse_w1_slave(BAD_CRC)
    with pytest.raises(SensorError, match="power-on reset"):
        parse_w1_slave(GOOD.replace("t=23125", "t=85000"))
    with pytest.raises(SensorError, match="rated range"):
        parse_w1_slave(GOOD.replace("t=23125", "t=130000"))
    with pytest.raises(SensorError, match="two lines"):
        parse_w1_slave("72 01 : crc=57 YES")


def test_ds18b20_retries_then_reads_and_reports_dead_sensors(tmp_path: Path) -> None:
    flaky = FlakyFile(_sensor(tmp_path, "28-000000000001", BAD_CRC), [BAD_CRC, BAD_CRC, GOOD])
    _sensor(tmp_path, "28-000000000002", BAD_CRC)  # never recovers
    _sensor(tmp_path, "10-000000000003", GOOD)  # another family: not a DS18B20
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        flaky.advance()

    bus = Ds18b20Bus(tmp_path, retries=5, retry_delay_s=0.1, sleep=sleep)
    reading = bus.read()
    assert reading.data == {"28-000000000001": 23.125, "28-000000000002": None}
    assert "after 5 reads" in reading.errors["28-000000000002"]
    assert "CRC" in reading.errors["28-000000000002"]
    assert len(sleeps) == 2 + 4  # two retries for the first, four for the dead one


def test_collector_synthetic_camera_with_temperatures(tmp_path: Path) -> None:
    sysfs = tmp_path / "w1"
    _sensor(sysfs, "28-0316a2799cff", GOOD)
    data = base_config(
        tmp_path,
        collector={
            "interval_s": 0.01,
            "min_free_bytes": 0,
            "camera": {
                "enabled": True,
                "type": "synthetic",
                "index": 2,
                "synthetic": {
                    "shape": [128, 256],
                    "chip_rows": 2,
                    "chip_cols": 1,
                    "roi_manifest": "roi.json",
                },
            },
            "temperature": {
                "enabled": True,
                "devices_dir": "w1",
                "sensors": {"chip": "28-0316a2799cff"},
            },
        },
    )
    _, cfg = write_config(tmp_path, data)
    manifest = open_manifest(cfg)
    collector = Collector(manifest, cfg)
    stop = threading.Event()
    for _ in range(3):
        collector.cycle(stop)
    arts = [manifest.get(i) for i in (1, 2, 3)]
    assert (tmp_path / "roi.json").exists()
    for a in arts:
        assert a.kind == "image" and a.path.endswith("_cam2.png")
        assert (a.checksum, a.size_bytes) == sha256_file(Path(a.path))
        assert a.meta["temperature_readings"] == {"chip": 23.125}
    from rigwatch.pipeline.analysis.images import read_image

    img = read_image(arts[0].path)
    assert img.shape == (128, 256) and img.dtype == np.uint16
    assert manifest.counts()["process"] == {"pending": 3}
    manifest.close()


def test_collector_imports_folder_once_and_pauses_on_full_disk(tmp_path: Path) -> None:
    image_folder(tmp_path / "old", 30)
    (tmp_path / "old" / "notes.txt").write_text("not an image")
    data = base_config(
        tmp_path,
        collector={
            "interval_s": 0.01,
            "min_free_bytes": 1000,
            "camera": {
                "enabled": True,
                "type": "folder",
                "folder": {"source_dir": "old", "per_cycle": 20},
            },
        },
    )
    _, cfg = write_config(tmp_path, data)
    manifest = open_manifest(cfg)
    free = {"bytes": 10_000}
    collector = Collector(manifest, cfg, free_bytes=lambda _p: free["bytes"])
    stop = threading.Event()
    collector.cycle(stop)
    assert manifest.counts()["collect"] == {"done": 20}
    free["bytes"] = 999  # below the floor: pause, with the reason in the status
    collector.cycle(stop)
    assert collector.status.state == "paused"
    assert "disk full" in (collector.status.reason or "")
    assert "below the floor of 1000 bytes" in (collector.status.reason or "")
    assert manifest.counts()["collect"] == {"done": 20}
    free["bytes"] = 10_000
    collector.cycle(stop)
    collector.cycle(stop)
    assert manifest.counts()["collect"] == {"done": 30}
    # a new collector (after a restart) imports nothing twice, even after compression
    first = manifest.get(1)
    Path(first.path).rename(first.path + ".zst")
    from sqlalchemy import update

    from rigwatch.pipeline.manifest.models import Artifact

    with manifest.engine.begin() as conn:
        conn.execute(update(Artifact).where(Artifact.id == 1).values(path=first.path + ".zst"))
    again = Collector(manifest, cfg, free_bytes=lambda _p: 10_000)
    again.cycle(stop)
    assert manifest.counts()["collect"] == {"done": 30}
    assert again.adopted == 0
    manifest.close()


def test_collector_adopts_files_written_before_a_crash(tmp_path: Path) -> None:
    _, cfg = write_config(tmp_path, base_config(tmp_path))
    manifest = open_manifest(cfg)
    image_folder(Path(cfg.paths.data_dir), 3)  # written, never added
    (Path(cfg.paths.data_dir) / ".image_x.png.tmp").write_bytes(b"half")  # a work file
    collector = Collector(manifest, cfg)
    assert collector.adopted == 3
    assert Collector(manifest, cfg).adopted == 0
    manifest.close()


def counting_parser(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the collector's parses of image names, per name."""
    parsed: Counter[str] = Counter()

    def parse(name: str) -> tuple[int, int] | None:
        parsed[name] += 1
        return parse_image_name(name)

    monkeypatch.setattr(collector_module, "parse_image_name", parse)
    return parsed


def test_collector_parses_each_image_name_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = image_folder(tmp_path / "old", 4)
    (tmp_path / "old" / "notes.txt").write_text("not an image")
    data = base_config(
        tmp_path,
        collector={
            "min_free_bytes": 0,
            "camera": {"enabled": True, "type": "folder", "folder": {"source_dir": "old"}},
        },
    )
    _, cfg = write_config(tmp_path, data)
    orphans = image_folder(Path(cfg.paths.data_dir), 2, start_ns=T0_NS + 10**9)
    manifest = open_manifest(cfg)
    parsed = counting_parser(monkeypatch)
    collector = Collector(manifest, cfg)  # adopts the orphans
    assert collector.adopted == 2
    assert parsed == Counter(p.name for p in orphans)
    parsed.clear()
    collector.cycle(threading.Event())  # imports the folder
    assert parsed == Counter([p.name for p in images] + ["notes.txt"])
    # the time and camera of each artifact come from that one parse
    artifacts = {Path(a.path).name: a for a in map(manifest.get, range(1, 7))}
    assert set(artifacts) == {p.name for p in orphans + images}
    for name, a in artifacts.items():
        assert (a.captured_ns, a.meta["camera_index"]) == parse_image_name(name)
    manifest.close()


def test_collector_takes_closed_segments_only(tmp_path: Path) -> None:
    import pyarrow as pa

    rec = tmp_path / "recordings"
    rec.mkdir()
    table = pa.table({"timestamp": pa.array([1, 2, 3], pa.int64()), "acc": [0.1, 0.2, 0.3]})
    import pyarrow.parquet as pq

    pq.write_table(table, rec / "mill_20240501T120000_000000Z.parquet")
    (rec / ".mill_20240501T120100_000000Z.parquet.tmp").write_bytes(b"open")
    (rec / ".mill_20240501T120100_000000Z.parquet.arrows").write_bytes(b"journal")
    pq.write_table(table, rec / "buffer_mill_20240501T120200_000000Z.parquet")
    data = base_config(
        tmp_path,
        collector={
            "interval_s": 0.01,
            "min_free_bytes": 0,
            "camera": {"enabled": False},
            "segments": {"enabled": True, "folder": "recordings"},
        },
    )
    _, cfg = write_config(tmp_path, data)
    manifest = open_manifest(cfg)
    collector = Collector(manifest, cfg)
    collector.cycle(threading.Event())
    collector.cycle(threading.Event())
    assert manifest.counts()["collect"] == {"done": 1}
    seg = manifest.get(1)
    assert seg.kind == "segment" and seg.meta["device"] == "mill" and seg.meta["rows"] == 3
    assert Path(seg.path).read_bytes() == (rec / Path(seg.path).name).read_bytes()
    manifest.close()
