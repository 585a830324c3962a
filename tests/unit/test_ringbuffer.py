import threading

import numpy as np
import pytest

from rigwatch.acquisition.ringbuffer import RingBuffer


def rows(start: int, n: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(start, start + n)
    data = (idx[:, None] * 10 + np.arange(channels)[None, :]).astype(np.float32)
    return data, (idx * 1000).astype(np.int64)


def test_read_since_returns_exact_rows_across_wraparound():
    rb = RingBuffer(10, 3)
    rb.write(*rows(0, 7))
    r = rb.read_since(0)
    assert r.start_index == 0 and r.missed == 0 and r.end_index == 7
    rb.write(*rows(7, 6))  # wraps: rows 3..12 are kept
    r = rb.read_since(7)
    expected, ts = rows(7, 6)
    np.testing.assert_array_equal(r.data, expected)
    np.testing.assert_array_equal(r.timestamps_ns, ts)
    assert rb.oldest_index == 3 and rb.write_index == 13


def test_overrun_reports_exact_missed_count():
    rb = RingBuffer(10, 2)
    rb.write(*rows(0, 25, 2))
    r = rb.read_since(4)
    assert r.missed == 11  # rows 4..14 were overwritten
    assert r.start_index == 15
    np.testing.assert_array_equal(r.data, rows(15, 10, 2)[0])


def test_block_larger_than_capacity_keeps_newest_rows():
    rb = RingBuffer(5, 1)
    end = rb.write(*rows(0, 12, 1))
    assert end == 12
    r = rb.snapshot(100)
    assert r.start_index == 7
    np.testing.assert_array_equal(r.data[:, 0], np.arange(7, 12) * 10)


def test_snapshot_latest_and_max_rows():
    rb = RingBuffer(100, 2)
    assert rb.latest() is None
    rb.write(*rows(0, 30, 2))
    snap = rb.snapshot(5)
    assert snap.start_index == 25 and snap.data.shape == (5, 2)
    row, ts = rb.latest()
    np.testing.assert_array_equal(row, [290, 291])
    assert ts == 29_000
    part = rb.read_since(10, max_rows=4)
    assert part.start_index == 10 and part.end_index == 14


def test_bad_shapes_and_indexes_are_rejected():
    rb = RingBuffer(10, 2)
    with pytest.raises(ValueError, match="expected"):
        rb.write(np.zeros((3, 3), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="float32"):
        rb.write(np.zeros((3, 2), np.float64), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="outside"):
        rb.read_since(5)


def test_concurrent_reader_never_sees_torn_or_overwritten_rows():
    """A reader racing the writer only gets rows whose content matches their index."""
    rb = RingBuffer(1000, 4)
    total = 200_000
    stop = threading.Event()
    problems: list[str] = []
    seen = 0

    def reader() -> None:
        nonlocal seen
        index = 0
        while not stop.is_set() or index < rb.write_index:
            r = rb.read_since(index)
            if r.data.shape[0]:
                want = np.arange(r.start_index, r.end_index)
                if not np.array_equal(r.data[:, 0], (want * 10).astype(np.float32)) or not (
                    np.array_equal(r.timestamps_ns, want * 1000)
                ):
                    problems.append(f"bad rows at {r.start_index}")
                    return
            seen += r.data.shape[0] + r.missed
            index = r.end_index

    t = threading.Thread(target=reader)
    t.start()
    for start in range(0, total, 97):
        n = min(97, total - start)
        rb.write(*rows(start, n, 4))
    stop.set()
    t.join(30)
    assert not problems
    assert seen == total  # every row either read or counted as missed


def _check_rows(r) -> None:
    want = np.arange(r.start_index, r.end_index)
    np.testing.assert_array_equal(r.data[:, 0], (want * 10).astype(np.float32))
    np.testing.assert_array_equal(r.timestamps_ns, want * 1000)


@pytest.mark.parametrize("overwrite", [1, 4, 9, 10, 25])
def test_writer_overwriting_between_copy_and_recheck_never_yields_a_torn_row(overwrite: int):
    """The writer overwrites rows while a reader copies them (forced at the exact moment by
    the hook): the reader gets only rows whose content matches their index, and exactly the
    overwritten ones are reported missed."""
    rb = RingBuffer(10, 3)
    rb.write(*rows(0, 10))  # full: rows 0..9
    written = 10

    def writer_strikes() -> None:
        nonlocal written
        rb.after_copy_hook = None  # once
        rb.write(*rows(written, overwrite))
        written += overwrite

    rb.after_copy_hook = writer_strikes
    r = rb.read_since(0)  # copies rows 0..9, then the writer overwrites the oldest
    lost = min(overwrite, 10)
    assert r.missed == lost and r.start_index == lost
    assert r.end_index == 10  # the copy ended where the write index was when it began
    _check_rows(r)


def test_writer_wrapping_during_a_two_part_copy_never_yields_a_torn_row():
    rb = RingBuffer(10, 3)
    rb.write(*rows(0, 16))  # rows 6..15 kept, wrapped at position 6
    rb.after_copy_hook = lambda: (setattr(rb, "after_copy_hook", None), rb.write(*rows(16, 7)))
    r = rb.read_since(8)  # rows 8..15: both parts of the ring
    assert r.start_index == 13 and r.missed == 5 and r.end_index == 16
    _check_rows(r)
    assert rb.read_since(r.end_index).start_index == 16
