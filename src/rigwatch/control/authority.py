"""Who may command the station: one client at a time.

A client requests authority under its name and receives a lease token; commands carry that
token; it renews the lease (a heartbeat) at least every ``operator_timeout_s``; it releases it
explicitly. Others watch. An abort needs no authority: any client allowed to write may abort.
When a lease lapses while the stand is hot, the operator watchdog aborts
(:mod:`rigwatch.control.watchdogs`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rigwatch.errors import AuthorityRefused


@dataclass(frozen=True)
class Lease:
    """Control authority held by one client.

    Attributes:
        holder: the client's name (audited as ``who``).
        token: the secret the client sends with its commands.
        expires: ``time.monotonic()`` value at which it lapses unless renewed.
        since_ns: when it was granted, ns since the Unix epoch.
    """

    holder: str
    token: str
    expires: float
    since_ns: int


class ControlAuthority:
    """Which client controls the station: one lease at a time (see the module docstring).
    Thread-safe.

    Args:
        lease_s: how long a lease lasts without renewal (``operator_timeout_s``).
        clock: monotonic seconds (tests).
    """

    def __init__(self, lease_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lease_s = lease_s
        self._clock = clock
        self._lock = threading.Lock()
        self._lease: Lease | None = None

    @property
    def lease(self) -> Lease | None:
        """The current lease (possibly past its expiry until :meth:`expire` ran)."""
        return self._lease

    @property
    def holder(self) -> str:
        """The controlling client's name, "" when nobody controls the station."""
        lease = self._lease
        return "" if lease is None else lease.holder

    def expires_in_s(self) -> float | None:
        """Seconds left on the lease (None: no lease)."""
        lease = self._lease
        return None if lease is None else max(0.0, lease.expires - self._clock())

    def request(self, client: str, token: str | None = None) -> Lease:
        """Grant authority to ``client``; a holder asking again with its token renews.

        Raises:
            AuthorityRefused: another client holds an unexpired lease (the message names it).
        """
        now = self._clock()
        with self._lock:
            lease = self._lease
            if lease is not None and lease.expires > now:
                if token is not None and secrets.compare_digest(token, lease.token):
                    self._lease = Lease(
                        lease.holder, lease.token, now + self.lease_s, lease.since_ns
                    )
                    return self._lease
                raise AuthorityRefused(
                    f"control authority is held by {lease.holder!r}; it must release it (or "
                    f"stop renewing it for {self.lease_s:g} s) before {client!r} can take it",
                    lease.holder,
                )
            self._lease = Lease(
                client, secrets.token_urlsafe(24), now + self.lease_s, time.time_ns()
            )
            return self._lease

    def check(self, token: str | None) -> Lease:
        """The lease ``token`` belongs to.

        Raises:
            AuthorityRefused: no token, nobody holds authority, another client does, or the
                lease lapsed.
        """
        now = self._clock()
        lease = self._lease
        if lease is None or lease.expires <= now:
            raise AuthorityRefused(
                "no client holds control authority: request it with POST "
                "/api/control/authority (or a WebSocket control_authority message) and send "
                "its lease with each command"
            )
        if token is None or not secrets.compare_digest(token, lease.token):
            raise AuthorityRefused(
                f"control authority is held by {lease.holder!r}: this client watches only "
                + ("(no lease sent)" if token is None else "(its lease is not the current one)"),
                lease.holder,
            )
        return lease

    def caller(self, token: str | None, anonymous: str) -> str:
        """Who gives a request that needs no authority (an abort): the holder's name when
        ``token`` is the current, unexpired lease, else ``anonymous`` (e.g.
        ``anonymous@<address>``, ``ws-client``). Never raises."""
        try:
            return self.check(token).holder
        except AuthorityRefused:
            return anonymous

    def renew(self, token: str | None) -> Lease:
        """Extend the holder's lease by ``lease_s`` from now (a heartbeat).

        Raises:
            AuthorityRefused: as :meth:`check`.
        """
        with self._lock:
            lease = self.check(token)
            self._lease = Lease(
                lease.holder, lease.token, self._clock() + self.lease_s, lease.since_ns
            )
            return self._lease

    def release(self, token: str | None) -> Lease:
        """Give authority up; returns the lease released.

        Raises:
            AuthorityRefused: as :meth:`check`.
        """
        with self._lock:
            lease = self.check(token)
            self._lease = None
            return lease

    def expire(self) -> Lease | None:
        """Drop a lease past its expiry and return it (the operator watchdog); None when the
        lease is still valid or there is none."""
        now = self._clock()
        with self._lock:
            lease = self._lease
            if lease is None or lease.expires > now:
                return None
            self._lease = None
            return lease
