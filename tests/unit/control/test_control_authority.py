"""Control authority: one lease at a time, and the name an abort is recorded under."""

from __future__ import annotations

import pytest

from rigwatch.control.authority import ControlAuthority
from rigwatch.errors import AuthorityRefused


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_control_caller_is_the_holder_only_with_the_current_lease() -> None:
    clock = Clock()
    auth = ControlAuthority(5.0, clock)
    assert auth.caller(None, "anonymous@10.0.0.2") == "anonymous@10.0.0.2"  # nobody holds it
    lease = auth.request("ana")
    assert auth.caller(lease.token, "ws-client") == "ana"
    assert auth.caller(None, "ws-client") == "ws-client"  # no lease sent
    assert auth.caller("forged", "ws-client") == "ws-client"  # not the current lease
    clock.now += 5.0  # lapsed (not yet dropped by the watchdog)
    assert auth.caller(lease.token, "anonymous@10.0.0.2") == "anonymous@10.0.0.2"
    with pytest.raises(AuthorityRefused):
        auth.check(lease.token)  # caller() answers where check() refuses


def test_control_caller_changes_nothing() -> None:
    clock = Clock()
    auth = ControlAuthority(5.0, clock)
    lease = auth.request("ana")
    clock.now += 4.0
    assert auth.caller(lease.token, "x") == "ana"
    assert auth.lease == lease  # not renewed
    assert auth.expires_in_s() == pytest.approx(1.0)
