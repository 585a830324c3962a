"""Station modes: an enum and a transition table; everything else refused with the reason."""

from __future__ import annotations

import pytest

from rigwatch.errors import ModeRefused
from rigwatch.modes import TRANSITIONS, ModeMachine, StationMode


def test_starts_idle_like_todays_test_stand() -> None:
    assert ModeMachine().mode is StationMode.IDLE


def test_every_allowed_transition_is_taken_and_timed() -> None:
    for src, targets in TRANSITIONS.items():
        for dst in targets:
            m = ModeMachine(src)
            before = m.state.since_ns
            state = m.request(dst.value)
            assert state.mode is dst and m.mode is dst
            assert state.since_ns >= before


def test_transitions_outside_the_table_are_refused_with_what_is_allowed() -> None:
    refused = [
        (s, d) for s in StationMode for d in StationMode if d != s and d not in TRANSITIONS[s]
    ]
    assert (StationMode.TEST, StationMode.MAINTENANCE) in refused
    assert (StationMode.MAINTENANCE, StationMode.TEST) in refused
    for src, dst in refused:
        m = ModeMachine(src)
        with pytest.raises(ModeRefused) as e:
            m.request(dst.value)
        assert f"from {src.value} to {dst.value}" in str(e.value)
        for allowed in TRANSITIONS[src]:
            assert allowed.value in str(e.value)
        assert m.mode is src  # nothing changed


@pytest.mark.parametrize("word", ["safe", "SAFE", "emergency"])
def test_safe_is_not_a_label_a_client_can_set(word: str) -> None:
    m = ModeMachine(StationMode.MONITORING)
    with pytest.raises(ModeRefused, match="interlocks"):
        m.request(word)
    assert m.mode is StationMode.MONITORING


def test_unknown_names_are_refused_and_same_mode_is_a_no_op() -> None:
    m = ModeMachine()
    with pytest.raises(ModeRefused, match="unknown mode 'warp'; modes: idle, monitoring"):
        m.request("warp")
    since = m.state.since_ns
    assert m.request(" Idle ").since_ns == since
