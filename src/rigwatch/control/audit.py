"""The control audit log: every command (from REST, WebSocket, a scenario or an abort), who
gave it, when, what came of it, and the interlock or redline involved. Stored durably in
SQLite (SQLAlchemy 2 Core on an engine of :mod:`rigwatch.storage`: WAL journal,
``synchronous=FULL``, so a recorded row survives a power cut) or PostgreSQL, queryable,
exportable to CSV.

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
    insert,
    select,
)
from sqlalchemy.engine import URL, Engine

from rigwatch.counters import Counters
from rigwatch.errors import ControlError
from rigwatch.storage import READ_ONLY, database_url, postgres_engine, sqlite_engine
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

BUSY_TIMEOUT_S = 5.0
"""How long a SQLite writer waits for the database's lock before the row is given up (logged):
a command is never held longer than this by its audit row."""

WHAT = "audit log"


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
    """The audit log in one SQLite file, or a PostgreSQL database by URL. Thread-safe.

    The engine is :mod:`rigwatch.storage`'s: SQLite in WAL mode with ``synchronous=FULL``, a
    ``busy_timeout`` of :data:`BUSY_TIMEOUT_S`, writes in ``BEGIN IMMEDIATE`` transactions and
    reads in deferred ones; PostgreSQL with ``pool_pre_ping``. The table is created when
    missing.

    Args:
        path: the SQLite file (created with its folder), or a ``sqlite:///file`` /
            ``postgresql+psycopg://`` URL.

    Attributes:
        url: where the log is (its password hidden), for messages.

    Raises:
        ControlError: a malformed URL, an in-memory SQLite database (the log must outlive the
            process), a database other than SQLite or PostgreSQL, a missing folder of a
            ``sqlite:///`` URL, or the database cannot be opened or its table created.
    """

    def __init__(self, path: str | Path) -> None:
        if "://" not in str(path):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ControlError(f"cannot create the folder of the {WHAT} {path}: {exc}") from exc
        try:
            url = database_url(path, ControlError, WHAT)
        except ValueError as exc:  # a port that is not a number
            raise ControlError(f"malformed {WHAT} URL {str(path)!r}: {exc}") from exc
        self.url = url.render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._engine: Engine = _engine(url)
        try:
            metadata.create_all(self._engine)
        except Exception as exc:
            self._engine.dispose()
            raise ControlError(f"cannot open the {WHAT} {self.url}: {exc}") from exc

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
        source: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, oldest first, at most ``limit``
        (``since_ns`` inclusive, ``until_ns`` exclusive; times in ns since the Unix epoch, UTC).
        Read in a deferred (read-only) transaction: it never waits for a writer."""
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
            (t.source, source),
        ):
            if want is not None:
                stmt = stmt.where(col == want)
        stmt = stmt.limit(max(0, limit))
        with self._engine.connect().execution_options(**READ_ONLY) as conn:
            return [AuditEntry(**dict(r._mapping)) for r in conn.execute(stmt)]

    def to_csv(self, out: str | Path | IO[str] | None = None, **filters: Any) -> str:
        """Export the entries :meth:`query` returns for ``filters`` as CSV (header: the
        column names; lines end with a line feed only): the one CSV form of the log. Writes to
        ``out`` (a path or a text file) when given; returns the text."""
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


def _engine(url: URL) -> Engine:
    """The engine of the log at ``url`` (see :class:`AuditLog`)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ControlError(
                "the audit log needs a SQLite file or a PostgreSQL URL: an in-memory database "
                "loses every row when the station stops"
            )
        return sqlite_engine(
            url,
            synchronous="FULL",
            busy_timeout_s=BUSY_TIMEOUT_S,
            error=ControlError,
            what=WHAT,
        )
    if backend == "postgresql":
        return postgres_engine(url, schema=None, error=ControlError)
    raise ControlError(f"unsupported audit log database {backend!r}: use SQLite or PostgreSQL")


def record_refusal(
    audit: AuditLog | None,
    counters: Counters | None,
    *,
    who: str,
    source: str,
    target: str,
    reason: str,
    action: str = "command",
    value: Any = "",
    interlock: str = "",
    scenario: str = "",
    counter: str = "control.refused",
) -> int:
    """Record a refused command or request: one row with result ``refused`` in ``audit`` and
    one count of ``counter`` (its message: ``reason``) in ``counters``. The one way every part
    (the commander, the runner, the web API) records a refusal.

    Args:
        audit: the audit log; None records no row.
        counters: where the refusal is counted; None counts nothing (a caller that counted it
            already under another name).
        who, source, target, reason, action, value, interlock, scenario: the row's fields (see
            the module docstring); ``action`` is ``command`` for a request refused before it
            reached the commander or the runner.
        counter: ``control.refused``, ``control.no_authority``, ``control.transition_refused``...

    Returns:
        The row's id; -1 without an audit log or when the row could not be stored (logged, as
        :meth:`AuditLog.record`).
    """
    if counters is not None:
        counters.inc(counter, message=reason)
    if audit is None:
        return -1
    return audit.record(
        who=who,
        source=source,
        action=action,
        target=target,
        value=value,
        result="refused",
        reason=reason,
        interlock=interlock,
        scenario=scenario,
    )


def describe_changes(changes: Mapping[str, Any]) -> str:
    """``"GOX1, GOX2"``: the actuators of a command, for the ``target`` column."""
    return ", ".join(changes)
