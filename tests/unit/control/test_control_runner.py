"""The runner's transition table: allowed transitions lead where the table says; every other
request is refused with the state, the reason and the allowed actions, and changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from rigwatch.control.actuators import ActuatorSpec, Status, Value
from rigwatch.control.audit import AuditLog
from rigwatch.control.commander import Commander
from rigwatch.control.interlocks import Interlocks
from rigwatch.control.runner import INTERNAL_ACTIONS, TRANSITIONS, Action, ScenarioRunner
from rigwatch.control.scenarios import Scenario
from rigwatch.control.states import RunnerState as S
from rigwatch.control.values import LatestValues
from rigwatch.errors import ActuatorFault, TransitionRefused
from support.control_fakes import AckBank

ABORT = {"steps": [{"set": {"GOX1": "closed"}}, {"set": {"PURGE1": "closed"}}]}


class FakeBank(AckBank):
    """Acknowledges at once, or holds acknowledgements while ``gate`` is closed."""

    def __init__(self) -> None:
        super().__init__(
            (
                ActuatorSpec("GOX1", "valve", "closed", hot=True),
                ActuatorSpec("PURGE1", "valve", "closed"),
            ),
            name="fake",
        )
        self.gate = threading.Event()
        self.gate.set()
        self.fail_next: str | None = None
        self._held: list[tuple[Status, dict[str, Value]]] = []

    def close(self) -> None:
        self.release()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        self.sent.append(dict(changes))
        st = Status(str(changes))
        if self.fail_next is not None:
            msg, self.fail_next = self.fail_next, None
            st.set_exception(ActuatorFault(msg))
        elif self.gate.is_set():
            self.state.acknowledged(changes)
            st.set_finished("ack")
        else:
            self._held.append((st, dict(changes)))
        return st

    def release(self) -> None:
        self.gate.set()
        for st, ch in self._held:
            self.state.acknowledged(ch)
            st.set_finished("ack")
        self._held.clear()


def scenario(name: str, steps: list[dict[str, object]], arming: bool = True) -> Scenario:
    return Scenario.model_validate(
        {"name": name, "requires_arming": arming, "steps": steps, "abort": ABORT}
    )


SCENARIOS = {
    "hot": scenario(
        "hot", [{"set": {"GOX1": "open"}}, {"hold": "check"}, {"set": {"GOX1": "closed"}}]
    ),
    "slow": scenario(
        "slow",
        [{"set": {"GOX1": "open"}}, {"wait_until": {"channel": "P1", "above": 1}, "timeout_s": 60}],
    ),
    "cold": scenario(
        "cold", [{"set": {"PURGE1": "open"}}, {"set": {"PURGE1": "closed"}}], arming=False
    ),
    "emergency": scenario("emergency", [{"set": {"GOX1": "closed"}}], arming=False),
}


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.bank = FakeBank()
        self.audit = AuditLog(tmp_path / "audit.sqlite")
        specs = {s.name: s for s in self.bank.specs}
        self.commander = Commander([self.bank], Interlocks([], specs), self.audit)
        self.runner = ScenarioRunner(
            self.commander, SCENARIOS, values=LatestValues(), audit=self.audit
        )

    def reach(self, state: S) -> None:
        r = self.runner
        if state is S.IDLE:
            return
        if state is S.ARMED:
            r.arm("op")
        elif state is S.RUNNING:
            r.arm("op")
            r.start("slow", "op")
            assert r.wait_state(S.RUNNING, 5) is S.RUNNING
            self._wait_step(1)
        elif state is S.HOLDING:
            r.arm("op")
            r.start("hot", "op")
            assert r.wait_state(S.HOLDING, 5) is S.HOLDING
        elif state is S.DONE:
            r.start("cold", "op")
            assert r.wait_state(S.DONE, 5) is S.DONE
        elif state is S.SAFE:
            r.abort("test", "op")
            assert r.wait_state(S.SAFE, 5) is S.SAFE
        elif state is S.ABORTING:
            self.bank.gate.clear()  # the abort sequence's first command stays unacknowledged
            r.abort("test", "op")
        assert r.state is state

    def _wait_step(self, index: int) -> None:
        done = threading.Event()
        while not done.wait(0.01):
            if self.runner.status().step_index >= index:
                return


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.bank.release()
    if r.runner.state in (S.RUNNING, S.HOLDING):
        r.runner.abort("end of test", "test")
    r.runner.wait_state({S.SAFE, S.DONE, S.IDLE, S.ARMED}, 5)
    r.runner.close()
    r.audit.close()


def request(rig: Rig, action: Action) -> Callable[[], object]:
    r = rig.runner
    return {
        Action.ARM: lambda: r.arm("op"),
        Action.DISARM: lambda: r.disarm("op"),
        Action.START: lambda: r.start("cold", "op"),
        Action.HOLD: lambda: r.hold("op"),
        Action.RESUME: lambda: r.resume("op"),
        Action.ABORT: lambda: r.abort("why", "op"),
        Action.RESET: lambda: r.reset("op"),
    }[action]


CLIENT_ACTIONS = [a for a in Action if a not in INTERNAL_ACTIONS]
REFUSED = [(s, a) for s in S for a in CLIENT_ACTIONS if a not in TRANSITIONS[s]]
ALLOWED = [(s, a) for s in S for a in CLIENT_ACTIONS if a in TRANSITIONS[s]]


@pytest.mark.parametrize(("state", "action"), REFUSED, ids=[f"{s}-{a}" for s, a in REFUSED])
def test_control_refused_transition_names_state_reason_and_options(
    rig: Rig, state: S, action: Action
) -> None:
    rig.reach(state)
    sent = len(rig.bank.sent)
    rows_before = len(rig.audit.query(result="refused"))
    counted = rig.commander.counters.get("control.transition_refused")
    with pytest.raises(TransitionRefused) as info:
        request(rig, action)()
    msg = str(info.value)
    assert msg.startswith(f"cannot {action.value} while {state.value}: ")
    allowed = ", ".join(ScenarioRunner.allowed(state)) or "nothing (wait)"
    assert msg.endswith(f"from {state.value}: {allowed}")
    assert "is not allowed there" not in msg or state is S.ABORTING  # a specific reason
    assert rig.runner.state is state
    assert len(rig.bank.sent) == sent
    refused = rig.audit.query(result="refused")
    assert len(refused) == rows_before + 1  # exactly one row for the refusal
    row = refused[-1]
    assert (row.who, row.source, row.action, row.target, row.reason) == (
        "op",
        "runner",
        action.value,
        "",
        msg,
    )
    assert rig.commander.counters.get("control.transition_refused") == counted + 1


@pytest.mark.parametrize(("state", "action"), ALLOWED, ids=[f"{s}-{a}" for s, a in ALLOWED])
def test_control_allowed_transition_leads_where_the_table_says(
    rig: Rig, state: S, action: Action
) -> None:
    rig.reach(state)
    request(rig, action)()
    target = TRANSITIONS[state][action]
    # start runs on (cold finishes: done), an abort runs on to safe
    follow = {S.RUNNING: {S.RUNNING, S.DONE}, S.ABORTING: {S.ABORTING, S.SAFE}}
    assert rig.runner.state in follow.get(target, {target})


def test_control_hot_scenario_needs_arming(rig: Rig) -> None:
    with pytest.raises(
        TransitionRefused, match="cannot start 'hot' while idle: it requires arming"
    ):
        rig.runner.start("hot", "op")
    with pytest.raises(TransitionRefused, match="no scenario 'nope'; scenarios: cold, emergency"):
        rig.runner.start("nope", "op")
    assert rig.bank.sent == [] and rig.runner.state is S.IDLE


def test_control_hold_point_resume_and_finish(rig: Rig) -> None:
    rig.reach(S.HOLDING)
    assert rig.runner.status().hold_message == "check"
    rig.runner.resume("op")
    assert rig.runner.wait_state(S.DONE, 5) is S.DONE
    assert rig.bank.sent == [{"GOX1": "open"}, {"GOX1": "closed"}]


def test_control_abort_from_running_runs_the_abort_sequence_in_order(rig: Rig) -> None:
    rig.reach(S.RUNNING)
    rig.runner.abort("operator pressed abort", "ana")
    assert rig.runner.wait_state(S.SAFE, 5) is S.SAFE
    assert rig.bank.sent[-2:] == [{"GOX1": "closed"}, {"PURGE1": "closed"}]
    st = rig.runner.status()
    assert (st.abort_reason, st.abort_by, st.safing_failures) == (
        "operator pressed abort",
        "ana",
        (),
    )


def test_control_failed_step_aborts_and_failed_abort_step_still_reaches_safe(rig: Rig) -> None:
    rig.runner.arm("op")
    rig.bank.fail_next = "NACK: board busy"
    rig.runner.start("hot", "op")
    assert rig.runner.wait_state(S.SAFE, 5) is S.SAFE
    assert "NACK: board busy" in rig.runner.status().abort_reason
    rig.runner.reset("op")
    rig.runner.arm("op")
    rig.runner.start("slow", "op")
    rig._wait_step(1)
    rig.bank.fail_next = "no reply"  # the abort's first step fails: the sequence goes on
    rig.runner.abort("test", "op")
    assert rig.runner.wait_state(S.SAFE, 5) is S.SAFE
    assert rig.runner.status().safing_failures == ("abort step 1 (set): no reply",)
    assert rig.bank.sent[-1] == {"PURGE1": "closed"}
    assert rig.audit.query(action="abort")[-1].result == "incomplete"


def test_control_wait_until_timeout_aborts_with_the_last_value(rig: Rig) -> None:
    sc = scenario(
        "short", [{"wait_until": {"channel": "P1", "above": 5}, "timeout_s": 0.05}], arming=False
    )
    rig.runner.scenarios["short"] = sc
    rig.runner.start("short", "op")
    assert rig.runner.wait_state(S.SAFE, 5) is S.SAFE
    assert "P1 > 5 not reached within 0.05 s" in rig.runner.status().abort_reason
