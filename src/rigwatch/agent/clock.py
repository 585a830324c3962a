"""The agent's sense of time, injectable so that hours of operation can be run in a test
without waiting.

The agent's main loop is a single task that sleeps until its next deadline (the next sample or
the next send attempt), so a clock that jumps straight to that deadline runs the same code as
the wall clock, only faster.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """What the agent needs of time.

    ``time()`` is the wall clock (seconds since the Unix epoch, UTC) stamped on messages;
    ``monotonic()`` schedules samples and retries (seconds, arbitrary origin, never jumps back).
    """

    def time(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    async def sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        """Wait ``seconds`` (<= 0: just yield) or until ``stop`` is set.

        Returns:
            True when ``stop`` is set (the caller should finish), else False.
        """
        ...


class SystemClock:
    """The real clock: :func:`time.time`, :func:`time.monotonic`, and a sleep that ends early
    when the stop event is set."""

    def time(self) -> float:
        """Seconds since the Unix epoch, UTC."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds of :func:`time.monotonic`."""
        return time.monotonic()

    async def sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        """Wait ``seconds`` or until ``stop`` is set; True when stopped."""
        if stop.is_set():
            return True
        if seconds <= 0:
            await asyncio.sleep(0)
            return stop.is_set()
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


class VirtualClock:
    """A clock that jumps: :meth:`sleep` advances virtual time by the requested amount at once.

    Actions scheduled with :meth:`call_at` run, in time order, when virtual time reaches them
    (during the :meth:`sleep` that crosses them), so a test can switch a server off at
    t = 0 and back on at t = 600 s while the agent runs at full speed.

    Args:
        start: the wall-clock value at virtual time 0 (seconds since the Unix epoch).
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.start = float(start)
        self.elapsed = 0.0
        self._actions: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        """``start + elapsed``."""
        return self.start + self.elapsed

    def monotonic(self) -> float:
        """``elapsed``."""
        return self.elapsed

    def call_at(self, elapsed: float, action: Callable[[], None]) -> None:
        """Run ``action()`` when virtual time reaches ``elapsed`` seconds."""
        heapq.heappush(self._actions, (float(elapsed), next(self._order), action))

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (>= 0), running the actions crossed."""
        target = self.elapsed + max(0.0, seconds)
        while self._actions and self._actions[0][0] <= target:
            at, _, action = heapq.heappop(self._actions)
            self.elapsed = max(self.elapsed, at)
            action()
        self.elapsed = target

    async def sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        """Advance by ``seconds`` and yield once to the event loop; True when stopped."""
        if stop.is_set():
            return True
        self.advance(seconds)
        await asyncio.sleep(0)
        return stop.is_set()
