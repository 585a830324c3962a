"""The fleet's core loop in one object: messages and timer ticks in, colours and alert
changes out.

:class:`Monitor` joins the :class:`~rigwatch.fleet.status.StatusEngine` and the
:class:`~rigwatch.fleet.alerts.AlertManager`. Ingest calls :meth:`Monitor.on_message` for each
validated message and stores it whatever the outcome (``Outcome.store`` is always true: live
and backfill are kept); a timer calls :meth:`Monitor.tick` (every few seconds) so silence turns
machines grey. Notifications are returned, not sent: the caller hands ``Outcome.changes`` to a
:class:`~rigwatch.fleet.notify.Dispatcher` off its event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rigwatch.fleet.alerts import AlertChange, AlertManager
from rigwatch.fleet.status import Evaluation, StatusEngine
from rigwatch.wire import StatusMessage


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message or tick did to one machine.

    Attributes:
        evaluation: colour, statuses and signals.
        changes: the alert changes made (``notify`` set on those to send).
        store: the message is to be stored (always true for a message, false for a tick).
    """

    evaluation: Evaluation
    changes: tuple[AlertChange, ...]
    store: bool

    @property
    def backfill(self) -> bool:
        """True when the message was backfill (stored, no status or alert change)."""
        return self.evaluation.backfill


class Monitor:
    """Status engine plus alert manager."""

    def __init__(self, engine: StatusEngine, alerts: AlertManager) -> None:
        self.engine = engine
        self.alerts = alerts

    def on_message(
        self,
        msg: StatusMessage,
        received_at: datetime,
        values: dict[str, float] | None = None,
    ) -> Outcome:
        """Evaluate one validated message (``values``: ``msg.values()`` when the caller has
        it); backfill changes no alert."""
        evaluation = self.engine.on_message(msg, received_at, values)
        changes = () if evaluation.backfill else tuple(self.alerts.apply(evaluation.signals))
        return Outcome(evaluation, changes, store=True)

    def tick(self, now: datetime) -> list[Outcome]:
        """Evaluate every machine at ``now``; one outcome per machine that changed."""
        return [
            Outcome(e, tuple(self.alerts.apply(e.signals)), store=False)
            for e in self.engine.evaluate(now)
        ]
