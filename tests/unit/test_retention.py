"""Retention: which recordings go (oldest first), what is never touched, the free-space floor,
thread safety, its configuration, and the recorder running it after each closed segment."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.recorder import DiskUsage, Retention, SegmentRecorder
from rigwatch.acquisition.recorder.retention import min_free_floor
from rigwatch.config import load_config
from rigwatch.config.station import RecorderConfig, RetentionConfig, StationConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.errors import ConfigError
from support.disk import GIB, FakeDisk

S = 1_000_000_000
NOW = 1_750_000_000 * S  # mtimes are set explicitly, relative to this


def make(directory: Path, name: str, size: int = 100, mtime_s: float | None = None) -> Path:
    """A file of ``size`` bytes with modification time ``mtime_s`` (s since the epoch)."""
    path = directory / name
    path.write_bytes(b"x" * size)
    if mtime_s is not None:
        ns = round(mtime_s * S)
        os.utime(path, ns=(ns, ns))
    return path


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def retention(directory: Path, counters: Counters | None = None, **kw: object) -> Retention:
    return Retention(directory, RetentionConfig(**kw), counters or Counters())  # type: ignore[arg-type]


def stamp(i: int) -> str:
    return f"20240501T1200{i:02d}_000000Z"


def test_max_files_keeps_the_newest_and_only_touches_recordings(tmp_path: Path) -> None:
    t = NOW / S
    recordings = [
        make(tmp_path, f"mic_{stamp(0)}.parquet", 10, t - 60),
        make(tmp_path, f"buffer_mic_{stamp(1)}.parquet", 20, t - 50),  # snapshots count
        make(tmp_path, f"mic_{stamp(2)}-recovered.parquet", 30, t - 40),  # recovered too
        make(tmp_path, f"mic_{stamp(3)}-1.parquet", 40, t - 30),
        make(tmp_path, f"pressure_{stamp(4)}.parquet", 50, t - 20),  # any device
    ]
    untouchable = [
        make(tmp_path, f".mic_{stamp(9)}.parquet.tmp", 1, t - 999),  # open segment
        make(tmp_path, f".mic_{stamp(9)}.parquet.arrows", 1, t - 999),  # its journal
        make(tmp_path, f".mic_{stamp(8)}.parquet.arrows.corrupt", 1, t - 999),
        make(tmp_path, f".mic_{stamp(7)}.parquet", 1, t - 999),  # hidden
        make(tmp_path, "notes.parquet", 1, t - 999),  # not our naming
        make(tmp_path, "mic_20240501.parquet", 1, t - 999),
        make(tmp_path, f"mic_{stamp(6)}.csv", 1, t - 999),
    ]
    (tmp_path / f"dir_{stamp(5)}.parquet").mkdir()  # a directory named like a recording
    link = tmp_path / f"link_{stamp(5)}.parquet"
    link.symlink_to(recordings[0])
    counters = Counters()
    ret = retention(tmp_path, counters, max_files=2)

    deleted = ret.enforce()

    assert deleted == recordings[:3]  # oldest first
    assert not any(p.exists() for p in recordings[:3])
    assert all(p.exists() for p in [*recordings[3:], *untouchable])
    assert link.is_symlink() and (tmp_path / f"dir_{stamp(5)}.parquet").is_dir()
    assert counters.get("recorder.retention_deleted") == 3
    assert counters.get("recorder.retention_deleted_bytes") == 10 + 20 + 30
    assert "max_files=2" in counters.last_messages()["recorder.retention_deleted"]
    assert (ret.deleted_files, ret.deleted_bytes) == (3, 60)
    assert ret.enforce() == []  # nothing more to do
    assert counters.get("recorder.retention_deleted") == 3


def test_oldest_is_by_modification_time_not_by_the_stamp_in_the_name(tmp_path: Path) -> None:
    t = NOW / S
    # a replayed device names files with its recording's old clock: order of completion wins
    first = make(tmp_path, f"replay_{stamp(50)}.parquet", 10, t - 30)
    second = make(tmp_path, f"replay_{stamp(10)}.parquet", 10, t - 20)
    third = make(tmp_path, f"replay_{stamp(30)}.parquet", 10, t - 10)
    assert retention(tmp_path, max_files=1).enforce() == [first, second]
    assert third.exists()


def test_max_age_s(tmp_path: Path) -> None:
    now = os.stat(tmp_path).st_mtime  # the file system's clock
    old = make(tmp_path, f"a_{stamp(0)}.parquet", 10, now - 7200)
    recent = make(tmp_path, f"a_{stamp(1)}.parquet", 10, now - 60)
    counters = Counters()
    assert retention(tmp_path, counters, max_age_s=3600).enforce() == [old]
    assert recent.exists()
    assert "max_age_s=3600" in counters.last_messages()["recorder.retention_deleted"]


def test_max_bytes_deletes_oldest_until_the_total_fits(tmp_path: Path) -> None:
    t = NOW / S
    files = [make(tmp_path, f"a_{stamp(i)}.parquet", 100, t - 100 + i) for i in range(6)]
    counters = Counters()
    assert retention(tmp_path, counters, max_bytes=350).enforce() == files[:3]
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) == 300
    assert counters.get("recorder.retention_deleted_bytes") == 300


def test_keep_protects_the_file_just_written(tmp_path: Path) -> None:
    t = NOW / S
    just_closed = make(tmp_path, f"a_{stamp(0)}.parquet", 500, t - 100)  # old mtime, big
    other = make(tmp_path, f"a_{stamp(1)}.parquet", 100, t - 50)
    deleted = retention(tmp_path, max_bytes=200, max_files=1).enforce(keep=[just_closed])
    assert deleted == [other]
    assert just_closed.exists()


def test_no_limit_set_deletes_nothing_and_counts_nothing(tmp_path: Path) -> None:
    for i in range(5):
        make(tmp_path, f"a_{stamp(i)}.parquet", 10, NOW / S - i)
    counters = Counters()
    assert retention(tmp_path, counters).enforce() == []
    assert len(names(tmp_path)) == 5
    assert counters.snapshot() == {}
    assert retention(tmp_path / "missing", counters, max_files=1).enforce() == []


class DirectoryDisk(FakeDisk):
    """Free space = capacity minus the bytes of the files in the directory."""

    def __init__(self, directory: Path, capacity: int) -> None:
        super().__init__(total_bytes=capacity)
        self.directory = directory
        self.capacity = capacity

    def usage(self, directory: Path) -> DiskUsage:
        used = sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())
        return DiskUsage(total_bytes=self.capacity, free_bytes=self.capacity - used)


def test_free_space_floor_deletes_only_when_asked(tmp_path: Path) -> None:
    t = NOW / S
    files = [make(tmp_path, f"a_{stamp(i)}.parquet", 100, t - 100 + i) for i in range(5)]
    disk = DirectoryDisk(tmp_path, capacity=800)  # 300 free
    cfg = {"min_free_bytes": 500}
    plain = Retention(tmp_path, RetentionConfig(**cfg), Counters(), disk=disk)
    assert plain.space().below_floor
    assert plain.enforce() == []  # the floor alone deletes nothing
    rolling = Retention(
        tmp_path, RetentionConfig(**cfg, delete_for_min_free=True), Counters(), disk=disk
    )
    assert rolling.enforce() == files[:2]  # 500 free after two deletions
    assert rolling.space().free_bytes == 500 and not rolling.space().below_floor


def test_default_floor_is_1_gib_or_5_percent_of_a_small_disk() -> None:
    unset = RetentionConfig()
    assert min_free_floor(unset, 1000 * GIB) == GIB
    assert min_free_floor(unset, 16 * GIB) == int(16 * GIB * 0.05)
    assert min_free_floor(RetentionConfig(min_free_bytes=0), 16 * GIB) == 0
    assert min_free_floor(RetentionConfig(min_free_bytes=123), 16 * GIB) == 123


def test_concurrent_calls_delete_each_file_once(tmp_path: Path) -> None:
    t = NOW / S
    files = [make(tmp_path, f"a_{i:04d}_{stamp(0)}.parquet", 7, t - 1000 + i) for i in range(300)]
    counters = Counters()
    shared = retention(tmp_path, counters, max_files=10)
    other = retention(tmp_path, counters, max_files=10)  # a second instance on the same folder
    barrier = threading.Barrier(8)
    results: list[list[Path]] = []

    def run(ret: Retention) -> None:
        barrier.wait()
        results.append(ret.enforce())

    threads = [threading.Thread(target=run, args=(shared if i % 2 else other,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    deleted = sorted(p for r in results for p in r)
    assert deleted == sorted(files[:290])  # each exactly once, never a newer one instead
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files[290:])
    assert counters.get("recorder.retention_deleted") == 290
    assert counters.get("recorder.retention_deleted_bytes") == 290 * 7
    assert shared.deleted_files + other.deleted_files == 290


# -- configuration ---------------------------------------------------------------------------
def station(recorder: dict[str, object]) -> StationConfig:
    return StationConfig.from_dict(
        {
            "recorder": recorder,
            "devices": [{"name": "d", "driver": "sim", "sample_rate_hz": 10, "channel_count": 1}],
        }
    )


def test_retention_table_in_a_station_config() -> None:
    cfg = station(
        {
            "retention": {
                "max_files": 100,
                "max_age_s": 86400,
                "max_bytes": 500 * GIB,
                "min_free_bytes": 2 * GIB,
                "delete_for_min_free": True,
            },
            "disk_full_retry_s": 2,
        }
    )
    r = cfg.recorder.retention
    assert (r.max_files, r.max_age_s, r.max_bytes, r.min_free_bytes) == (
        100,
        86400,
        500 * GIB,
        2 * GIB,
    )
    assert r.delete_for_min_free and cfg.recorder.disk_full_retry_s == 2
    default = station({}).recorder
    assert default.retention == RetentionConfig() and default.retention.max_files is None
    assert default.disk_full_retry_s == 5.0


@pytest.mark.parametrize(
    ("retention_table", "message"),
    [
        ({"max_file": 3}, "max_file"),  # misspelt: extra keys are errors
        ({"max_files": 0}, "max_files"),
        ({"max_age_s": -1}, "max_age_s"),
        ({"min_free_bytes": -5}, "min_free_bytes"),
        ({"max_bytes": 1000}, "segment_max_bytes"),  # smaller than one segment
    ],
)
def test_bad_retention_tables_are_refused(retention_table: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        station({"retention": retention_table})


def test_a_misspelt_retention_key_in_toml_names_the_file_and_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "station.toml"
    toml.write_text(
        "[recorder.retention]\nmax_file = 100\n"
        '[[devices]]\nname = "d"\ndriver = "sim"\nsample_rate_hz = 10\nchannel_count = 1\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(toml)
    msg = str(err.value)
    assert str(toml) in msg and "recorder.retention.max_file" in msg and "unknown key" in msg
    ok = tmp_path / "ok.toml"
    ok.write_text(toml.read_text().replace("max_file =", "max_files ="))
    assert load_config(ok).recorder.retention.max_files == 100


# -- the recorder runs it ---------------------------------------------------------------------
def test_recorder_applies_retention_after_each_closed_segment(tmp_path: Path) -> None:
    snapshot = make(tmp_path, f"buffer_dev_{stamp(0)}.parquet", 10, NOW / S - 3600)
    counters = Counters()
    cfg = RecorderConfig(
        directory=tmp_path,
        fsync=False,
        segment_duration_s=0.1,  # 100 rows of the 1 kHz ramp
        retention=RetentionConfig(max_files=2),
    )
    stream = DeviceStream(ListDevice("dev"), 10_000, counters)
    rec = SegmentRecorder(stream, cfg, counters)
    rec.start()
    stream.ingest(ramp_block(0, 550, 2))
    rec.stop()
    closed = rec.segments
    assert len(closed) == 6  # 5 full + the last 50 rows
    left = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert left == sorted(p.name for p in closed[-2:])  # the snapshot went first
    assert not snapshot.exists()
    assert counters.get("recorder.retention_deleted") == 5
    for p in closed[-2:]:
        assert pq.read_table(p).num_rows in (100, 50)
    status = rec.status()
    assert status["retention_deleted_files"] == 5
    assert status["retention_deleted_bytes"] == counters.get("recorder.retention_deleted_bytes")
    assert status["free_bytes"] is not None and status["free_bytes"] > 0
