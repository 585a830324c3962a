"""Interlocks refuse unsafe commands with the rule and the states involved."""

from __future__ import annotations

from rigwatch.config.control import InterlockConfig
from rigwatch.control.actuators import ActuatorReading, ActuatorSpec
from rigwatch.control.interlocks import ARMING_RULE, Interlocks
from rigwatch.control.states import RunnerState

SPECS = {
    "GOX1": ActuatorSpec("GOX1", "valve", "closed", hot=True),
    "GOX2": ActuatorSpec("GOX2", "valve", "closed", hot=True),
    "IGNITION": ActuatorSpec("IGNITION", "switch", "off", hot=True),
    "PURGE1": ActuatorSpec("PURGE1", "valve", "closed"),
}
RULE = InterlockConfig(
    name="ignition-needs-oxidiser",
    when={"IGNITION": "on"},
    require={"GOX1": "open", "GOX2": "open"},
    reason="no oxidiser flow",
)


def readings(**ack: str | None) -> dict[str, ActuatorReading]:
    return {n: ActuatorReading(n, ack.get(n), ack.get(n), "acknowledged", 0) for n in SPECS}


def test_control_ignition_with_oxidiser_closed_is_refused() -> None:
    locks = Interlocks([RULE], SPECS)
    refusal = locks.check(
        {"IGNITION": "on"}, readings(GOX1="open", GOX2="closed"), RunnerState.RUNNING
    )
    assert refusal is not None and refusal.interlock == "ignition-needs-oxidiser"
    assert "GOX2 is closed (needs open)" in refusal.message
    assert "GOX1" not in refusal.message.split("oxidiser':")[1]  # GOX1 is fine
    assert (
        locks.check({"IGNITION": "on"}, readings(GOX1="open", GOX2="open"), RunnerState.RUNNING)
        is None
    )


def test_control_unknown_state_does_not_satisfy_an_interlock() -> None:
    refusal = Interlocks([RULE], SPECS).check(
        {"IGNITION": "on"}, readings(GOX1="open", GOX2=None), RunnerState.RUNNING
    )
    assert refusal is not None and "GOX2 is unknown" in refusal.message


def test_control_hot_actuators_need_arming() -> None:
    locks = Interlocks([], SPECS)
    refusal = locks.check({"GOX1": "open"}, readings(), RunnerState.IDLE)
    assert refusal is not None and refusal.interlock == ARMING_RULE
    assert "arm first" in refusal.message and "idle" in refusal.message
    assert locks.check({"GOX1": "closed"}, readings(), RunnerState.IDLE) is None  # to safe
    assert locks.check({"PURGE1": "open"}, readings(), RunnerState.IDLE) is None  # not hot
    assert locks.check({"GOX1": "open"}, readings(), RunnerState.ARMED) is None


def test_control_state_rule_names_the_allowed_states() -> None:
    rule = InterlockConfig(
        name="purge-only-running", when={"PURGE1": "open"}, states=["running"], reason="r"
    )
    refusal = Interlocks([rule], SPECS).check({"PURGE1": "open"}, readings(), RunnerState.DONE)
    assert refusal is not None and "only while running (runner is done)" in refusal.message
