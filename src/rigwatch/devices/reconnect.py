"""Link health of a device that can stop answering: its state, and when to try reconnecting.

A link is ``connected`` (it answered since it was opened), ``unknown`` (it stopped answering,
failed or vanished: nobody knows what the device does now; reconnection is under way) or
``closed`` (not started, or stopped). :class:`LinkHealth` keeps that state and schedules
reconnection attempts with capped exponential backoff: the first attempt after a loss waits
``initial_s``, each failed attempt doubles the wait (``factor``) up to ``max_s``. The wait goes
back to ``initial_s`` only once the device has *answered* again (a reopened port that stays
silent does not count), so a device that is reopened but still hung is retried ever more
slowly. It does no I/O and has no thread: the device's own loop asks :meth:`LinkHealth.due`
(or hands its own connect function to :meth:`LinkHealth.reconnect_when_due`) and reports what
happened; the clock is injectable, so the schedule is tested without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rigwatch.errors import DeviceError

LinkState = Literal["connected", "unknown", "closed"]


class Backoff(BaseModel):
    """Capped exponential backoff between reconnection attempts.

    Attributes:
        initial_s: wait before the first attempt after a loss, seconds.
        factor: growth of the wait after each failed attempt.
        max_s: the wait never exceeds this, seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_s: float = Field(default=0.5, gt=0, le=60)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_s: float = Field(default=10.0, gt=0, le=600)

    def delay(self, failures: int) -> float:
        """Wait before the attempt following ``failures`` failed ones (0: the first attempt):
        ``min(initial_s * factor ** failures, max_s)``, seconds."""
        return min(self.initial_s * self.factor ** min(failures, 64), self.max_s)


@dataclass(frozen=True)
class LinkStatus:
    """A snapshot of a link's health (for status pages and logs).

    Attributes:
        state: ``connected``, ``unknown`` or ``closed``.
        endpoint: what the link talks to now (``/dev/ttyACM0``, ``127.0.0.1:102``), or ``""``.
        reason: why it is ``unknown`` (the last loss or failed attempt), else ``""``.
        losses: times the link was lost since it was created.
        reconnects: successful reconnections (a port reopened, a PLC connected again).
        failed_attempts: reconnection attempts that failed.
        next_attempt_s: seconds until the next attempt when ``unknown`` and not open, else None.
        open: a port or connection is open now (``unknown`` and open: reopened, not yet heard).
    """

    state: LinkState
    endpoint: str = ""
    reason: str = ""
    losses: int = 0
    reconnects: int = 0
    failed_attempts: int = 0
    next_attempt_s: float | None = None
    open: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {
            "state": self.state,
            "endpoint": self.endpoint,
            "reason": self.reason,
            "losses": self.losses,
            "reconnects": self.reconnects,
            "failed_attempts": self.failed_attempts,
            "next_attempt_s": self.next_attempt_s,
            "open": self.open,
        }


class LinkHealth:
    """State of one link and its reconnection schedule (see the module docstring). Thread-safe.

    Args:
        backoff: the reconnection schedule.
        clock: monotonic seconds (tests pass a fake one).
        on_change: called with the new :class:`LinkStatus` after every state change (outside
            the lock).
    """

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[LinkStatus], None] | None = None,
    ) -> None:
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._on_change = on_change
        self._cond = threading.Condition()
        self._state: LinkState = "closed"
        self._endpoint = ""
        self._reason = ""
        self._losses = 0
        self._reconnects = 0
        self._failed = 0
        self._failures_in_row = 0
        self._next_attempt: float | None = None
        self._open = False

    @property
    def state(self) -> LinkState:
        """The current state."""
        return self._state

    def status(self) -> LinkStatus:
        """A snapshot."""
        with self._cond:
            return self._status_locked()

    def _status_locked(self) -> LinkStatus:
        nxt = None
        if self._state == "unknown" and not self._open and self._next_attempt is not None:
            nxt = max(0.0, self._next_attempt - self._clock())
        return LinkStatus(
            state=self._state,
            endpoint=self._endpoint,
            reason=self._reason,
            losses=self._losses,
            reconnects=self._reconnects,
            failed_attempts=self._failed,
            next_attempt_s=nxt,
            open=self._open,
        )

    def _changed(self) -> None:
        status = self._status_locked()
        self._cond.notify_all()
        cb = self._on_change
        if cb is not None:
            self._cond.release()
            try:
                cb(status)
            finally:
                self._cond.acquire()

    def opened(self, endpoint: str, *, first: bool) -> None:
        """The link was opened at ``endpoint``. ``first``: by ``start`` (state ``connected``);
        otherwise a reconnection (counted; the state stays ``unknown`` until :meth:`heard`)."""
        with self._cond:
            self._endpoint = endpoint
            self._open = True
            if first:
                self._state = "connected"
                self._reason = ""
                self._failures_in_row = 0
            else:
                self._reconnects += 1
            self._changed()

    def heard(self) -> bool:
        """The device answered: ``unknown`` becomes ``connected`` and the backoff restarts.

        Returns:
            True when this changed the state (a reconnection completed).
        """
        if self._state == "connected":  # fast path, called for every chunk received
            return False
        with self._cond:
            if self._state != "unknown" or not self._open:
                return False
            self._state = "connected"
            self._reason = ""
            self._failures_in_row = 0
            self._changed()
            return True

    def lost(self, reason: str) -> bool:
        """The link failed or the device stopped answering: state ``unknown``, the link is
        considered closed and the next attempt is scheduled.

        Returns:
            True when the link was ``connected`` (a new loss, counted), False when it was
            already ``unknown`` (a reopened port still silent: the wait grows) or ``closed``.
        """
        with self._cond:
            if self._state == "closed":
                return False
            new = self._state == "connected"
            if new:
                self._losses += 1
            elif self._open:  # reopened but not heard: that attempt failed too
                self._failures_in_row += 1
            self._state = "unknown"
            self._reason = reason
            self._open = False
            self._next_attempt = self._clock() + self.backoff.delay(self._failures_in_row)
            self._changed()
            return new

    def attempt_failed(self, reason: str) -> None:
        """A reconnection attempt failed: counted, the next one waits longer."""
        with self._cond:
            self._failed += 1
            self._failures_in_row += 1
            self._reason = reason
            self._next_attempt = self._clock() + self.backoff.delay(self._failures_in_row)
            self._changed()

    def seconds_to_attempt(self) -> float:
        """Seconds until the next attempt is due (0: due now)."""
        with self._cond:
            if self._next_attempt is None:
                return 0.0
            return max(0.0, self._next_attempt - self._clock())

    def reconnect_when_due(self, stop: threading.Event, connect: Callable[[], str]) -> bool:
        """One turn of a loop whose link is down. When the next attempt is not due yet, wait
        for it (or for ``stop``) and return False. Otherwise call ``connect``, which opens the
        link and returns its endpoint, and record the outcome: :meth:`opened` (a reconnection)
        and True, or :meth:`attempt_failed` when it raises.

        Raises:
            DeviceError: from ``connect`` (the attempt failed; already recorded).
        """
        wait = self.seconds_to_attempt()
        if wait > 0:
            stop.wait(wait)
            return False
        try:
            endpoint = connect()
        except DeviceError as exc:
            self.attempt_failed(str(exc))
            raise
        self.opened(endpoint, first=False)
        return True

    def due(self) -> bool:
        """True when the link is ``unknown``, not open and its next attempt is due."""
        with self._cond:
            return (
                self._state == "unknown"
                and not self._open
                and (self._next_attempt is None or self._clock() >= self._next_attempt)
            )

    def closed(self) -> None:
        """The link was closed on purpose (stop): state ``closed``."""
        with self._cond:
            self._state = "closed"
            self._open = False
            self._reason = ""
            self._next_attempt = None
            self._changed()

    def wait_status(self, predicate: Callable[[LinkStatus], bool], timeout_s: float) -> LinkStatus:
        """Block until ``predicate(status)`` holds (at most ``timeout_s`` s, woken by every
        change); returns the status then, whether it holds or not."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                status = self._status_locked()
                left = deadline - time.monotonic()
                if predicate(status) or left <= 0:
                    return status
                self._cond.wait(left)

    def wait_for(self, states: set[LinkState] | LinkState, timeout_s: float) -> LinkState:
        """Block until the state is one of ``states`` (at most ``timeout_s`` s); returns the
        state then (which may be another one after a timeout)."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._state not in wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._state
