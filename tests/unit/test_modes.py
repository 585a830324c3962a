"""The system mode is the scenario runner's state: each requested mode maps onto one runner
action (or is refused with the runner's reason); control authority is one lease at a time."""

from __future__ import annotations

import pytest

from rigwatch.control.authority import ControlAuthority
from rigwatch.control.commander import Commander
from rigwatch.control.runner import ScenarioRunner
from rigwatch.control.scenarios import Scenario
from rigwatch.control.states import RunnerState as S
from rigwatch.control.system_mode import ABORT_WORDS, REQUESTS, SystemMode
from rigwatch.errors import AuthorityRefused, ModeRefused

HOLDING = Scenario.model_validate(
    {
        "name": "held",
        "requires_arming": True,
        "steps": [{"hold": "check"}],
        "abort": {"steps": [{"wait_s": 0.01}]},
    }
)
SAFING = Scenario.model_validate(
    {
        "name": "emergency",
        "requires_arming": False,
        "steps": [{"wait_s": 0.01}],
        "abort": {"steps": [{"wait_s": 0.01}]},
    }
)


@pytest.fixture
def modes() -> SystemMode:
    return SystemMode(ScenarioRunner(Commander([]), {"held": HOLDING, "emergency": SAFING}))


def test_starts_idle_like_todays_test_stand(modes: SystemMode) -> None:
    assert modes.mode is S.IDLE and modes.state.mode is S.IDLE


def test_arm_disarm_hold_resume_map_onto_the_runner(modes: SystemMode) -> None:
    r = modes.runner
    assert modes.request("armed", "ana").mode is S.ARMED and r.status().armed_by == "ana"
    assert modes.request(" ARMED ", "ana").mode is S.ARMED  # the current mode: a no-op
    assert modes.request("idle", "ana").mode is S.IDLE  # disarm
    modes.request("arm", "ana")
    r.start("held", "ana")
    assert r.wait_state(S.HOLDING, 5) is S.HOLDING  # its hold point
    assert modes.request("running", "ana").mode in (S.RUNNING, S.DONE)  # resume
    assert r.wait_state(S.DONE, 5) is S.DONE
    assert modes.request("idle", "ana").mode is S.IDLE  # reset


def test_safe_runs_the_abort_sequence_instead_of_being_a_label(modes: SystemMode) -> None:
    modes.request("armed", "ana")
    modes.request("safe", "bob")
    r = modes.runner
    assert r.wait_state(S.SAFE, 5) is S.SAFE
    st = r.status()
    assert st.abort_by == "bob" and "system_mode 'safe'" in st.abort_reason
    assert st.scenario == "emergency"  # the safing scenario's abort sequence ran
    assert modes.request("safe", "bob").mode is S.SAFE  # already safe: nothing more
    assert {"safe", "abort", "emergency"} <= ABORT_WORDS and SystemMode.is_abort("Emergency")


@pytest.mark.parametrize(
    ("setup", "word", "reason"),
    [
        ([], "running", "a scenario starts with POST /api/scenario"),
        ([], "holding", "cannot hold while idle: nothing is running"),
        (["armed"], "done", "done is entered by the runner itself"),
        (["armed", "safe"], "armed", r"reset \(acknowledging why\) before arming"),
    ],
)
def test_refused_requests_change_nothing_and_say_why(
    modes: SystemMode, setup: list[str], word: str, reason: str
) -> None:
    for w in setup:
        modes.request(w, "ana")
        modes.runner.wait_state({S.IDLE, S.ARMED, S.SAFE}, 5)
    before = modes.state
    with pytest.raises(ModeRefused, match=reason):
        modes.request(word, "ana")
    assert modes.state == before


@pytest.mark.parametrize("word", ["warp", "test", "maintenance", "monitoring"])
def test_unknown_words_are_refused_with_the_modes(modes: SystemMode, word: str) -> None:
    with pytest.raises(ModeRefused, match=f"unknown mode '{word}'; modes: idle, armed, running"):
        modes.request(word, "ana")
    assert set(REQUESTS.values()) <= set(S)


def test_control_authority_is_one_lease_renewed_or_lapsing() -> None:
    now = [100.0]
    auth = ControlAuthority(5.0, clock=lambda: now[0])
    with pytest.raises(AuthorityRefused, match="no client holds control authority"):
        auth.check(None)
    lease = auth.request("ana")
    assert auth.check(lease.token).holder == "ana" and auth.holder == "ana"
    with pytest.raises(AuthorityRefused, match="held by 'ana'") as e:
        auth.request("bob")
    assert e.value.holder == "ana"
    with pytest.raises(AuthorityRefused, match="not the current one"):
        auth.check("forged")
    now[0] += 4.0
    assert auth.renew(lease.token).expires == 109.0  # a heartbeat: 5 s from now
    now[0] += 4.9
    assert auth.expire() is None and auth.expires_in_s() == pytest.approx(0.1)
    now[0] += 0.2
    lapsed = auth.expire()
    assert lapsed is not None and lapsed.holder == "ana"
    assert auth.holder == ""
    bob = auth.request("bob")
    with pytest.raises(AuthorityRefused):
        auth.release(lease.token)  # ana's old lease no longer counts
    assert auth.release(bob.token).holder == "bob" and auth.holder == ""
