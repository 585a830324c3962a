"""The watchdogs' pass tells the control part's listeners what changed since the previous pass:
``"runner"`` for any change of the runner's status (a new step within the same state too),
``"readings"`` for any change of an actuator's reading (a device lost while idle too), and
nothing when nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rigwatch.control.actuators import ActuatorSpec
from rigwatch.control.audit import AuditLog
from rigwatch.control.authority import ControlAuthority
from rigwatch.control.commander import Commander
from rigwatch.control.interlocks import Interlocks
from rigwatch.control.redlines import RedlineMonitor
from rigwatch.control.runner import ScenarioRunner
from rigwatch.control.scenarios import Scenario
from rigwatch.control.states import RunnerState as S
from rigwatch.control.values import LatestValues
from rigwatch.control.watchdogs import Watchdogs
from support.control_fakes import AckBank

TWO_HOLDS = Scenario.model_validate(
    {
        "name": "two_holds",
        "requires_arming": False,
        "steps": [
            {"set": {"V1": "open"}},
            {"hold": "first check"},
            {"set": {"V1": "closed"}},
            {"hold": "second check"},
        ],
        "abort": {"steps": [{"set": {"V1": "closed"}}]},
    }
)


class Stand:
    def __init__(self, tmp_path: Path) -> None:
        self.bank = AckBank(
            (ActuatorSpec("V1", "valve", "closed"), ActuatorSpec("V2", "valve", "closed"))
        )
        self.audit = AuditLog(tmp_path / "audit.sqlite")
        specs = {s.name: s for s in self.bank.specs}
        self.commander = Commander([self.bank], Interlocks([], specs), self.audit)
        self.runner = ScenarioRunner(
            self.commander, {"two_holds": TWO_HOLDS}, values=LatestValues(), audit=self.audit
        )
        self.events: list[str] = []
        self.dogs = Watchdogs(
            self.runner,
            ControlAuthority(30.0),
            RedlineMonitor(),
            self.commander,
            self.audit,
            {},
            [],
            self.events.append,
        )

    def told(self) -> list[str]:
        """What one pass tells."""
        self.events.clear()
        self.dogs.check()
        return sorted(self.events)


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Stand]:
    s = Stand(tmp_path)
    yield s
    if s.runner.state in (S.RUNNING, S.HOLDING):
        s.runner.abort("end of test", "test")
    s.runner.wait_state({S.SAFE, S.DONE, S.IDLE}, 5)
    s.runner.close()
    s.audit.close()


def test_control_watchdog_pass_tells_only_what_changed(stand: Stand) -> None:
    assert stand.told() == ["readings", "runner"]  # the first pass: everything is news
    assert stand.told() == []  # nothing changed, nothing told

    # a device stops answering while the stand is idle: no command, no runner change
    stand.bank.state.unknown(["V2"], "no answer")
    assert stand.told() == ["readings"]
    assert stand.told() == []

    stand.runner.start("two_holds", "op")
    assert stand.runner.wait_state(S.HOLDING, 5) is S.HOLDING
    assert stand.runner.status().hold_message.startswith("first check")
    assert stand.told() == ["readings", "runner"]  # V1 opened, the runner holds

    # resumed to the second hold: the state is "holding" again, the step is another one
    stand.runner.resume("op")  # running at once, holding again after the next step
    assert stand.runner.wait_state(S.HOLDING, 5) is S.HOLDING
    assert stand.runner.status().hold_message.startswith("second check")
    assert stand.told() == ["readings", "runner"]
