"""The status engine: rules applied to each machine's messages and to the passing of time.

:class:`StatusEngine` keeps, per machine, the level each rule has fired, when a pending
breach began, the last value of each metric and when the machine last sent fresh data. It is
driven two ways:

- :meth:`StatusEngine.on_message` on each accepted message (live or backfill);
- :meth:`StatusEngine.evaluate` on a timer tick: silence turns a machine grey, a breach that
  has lasted ``for_s`` fires, a metric without a fresh value becomes ``unknown`` — with no
  message at all.

Both return :class:`Evaluation` objects: the machine's colour, each rule's status and the
:class:`~rigwatch.fleet.signals.Signal` list the alert manager turns into alerts.

Times: durations and freshness use the server's clock (``received_at``, ``now``); message
timestamps only order messages and detect backfill, so a machine clock that is a few seconds
off changes nothing. A message is **backfill** when the agent flags it, when its timestamp is
not newer than the newest already seen for the machine, or when it arrives more than
``late_after_s`` after its timestamp; backfill is to be stored but changes no status and
opens or clears no alert.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

from rigwatch.fleet.rules import (
    LEVEL_COLOUR,
    LEVEL_STATUS,
    NO_DATA,
    NOT_ACCESSIBLE,
    Colour,
    Level,
    LevelRule,
    MetricRule,
    MetricStatus,
    RuleSet,
)
from rigwatch.fleet.signals import Severity, Signal
from rigwatch.wire import StatusMessage

logger = logging.getLogger(__name__)

_SEVERITY = {Level.WARNING: Severity.WARNING, Level.CRITICAL: Severity.CRITICAL}
_ALARM_LEVEL = {"warning": Level.WARNING, "critical": Level.CRITICAL}


@dataclass
class _RuleState:
    level: Level = Level.OK
    since: dict[Level, datetime] = field(default_factory=dict)
    value: float | None = None
    value_at: datetime | None = None
    error: str | None = None


@dataclass
class _Machine:
    machine_id: str
    last_fresh_at: datetime | None = None
    last_contact_at: datetime | None = None
    latest_timestamp: datetime | None = None
    accessible: bool = True
    access_reason: str = ""
    alarms: dict[str, Level] = field(default_factory=dict)
    rules: dict[str, _RuleState] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    colour: Colour = Colour.GREY
    no_data_alerted: bool = False


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The outcome of one message or of one tick for one machine.

    Attributes:
        machine_id: the machine.
        colour: its colour now. previous_colour: before this evaluation.
        metrics: rule id -> status (``unknown`` while the metric has no fresh value, or the
            machine is black or grey).
        signals: alert conditions observed (repeats included) and recoveries.
        backfill: the message was backfill: store it, nothing else changed.
        reason: why the machine is black or grey, or why a message was backfill; else "".
    """

    machine_id: str
    colour: Colour
    previous_colour: Colour
    metrics: dict[str, MetricStatus]
    signals: tuple[Signal, ...] = ()
    backfill: bool = False
    reason: str = ""

    @property
    def changed(self) -> bool:
        """True when the colour changed."""
        return self.colour is not self.previous_colour


@dataclass(frozen=True, slots=True)
class MachineView:
    """A machine's state for display: colour, rule statuses, latest values and times."""

    machine_id: str
    colour: Colour
    metrics: dict[str, MetricStatus]
    values: dict[str, float]
    errors: dict[str, str]
    last_fresh_at: datetime | None
    latest_timestamp: datetime | None
    reason: str


def _describe(rule: MetricRule, value: float, level: Level) -> str:
    unit = f" {rule.unit}" if rule.unit else ""
    if level == Level.OK:
        return f"{rule.metric} {value:g}{unit} back within limits"
    threshold = rule.threshold(level)
    if isinstance(threshold, tuple):
        limit = f"outside {threshold[0]:g}-{threshold[1]:g}{unit}"
    elif threshold is not None:
        sign = ">" if rule.condition.value == "above" else "<"
        limit = f"{sign} {threshold:g}{unit}"
    else:  # pragma: no cover - a fired level always has a threshold
        limit = ""
    return f"{rule.metric} {value:g}{unit} {limit} ({level.name.lower()})"


def step_level(
    levels: LevelRule, state: _RuleState, value: float | None, at: datetime
) -> tuple[Level, Level]:
    """Advance one rule's state at time ``at``; ``value`` is a new reading, or ``None`` on a
    tick (the last reading still holds, if the caller checked it is fresh).

    Hysteresis: a fired level falls only when the value is at or inside that level's recovery
    threshold. Delay: a level rises only when its threshold has been breached, by every
    reading, for ``for_s`` seconds.

    Returns:
        ``(previous level, new level)``.
    """
    before = state.level
    if value is not None:
        raw = levels.raw_level(value)
        if raw is Level.OK and before is Level.OK and not state.since:
            return before, before  # within limits, nothing fired or pending: most readings
        for level in (Level.WARNING, Level.CRITICAL):
            if raw >= level:
                state.since.setdefault(level, at)
            else:
                state.since.pop(level, None)
        level_now = state.level
        while level_now > Level.OK and levels.recovered(value, level_now):
            level_now = Level(level_now - 1)
    else:
        level_now = state.level
    for level in (Level.CRITICAL, Level.WARNING):
        start = state.since.get(level)
        if (
            level > level_now
            and start is not None
            and (at - start).total_seconds() >= levels.rule.for_s
        ):
            level_now = level
            break
    state.level = level_now
    return before, level_now


class StatusEngine:
    """Machine status from a :class:`~rigwatch.fleet.rules.RuleSet`, per machine, in memory.

    Thread-safe (one lock); every method is O(rules) per machine and does no I/O.
    """

    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules
        self._levels = [rule.levels() for rule in rules.rules]
        self._machines: dict[str, _Machine] = {}
        self._lock = threading.Lock()

    @property
    def rules(self) -> RuleSet:
        """The rule set in use."""
        return self._rules

    def replace_rules(self, rules: RuleSet) -> None:
        """Use a new rule set; the state of rules whose id is kept carries over."""
        with self._lock:
            self._rules = rules
            self._levels = [rule.levels() for rule in rules.rules]
            ids = {r.rule_id for r in rules.rules}
            for m in self._machines.values():
                m.rules = {k: v for k, v in m.rules.items() if k in ids}

    def add_machine(self, machine_id: str, last_fresh_at: datetime | None = None) -> None:
        """Know a machine before it reports (grey until it does). ``last_fresh_at``: when it
        last sent fresh data, as stored (so a restarted server keeps its grey timer)."""
        with self._lock:
            m = self._machines.setdefault(machine_id, _Machine(machine_id))
            if last_fresh_at is not None and m.last_fresh_at is None:
                m.last_fresh_at = last_fresh_at
                m.colour = Colour.GREEN

    def machine_ids(self) -> list[str]:
        """Every machine known, sorted."""
        with self._lock:
            return sorted(self._machines)

    def view(self, machine_id: str, now: datetime) -> MachineView | None:
        """The machine's state at ``now`` for display (``None`` for an unknown machine)."""
        with self._lock:
            m = self._machines.get(machine_id)
            if m is None:
                return None
            metrics = self._statuses(m, now)
            colour, reason = self._colour(m, now, metrics)
            return MachineView(
                machine_id=machine_id,
                colour=colour,
                metrics=metrics,
                values=dict(m.values),
                errors={k: s.error for k, s in m.rules.items() if s.error},
                last_fresh_at=m.last_fresh_at,
                latest_timestamp=m.latest_timestamp,
                reason=reason,
            )

    # -- arrival -------------------------------------------------------------------------

    def on_message(
        self,
        msg: StatusMessage,
        received_at: datetime,
        values: dict[str, float] | None = None,
    ) -> Evaluation:
        """Apply one validated message that arrived at ``received_at`` (server clock, aware).

        ``values``: ``msg.values()`` when the caller has it already.

        Returns:
            The evaluation; when ``backfill`` is true the message is to be stored and nothing
            else happened (no status change, no signal).
        """
        with self._lock:
            m = self._machines.setdefault(msg.machine_id, _Machine(msg.machine_id))
            previous = m.colour
            m.last_contact_at = received_at
            reason = self._backfill_reason(m, msg, received_at)
            if m.latest_timestamp is None or msg.timestamp > m.latest_timestamp:
                m.latest_timestamp = msg.timestamp
            if reason:
                metrics = self._statuses(m, received_at)
                colour, _ = self._colour(m, received_at, metrics)
                return Evaluation(
                    msg.machine_id,
                    colour,
                    previous,
                    metrics,
                    backfill=True,
                    reason=reason,
                )
            signals: list[Signal] = []
            m.last_fresh_at = received_at
            if m.no_data_alerted:
                m.no_data_alerted = False
                signals.append(
                    Signal(msg.machine_id, NO_DATA, None, received_at, "data received again")
                )
            if values is None:
                values = msg.values()
            m.values = values
            self._access(m, msg, values, received_at, signals)
            if m.accessible:
                self._apply_values(m, msg, values, received_at, signals)
                if self._rules.machine.machine_alarms:
                    self._apply_alarms(m, msg, received_at, signals)
            metrics = self._statuses(m, received_at)
            colour, why = self._colour(m, received_at, metrics)
            m.colour = colour
            return Evaluation(
                msg.machine_id,
                colour,
                previous,
                metrics,
                tuple(signals),
                reason=why,
            )

    def _backfill_reason(self, m: _Machine, msg: StatusMessage, received_at: datetime) -> str:
        if msg.backfill:
            return "flagged as backfill by the agent"
        if m.latest_timestamp is not None and msg.timestamp <= m.latest_timestamp:
            return (
                f"timestamp {msg.timestamp.isoformat()} is not newer than the newest seen "
                f"({m.latest_timestamp.isoformat()})"
            )
        late = (received_at - msg.timestamp).total_seconds()
        if late > self._rules.machine.late_after_s:
            return f"arrived {late:.0f} s after its timestamp (late_after_s = " + (
                f"{self._rules.machine.late_after_s:g})"
            )
        return ""

    def _access(
        self,
        m: _Machine,
        msg: StatusMessage,
        values: dict[str, float],
        at: datetime,
        signals: list[Signal],
    ) -> None:
        reason = ""
        if msg.accessible is False:
            reason = msg.access_error or "the agent reports the machine not accessible"
        else:
            for rule in self._rules.not_accessible_when:
                value = values.get(rule.metric)
                if rule.enabled and value is not None and value == rule.equals:
                    reason = f"{rule.metric} == {rule.equals:g} (not-accessible rule)"
                    break
        severity = self._rules.machine.not_accessible_alert
        if reason:
            m.accessible = False
            m.access_reason = reason
            if severity != "off":
                signals.append(Signal(m.machine_id, NOT_ACCESSIBLE, Severity(severity), at, reason))
        elif not m.accessible:
            m.accessible = True
            m.access_reason = ""
            if severity != "off":
                signals.append(
                    Signal(m.machine_id, NOT_ACCESSIBLE, None, at, "machine accessible again")
                )

    def _apply_values(
        self,
        m: _Machine,
        msg: StatusMessage,
        values: dict[str, float],
        at: datetime,
        signals: list[Signal],
    ) -> None:
        errors = msg.sensor_errors
        for levels in self._levels:
            rule = levels.rule
            state = m.rules.get(levels.rule_id)
            if state is None:
                state = m.rules[levels.rule_id] = _RuleState()
            value = values.get(rule.metric)
            if value is None:
                if rule.metric in errors:
                    # a failed read: the value is unknown; a pending breach is broken
                    state.value = None
                    state.value_at = at
                    state.error = errors[rule.metric]
                    state.since.clear()
                continue
            state.value, state.value_at, state.error = value, at, None
            before, after = step_level(levels, state, value, at)
            if after != Level.OK:
                signals.append(
                    Signal(
                        m.machine_id,
                        levels.rule_id,
                        _SEVERITY[after],
                        at,
                        _describe(rule, value, after),
                        rule.metric,
                        value,
                    )
                )
            elif before != Level.OK:
                signals.append(
                    Signal(
                        m.machine_id,
                        levels.rule_id,
                        None,
                        at,
                        _describe(rule, value, after),
                        rule.metric,
                        value,
                    )
                )

    def _apply_alarms(
        self, m: _Machine, msg: StatusMessage, at: datetime, signals: list[Signal]
    ) -> None:
        now_active: dict[str, Level] = {}
        for alarm in msg.alarms:
            level = _ALARM_LEVEL.get(alarm.severity)
            if level is None:
                continue
            rule_id = f"alarm.{alarm.code}"
            now_active[rule_id] = max(level, now_active.get(rule_id, Level.OK))
            text = f"machine alarm {alarm.code}: {alarm.message}".rstrip(": ")
            signals.append(Signal(m.machine_id, rule_id, _SEVERITY[level], at, text))
        for rule_id in m.alarms.keys() - now_active.keys():
            signals.append(
                Signal(m.machine_id, rule_id, None, at, "machine alarm no longer active")
            )
        m.alarms = now_active

    # -- time ----------------------------------------------------------------------------

    def evaluate(self, now: datetime) -> list[Evaluation]:
        """Re-evaluate every machine at ``now`` (server clock, aware), without a message.

        Returns:
            One evaluation per machine whose colour changed or that produced signals (a
            delayed breach that fired, a machine that turned grey).
        """
        out: list[Evaluation] = []
        with self._lock:
            for m in self._machines.values():
                previous = m.colour
                signals: list[Signal] = []
                if self._fresh(m, now) and m.accessible:  # neither grey nor black
                    self._advance_pending(m, now, signals)
                metrics = self._statuses(m, now)
                colour, reason = self._colour(m, now, metrics)
                if (
                    colour is Colour.GREY
                    and m.last_fresh_at is not None
                    and not m.no_data_alerted
                    and self._rules.machine.no_data_alert != "off"
                ):
                    m.no_data_alerted = True
                    signals.append(
                        Signal(
                            m.machine_id,
                            NO_DATA,
                            Severity(self._rules.machine.no_data_alert),
                            now,
                            reason,
                        )
                    )
                m.colour = colour
                if colour is not previous or signals:
                    out.append(
                        Evaluation(
                            m.machine_id,
                            colour,
                            previous,
                            metrics,
                            tuple(signals),
                            reason=reason,
                        )
                    )
        return out

    def _advance_pending(self, m: _Machine, now: datetime, signals: list[Signal]) -> None:
        for levels in self._levels:
            rule = levels.rule
            state = m.rules.get(levels.rule_id)
            if state is None or not state.since or state.value is None:
                continue
            if self._stale(rule, state, now):
                continue
            before, after = step_level(levels, state, None, now)
            if after > before:
                signals.append(
                    Signal(
                        m.machine_id,
                        levels.rule_id,
                        _SEVERITY[after],
                        now,
                        _describe(rule, state.value, after),
                        rule.metric,
                        state.value,
                    )
                )

    # -- derived -------------------------------------------------------------------------

    def _stale(self, rule: MetricRule, state: _RuleState, now: datetime) -> bool:
        if state.value_at is None:
            return True
        limit = rule.stale_after_s or self._rules.machine.grey_after_s
        return (now - state.value_at).total_seconds() > limit

    def _statuses(self, m: _Machine, now: datetime) -> dict[str, MetricStatus]:
        fresh = self._fresh(m, now)
        out: dict[str, MetricStatus] = {}
        for levels in self._levels:
            rule_id = levels.rule_id
            state = m.rules.get(rule_id)
            if (
                not fresh
                or not m.accessible
                or state is None
                or state.value is None
                # a value read at ``now`` is fresh: no time arithmetic for those of a message
                or (state.value_at is not now and self._stale(levels.rule, state, now))
            ):
                out[rule_id] = MetricStatus.UNKNOWN
            else:
                out[rule_id] = LEVEL_STATUS[state.level]
        return out

    def _fresh(self, m: _Machine, now: datetime) -> bool:
        return (
            m.last_fresh_at is not None
            and (now - m.last_fresh_at).total_seconds() <= self._rules.machine.grey_after_s
        )

    def _colour(
        self, m: _Machine, now: datetime, metrics: dict[str, MetricStatus]
    ) -> tuple[Colour, str]:
        """The machine's colour and why; ``metrics`` is ``self._statuses(m, now)``."""
        if m.last_fresh_at is None:
            return Colour.GREY, "no data received yet"
        if not self._fresh(m, now):
            age = (now - m.last_fresh_at).total_seconds()
            return Colour.GREY, (
                f"no fresh data for {age:.0f} s (grey_after_s = "
                f"{self._rules.machine.grey_after_s:g})"
            )
        if not m.accessible:
            return Colour.BLACK, m.access_reason
        worst = max(m.alarms.values(), default=Level.OK)
        for status in metrics.values():
            if status is MetricStatus.CRITICAL:
                worst = Level.CRITICAL
            elif status is MetricStatus.WARNING:
                worst = max(worst, Level.WARNING)
        return LEVEL_COLOUR[worst], ""
