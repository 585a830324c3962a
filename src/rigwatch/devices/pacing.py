"""Real-time pacing of generated or replayed samples against a monotonic clock.

A :class:`Pacer` answers one question: may the rows up to absolute sample index ``end`` be
delivered now? Sample ``i`` (counted from :meth:`Pacer.start`) is due at
``t0 + i / rate_hz`` on the monotonic clock, so the schedule is computed from the absolute index
and never drifts, however long the run and however the reads are timed. A block is due when its
last sample is.

A :class:`PacedStream` is the running state shared by devices that produce regularly sampled
blocks on demand (replay, sim): the pacer, a wake event that :meth:`PacedStream.stop` sets to cut
a wait short, the running flag, the absolute index of the next row and the wall-clock time of
row 0. A device composes one and keeps only what is its own (where the rows come from).

The clock and the sleep function are injectable, so pacing can be tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from rigwatch.devices.protocols import Block, regular_timestamps_ns
from rigwatch.errors import DeviceError

Clock = Callable[[], float]
"""Monotonic seconds (like :func:`time.monotonic`)."""

Sleep = Callable[[float], object]
"""Waits about the given number of seconds (like :func:`time.sleep` or
:meth:`threading.Event.wait`); may return early, e.g. when a device is stopped."""


class Pacer:
    """Schedules sample rows at ``rate_hz`` from the moment of :meth:`start`.

    Args:
        rate_hz: samples per second, > 0.
        realtime: ``True`` to pace rows against the clock; ``False`` (``pace="fast"``) makes
            every row due at once.
        clock: monotonic time in seconds; default :func:`time.monotonic`.
        sleep: how to wait; default :func:`time.sleep`.

    Raises:
        ValueError: ``rate_hz`` is not positive.
    """

    def __init__(
        self,
        rate_hz: float,
        realtime: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz = float(rate_hz)
        self.realtime = realtime
        self._clock: Clock = clock if clock is not None else time.monotonic
        self._sleep: Sleep = sleep if sleep is not None else time.sleep
        self._t0: float | None = None

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._t0 is not None

    def start(self) -> None:
        """Set sample 0's time to now (on the injected clock)."""
        self._t0 = self._clock()

    def due_at(self, end_index: int) -> float:
        """Clock time (s) at which rows ``[.., end_index)`` are due: that of row
        ``end_index - 1``, i.e. ``t0 + (end_index - 1) / rate_hz``.

        Raises:
            RuntimeError: not started.
        """
        if self._t0 is None:
            raise RuntimeError("Pacer.start() was not called")
        return self._t0 + (end_index - 1) / self.rate_hz

    def due_in(self, end_index: int) -> float:
        """Seconds until rows ``[.., end_index)`` are due (<= 0: due now; always 0 when not
        real-time)."""
        if not self.realtime:
            return 0.0
        return self.due_at(end_index) - self._clock()

    def wait(self, end_index: int, timeout_s: float) -> bool:
        """Wait until rows ``[.., end_index)`` are due, at most ``timeout_s`` seconds.

        Sleeps at most once, for ``min(time until due, timeout_s)``.

        Returns:
            ``True`` if they are due (deliver them), ``False`` if not yet (the caller returns
            ``None`` and is asked again).

        Raises:
            RuntimeError: not started.
        """
        if not self.realtime:
            return True
        remaining = self.due_in(end_index)
        if remaining <= 0:
            return True
        pause = min(remaining, timeout_s)
        if pause <= 0:
            return False
        self._sleep(pause)
        return self.due_in(end_index) <= 0


class PacedStream:
    """Start/stop state, pacing and timestamps of a regularly sampled block source.

    A device's ``read_block`` asks :meth:`next_range` when its next ``rows`` rows are due,
    produces them, and hands them to :meth:`deliver`, which stamps them and advances
    :attr:`position`::

        start = stream.next_range(rows, timeout_s)
        if start is None:
            return None
        return stream.deliver(start, produce(start, rows))

    Args:
        label: how errors name the device, e.g. ``"sim device 'rig1'"``.
        rate_hz: samples per second, > 0.
        realtime: ``True`` to pace rows against the clock (``pace="realtime"``); ``False``
            delivers every block as soon as it is asked for.
        clock: monotonic seconds (default :func:`time.monotonic`).
        sleep: how :meth:`next_range` waits (default: an interruptible wait that :meth:`stop`
            cuts short).

    Raises:
        ValueError: ``rate_hz`` is not positive.
    """

    def __init__(
        self,
        label: str,
        rate_hz: float,
        *,
        realtime: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.label = label
        self._wake = threading.Event()
        self.pacer = Pacer(
            rate_hz,
            realtime=realtime,
            clock=clock,
            sleep=sleep if sleep is not None else self._wake.wait,
        )
        self.rate_hz = self.pacer.rate_hz
        self._running = False
        self._index = 0
        self._t0_ns = 0

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def position(self) -> int:
        """Absolute index of the next row to deliver, counted from :meth:`start`."""
        return self._index

    @property
    def t0_ns(self) -> int:
        """Wall-clock time of row 0 (``time.time_ns()`` at :meth:`start`), ns since the epoch."""
        return self._t0_ns

    def start(self) -> None:
        """Start (or restart) at row 0: rewind, stamp row 0 now, start pacing from now."""
        self._index = 0
        self._wake.clear()
        self._t0_ns = time.time_ns()
        self.pacer.start()
        self._running = True

    def stop(self) -> None:
        """Stop; wakes a :meth:`next_range` waiting for its rows. Idempotent."""
        self._running = False
        self._wake.set()

    def check_running(self) -> None:
        """Raise unless started.

        Raises:
            DeviceError: ``"<label> is not started"``.
        """
        if not self._running:
            raise DeviceError(f"{self.label} is not started")

    def next_range(self, rows: int, timeout_s: float) -> int | None:
        """Wait (at most ``timeout_s``) until rows ``position .. position + rows`` are due.

        Returns:
            their absolute start index (:attr:`position`), or ``None`` if they are not due
            within ``timeout_s`` or the stream was stopped meanwhile.

        Raises:
            DeviceError: not started.
        """
        self.check_running()
        start = self._index
        if not self.pacer.wait(start + rows, timeout_s) or not self._running:
            return None
        return start

    def timestamps(self, start: int, rows: int) -> np.ndarray:
        """``(rows,)`` int64 ns stamps of rows ``start .. start + rows``
        (:func:`~rigwatch.devices.protocols.regular_timestamps_ns` from :attr:`t0_ns`)."""
        return regular_timestamps_ns(self._t0_ns, start, rows, self.rate_hz)

    def deliver(
        self, start: int, data: np.ndarray, timestamps_ns: np.ndarray | None = None
    ) -> Block:
        """Stamp ``data`` (``(rows, channels)`` float32, rows from ``start``) and advance
        :attr:`position` past it.

        Args:
            start: absolute index of ``data[0]``.
            data: the rows.
            timestamps_ns: ``(rows,)`` int64 stamps to use instead of :meth:`timestamps`.

        Returns:
            ``Block(data, stamps)``; ``data`` is not copied.
        """
        rows = int(data.shape[0])
        stamps = self.timestamps(start, rows) if timestamps_ns is None else timestamps_ns
        block = Block(data=data, timestamps_ns=stamps)
        self._index = start + rows
        return block
