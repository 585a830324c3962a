"""A device that goes silent still gets its open segment closed, by the wall clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rigwatch.acquisition.engine import AcquisitionEngine
from rigwatch.acquisition.recorder import SegmentRecorder
from rigwatch.config.station import RecorderConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import Block, regular_timestamps_ns
from rigwatch.errors import RecorderError
from support.disk import wait_until

RATE = 1000.0


class Rig:
    def __init__(self, directory: Path, duration_s: float, grace_s: float) -> None:
        self.counters = Counters()
        self.device = ListDevice("dev", rate_hz=RATE)
        self.engine = AcquisitionEngine([self.device], 100_000, self.counters)
        self.stream = self.engine.streams["dev"]
        cfg = RecorderConfig(directory=directory, fsync=False, segment_duration_s=duration_s)
        self.rec = SegmentRecorder(
            self.stream, cfg, self.counters, start_index=0, close_grace_s=grace_s
        )

    def __enter__(self) -> Rig:
        self.rec.start()
        self.engine.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        self.rec.stop()


def now_block(start: int, rows: int, t0_ns: int) -> Block:
    """Ramp values, timestamps of a device whose clock is ours (row 0 at ``t0_ns``)."""
    b = ramp_block(start, rows, 2)
    return Block(b.data, regular_timestamps_ns(t0_ns, start, rows, RATE))


@pytest.fixture
def silent_after_100_rows(tmp_path: Path) -> Iterator[tuple[Rig, float]]:
    with Rig(tmp_path, duration_s=0.4, grace_s=0.1) as rig:
        t0 = time.monotonic()
        rig.device.blocks.put(now_block(0, 100, time.time_ns()))  # then nothing
        yield rig, t0


def test_segment_of_a_silent_device_closes_at_its_wall_clock_end(
    silent_after_100_rows: tuple[Rig, float], tmp_path: Path
) -> None:
    rig, t0 = silent_after_100_rows
    wait_until(lambda: rig.rec.status()["segment"] is not None, what="segment opened")
    wait_until(lambda: len(rig.rec.segments) == 1, timeout_s=5.0, what="segment closed")
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.4  # not before its duration (+ grace) from the first row
    (seg,) = rig.rec.segments
    table = pq.read_table(seg)
    assert table.num_rows == 100
    np.testing.assert_array_equal(table.column("a").to_numpy(), ramp_block(0, 100, 2).data[:, 0])
    assert rig.rec.status()["segment"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no journal left
    assert rig.stream.state == "running"  # the device is only quiet, not ended

    # when it speaks again, a new segment starts with the next row
    rig.device.blocks.put(now_block(100, 50, time.time_ns() - 100_000_000))
    wait_until(lambda: rig.stream.stats.rows == 150, what="acquisition")
    assert rig.rec.flush() == 150
    rig.rec.stop()
    assert [pq.read_metadata(p).num_rows for p in rig.rec.segments] == [100, 50]
    assert pq.read_schema(rig.rec.segments[1]).metadata[b"rigwatch.start_index"] == b"100"


def test_a_device_clock_far_from_ours_counts_from_the_opening(tmp_path: Path) -> None:
    # ramp timestamps are from 2023: the deadline runs from when the segment was opened
    with Rig(tmp_path, duration_s=0.3, grace_s=0.1) as rig:
        t0 = time.monotonic()
        rig.device.blocks.put(ramp_block(0, 120, 2))
        wait_until(lambda: len(rig.rec.segments) == 1, timeout_s=5.0, what="segment closed")
        assert time.monotonic() - t0 >= 0.4
        assert pq.read_metadata(rig.rec.segments[0]).num_rows == 120


def test_a_device_that_keeps_delivering_is_split_by_its_timestamps_only(tmp_path: Path) -> None:
    # 1.2 s of rows in 50 ms blocks paced like a device; segments of 0.4 s must hold exactly
    # 400 rows each: the wall clock (with a generous grace) never cuts a segment short
    with Rig(tmp_path, duration_s=0.4, grace_s=1.0) as rig:
        t0_ns = time.time_ns()
        pace = threading.Event()
        for k in range(24):
            rig.device.blocks.put(now_block(k * 50, 50, t0_ns))
            pace.wait(max(0.0, (t0_ns + (k + 1) * 50_000_000 - time.time_ns()) / 1e9))
        wait_until(lambda: rig.stream.stats.rows == 1200, what="acquisition")
        assert rig.rec.flush() == 1200
    assert [pq.read_metadata(p).num_rows for p in rig.rec.segments] == [400, 400, 400]


def test_negative_grace_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path, duration_s=1.0, grace_s=0.0)
    with pytest.raises(RecorderError, match="close_grace_s"):
        SegmentRecorder(
            rig.stream,
            RecorderConfig(directory=tmp_path, fsync=False),
            rig.counters,
            close_grace_s=-1,
        )
