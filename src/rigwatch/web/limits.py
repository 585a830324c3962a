"""Bounds on heavy requests, so that no burst of them starves acquisition or the live stream.

- :class:`QueryGate`: at most ``n`` recording queries at once; a query that cannot get a slot
  within ``wait_s`` is refused (``503``, ``Retry-After``), never queued without limit;
- :class:`SnapshotGate`: one buffer snapshot at a time and at most one per interval (``429``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
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


class QueryGate:
    """At most ``slots`` holders at once (asyncio).

    Args:
        slots: concurrent holders, >= 1.
        wait_s: how long :meth:`slot` waits for one.
    """

    def __init__(self, slots: int, wait_s: float) -> None:
        self._sem = asyncio.Semaphore(slots)
        self.slots = slots
        self.wait_s = wait_s

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``.

        Raises:
            Busy: no slot freed within ``wait_s``.
        """
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
