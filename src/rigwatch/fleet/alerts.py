"""Alerts: at most one open alert per (machine, rule), acknowledged and cleared by people.

Lifecycle (explicit table, :data:`TRANSITIONS`)::

    active --ack--> acknowledged --clear--> cleared
      |                  |  ^escalation (back to active: a worse severity needs a new ack)
      +------clear-------+

An alert *opens* on the first :class:`~rigwatch.fleet.signals.Signal` with a severity for a
(machine, rule) that has no open alert (open = active or acknowledged). Further signals of the
same or a lower severity count as *repeats* (``count``, ``last_seen_at``, ``severity`` follows
the signal); a higher severity *escalates* it. A recovery signal clears it (``cleared_by`` =
``"rules"``); a person may clear it too, with a comment. A notification is due only when an
alert opens or escalates, never per repeat, and each is recorded on the alert
(``notified``), so it is sent once even if the same change is applied again.

Storage is behind :class:`AlertStore`; :class:`InMemoryAlertStore` is the implementation for
one process and for tests.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from rigwatch.errors import AlertError
from rigwatch.fleet.signals import Severity, Signal

logger = logging.getLogger(__name__)

RULES_ACTOR = "rules"
"""``cleared_by`` of an alert cleared by the rules (its condition recovered)."""


class AlertState(StrEnum):
    """Where an alert is in its lifecycle."""

    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    AlertState.ACTIVE: frozenset({AlertState.ACKNOWLEDGED, AlertState.CLEARED}),
    AlertState.ACKNOWLEDGED: frozenset({AlertState.ACTIVE, AlertState.CLEARED}),
    AlertState.CLEARED: frozenset(),
}
"""Allowed state changes; acknowledged -> active happens only on escalation."""


class Alert(BaseModel):
    """One alert of one (machine, rule).

    Attributes:
        id: unique id (32 hex digits).
        machine_id, rule_id: what it is about; metric and value: the last reading, if any.
        severity: the severity now; peak_severity: the worst it reached.
        state: active, acknowledged or cleared.
        message: the last signal's sentence.
        opened_at, last_seen_at: first and last signal of the condition (aware UTC).
        count: signals seen while open (1 at opening).
        escalated_at: the last escalation, if any.
        acknowledged_by/_at/_comment, cleared_by/_at/_comment: who, when and why; cleared_by
            is ``"rules"`` when the condition recovered.
        notified: keys of the notifications already made (``open:warning``,
            ``escalate:critical``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: str
    machine_id: str
    rule_id: str
    metric: str | None = None
    value: float | None = None
    severity: Severity
    peak_severity: Severity
    state: AlertState = AlertState.ACTIVE
    message: str = ""
    opened_at: datetime
    last_seen_at: datetime
    count: int = 1
    escalated_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_comment: str | None = None
    cleared_by: str | None = None
    cleared_at: datetime | None = None
    cleared_comment: str | None = None
    notified: list[str] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """True while active or acknowledged."""
        return self.state is not AlertState.CLEARED


class AlertQuery(BaseModel):
    """A filter for :meth:`AlertStore.query`; ``None`` fields do not filter."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str | None = None
    rule_id: str | None = None
    states: frozenset[AlertState] | None = None
    severity: Severity | None = None
    since: datetime | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


class AlertStore(Protocol):
    """Where alerts live. An implementation guarantees at most one open alert per
    (machine, rule): saving a second one raises :class:`~rigwatch.errors.AlertError`."""

    def get(self, alert_id: str) -> Alert | None:
        """The alert with this id, or ``None``."""
        ...

    def find_open(self, machine_id: str, rule_id: str) -> Alert | None:
        """The open (active or acknowledged) alert of (machine, rule), or ``None``."""
        ...

    def save(self, alert: Alert) -> None:
        """Insert or replace the alert with ``alert.id``.

        Raises:
            AlertError: another open alert exists for the same (machine, rule).
        """
        ...

    def query(self, query: AlertQuery) -> list[Alert]:
        """Alerts matching ``query``, newest ``opened_at`` first, at most ``query.limit``."""
        ...


class InMemoryAlertStore:
    """:class:`AlertStore` in a dict; thread-safe; returns copies, so callers cannot change
    stored alerts behind its back."""

    def __init__(self) -> None:
        self._alerts: dict[str, Alert] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, alert_id: str) -> Alert | None:
        with self._lock:
            alert = self._alerts.get(alert_id)
            return alert.model_copy(deep=True) if alert is not None else None

    def find_open(self, machine_id: str, rule_id: str) -> Alert | None:
        with self._lock:
            alert_id = self._open.get((machine_id, rule_id))
            if alert_id is None:
                return None
            return self._alerts[alert_id].model_copy(deep=True)

    def save(self, alert: Alert) -> None:
        key = (alert.machine_id, alert.rule_id)
        with self._lock:
            holder = self._open.get(key)
            if alert.is_open:
                if holder is not None and holder != alert.id:
                    raise AlertError(
                        f"machine {alert.machine_id!r} already has open alert {holder} for rule "
                        f"{alert.rule_id!r}"
                    )
                self._open[key] = alert.id
            elif holder == alert.id:
                del self._open[key]
            self._alerts[alert.id] = alert.model_copy(deep=True)

    def query(self, query: AlertQuery) -> list[Alert]:
        with self._lock:
            found = [
                a
                for a in self._alerts.values()
                if (query.machine_id is None or a.machine_id == query.machine_id)
                and (query.rule_id is None or a.rule_id == query.rule_id)
                and (query.states is None or a.state in query.states)
                and (query.severity is None or a.severity is query.severity)
                and (query.since is None or a.last_seen_at >= query.since)
            ]
            found.sort(key=lambda a: a.opened_at, reverse=True)
            return [a.model_copy(deep=True) for a in found[: query.limit]]


class ChangeKind(StrEnum):
    """What happened to an alert."""

    OPENED = "opened"
    ESCALATED = "escalated"
    REPEATED = "repeated"
    DEESCALATED = "deescalated"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One change applied to an alert; ``notify`` is true for the changes that are to be sent
    (openings and escalations), once each."""

    kind: ChangeKind
    alert: Alert
    notify: bool = False

    @property
    def dedup_key(self) -> str:
        """``<alert id>:<kind>:<severity>``: the same key is never notified twice."""
        return f"{self.alert.id}:{self.kind.value}:{self.alert.severity.value}"


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(tz=UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class AlertManager:
    """Turns signals into alert changes, and applies people's acknowledgements and clears.

    Args:
        store: where alerts live.
        new_id: makes alert ids (default: random UUID hex).
    """

    def __init__(self, store: AlertStore, new_id: Callable[[], str] | None = None) -> None:
        self._store = store
        self._new_id = new_id or (lambda: uuid.uuid4().hex)
        self._lock = threading.Lock()

    @property
    def store(self) -> AlertStore:
        """The alert store."""
        return self._store

    def apply(self, signals: Iterable[Signal]) -> list[AlertChange]:
        """Apply signals in order.

        Returns:
            The changes made, in order; ``notify`` is set on openings and escalations not
            notified before (the key is recorded on the alert before returning).
        """
        changes: list[AlertChange] = []
        with self._lock:
            for signal in signals:
                change = self._apply_one(signal)
                if change is not None:
                    changes.append(change)
        return changes

    def _apply_one(self, s: Signal) -> AlertChange | None:
        current = self._store.find_open(s.machine_id, s.rule_id)
        if s.severity is None:
            if current is None:
                return None
            current.state = AlertState.CLEARED
            current.cleared_by = RULES_ACTOR
            current.cleared_at = s.at
            current.cleared_comment = s.message
            if s.value is not None:
                current.value = s.value
            self._store.save(current)
            return AlertChange(ChangeKind.CLEARED, current)
        if current is None:
            alert = Alert(
                id=self._new_id(),
                machine_id=s.machine_id,
                rule_id=s.rule_id,
                metric=s.metric,
                value=s.value,
                severity=s.severity,
                peak_severity=s.severity,
                message=s.message,
                opened_at=s.at,
                last_seen_at=s.at,
            )
            return self._notifying(ChangeKind.OPENED, alert)
        current.count += 1
        current.last_seen_at = max(current.last_seen_at, s.at)
        current.message = s.message
        current.value = s.value if s.value is not None else current.value
        previous = current.severity
        current.severity = s.severity
        if s.severity.rank > previous.rank:
            current.escalated_at = s.at
            if s.severity.rank > current.peak_severity.rank:
                current.peak_severity = s.severity
            if current.state is AlertState.ACKNOWLEDGED:
                current.state = AlertState.ACTIVE  # a worse condition needs a new look
            return self._notifying(ChangeKind.ESCALATED, current)
        kind = ChangeKind.DEESCALATED if s.severity.rank < previous.rank else ChangeKind.REPEATED
        self._store.save(current)
        return AlertChange(kind, current)

    def _notifying(self, kind: ChangeKind, alert: Alert) -> AlertChange:
        key = f"{'open' if kind is ChangeKind.OPENED else 'escalate'}:{alert.severity.value}"
        due = key not in alert.notified
        if due:
            alert.notified.append(key)
        self._store.save(alert)
        return AlertChange(kind, alert, notify=due)

    def acknowledge(
        self, alert_id: str, who: str, comment: str = "", at: datetime | None = None
    ) -> AlertChange:
        """Acknowledge an active alert.

        Raises:
            AlertError: unknown id, empty ``who``, or the alert is not active (already
                acknowledged, or cleared).
        """
        return self._human(alert_id, AlertState.ACKNOWLEDGED, who, comment, at)

    def clear(
        self, alert_id: str, who: str, comment: str = "", at: datetime | None = None
    ) -> AlertChange:
        """Clear an open alert by hand (the condition may fire again later).

        Raises:
            AlertError: unknown id, empty ``who``, or the alert is already cleared.
        """
        return self._human(alert_id, AlertState.CLEARED, who, comment, at)

    def _human(
        self, alert_id: str, target: AlertState, who: str, comment: str, at: datetime | None
    ) -> AlertChange:
        if not who.strip():
            raise AlertError(f"{target.value} needs the name of who does it")
        if len(comment) > 2000:
            raise AlertError(f"comment too long ({len(comment)} characters, at most 2000)")
        with self._lock:
            alert = self._store.get(alert_id)
            if alert is None:
                raise AlertError(f"no alert with id {alert_id!r}")
            if target not in TRANSITIONS[alert.state]:
                allowed = ", ".join(sorted(s.value for s in TRANSITIONS[alert.state])) or "none"
                raise AlertError(
                    f"alert {alert_id} is {alert.state.value}; it cannot become "
                    f"{target.value} (allowed: {allowed})"
                )
            when = _utc(at)
            alert.state = target
            if target is AlertState.ACKNOWLEDGED:
                alert.acknowledged_by, alert.acknowledged_at = who, when
                alert.acknowledged_comment = comment
                kind = ChangeKind.ACKNOWLEDGED
            else:
                alert.cleared_by, alert.cleared_at, alert.cleared_comment = who, when, comment
                kind = ChangeKind.CLEARED
            self._store.save(alert)
            logger.info("alert %s %s by %s: %s", alert_id, target.value, who, comment)
            return AlertChange(kind, alert)
