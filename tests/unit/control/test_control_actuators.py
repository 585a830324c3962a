"""Actuator specs (values, limits, normally-open/closed) and command statuses."""

from __future__ import annotations

import threading

import pytest

from rigwatch.control.actuators import ActuatorSpec, Status, all_of
from rigwatch.errors import ActuatorFault, CommandRefused

NC = ActuatorSpec("GOX1", "valve", "closed", normally="closed", hot=True)
NO = ActuatorSpec("VENT", "valve", "open", normally="open")
IGN = ActuatorSpec("IGNITION", "switch", "off", hot=True)
MOTOR = ActuatorSpec("M1", "position", 0.0, minimum=0.0, maximum=180.0, unit="deg")
WORD = ActuatorSpec("MW2", "word", 0, minimum=-32768, maximum=32767)


@pytest.mark.parametrize(
    ("spec", "given", "expected"),
    [
        (NC, "OPEN", "open"),
        (NC, 1, "open"),
        (NC, False, "closed"),
        (NC, "0", "closed"),
        (IGN, True, "on"),
        (IGN, "off", "off"),
        (MOTOR, "90.5", 90.5),
        (WORD, 12.0, 12),
    ],
)
def test_control_values_are_normalised(spec: ActuatorSpec, given: object, expected: object) -> None:
    assert spec.normalise(given) == expected


@pytest.mark.parametrize(
    ("spec", "given", "match"),
    [
        (NC, "on", "use 'open' or 'closed'"),
        (IGN, "open", "use 'on' or 'off'"),
        (NC, 2, "not a position"),
        (MOTOR, 181, r"out of range \[0, 180\]"),
        (MOTOR, float("nan"), "not a finite number"),
        (MOTOR, "abc", "not a number"),
        (WORD, 1.5, "not an integer"),
        (WORD, 40000, "out of range"),
    ],
)
def test_control_bad_values_are_refused_with_the_reason(
    spec: ActuatorSpec, given: object, match: str
) -> None:
    with pytest.raises(CommandRefused, match=match):
        spec.normalise(given)


def test_control_normally_open_valve_is_energised_to_close() -> None:
    assert NC.energised("open") and not NC.energised("closed")
    assert NO.energised("closed") and not NO.energised("open")
    assert NO.position(False) == "open" and NC.position(False) == "closed"
    assert IGN.energised("on") and IGN.position(False) == "off"


def test_control_status_completes_once_and_runs_callbacks() -> None:
    st = Status("x")
    seen: list[bool] = []
    st.add_callback(lambda s: seen.append(s.success))
    st.set_finished("ACK: x")
    st.add_callback(lambda s: seen.append(s.success))  # already done: called at once
    assert seen == [True, True] and st.reply == "ACK: x"
    with pytest.raises(RuntimeError, match="completed twice"):
        st.set_exception(ActuatorFault("late"))


def test_control_all_of_fails_with_the_first_failure() -> None:
    a, b = Status("a"), Status("b")
    both = all_of([a, b], "a+b")
    done = threading.Event()
    both.add_callback(lambda _s: done.set())
    a.set_finished()
    assert not both.done
    b.set_exception(ActuatorFault("b: NACK"))
    assert done.wait(1.0)
    with pytest.raises(ActuatorFault, match="b: NACK"):
        both.wait(0)
