"""The control audit log: every command (from REST, WebSocket, a scenario or an abort), who
gave it, when, what came of it, and the interlock or redline involved. Stored durably in
SQLite (SQLAlchemy 2 Core; WAL journal, ``synchronous=FULL``: a recorded row survives a power
cut), queryable, exportable to CSV.

A row (table ``control_audit``):

- ``id`` (int, increasing), ``time_ns`` (int, ns since the Unix epoch, UTC), ``time``
  (ISO 8601 UTC text);
- ``who`` (an operator, ``scenario:<name>``, ``redline:<name>``, ``station``), ``source``
  (``api``, ``ws``, ``scenario``, ``abort``, ``runner``, ...);
- ``action`` (``set``, ``firmware``, ``arm``, ``start``, ``abort``...), ``target`` (actuators or
  scenario), ``value`` (JSON text);
- ``result`` (``ok``, ``refused``, ``failed``, ``accepted``...), ``reason`` (text);
- ``interlock``, ``redline``, ``scenario`` (names, or empty).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Engine

from rigwatch.errors import ControlError
from rigwatch.timefmt import iso_utc

log = logging.getLogger(__name__)

metadata = MetaData()
audit_table = Table(
    "control_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time_ns", BigInteger, nullable=False, index=True),
    Column("time", String(40), nullable=False),
    Column("who", String(120), nullable=False),
    Column("source", String(40), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", String(400), nullable=False, default=""),
    Column("value", Text, nullable=False, default=""),
    Column("result", String(20), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("interlock", String(64), nullable=False, default=""),
    Column("redline", String(64), nullable=False, default=""),
    Column("scenario", String(64), nullable=False, default=""),
)

COLUMNS = tuple(c.name for c in audit_table.columns)
"""Column names, in table (and CSV) order."""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log (see the module docstring for the fields)."""

    id: int
    time_ns: int
    time: str
    who: str
    source: str
    action: str
    target: str
    value: str
    result: str
    reason: str
    interlock: str
    redline: str
    scenario: str


class AuditLog:
    """The audit log in one SQLite file (or any SQLAlchemy URL). Thread-safe.

    Args:
        path: the SQLite file (created with its folder), or a ``sqlite://`` /
            ``postgresql+psycopg://`` URL.

    Raises:
        ControlError: the database cannot be opened or created.
    """

    def __init__(self, path: str | Path) -> None:
        text = str(path)
        if "://" in text:
            url = text
        else:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{p}"
        self.url = url
        self._lock = threading.Lock()
        try:
            self._engine: Engine = create_engine(url, future=True)
            if url.startswith("sqlite"):
                event.listen(self._engine, "connect", _sqlite_pragmas)
            metadata.create_all(self._engine)
        except Exception as exc:
            raise ControlError(f"cannot open the audit log {url}: {exc}") from exc

    def record(
        self,
        *,
        who: str,
        source: str,
        action: str,
        result: str,
        target: str = "",
        value: Any = "",
        reason: str = "",
        interlock: str = "",
        redline: str = "",
        scenario: str = "",
        time_ns: int | None = None,
    ) -> int:
        """Store one entry durably and return its id.

        ``value`` is stored as JSON text (a string as it is). Never raises for a database
        failure: it is logged (a control action is not undone because its audit row failed),
        and -1 is returned.
        """
        t = time.time_ns() if time_ns is None else time_ns
        row = {
            "time_ns": t,
            "time": iso_utc(t),
            "who": who[:120],
            "source": source[:40],
            "action": action[:40],
            "target": target[:400],
            "value": value if isinstance(value, str) else json.dumps(value, default=str),
            "result": result[:20],
            "reason": reason,
            "interlock": interlock,
            "redline": redline,
            "scenario": scenario,
        }
        try:
            with self._lock, self._engine.begin() as conn:
                res = conn.execute(insert(audit_table).values(**row))
                key = res.inserted_primary_key
                return int(key[0]) if key else -1
        except Exception:
            log.exception("audit log %s: cannot record %s", self.url, row)
            return -1

    def query(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        who: str | None = None,
        result: str | None = None,
        action: str | None = None,
        scenario: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, oldest first, at most ``limit``
        (``since_ns`` inclusive, ``until_ns`` exclusive)."""
        stmt = select(audit_table).order_by(audit_table.c.id)
        t = audit_table.c
        if since_ns is not None:
            stmt = stmt.where(t.time_ns >= since_ns)
        if until_ns is not None:
            stmt = stmt.where(t.time_ns < until_ns)
        for col, want in (
            (t.who, who),
            (t.result, result),
            (t.action, action),
            (t.scenario, scenario),
        ):
            if want is not None:
                stmt = stmt.where(col == want)
        stmt = stmt.limit(max(0, limit))
        with self._engine.connect() as conn:
            return [AuditEntry(**dict(r._mapping)) for r in conn.execute(stmt)]

    def to_csv(self, out: str | Path | IO[str] | None = None, **filters: Any) -> str:
        """Export the entries :meth:`query` returns for ``filters`` as CSV (header: the
        column names). Writes to ``out`` (a path or a text file) when given; returns the text."""
        filters.setdefault("limit", 1_000_000)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for e in self.query(**filters):
            writer.writerow([getattr(e, c) for c in COLUMNS])
        text = buf.getvalue()
        if isinstance(out, str | Path):
            Path(out).write_text(text, encoding="utf-8")
        elif out is not None:
            out.write(text)
        return text

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def describe_changes(changes: Mapping[str, Any]) -> str:
    """``"GOX1, GOX2"``: the actuators of a command, for the ``target`` column."""
    return ", ".join(changes)
