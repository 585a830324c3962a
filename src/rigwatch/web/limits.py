"""Bounds on heavy requests, so that no burst of them starves acquisition or the live stream.

- :class:`QueryGate`: at most ``n`` recording queries at once; a query that cannot get a slot
  within ``wait_s`` is refused (``503``, ``Retry-After``), never queued without limit;
- :class:`CpuBudget`: queries together use at most a share of a core on average (``503``
  beyond it): the JSON encoding of a reply holds the GIL, so their rate, not only their
  number at once, decides how long the live stream waits;
- :class:`SnapshotGate`: one buffer snapshot at a time and at most one per interval (``429``).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Busy(Exception):
    """A bounded resource is taken.

    Attributes:
        status: the HTTP status to answer: 503 (the server is busy) or 429 (this kind of
            request is rate-limited).
        retry_after_s: when to try again.
    """

    def __init__(self, message: str, retry_after_s: float, status: int = 503) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status = status

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for the ``Retry-After`` header (at least 1)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class CpuBudget:
    """A token bucket of CPU seconds: work is charged the CPU time it used; the bucket refills
    at ``share`` CPU seconds per second up to ``burst_s``. While it is in debt, new work is
    refused. This bounds the *rate* of heavy work, whatever its shape: a flood of cheap
    queries and a few expensive ones cost the live stream the same. Thread-safe.

    Args:
        share: CPU seconds per second the work may use on average (0.25: a quarter of a core).
        burst_s: CPU seconds it may use at once after a quiet spell.
        clock: monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(self, share: float, burst_s: float, clock: Callable[[], float] | None = None):
        self.share = share
        self.burst_s = burst_s
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._level = burst_s
        self._at = self._clock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.burst_s, self._level + (now - self._at) * self.share)
        self._at = now

    def check(self) -> None:
        """Raise when the bucket is in debt.

        Raises:
            Busy: (503) with the seconds until the bucket is out of debt.
        """
        with self._lock:
            self._refill()
            if self._level < 0:
                raise Busy(
                    f"recording queries have used their share of the CPU "
                    f"({self.share:g} of a core); try again shortly",
                    -self._level / self.share,
                )

    def charge(self, cpu_s: float) -> None:
        """Take ``cpu_s`` CPU seconds out of the bucket (it may go into debt)."""
        with self._lock:
            self._refill()
            self._level -= cpu_s


class QueryGate:
    """At most ``slots`` holders at once (asyncio), within a :class:`CpuBudget`.

    Args:
        slots: concurrent holders, >= 1.
        wait_s: how long :meth:`slot` waits for one.
        budget: the CPU budget new queries are checked against (``None``: no budget).
    """

    def __init__(self, slots: int, wait_s: float, budget: CpuBudget | None = None) -> None:
        self._sem = asyncio.Semaphore(slots)
        self.slots = slots
        self.wait_s = wait_s
        self.budget = budget

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``.

        Raises:
            Busy: the CPU budget is in debt, or no slot freed within ``wait_s``.
        """
        if self.budget is not None:
            self.budget.check()
        try:
            await asyncio.wait_for(self._sem.acquire(), self.wait_s)
        except TimeoutError:
            raise Busy(
                f"{self.slots} recording queries are running; try again shortly", 1.0
            ) from None
        try:
            yield
        finally:
            self._sem.release()


class SnapshotGate:
    """One snapshot at a time, and at most one per ``min_interval_s`` (asyncio).

    Args:
        min_interval_s: shortest time between the starts of two snapshots.
    """

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = min_interval_s
        self._running = False
        self._last_start = -math.inf

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Take the turn for the body of the ``async with``.

        Raises:
            Busy: a snapshot is running, or the last started less than the interval ago.
        """
        now = time.monotonic()
        if self._running:
            raise Busy("a buffer snapshot is being written", 1.0, status=429)
        wait = self._last_start + self.min_interval_s - now
        if wait > 0:
            raise Busy(
                f"buffer snapshots are limited to one per {self.min_interval_s:g} s",
                wait,
                status=429,
            )
        self._running = True
        self._last_start = now
        try:
            yield
        finally:
            self._running = False
