"""The scenario runner: an explicit table of allowed transitions, steps run on a worker
thread, and an abort that always reaches ``safe``.

:data:`TRANSITIONS` lists, for each :class:`~rigwatch.control.states.RunnerState`, the actions
allowed there and the state each leads to; every other request is refused with
:class:`~rigwatch.errors.TransitionRefused` naming the state, the request, the reason and the
actions allowed. ``finish`` and ``safed`` are the runner's own (a scenario's last step done,
an abort sequence done); clients request the others.

Abort (operator, redline trip, step failure, interlock refusal of a step, timeout) runs the
scenario's abort sequence *in order* on its own thread, at once: a command the scenario had
already handed to a backend goes out first (backends are FIFO), nothing of the scenario after
it. Each abort step is tried; one that fails is recorded and the sequence goes on; the runner
then enters ``safe`` (``RunnerStatus.safing_failures`` lists what was not acknowledged). An
abort with no scenario running runs the abort sequence of the station's safing scenario
(``emergency``).

A hold (operator request or hold point) takes effect between steps: the step in progress
finishes, then the runner waits in ``holding`` until resume (or abort).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rigwatch.control.actuators import Status
from rigwatch.control.audit import AuditLog, record_refusal
from rigwatch.control.commander import Commander
from rigwatch.control.redlines import RedlineMonitor, Trip
from rigwatch.control.scenarios import Scenario, Step
from rigwatch.control.states import RunnerState
from rigwatch.control.values import LatestValues
from rigwatch.devices.stm32.link import CommandLink
from rigwatch.errors import (
    ActuatorFault,
    CommandRefused,
    ControlError,
    DeviceError,
    ProtocolError,
    TransitionRefused,
)

log = logging.getLogger(__name__)

S = RunnerState


class Action(StrEnum):
    """What can happen to the runner; ``finish`` and ``safed`` only from the runner itself."""

    ARM = "arm"
    DISARM = "disarm"
    START = "start"
    HOLD = "hold"
    RESUME = "resume"
    ABORT = "abort"
    RESET = "reset"
    FINISH = "finish"
    SAFED = "safed"


A = Action

TRANSITIONS: dict[RunnerState, dict[Action, RunnerState]] = {
    S.IDLE: {A.ARM: S.ARMED, A.START: S.RUNNING, A.ABORT: S.ABORTING},
    S.ARMED: {A.DISARM: S.IDLE, A.START: S.RUNNING, A.ABORT: S.ABORTING},
    S.RUNNING: {A.HOLD: S.HOLDING, A.ABORT: S.ABORTING, A.FINISH: S.DONE},
    S.HOLDING: {A.RESUME: S.RUNNING, A.ABORT: S.ABORTING},
    S.ABORTING: {A.SAFED: S.SAFE},
    S.SAFE: {A.RESET: S.IDLE, A.ABORT: S.ABORTING},
    S.DONE: {A.RESET: S.IDLE, A.ABORT: S.ABORTING},
}
"""From each state, the allowed actions and where they lead. ``start`` from ``idle`` only for
a scenario with ``requires_arming = false`` (checked as a guard)."""

INTERNAL_ACTIONS = frozenset({A.FINISH, A.SAFED})

REASONS: dict[tuple[RunnerState, Action], str] = {
    (S.IDLE, A.HOLD): "nothing is running",
    (S.IDLE, A.RESUME): "nothing is holding",
    (S.IDLE, A.DISARM): "the stand is not armed",
    (S.IDLE, A.RESET): "the runner is already idle",
    (S.ARMED, A.ARM): "the stand is already armed",
    (S.ARMED, A.HOLD): "nothing is running",
    (S.ARMED, A.RESET): "nothing to reset: disarm to go back to idle",
    (S.ARMED, A.RESUME): "nothing is holding",
    (S.RUNNING, A.ARM): "a scenario is running (arming comes before start)",
    (S.RUNNING, A.START): "a scenario is already running",
    (S.RUNNING, A.DISARM): "a scenario is running: abort it (disarming would leave it hot)",
    (S.RUNNING, A.RESUME): "the scenario is running, not holding",
    (S.RUNNING, A.RESET): "a scenario is running: abort it or let it finish",
    (S.HOLDING, A.HOLD): "the scenario is already holding",
    (S.HOLDING, A.ARM): "a scenario is holding (arming comes before start)",
    (S.HOLDING, A.RESET): "a scenario is holding: resume or abort it",
    (S.HOLDING, A.START): "a scenario is holding: resume or abort it",
    (S.HOLDING, A.DISARM): "a scenario is holding: abort it (disarming would leave it hot)",
    (S.SAFE, A.START): "the stand was aborted: reset (acknowledging why) before a new run",
    (S.SAFE, A.DISARM): "an abort disarmed the stand already",
    (S.SAFE, A.HOLD): "nothing is running",
    (S.SAFE, A.RESUME): "nothing is holding: an aborted run cannot be resumed",
    (S.DONE, A.DISARM): "the finished run disarmed the stand; reset to go back to idle",
    (S.DONE, A.HOLD): "nothing is running",
    (S.DONE, A.RESUME): "nothing is holding",
    (S.SAFE, A.ARM): "the stand was aborted: reset (acknowledging why) before arming",
    (S.DONE, A.START): "reset the finished run first",
    (S.DONE, A.ARM): "reset the finished run first",
}


@dataclass(frozen=True)
class RunnerStatus:
    """What the runner is doing.

    Attributes:
        state: the current state; ``since_ns`` when it was entered.
        scenario: the scenario running, holding, aborting, done or safed ("" when none).
        step_index: 0-based index of the step in progress (-1 when none); ``step`` its label.
        armed_by: who armed the stand ("" when not armed).
        hold_message: what a hold point asks the operator to check.
        abort_reason, abort_by, redline: why, by whom (``redline:<name>``...), which redline.
        safing_failures: abort steps that were not acknowledged (empty: the safe state was
            reached as the scenario defines it).
    """

    state: RunnerState
    since_ns: int
    scenario: str = ""
    step_index: int = -1
    step: str = ""
    armed_by: str = ""
    hold_message: str = ""
    abort_reason: str = ""
    abort_by: str = ""
    redline: str = ""
    safing_failures: tuple[str, ...] = ()


@dataclass
class _Run:
    scenario: Scenario
    armed: bool
    who: str
    thread: threading.Thread | None = None
    cancelled: bool = False
    statuses: list[Status] = field(default_factory=list)


class ScenarioRunner:
    """Runs scenarios on a station's actuators (see the module docstring). Thread-safe.

    Args:
        commander: the path of every command.
        scenarios: the station's scenarios by name (checked by
            :func:`~rigwatch.control.scenarios.check_scenario`).
        firmware: the board link for ``firmware`` steps.
        values: latest channel values, for ``wait_until`` steps.
        monitor: the redline monitor; the runner sets its active redlines per step and aborts
            on its trips.
        audit: where transitions and steps are recorded.
        safing_scenario: whose abort sequence runs on an abort with no scenario.
        command_timeout_s: longest wait for a step's acknowledgement beyond the backends' own
            timeouts (a guard: backends always complete their statuses).
    """

    def __init__(
        self,
        commander: Commander,
        scenarios: Mapping[str, Scenario],
        *,
        firmware: CommandLink | None = None,
        values: LatestValues | None = None,
        monitor: RedlineMonitor | None = None,
        audit: AuditLog | None = None,
        safing_scenario: str = "emergency",
        command_timeout_s: float = 30.0,
    ) -> None:
        self.commander = commander
        self.scenarios = dict(scenarios)
        self.firmware = firmware
        self.values = values
        self.monitor = monitor
        self.audit = audit
        self.safing_scenario = safing_scenario
        self.command_timeout_s = command_timeout_s
        self._cond = threading.Condition()
        self._status = RunnerStatus(S.IDLE, time.time_ns())
        self._run: _Run | None = None
        self._safing_thread: threading.Thread | None = None
        if monitor is not None:
            monitor.on_trip = self._on_trip
        commander.state = self.interlock_state

    # -- state ----------------------------------------------------------------------------------

    @property
    def state(self) -> RunnerState:
        """The current state."""
        return self._status.state

    def status(self) -> RunnerStatus:
        """A snapshot of what the runner is doing."""
        return self._status

    def interlock_state(self) -> RunnerState:
        """The state interlocks see: a scenario started without arming counts as ``idle``
        (hot actuators stay where they are safe)."""
        st = self._status.state
        run = self._run
        if st in (S.RUNNING, S.HOLDING) and run is not None and not run.armed:
            return S.IDLE
        return st

    def wait_state(self, states: set[RunnerState] | RunnerState, timeout_s: float) -> RunnerState:
        """Wait until the state is one of ``states`` (or ``timeout_s``); returns the state."""
        want = {states} if isinstance(states, RunnerState) else set(states)
        with self._cond:
            self._cond.wait_for(lambda: self._status.state in want, timeout_s)
            return self._status.state

    @staticmethod
    def allowed(state: RunnerState) -> list[str]:
        """Actions a client may request in ``state``."""
        return [a.value for a in TRANSITIONS[state] if a not in INTERNAL_ACTIONS]

    def _check(self, action: Action) -> RunnerState:
        """The target of ``action`` from the current state, or TransitionRefused. Call with
        the lock held."""
        current = self._status.state
        target = TRANSITIONS[current].get(action)
        if target is not None:
            return target
        if current is S.ABORTING:
            reason = f"the abort sequence is running ({self._status.abort_reason}); wait for safe"
        else:
            reason = REASONS.get((current, action), f"{action.value} is not allowed there")
        options = ", ".join(self.allowed(current)) or "nothing (wait)"
        raise TransitionRefused(
            f"cannot {action.value} while {current.value}: {reason}; from {current.value}: "
            f"{options}"
        )

    def _enter(self, target: RunnerState, **changes: object) -> None:
        """Set the state (lock held) and wake waiters."""
        self._status = replace(self._status, state=target, since_ns=time.time_ns(), **changes)  # type: ignore[arg-type]
        self._cond.notify_all()
        log.info("runner: %s (%s)", target.value, self._status.scenario or "-")

    def _audit(
        self,
        who: str,
        action: str,
        result: str,
        *,
        source: str = "runner",
        target: str = "",
        reason: str = "",
        redline: str = "",
        scenario: str = "",
    ) -> None:
        if self.audit is not None:
            self.audit.record(
                who=who,
                source=source,
                action=action,
                result=result,
                target=target,
                reason=reason,
                redline=redline,
                scenario=scenario,
            )

    def _refuse(self, who: str, action: Action, exc: TransitionRefused, scenario: str = "") -> None:
        record_refusal(
            self.audit,
            self.commander.counters,
            who=who,
            source="runner",
            action=action.value,
            target="",
            reason=str(exc),
            scenario=scenario,
            counter="control.transition_refused",
        )

    # -- requests -----------------------------------------------------------------------------

    def arm(self, who: str) -> RunnerStatus:
        """``idle -> armed``: hot commands and hot scenarios may start.

        Raises:
            TransitionRefused: not idle (the message says why and what is allowed).
        """
        with self._cond:
            try:
                target = self._check(A.ARM)
            except TransitionRefused as exc:
                self._refuse(who, A.ARM, exc)
                raise
            self._enter(
                target,
                armed_by=who,
                scenario="",
                abort_reason="",
                abort_by="",
                redline="",
                safing_failures=(),
                step_index=-1,
                step="",
            )
        self._audit(who, "arm", "ok")
        return self._status

    def disarm(self, who: str) -> RunnerStatus:
        """``armed -> idle``."""
        with self._cond:
            try:
                target = self._check(A.DISARM)
            except TransitionRefused as exc:
                self._refuse(who, A.DISARM, exc)
                raise
            self._enter(target, armed_by="")
        self._audit(who, "disarm", "ok")
        return self._status

    def start(self, name: str, who: str) -> RunnerStatus:
        """Start scenario ``name``: ``armed -> running``, or ``idle -> running`` for a scenario
        that does not require arming.

        Raises:
            TransitionRefused: unknown scenario, not allowed from the current state, or a hot
                scenario while not armed.
        """
        with self._cond:
            scenario = self.scenarios.get(name)
            try:
                if scenario is None:
                    raise TransitionRefused(
                        f"cannot start: no scenario {name!r}; scenarios: "
                        f"{', '.join(sorted(self.scenarios))}"
                    )
                current = self._status.state
                target = self._check(A.START)
                if current is S.IDLE and scenario.requires_arming:
                    raise TransitionRefused(
                        f"cannot start {name!r} while idle: it requires arming (it moves hot "
                        "actuators); arm first"
                    )
            except TransitionRefused as exc:
                self._refuse(who, A.START, exc, scenario=name)
                raise
            armed = current is S.ARMED
            run = _Run(scenario, armed, who)
            self._run = run
            self._enter(
                target,
                scenario=name,
                step_index=-1,
                step="",
                hold_message="",
                abort_reason="",
                abort_by="",
                redline="",
                safing_failures=(),
            )
            run.thread = threading.Thread(
                target=self._execute, args=(run,), name=f"scenario-{name}", daemon=True
            )
        self._audit(who, "start", "ok", target=name, scenario=name)
        run.thread.start()
        return self._status

    def hold(self, who: str) -> RunnerStatus:
        """``running -> holding`` (takes effect after the step in progress)."""
        with self._cond:
            try:
                target = self._check(A.HOLD)
            except TransitionRefused as exc:
                self._refuse(who, A.HOLD, exc, self._status.scenario)
                raise
            self._enter(target, hold_message=f"held by {who}")
        self._audit(who, "hold", "ok", scenario=self._status.scenario)
        return self._status

    def resume(self, who: str) -> RunnerStatus:
        """``holding -> running``."""
        with self._cond:
            try:
                target = self._check(A.RESUME)
            except TransitionRefused as exc:
                self._refuse(who, A.RESUME, exc, self._status.scenario)
                raise
            self._enter(target, hold_message="")
        self._audit(who, "resume", "ok", scenario=self._status.scenario)
        return self._status

    def reset(self, who: str) -> RunnerStatus:
        """``safe -> idle`` or ``done -> idle``: the operator acknowledges the outcome."""
        with self._cond:
            try:
                target = self._check(A.RESET)
            except TransitionRefused as exc:
                self._refuse(who, A.RESET, exc, self._status.scenario)
                raise
            self._run = None
            self._enter(target, armed_by="", step_index=-1, step="")
        self._audit(who, "reset", "ok")
        return self._status

    def abort(
        self, reason: str, who: str, *, source: str = "api", redline: str = ""
    ) -> RunnerStatus:
        """Abort: run the abort sequence of the scenario (or of the safing scenario when none
        runs), in order, then enter ``safe``.

        Raises:
            TransitionRefused: already aborting (the message says why it is aborting).
        """
        with self._cond:
            try:
                target = self._check(A.ABORT)
            except TransitionRefused as exc:
                self._refuse(who, A.ABORT, exc, self._status.scenario)
                raise
            run = self._run
            if run is not None and self._status.state in (S.RUNNING, S.HOLDING):
                run.cancelled = True
                scenario = run.scenario
            else:
                fallback = self.scenarios.get(self.safing_scenario)
                if fallback is None:
                    raise TransitionRefused(
                        f"cannot abort while {self._status.state.value}: no safing scenario "
                        f"{self.safing_scenario!r} to take the abort sequence from"
                    )
                scenario = fallback
            if self.monitor is not None:
                self.monitor.set_active([], time.time_ns())
            self._enter(
                target,
                scenario=scenario.name,
                abort_reason=reason,
                abort_by=who,
                redline=redline,
                hold_message="",
                safing_failures=(),
            )
            thread = threading.Thread(
                target=self._safe,
                args=(scenario, reason, who, redline),
                name="safing",
                daemon=True,
            )
            self._safing_thread = thread
            thread.start()  # under the lock: nothing of the scenario can be sent in between
        return self._status

    def close(self, timeout_s: float = 5.0) -> None:
        """Wait for the threads of a run or an abort in progress (tests, shutdown)."""
        for t in (self._run.thread if self._run else None, self._safing_thread):
            if t is not None and t is not threading.current_thread():
                t.join(timeout_s)

    # -- execution ----------------------------------------------------------------------------

    def _on_trip(self, trip: Trip) -> None:
        try:
            self.abort(
                trip.message, f"redline:{trip.redline}", source="redline", redline=trip.redline
            )
        except TransitionRefused:
            log.info("redline %s tripped while %s", trip.redline, self.state.value)

    def _cancelled(self, run: _Run) -> bool:
        return run.cancelled

    def _execute(self, run: _Run) -> None:
        sc = run.scenario
        try:
            for i, step in enumerate(sc.steps):
                with self._cond:
                    self._cond.wait_for(
                        lambda: run.cancelled or self._status.state is not S.HOLDING
                    )
                    if run.cancelled:
                        return
                    self._status = replace(self._status, step_index=i, step=step.label(i))
                    self._cond.notify_all()
                if self.monitor is not None:
                    self.monitor.set_active(sc.redlines_for(i), time.time_ns())
                failure = self._step(run, i, step)
                if run.cancelled:
                    return
                if failure is not None:
                    self._audit(
                        f"scenario:{sc.name}",
                        "step",
                        "failed",
                        target=step.label(i),
                        reason=failure,
                        scenario=sc.name,
                        source="scenario",
                    )
                    with contextlib.suppress(TransitionRefused):  # already aborting
                        self.abort(
                            f"{step.label(i)}: {failure}", f"scenario:{sc.name}", source="scenario"
                        )
                    return
            with self._cond:
                self._cond.wait_for(lambda: run.cancelled or self._status.state is not S.HOLDING)
                if run.cancelled:
                    return
                self._check(A.FINISH)
                if self.monitor is not None:
                    self.monitor.set_active([], time.time_ns())
                self._enter(S.DONE, step_index=-1, step="", armed_by="")
            self._audit(f"scenario:{sc.name}", "finish", "ok", scenario=sc.name)
        except Exception as exc:  # a bug must still end in safe
            log.exception("scenario %s failed", sc.name)
            with contextlib.suppress(TransitionRefused):
                self.abort(f"internal error: {exc}", f"scenario:{sc.name}", source="scenario")

    def _wait_status(self, run: _Run | None, status: Status, timeout_s: float) -> bool:
        """Wait for ``status`` or the run's cancellation; True when done."""
        status.add_callback(lambda _s: self._notify())
        with self._cond:
            self._cond.wait_for(
                lambda: status.done or (run is not None and run.cancelled), timeout_s
            )
        return status.done

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _send(self, run: _Run, step: Step, who: str) -> Status:
        """Hand a ``set`` to the commander unless the run was cancelled (atomic with abort)."""
        assert step.set is not None
        with self._cond:
            if run.cancelled:
                raise _Cancelled
            return self.commander.command(
                step.set,
                who=who,
                source="scenario",
                scenario=run.scenario.name,
                reason=step.name,
            )

    def _step(self, run: _Run, i: int, step: Step) -> str | None:
        """Run one step; the reason of its failure, or None."""
        who = f"scenario:{run.scenario.name}"
        try:
            if step.set is not None:
                status = self._send(run, step, who)
                if not self._wait_status(run, status, self.command_timeout_s):
                    return None if run.cancelled else "no acknowledgement"
                exc = status.exception()
                return None if exc is None else str(exc)
            if step.wait_s is not None:
                with self._cond:
                    self._cond.wait_for(lambda: run.cancelled, step.wait_s)
                return None
            if step.wait_until is not None:
                return self._wait_until(run, step)
            if step.hold is not None:
                return self._hold_point(run, step, who)
            if step.firmware is not None:
                return self._firmware(run, step, who)
        except _Cancelled:
            return None
        except CommandRefused as exc:
            return f"refused: {exc}"
        return None

    def _wait_until(self, run: _Run, step: Step) -> str | None:
        cond = step.wait_until
        assert cond is not None and step.timeout_s is not None
        if self.values is None:
            return f"no channel values to wait for {cond.describe()}"
        deadline = time.monotonic() + step.timeout_s
        while not run.cancelled:
            if cond.holds(self.values.value(cond.channel)):
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return (
                    f"{cond.describe()} not reached within {step.timeout_s:g} s "
                    f"(last {cond.channel} = {self.values.value(cond.channel):.6g})"
                )
            self.values.wait_change(self.values.version, min(left, 0.05))
        return None

    def _hold_point(self, run: _Run, step: Step, who: str) -> str | None:
        with self._cond:
            if run.cancelled:
                return None
            if self._status.state is S.HOLDING:  # an operator's hold came first
                self._status = replace(self._status, hold_message=step.hold or "")
            else:
                self._check(A.HOLD)
                self._enter(S.HOLDING, hold_message=step.hold or "")
            ok = self._cond.wait_for(
                lambda: run.cancelled or self._status.state is not S.HOLDING, step.timeout_s
            )
        self._audit(
            who, "hold", "ok", target=step.hold or "", scenario=run.scenario.name, source="scenario"
        )
        if not ok:
            return f"no resume within {step.timeout_s:g} s at hold point {step.hold!r}"
        return None

    def _firmware(self, run: _Run, step: Step, who: str) -> str | None:
        word = step.firmware
        assert word is not None
        if self.firmware is None:
            return f"no board link to send {word!r}"
        if step.delay_s:
            with self._cond:
                if self._cond.wait_for(lambda: run.cancelled, step.delay_s):
                    return None
        timeout_s = step.timeout_s if step.timeout_s is not None else 2.0
        try:
            reply = self.firmware.transact(word, timeout_s)
        except (DeviceError, ProtocolError) as exc:
            result, reason = "failed", str(exc)
        else:
            if reply is None:
                result, reason = "failed", f"no reply to {word!r} within {timeout_s:g} s"
            elif reply.ok:
                result, reason = "ok", reply.line
            else:
                result, reason = (
                    "failed",
                    f"{self.firmware.link_name} refused {word!r}: {reply.line}",
                )
        if self.audit is not None:
            self.audit.record(
                who=who,
                source="scenario",
                action="firmware",
                target=word,
                result=result,
                reason=reason,
                scenario=run.scenario.name,
            )
        return None if result == "ok" else reason

    def _safe(self, scenario: Scenario, reason: str, who: str, redline: str) -> None:
        """Run ``scenario``'s abort sequence in order, then enter ``safe``."""
        failures: list[str] = []
        first = True
        for i, step in enumerate(scenario.abort_steps):
            label = f"abort {step.label(i)}"
            try:
                if step.set is not None:
                    status = self.commander.command(
                        step.set,
                        who=who,
                        source="abort",
                        scenario=scenario.name,
                        redline=redline,
                        safing=True,
                        reason=reason if first else label,
                    )
                    first = False
                    try:
                        status.wait(self.command_timeout_s)
                    except (ActuatorFault, ControlError, TimeoutError) as exc:
                        failures.append(f"{label}: {exc}")
                elif step.wait_s is not None:
                    time.sleep(step.wait_s)  # the abort sequence's own timing, not a sync
                elif step.wait_until is not None:
                    assert step.timeout_s is not None
                    if self.values is None:
                        failures.append(f"{label}: no channel values")
                        continue
                    deadline = time.monotonic() + step.timeout_s
                    while not step.wait_until.holds(self.values.value(step.wait_until.channel)):
                        left = deadline - time.monotonic()
                        if left <= 0:
                            failures.append(f"{label}: {step.wait_until.describe()} not reached")
                            break
                        self.values.wait_change(self.values.version, min(left, 0.05))
                elif step.firmware is not None:
                    dummy = _Run(scenario, True, who)
                    problem = self._firmware(dummy, step, who)
                    if problem is not None:
                        failures.append(f"{label}: {problem}")
            except Exception as exc:  # every step is tried, whatever the one before did
                log.exception("%s failed", label)
                failures.append(f"{label}: {exc}")
        # recorded before the state says safe: once safe, the log shows why
        self._audit(
            who,
            "abort",
            "ok" if not failures else "incomplete",
            target=scenario.name,
            reason=reason + ("" if not failures else "; not acknowledged: " + "; ".join(failures)),
            redline=redline,
            scenario=scenario.name,
            source="abort",
        )
        with self._cond:
            self._check(A.SAFED)
            self._enter(
                S.SAFE, safing_failures=tuple(failures), armed_by="", step_index=-1, step=""
            )


class _Cancelled(Exception):
    """The run was aborted before a step could send its command."""


RunnerListener = Callable[[RunnerStatus], None]
