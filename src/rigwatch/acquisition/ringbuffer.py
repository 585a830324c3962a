"""Preallocated ring buffer of sample rows, addressed by absolute sample index.

One writer (the device's acquisition thread) and any number of readers (recorder, live
clients, REST handlers), each holding its own read position. A row's *absolute index* counts
every row ever written to the buffer, so a reader that fell behind by more than the capacity
learns exactly how many rows it missed instead of silently reading overwritten data.

There is no lock on the data path. The writer announces the range it is about to overwrite
(``_claimed_end``) before copying and publishes it (``_write_index``) after; a reader copies
its range and then re-checks the claim, discarding any row the writer may have touched
meanwhile (the seqlock pattern). Readers therefore never block the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Rows read from a :class:`RingBuffer`.

    Attributes:
        data: ``(rows, channels)`` ``float32`` copy.
        timestamps_ns: ``(rows,)`` ``int64`` copy, ns since the Unix epoch.
        start_index: absolute index of ``data[0]``.
        missed: rows between the requested index and ``start_index`` that were overwritten
            before they could be read (0 when nothing was lost).
    """

    data: np.ndarray
    timestamps_ns: np.ndarray
    start_index: int
    missed: int

    @property
    def end_index(self) -> int:
        """Absolute index one past the last row returned: the next index to ask for."""
        return self.start_index + int(self.data.shape[0])


class RingBuffer:
    """``(capacity_rows, channels)`` float32 rows plus one int64 ns timestamp per row.

    Args:
        capacity_rows: rows kept; the oldest are overwritten past it.
        channels: columns per row.

    Raises:
        ValueError: capacity or channels below 1.
    """

    def __init__(self, capacity_rows: int, channels: int) -> None:
        if capacity_rows < 1 or channels < 1:
            raise ValueError(
                f"capacity_rows and channels must be >= 1, got {capacity_rows}, {channels}"
            )
        self.capacity = int(capacity_rows)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._ts = np.zeros(self.capacity, dtype=np.int64)
        self._write_index = 0  # published: rows [.., _write_index) are readable
        self._claimed_end = 0  # rows below _claimed_end - capacity may be overwritten now
        self.after_copy_hook: Callable[[], None] | None = None
        """Called by readers between their copy and the re-check of the claim (None in
        production): a seam where a test makes the writer overwrite the rows being read,
        deterministically, to show a torn row is never returned."""

    # -- writer ----------------------------------------------------------------------------
    def write(self, data: np.ndarray, timestamps_ns: np.ndarray) -> int:
        """Append rows. Only one thread may call this.

        Args:
            data: ``(rows, channels)`` float32.
            timestamps_ns: ``(rows,)`` int64.

        Returns:
            The absolute index one past the last row written.

        Raises:
            ValueError: wrong shape or dtype.
        """
        if data.ndim != 2 or data.shape[1] != self.channels:
            raise ValueError(f"expected (rows, {self.channels}) rows, got shape {data.shape}")
        if data.dtype != np.float32 or timestamps_ns.dtype != np.int64:
            raise ValueError(
                f"expected float32 data and int64 timestamps, "
                f"got {data.dtype}, {timestamps_ns.dtype}"
            )
        n = int(data.shape[0])
        if timestamps_ns.shape != (n,):
            raise ValueError(f"{n} rows but timestamps of shape {timestamps_ns.shape}")
        start = self._write_index
        end = start + n
        if n > self.capacity:  # only the newest rows can be kept
            data = data[-self.capacity :]
            timestamps_ns = timestamps_ns[-self.capacity :]
            start = end - self.capacity
            n = self.capacity
        self._claimed_end = end
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos : pos + first] = data[:first]
        self._ts[pos : pos + first] = timestamps_ns[:first]
        if first < n:
            self._data[: n - first] = data[first:]
            self._ts[: n - first] = timestamps_ns[first:]
        self._write_index = end
        return end

    # -- readers ---------------------------------------------------------------------------
    @property
    def write_index(self) -> int:
        """Absolute index of the next row to be written (= rows written so far)."""
        return self._write_index

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest row still readable."""
        return max(0, self._claimed_end - self.capacity)

    @property
    def rows_available(self) -> int:
        """Rows currently readable."""
        return self._write_index - self.oldest_index

    @property
    def nbytes(self) -> int:
        """Memory held by the buffer's arrays, in bytes."""
        return int(self._data.nbytes + self._ts.nbytes)

    def read_since(self, index: int, max_rows: int | None = None) -> ReadResult:
        """Rows from absolute ``index`` (inclusive) up to the newest, oldest first.

        Args:
            index: absolute index to start from; usually the ``end_index`` of the last read.
            max_rows: read at most this many rows (the oldest ones); ``None`` for all.

        Returns:
            A :class:`ReadResult`; ``missed`` > 0 when rows from ``index`` on were overwritten.

        Raises:
            ValueError: ``index`` is negative or beyond the newest row.
        """
        end = self._write_index
        if index < 0 or index > end:
            raise ValueError(f"index {index} outside [0, {end}]")
        oldest = max(0, self._claimed_end - self.capacity)
        start = max(index, oldest)
        if max_rows is not None:
            end = min(end, start + max(0, int(max_rows)))
        data, ts = self._copy(start, end)
        hook = self.after_copy_hook
        if hook is not None:
            hook()
        # the writer may have overwritten the head of our range while we copied
        oldest_now = max(0, self._claimed_end - self.capacity)
        if oldest_now > start:
            cut = min(oldest_now, end) - start
            data, ts, start = data[cut:], ts[cut:], start + cut
        return ReadResult(data, ts, start, start - index)

    def snapshot(self, last_n: int) -> ReadResult:
        """The newest ``last_n`` rows (fewer if fewer are available), oldest first."""
        end = self._write_index
        return self.read_since(max(self.oldest_index, end - max(0, int(last_n))))

    def latest(self) -> tuple[np.ndarray, int] | None:
        """The newest row and its timestamp, or ``None`` before the first write."""
        r = self.snapshot(1)
        if r.data.shape[0] == 0:
            return None
        return r.data[0], int(r.timestamps_ns[0])

    def _copy(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        n = end - start
        if n <= 0:
            return (
                np.empty((0, self.channels), dtype=np.float32),
                np.empty(0, dtype=np.int64),
            )
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        if first == n:
            return self._data[pos : pos + n].copy(), self._ts[pos : pos + n].copy()
        data = np.concatenate((self._data[pos:], self._data[: n - first]))
        ts = np.concatenate((self._ts[pos:], self._ts[: n - first]))
        return data, ts
