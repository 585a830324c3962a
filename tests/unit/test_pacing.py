"""PacedStream: the start/stop, pacing and timestamp state shared by the replay and sim devices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from rigwatch.devices.pacing import PacedStream
from rigwatch.devices.protocols import regular_timestamps_ns
from rigwatch.errors import DeviceError


def _rows(rows: int, channels: int = 2) -> np.ndarray:
    return np.zeros((rows, channels), dtype=np.float32)


def test_not_started_is_an_error_naming_the_device() -> None:
    stream = PacedStream("sim device 'rig'", 1_000.0, realtime=False)
    assert not stream.running
    with pytest.raises(DeviceError, match=r"^sim device 'rig' is not started$"):
        stream.check_running()
    with pytest.raises(DeviceError, match="not started"):
        stream.next_range(10, 0.0)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PacedStream("x", 0.0)


def test_fast_ranges_are_consecutive_and_stamped_from_the_absolute_index() -> None:
    stream = PacedStream("d", 51_200.0, realtime=False)
    before = time.time_ns()
    stream.start()
    assert before <= stream.t0_ns <= time.time_ns()
    assert stream.running and stream.position == 0
    starts = []
    for rows in (100, 100, 37):
        start = stream.next_range(rows, 0.0)
        assert start is not None
        data = _rows(rows)
        block = stream.deliver(start, data)
        starts.append(start)
        assert block.data is data  # not copied
        assert block.timestamps_ns.dtype == np.int64
        assert np.array_equal(
            block.timestamps_ns, regular_timestamps_ns(stream.t0_ns, start, rows, 51_200.0)
        )
    assert starts == [0, 100, 200]
    assert stream.position == 237
    assert np.array_equal(
        stream.timestamps(200, 37), regular_timestamps_ns(stream.t0_ns, 200, 37, 51_200.0)
    )


def test_next_range_does_not_advance_until_delivered() -> None:
    stream = PacedStream("d", 100.0, realtime=False)
    stream.start()
    assert stream.next_range(10, 0.0) == 0
    assert stream.next_range(10, 0.0) == 0  # nothing delivered yet: same range again
    stream.deliver(0, _rows(10))
    assert stream.next_range(10, 0.0) == 10


def test_realtime_waits_on_the_injected_clock() -> None:
    t = [20.0]
    sleeps: list[float] = []
    stream = PacedStream("d", 1_000.0, clock=lambda: t[0], sleep=sleeps.append)
    stream.start()
    assert stream.next_range(100, 0.5) is None  # row 99 is due at t0 + 0.099 s
    assert sleeps == [pytest.approx(0.099)]
    assert stream.next_range(100, 0.01) is None
    assert sleeps[-1] == pytest.approx(0.01)  # never longer than the timeout
    t[0] = 20.099
    assert stream.next_range(100, 0.5) == 0
    stream.deliver(0, _rows(100))
    assert stream.next_range(100, 0.0) is None
    assert len(sleeps) == 2  # a zero timeout does not sleep
    t[0] = 30.0  # late: every due range at once, no sleeping
    for k in range(1, 5):
        start = stream.next_range(100, 0.0)
        assert start == 100 * k
        stream.deliver(start, _rows(100))
    assert len(sleeps) == 2


def test_stop_during_the_wait_returns_none_and_restart_rewinds() -> None:
    t = [0.0]

    def sleep(seconds: float) -> None:
        t[0] += seconds  # the rows become due, but the stream was stopped meanwhile
        stream.stop()

    stream = PacedStream("d", 1_000.0, clock=lambda: t[0], sleep=sleep)
    stream.start()
    assert stream.next_range(100, 1.0) is None
    assert not stream.running
    stream.stop()  # idempotent
    with pytest.raises(DeviceError):
        stream.next_range(100, 1.0)
    stream.start()
    assert stream.running and stream.position == 0


def test_default_sleep_is_cut_short_by_stop() -> None:
    entered = threading.Event()

    def clock() -> float:  # the pacer reads the clock once the reader is past its checks
        entered.set()
        return time.monotonic()

    stream = PacedStream("d", 1.0, clock=clock)  # the first 10 rows are due 9 s after start
    stream.start()
    entered.clear()
    result: list[int | None] = []
    reader = threading.Thread(target=lambda: result.append(stream.next_range(10, 30.0)))
    reader.start()
    assert entered.wait(5.0)
    stream.stop()  # sets the wake event: a wait in progress or about to begin returns at once
    reader.join(5.0)
    assert not reader.is_alive()  # it did not wait out its 30 s
    assert result == [None]
    stream.start()  # the wake event is cleared again: waits run their course
    assert stream.next_range(10, 0.02) is None
