"""Real-time pacing of generated or replayed samples against a monotonic clock.

A :class:`Pacer` answers one question: may the rows up to absolute sample index ``end`` be
delivered now? Sample ``i`` (counted from :meth:`Pacer.start`) is due at
``t0 + i / rate_hz`` on the monotonic clock, so the schedule is computed from the absolute index
and never drifts, however long the run and however the reads are timed. A block is due when its
last sample is.

The clock and the sleep function are injectable, so pacing can be tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
