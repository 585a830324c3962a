"""Alerts in the fleet's database: :class:`SqlAlertStore` implements
:class:`~rigwatch.fleet.alerts.AlertStore`.

The open alerts are also kept in memory (loaded at start, updated on each save), so the status
engine's repeat signals cost no query. "At most one open alert per (machine, rule)" is enforced
by the database itself (a unique index on ``(machine_id, rule_id)`` over rows not cleared), so
it holds across several server workers: a second opener gets :class:`AlertError`, and the cache
entry of that pair is reloaded.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from rigwatch.errors import AlertError
from rigwatch.fleet.alerts import Alert, AlertQuery, AlertState
from rigwatch.fleet.db import READ_ONLY
from rigwatch.fleet.models import AlertRow, table_of
from rigwatch.timefmt import to_ns

_ALERTS = table_of(AlertRow)

log = logging.getLogger(__name__)


class SqlAlertStore:
    """Alerts in the ``alerts`` table; thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Alert] = {}
        with engine.connect().execution_options(**READ_ONLY) as conn:
            rows = conn.execute(
                select(AlertRow.data).where(AlertRow.state != AlertState.CLEARED.value)
            ).all()
            conn.rollback()
        for (data,) in rows:
            alert = Alert.model_validate(data)
            self._open[(alert.machine_id, alert.rule_id)] = alert

    def get(self, alert_id: str) -> Alert | None:
        with self._engine.connect().execution_options(**READ_ONLY) as conn:
            data = conn.execute(select(AlertRow.data).where(AlertRow.id == alert_id)).scalar()
            conn.rollback()
        return Alert.model_validate(data) if data is not None else None

    def find_open(self, machine_id: str, rule_id: str) -> Alert | None:
        with self._lock:
            alert = self._open.get((machine_id, rule_id))
            return alert.model_copy(deep=True) if alert is not None else None

    def save(self, alert: Alert) -> None:
        key = (alert.machine_id, alert.rule_id)
        values = {
            "machine_id": alert.machine_id,
            "rule_id": alert.rule_id,
            "state": alert.state.value,
            "severity": alert.severity.value,
            "opened_ns": to_ns(alert.opened_at),
            "last_seen_ns": to_ns(alert.last_seen_at),
            "data": alert.model_dump(mode="json"),
        }
        with self._lock:
            try:
                with self._engine.begin() as conn:
                    updated = conn.execute(
                        _ALERTS.update().where(_ALERTS.c.id == alert.id).values(**values)
                    ).rowcount
                    if not updated:
                        conn.execute(_ALERTS.insert().values(id=alert.id, **values))
            except IntegrityError as exc:
                self._reload(key)
                raise AlertError(
                    f"machine {alert.machine_id!r} already has an open alert for rule "
                    f"{alert.rule_id!r}"
                ) from exc
            if alert.is_open:
                self._open[key] = alert.model_copy(deep=True)
            elif key in self._open and self._open[key].id == alert.id:
                del self._open[key]

    def _reload(self, key: tuple[str, str]) -> None:
        with self._engine.connect().execution_options(**READ_ONLY) as conn:
            data = conn.execute(
                select(AlertRow.data).where(
                    AlertRow.machine_id == key[0],
                    AlertRow.rule_id == key[1],
                    AlertRow.state != AlertState.CLEARED.value,
                )
            ).scalar()
            conn.rollback()
        if data is None:
            self._open.pop(key, None)
        else:
            self._open[key] = Alert.model_validate(data)

    def query(self, query: AlertQuery) -> list[Alert]:
        stmt = select(AlertRow.data)
        if query.machine_id is not None:
            stmt = stmt.where(AlertRow.machine_id == query.machine_id)
        if query.rule_id is not None:
            stmt = stmt.where(AlertRow.rule_id == query.rule_id)
        if query.states is not None:
            stmt = stmt.where(AlertRow.state.in_([s.value for s in query.states]))
        if query.severity is not None:
            stmt = stmt.where(AlertRow.severity == query.severity.value)
        if query.since is not None:
            stmt = stmt.where(AlertRow.last_seen_ns >= to_ns(query.since))
        stmt = stmt.order_by(AlertRow.opened_ns.desc(), AlertRow.id).limit(query.limit)
        with self._engine.connect().execution_options(**READ_ONLY) as conn:
            rows = conn.execute(stmt).all()
            conn.rollback()
        return [Alert.model_validate(data) for (data,) in rows]
