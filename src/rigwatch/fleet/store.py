"""The fleet's storage: machines, keys, users, tokens, audit, message history, latest state,
roll-ups. Synchronous SQLAlchemy Core on one engine (SQLite or PostgreSQL); thread-safe.

Every human change is written together with its audit entry, in one transaction. Ingest writes
whole batches (:meth:`FleetStore.write_batch`) in one transaction: the group commit of
:mod:`rigwatch.fleet.ingest`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from argon2 import PasswordHasher
from sqlalchemy import ColumnElement, Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from rigwatch.errors import FleetAuthError, FleetForbidden, FleetStoreError
from rigwatch.fleet.db import READ_ONLY
from rigwatch.fleet.models import (
    ApiKey,
    AuditEntry,
    LatestState,
    Machine,
    MetricRollup,
    StatusMessageRow,
    Token,
    User,
    table_of,
)
from rigwatch.fleet.rules import Colour
from rigwatch.fleet.schemas import (
    ROLE_RANK,
    AuditOut,
    FleetMap,
    KeyInfo,
    KeyIssued,
    LatestOut,
    MachineIn,
    MachineOut,
    MachineUpdate,
    MetricHistory,
    Role,
    UserOut,
)
from rigwatch.fleet.security import (
    KEY_PREFIX,
    TOKEN_PREFIX,
    hash_password,
    new_secret,
    secret_hash,
    verify_password,
)
from rigwatch.storage import SqliteWriterLock
from rigwatch.timefmt import from_ns

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
HOUR_NS = 3600 * NS_PER_S
_MESSAGE_FIELDS = (
    ("machine_id", "text"),
    ("seq", "bigint"),
    ("ts_ns", "bigint"),
    ("received_ns", "bigint"),
    ("backfill", "boolean"),
    ("status", "text"),
    ("accessible", "boolean"),
    ("extra", "json"),
    ("metric_values", "json"),
)
"""The columns a batch writes to ``status_messages``, with their PostgreSQL types."""

_LATEST_FIELDS = (
    ("machine_id", "text"),
    ("colour", "text"),
    ("reason", "text"),
    ("ts_ns", "bigint"),
    ("received_ns", "bigint"),
    ("last_fresh_ns", "bigint"),
    ("last_seq", "bigint"),
    ('"values"', "json"),
    ("metrics", "json"),
    ("info", "json"),
)
"""The columns of ``latest_state``, with their PostgreSQL types."""


def _names(fields: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(name for name, _ in fields)


_MESSAGE_COLUMNS = f"status_messages ({_names(_MESSAGE_FIELDS)})"

_LATEST_UPDATE = "ON CONFLICT (machine_id) DO UPDATE SET " + ", ".join(
    f"{name} = excluded.{name}" for name, _ in _LATEST_FIELDS[1:]
)

_LATEST_UPSERT_SQLITE = (
    f"INSERT INTO latest_state ({_names(_LATEST_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in _LATEST_FIELDS)}) {_LATEST_UPDATE}"
)
"""Insert or replace a machine's whole latest state (one row; run with ``executemany``)."""


def _latest_row(w: LatestWrite) -> tuple[Any, ...]:
    """One row of :data:`_LATEST_UPSERT_SQLITE`."""
    return (
        w.machine_id,
        w.colour,
        w.reason,
        w.ts_ns,
        w.received_ns,
        w.last_fresh_ns,
        w.last_seq,
        orjson.dumps(w.values).decode(),
        orjson.dumps(w.metrics).decode(),
        w.info_json,
    )


def _from_json_records(table: str, fields: tuple[tuple[str, str], ...], param: str) -> str:
    """``INSERT INTO table (...) SELECT ... FROM json_to_recordset(param)``: the rows as one
    JSON array of objects (a JSON null becomes SQL NULL)."""
    record = ", ".join(f"{name} {pg_type}" for name, pg_type in fields)
    return (
        f"INSERT INTO {table} ({_names(fields)}) SELECT {_names(fields)} "
        f"FROM json_to_recordset({param}::json) AS r({record})"
    )


_LATEST_UPSERT_PG = f"{_from_json_records('latest_state', _LATEST_FIELDS, '%s')} {_LATEST_UPDATE}"
"""Insert or replace the whole latest state of many machines in one statement: the rows travel
as one JSON parameter (serialised by orjson in one call), so one round trip and one statement
text, which psycopg prepares, whatever the number of machines. Machines are unique within a
commit, as ``ON CONFLICT DO UPDATE`` requires."""

_BATCH_PG = (
    f"WITH written AS ("
    f"{_from_json_records('status_messages', _MESSAGE_FIELDS, '%(messages)s')}) "
    f"{_from_json_records('latest_state', _LATEST_FIELDS, '%(latest)s')} {_LATEST_UPDATE}"
)
"""A whole group commit on PostgreSQL as one statement, run outside an explicit transaction:
the message rows and the machines' latest states, each as one JSON parameter. A statement is
atomic on its own (its data-modifying ``WITH`` part runs to completion with it or not at all),
so this is the same all-or-nothing commit in one round trip instead of five (``BEGIN``, the
``COPY`` and its end, the upsert, ``COMMIT``), each of which waits for the server and, in the
writer thread, for the GIL."""

MAX_POINTS = 100_000
"""Most points one history answer holds (``truncated`` set beyond)."""


MACHINES = table_of(Machine)
KEYS = table_of(ApiKey)
USERS = table_of(User)
TOKENS = table_of(Token)
MESSAGES = table_of(StatusMessageRow)
ROLLUPS = table_of(MetricRollup)
LATEST = table_of(LatestState)
AUDIT = table_of(AuditEntry)


def _opt(ns: int | None) -> datetime | None:
    return from_ns(ns) if ns is not None else None


@dataclass(slots=True)
class MessageWrite:
    """One accepted message as the batch writer stores it."""

    machine_id: str
    seq: int | None
    ts_ns: int
    received_ns: int
    backfill: bool
    status: str | None
    accessible: bool | None
    extra: dict[str, Any] | None
    values: dict[str, float]


@dataclass(slots=True)
class LatestWrite:
    """The new latest state of one machine after a batch. ``full`` False: only colour,
    reason, metrics and last_seq change (the batch held only backfill for it)."""

    machine_id: str
    colour: str
    reason: str
    metrics: Mapping[str, str]
    last_seq: int | None
    full: bool = False
    ts_ns: int | None = None
    received_ns: int | None = None
    last_fresh_ns: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    info_json: str | None = None
    """system_info, status, accessible, access_error, alarms, errors, sensor_errors of the
    newest message, as JSON text."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user and their role."""

    username: str
    role: Role

    def allows(self, role: Role) -> bool:
        """True when this principal's role is at least ``role``."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class FleetStore:
    """The fleet's database operations.

    Args:
        engine: a migrated engine (:func:`rigwatch.fleet.db.migrate`).
        clock_ns: the wall clock in ns (tests inject one).
        hasher: the argon2 hasher of new passwords (default: argon2-cffi's defaults).
    """

    def __init__(
        self,
        engine: Engine,
        clock_ns: Callable[[], int],
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.engine = engine
        self._hasher = hasher
        self._clock_ns = clock_ns
        self._dialect = engine.dialect.name
        self._writer: AbstractContextManager[object] = (
            SqliteWriterLock(engine.url.database) if self._dialect == "sqlite" else nullcontext()
        )
        """Held by group commits (:meth:`write_batch`): on SQLite the writers of several
        processes take turns on it (:class:`~rigwatch.storage.SqliteWriterLock`)."""

    # -- helpers -------------------------------------------------------------------------

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(**READ_ONLY)

    def _upsert(self, table: Table) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    def _audit(
        self, conn: Connection, actor: str, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        conn.execute(
            insert(AUDIT).values(
                at_ns=self._clock_ns(), actor=actor, action=action, target=target, detail=detail
            )
        )

    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        """Record a human action on its own (alert acknowledgements, logins)."""
        with self.engine.begin() as conn:
            self._audit(conn, actor, action, target, detail)

    # -- machines and keys ---------------------------------------------------------------

    @staticmethod
    def _machine(row: Any) -> MachineOut:
        return MachineOut(
            id=row.id,
            name=row.name,
            type=row.type,
            site=row.site,
            latitude=row.latitude,
            longitude=row.longitude,
            tags=dict(row.tags or {}),
            created_at=from_ns(row.created_ns),
        )

    def _issue_key(self, conn: Connection, machine_id: str) -> KeyIssued:
        key = new_secret(KEY_PREFIX)
        key_id = uuid.uuid4().hex
        conn.execute(
            insert(KEYS).values(
                id=key_id,
                machine_id=machine_id,
                key_hash=secret_hash(key),
                prefix=key[: len(KEY_PREFIX) + 4],
                created_ns=self._clock_ns(),
                revoked_ns=None,
            )
        )
        return KeyIssued(machine_id=machine_id, key_id=key_id, api_key=key)

    def add_machine(self, machine: MachineIn, actor: str) -> tuple[MachineOut, KeyIssued]:
        """Register a machine and issue its first key (returned once).

        Raises:
            FleetStoreError: a machine with this id exists.
        """
        now = self._clock_ns()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(MACHINES).values(
                        id=machine.id,
                        name=machine.name,
                        type=machine.type,
                        site=machine.site,
                        latitude=machine.latitude,
                        longitude=machine.longitude,
                        tags=machine.tags,
                        created_ns=now,
                    )
                )
                key = self._issue_key(conn, machine.id)
                self._audit(conn, actor, "machine.add", machine.id, {"key_id": key.key_id})
        except IntegrityError as exc:
            raise FleetStoreError(f"machine {machine.id!r} already exists") from exc
        return self.get_machine(machine.id), key

    def get_machine(self, machine_id: str) -> MachineOut:
        """The machine with this id.

        Raises:
            FleetStoreError: no such machine.
        """
        with self._read() as conn:
            row = conn.execute(select(MACHINES).where(MACHINES.c.id == machine_id)).first()
            conn.rollback()
        if row is None:
            raise FleetStoreError(f"no machine {machine_id!r}")
        return self._machine(row)

    def list_machines(self) -> list[MachineOut]:
        """Every machine, by id."""
        with self._read() as conn:
            rows = conn.execute(select(MACHINES).order_by(MACHINES.c.id)).all()
            conn.rollback()
        return [self._machine(r) for r in rows]

    def update_machine(self, machine_id: str, changes: MachineUpdate, actor: str) -> MachineOut:
        """Change a machine's fields.

        Raises:
            FleetStoreError: no such machine.
        """
        values = changes.model_dump(exclude_unset=True)
        with self.engine.begin() as conn:
            found = conn.execute(
                update(MACHINES).where(MACHINES.c.id == machine_id).values(**values)
                if values
                else select(MACHINES.c.id).where(MACHINES.c.id == machine_id)
            )
            if (found.rowcount if values else len(found.all())) == 0:
                raise FleetStoreError(f"no machine {machine_id!r}")
            self._audit(conn, actor, "machine.update", machine_id, {"fields": sorted(values)})
        return self.get_machine(machine_id)

    def delete_machine(self, machine_id: str, actor: str) -> None:
        """Delete a machine, its keys, latest state and history.

        Raises:
            FleetStoreError: no such machine.
        """
        with self.engine.begin() as conn:
            gone = conn.execute(delete(MACHINES).where(MACHINES.c.id == machine_id)).rowcount
            if not gone:
                raise FleetStoreError(f"no machine {machine_id!r}")
            for table in (KEYS, LATEST, MESSAGES, ROLLUPS):
                conn.execute(delete(table).where(table.c.machine_id == machine_id))
            self._audit(conn, actor, "machine.delete", machine_id, {})

    def rotate_key(self, machine_id: str, actor: str) -> KeyIssued:
        """Revoke every key of the machine and issue a new one (returned once).

        Raises:
            FleetStoreError: no such machine.
        """
        with self.engine.begin() as conn:
            self._require_machine(conn, machine_id)
            conn.execute(
                update(KEYS)
                .where(KEYS.c.machine_id == machine_id, KEYS.c.revoked_ns.is_(None))
                .values(revoked_ns=self._clock_ns())
            )
            key = self._issue_key(conn, machine_id)
            self._audit(conn, actor, "key.rotate", machine_id, {"key_id": key.key_id})
        return key

    def revoke_keys(self, machine_id: str, actor: str) -> int:
        """Revoke every key of the machine (it can send nothing until a new key).

        Returns:
            How many keys were revoked.

        Raises:
            FleetStoreError: no such machine.
        """
        with self.engine.begin() as conn:
            self._require_machine(conn, machine_id)
            n = conn.execute(
                update(KEYS)
                .where(KEYS.c.machine_id == machine_id, KEYS.c.revoked_ns.is_(None))
                .values(revoked_ns=self._clock_ns())
            ).rowcount
            self._audit(conn, actor, "key.revoke", machine_id, {"revoked": n})
        return int(n)

    def list_keys(self, machine_id: str) -> list[KeyInfo]:
        """The keys of a machine (never the keys themselves), newest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(KEYS)
                .where(KEYS.c.machine_id == machine_id)
                .order_by(KEYS.c.created_ns.desc())
            ).all()
            conn.rollback()
        return [
            KeyInfo(
                key_id=r.id,
                machine_id=r.machine_id,
                prefix=r.prefix,
                created_at=from_ns(r.created_ns),
                revoked_at=_opt(r.revoked_ns),
            )
            for r in rows
        ]

    @staticmethod
    def _require_machine(conn: Connection, machine_id: str) -> None:
        if conn.execute(select(MACHINES.c.id).where(MACHINES.c.id == machine_id)).first() is None:
            raise FleetStoreError(f"no machine {machine_id!r}")

    def machine_for_key(self, key: str) -> str | None:
        """The machine a valid (not revoked) key belongs to, or ``None``."""
        return self.machine_for_key_hash(secret_hash(key))

    def machine_for_key_hash(self, key_hash: str) -> str | None:
        """As :meth:`machine_for_key`, given the key's SHA-256 (hex)."""
        with self._read() as conn:
            found = conn.execute(
                select(KEYS.c.machine_id).where(
                    KEYS.c.key_hash == key_hash, KEYS.c.revoked_ns.is_(None)
                )
            ).scalar()
            conn.rollback()
        return found

    def machine_has_key(self, machine_id: str) -> bool:
        """True when the machine exists and has a key that is not revoked (MQTT ingest)."""
        with self._read() as conn:
            found = conn.execute(
                select(KEYS.c.id).where(
                    KEYS.c.machine_id == machine_id, KEYS.c.revoked_ns.is_(None)
                )
            ).first()
            conn.rollback()
        return found is not None

    # -- users and tokens ----------------------------------------------------------------

    def add_user(self, username: str, password: str, role: Role, actor: str) -> UserOut:
        """Create a user (argon2 password hash).

        Raises:
            FleetStoreError: the user exists.
        """
        now = self._clock_ns()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(USERS).values(
                        username=username,
                        role=role,
                        password_hash=hash_password(password, self._hasher),
                        created_ns=now,
                        disabled=False,
                    )
                )
                self._audit(conn, actor, "user.add", username, {"role": role})
        except IntegrityError as exc:
            raise FleetStoreError(f"user {username!r} already exists") from exc
        return UserOut(username=username, role=role, created_at=from_ns(now), disabled=False)

    def list_users(self) -> list[UserOut]:
        """Every user, by name."""
        with self._read() as conn:
            rows = conn.execute(select(USERS).order_by(USERS.c.username)).all()
            conn.rollback()
        return [
            UserOut(
                username=r.username,
                role=r.role,
                created_at=from_ns(r.created_ns),
                disabled=r.disabled,
            )
            for r in rows
        ]

    def login(self, username: str, password: str, ttl_s: float) -> tuple[str, Role, int]:
        """Check a password and issue a token.

        Returns:
            ``(token, role, expires_ns)``.

        Raises:
            FleetAuthError: unknown user, disabled, or wrong password (one message for all).
        """
        with self._read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
            conn.rollback()
        if row is None or row.disabled or not verify_password(row.password_hash, password):
            raise FleetAuthError("wrong user name or password")
        token = new_secret(TOKEN_PREFIX)
        now = self._clock_ns()
        expires = now + round(ttl_s * NS_PER_S)
        with self.engine.begin() as conn:
            conn.execute(delete(TOKENS).where(TOKENS.c.expires_ns < now))
            conn.execute(
                insert(TOKENS).values(
                    token_hash=secret_hash(token),
                    username=username,
                    created_ns=now,
                    expires_ns=expires,
                )
            )
            self._audit(conn, username, "user.login", username, {})
        return token, row.role, expires

    def principal_for_token(self, token: str) -> Principal | None:
        """The user of a valid token, or ``None`` (unknown, expired, or user disabled)."""
        with self._read() as conn:
            row = conn.execute(
                select(USERS.c.username, USERS.c.role, USERS.c.disabled, TOKENS.c.expires_ns)
                .join(TOKENS, TOKENS.c.username == USERS.c.username)
                .where(TOKENS.c.token_hash == secret_hash(token))
            ).first()
            conn.rollback()
        if row is None or row.disabled or row.expires_ns <= self._clock_ns():
            return None
        return Principal(row.username, row.role)

    def logout(self, token: str) -> None:
        """Invalidate a token."""
        with self.engine.begin() as conn:
            conn.execute(delete(TOKENS).where(TOKENS.c.token_hash == secret_hash(token)))

    # -- audit ---------------------------------------------------------------------------

    def list_audit(self, limit: int = 100, before_id: int | None = None) -> list[AuditOut]:
        """Audit entries, newest first."""
        stmt = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(AUDIT.c.id < before_id)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
            conn.rollback()
        return [
            AuditOut(
                id=r.id,
                at=from_ns(r.at_ns),
                actor=r.actor,
                action=r.action,
                target=r.target,
                detail=r.detail or {},
            )
            for r in rows
        ]

    # -- ingest --------------------------------------------------------------------------

    def write_batch(self, messages: Sequence[MessageWrite], latest: Sequence[LatestWrite]) -> None:
        """Store messages with their metric values and the machines' latest state in one
        transaction (all or nothing).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the transaction failed (nothing stored).
        """
        if self._dialect == "postgresql" and all(w.full for w in latest):
            self._write_batch_pg(messages, latest)
            return
        rows = [
            (
                m.machine_id,
                m.seq,
                m.ts_ns,
                m.received_ns,
                m.backfill,
                m.status,
                m.accessible,
                None if m.extra is None else orjson.dumps(m.extra).decode(),
                orjson.dumps(m.values).decode(),
            )
            for m in messages
        ]
        with self._writer, self.engine.begin() as conn:
            if rows:
                self._insert_rows(conn, _MESSAGE_COLUMNS, rows)
            self._write_latest(conn, latest)

    def _write_batch_pg(
        self, messages: Sequence[MessageWrite], latest: Sequence[LatestWrite]
    ) -> None:
        """:meth:`write_batch` on PostgreSQL as the single statement :data:`_BATCH_PG`."""
        records = orjson.dumps(
            [
                {
                    "machine_id": m.machine_id,
                    "seq": m.seq,
                    "ts_ns": m.ts_ns,
                    "received_ns": m.received_ns,
                    "backfill": m.backfill,
                    "status": m.status,
                    "accessible": m.accessible,
                    "extra": m.extra,
                    "metric_values": m.values,
                }
                for m in messages
            ]
        ).decode()
        params = {"messages": records, "latest": self._latest_records(latest)}
        dbapi_integrity = self.engine.dialect.loaded_dbapi.IntegrityError
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            try:
                with raw.cursor() as cur:
                    cur.execute(_BATCH_PG, params)
            except dbapi_integrity as exc:  # as SQLAlchemy would raise it
                raise IntegrityError("insert into status_messages", None, exc) from exc

    def _insert_rows(self, conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Bulk insert through the driver (SQLAlchemy's per-row parameter handling costs more
        than SQLite's insert itself at tens of thousands of rows per second)."""
        name, columns = table.split(" ", 1)
        raw = conn.connection.driver_connection
        assert raw is not None
        dbapi_integrity = self.engine.dialect.loaded_dbapi.IntegrityError
        try:
            if self._dialect == "postgresql":
                # COPY: several times faster than multi-row INSERT
                with raw.cursor() as cur, cur.copy(f"COPY {name} {columns} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" * (columns.count(",") + 1))
                cur = raw.cursor()
                try:
                    cur.executemany(f"INSERT INTO {name} {columns} VALUES ({marks})", rows)
                finally:
                    cur.close()
        except dbapi_integrity as exc:  # as SQLAlchemy would raise it
            raise IntegrityError(f"insert into {name}", None, exc) from exc

    def _write_latest(self, conn: Connection, latest: Sequence[LatestWrite]) -> None:
        full = [w for w in latest if w.full]
        partial = [w for w in latest if not w.full]
        if full:
            # through the driver, as the message rows: SQLAlchemy's upsert with JSON
            # parameters costs more than the statement itself (one row per machine and commit)
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            try:
                if self._dialect == "postgresql":
                    cur.execute(_LATEST_UPSERT_PG, (self._latest_records(full),))
                else:
                    cur.executemany(_LATEST_UPSERT_SQLITE, [_latest_row(w) for w in full])
            finally:
                cur.close()
        if partial:
            stmt = self._upsert(LATEST)
            stmt = stmt.on_conflict_do_update(
                index_elements=[LATEST.c.machine_id],
                set_={
                    "colour": stmt.excluded.colour,
                    "reason": stmt.excluded.reason,
                    "metrics": stmt.excluded.metrics,
                    "last_seq": func.coalesce(stmt.excluded.last_seq, LATEST.c.last_seq),
                },
            )
            conn.execute(
                stmt,
                [
                    {
                        "machine_id": w.machine_id,
                        "colour": w.colour,
                        "reason": w.reason,
                        "metrics": w.metrics,
                        "last_seq": w.last_seq,
                        "values": {},
                        "info": None,
                    }
                    for w in partial
                ],
            )

    @staticmethod
    def _latest_records(full: Sequence[LatestWrite]) -> str:
        """The rows of :data:`_LATEST_UPSERT_PG` as one JSON text (``info`` is JSON already:
        embedded as it is)."""
        return orjson.dumps(
            [
                {
                    "machine_id": w.machine_id,
                    "colour": w.colour,
                    "reason": w.reason,
                    "ts_ns": w.ts_ns,
                    "received_ns": w.received_ns,
                    "last_fresh_ns": w.last_fresh_ns,
                    "last_seq": w.last_seq,
                    "values": w.values,
                    "metrics": w.metrics,
                    "info": None if w.info_json is None else orjson.Fragment(w.info_json),
                }
                for w in full
            ]
        ).decode()

    def set_colours(self, changes: Iterable[tuple[str, str, str, dict[str, str]]]) -> None:
        """Store colour changes made by the timer: ``(machine_id, colour, reason, metrics)``."""
        rows = [
            {"b_m": machine_id, "b_colour": colour, "b_reason": reason, "b_metrics": metrics}
            for machine_id, colour, reason, metrics in changes
        ]
        if not rows:
            return
        stmt = (
            update(LATEST)
            .where(LATEST.c.machine_id == bindparam("b_m"))
            .values(
                colour=bindparam("b_colour"),
                reason=bindparam("b_reason"),
                metrics=bindparam("b_metrics"),
            )
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def existing_seqs(self, machine_id: str, seqs: Sequence[int]) -> set[int]:
        """Which of ``seqs`` are stored for the machine."""
        with self._read() as conn:
            rows = conn.execute(
                select(MESSAGES.c.seq).where(
                    MESSAGES.c.machine_id == machine_id, MESSAGES.c.seq.in_(list(seqs))
                )
            ).all()
            conn.rollback()
        return {int(r[0]) for r in rows}

    def last_seqs(self) -> dict[str, int]:
        """machine -> the newest seq stored (duplicate detection after a restart)."""
        with self._read() as conn:
            rows = conn.execute(
                select(LATEST.c.machine_id, LATEST.c.last_seq).where(LATEST.c.last_seq.is_not(None))
            ).all()
            conn.rollback()
        return {r.machine_id: int(r.last_seq) for r in rows}

    def last_fresh(self) -> dict[str, int | None]:
        """machine -> when it last sent fresh data (ns), for every machine (grey timers
        survive a restart)."""
        with self._read() as conn:
            rows = conn.execute(
                select(MACHINES.c.id, LATEST.c.last_fresh_ns).outerjoin(
                    LATEST, LATEST.c.machine_id == MACHINES.c.id
                )
            ).all()
            conn.rollback()
        return {r.id: r.last_fresh_ns for r in rows}

    # -- reads ---------------------------------------------------------------------------

    @staticmethod
    def _latest(row: Any) -> LatestOut:
        return LatestOut(
            machine_id=row.machine_id,
            colour=Colour(row.colour),
            reason=row.reason or "",
            timestamp=_opt(row.ts_ns),
            received_at=_opt(row.received_ns),
            last_fresh_at=_opt(row.last_fresh_ns),
            values=row.values or {},
            metrics=row.metrics or {},
            info=row.info,
        )

    def latest(self, machine_id: str) -> LatestOut:
        """A machine's latest state (grey with no data when it never reported).

        Raises:
            FleetStoreError: no such machine.
        """
        with self._read() as conn:
            self._require_machine(conn, machine_id)
            row = conn.execute(select(LATEST).where(LATEST.c.machine_id == machine_id)).first()
            conn.rollback()
        if row is None:
            return LatestOut(
                machine_id=machine_id,
                colour=Colour.GREY,
                reason="no data received yet",
                timestamp=None,
                received_at=None,
                last_fresh_at=None,
                values={},
                metrics={},
                info=None,
            )
        return self._latest(row)

    def all_latest(self) -> list[LatestOut]:
        """The latest state of every machine that reported, by id."""
        with self._read() as conn:
            rows = conn.execute(select(LATEST).order_by(LATEST.c.machine_id)).all()
            conn.rollback()
        return [self._latest(r) for r in rows]

    def fleet_map(self) -> FleetMap:
        """Every machine's position and colour, in columns."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    MACHINES.c.id,
                    MACHINES.c.name,
                    MACHINES.c.latitude,
                    MACHINES.c.longitude,
                    LATEST.c.colour,
                )
                .outerjoin(LATEST, LATEST.c.machine_id == MACHINES.c.id)
                .order_by(MACHINES.c.id)
            ).all()
            conn.rollback()
        return FleetMap(
            count=len(rows),
            id=[r[0] for r in rows],
            name=[r[1] for r in rows],
            latitude=[r[2] for r in rows],
            longitude=[r[3] for r in rows],
            colour=[Colour(r[4] or "grey") for r in rows],
        )

    def message_count(self, machine_id: str | None = None) -> int:
        """Stored messages (of one machine, or all)."""
        stmt = select(func.count()).select_from(MESSAGES)
        if machine_id is not None:
            stmt = stmt.where(MESSAGES.c.machine_id == machine_id)
        with self._read() as conn:
            n = conn.execute(stmt).scalar_one()
            conn.rollback()
        return int(n)

    def history(
        self,
        machine_id: str,
        metric: str,
        start_ns: int,
        end_ns: int,
        resolution: str = "auto",
        limit: int = MAX_POINTS,
    ) -> MetricHistory:
        """A metric's history in ``[start_ns, end_ns]``.

        ``raw``: the stored samples (those not yet rolled up). ``hour``: hourly aggregates of
        the roll-ups and of the raw samples together. ``auto``: ``hour`` when the span exceeds
        7 days, else ``raw``.
        """
        if resolution == "auto":
            resolution = "hour" if end_ns - start_ns > 7 * 24 * HOUR_NS else "raw"
        with self._read() as conn:
            if resolution == "raw":
                value = _metric(metric)
                rows = conn.execute(
                    select(MESSAGES.c.ts_ns, value, MESSAGES.c.backfill)
                    .where(
                        MESSAGES.c.machine_id == machine_id,
                        MESSAGES.c.ts_ns >= start_ns,
                        MESSAGES.c.ts_ns <= end_ns,
                        value.is_not(None),
                    )
                    .order_by(MESSAGES.c.ts_ns)
                    .limit(limit + 1)
                ).all()
                conn.rollback()
                truncated = len(rows) > limit
                rows = rows[:limit]
                return MetricHistory(
                    machine_id=machine_id,
                    metric=metric,
                    resolution="raw",
                    t=[from_ns(r[0]) for r in rows],
                    value=[float(r[1]) for r in rows],
                    backfill=[bool(r[2]) for r in rows],
                    truncated=truncated,
                )
            hours = self._hourly(conn, machine_id, metric, start_ns, end_ns)
            conn.rollback()
        keys = sorted(hours)[:limit]
        return MetricHistory(
            machine_id=machine_id,
            metric=metric,
            resolution="hour",
            t=[from_ns(h) for h in keys],
            value=[hours[h][2] / hours[h][3] for h in keys],
            min=[hours[h][0] for h in keys],
            max=[hours[h][1] for h in keys],
            count=[hours[h][3] for h in keys],
            truncated=len(hours) > limit,
        )

    def _hourly(
        self, conn: Connection, machine_id: str, metric: str, start_ns: int, end_ns: int
    ) -> dict[int, tuple[float, float, float, int]]:
        first_hour = start_ns // HOUR_NS * HOUR_NS
        out: dict[int, tuple[float, float, float, int]] = {}
        rolled = conn.execute(
            select(
                ROLLUPS.c.hour_ns, ROLLUPS.c.min, ROLLUPS.c.max, ROLLUPS.c.sum, ROLLUPS.c.count
            ).where(
                ROLLUPS.c.machine_id == machine_id,
                ROLLUPS.c.metric == metric,
                ROLLUPS.c.hour_ns >= first_hour,
                ROLLUPS.c.hour_ns <= end_ns,
            )
        ).all()
        hour = MESSAGES.c.ts_ns // HOUR_NS * HOUR_NS
        value = _metric(metric)
        raw = conn.execute(
            select(hour, func.min(value), func.max(value), func.sum(value), func.count(value))
            .where(
                MESSAGES.c.machine_id == machine_id,
                MESSAGES.c.ts_ns >= first_hour,
                MESSAGES.c.ts_ns <= end_ns,
                value.is_not(None),
            )
            .group_by(hour)
        ).all()
        for h, lo, hi, total, n in [*rolled, *raw]:
            key = int(h)
            if key in out:
                a = out[key]
                out[key] = (min(a[0], lo), max(a[1], hi), a[2] + total, a[3] + int(n))
            else:
                out[key] = (float(lo), float(hi), float(total), int(n))
        return out

    # -- retention -----------------------------------------------------------------------

    def rollup_and_prune(self, now_ns: int, raw_retention_s: float) -> int:
        """Roll the metric values of whole hours older than the retention up into hourly
        min, max, sum and count per (machine, metric) (merged with roll-ups already there,
        e.g. after late backfill), then delete those messages; one transaction.

        Returns:
            How many metric values were rolled up and deleted.
        """
        cutoff = (now_ns - round(raw_retention_s * NS_PER_S)) // HOUR_NS * HOUR_NS
        groups: dict[tuple[str, str, int], list[float]] = {}
        n = 0
        with self.engine.begin() as conn:
            old = conn.execute(
                select(MESSAGES.c.machine_id, MESSAGES.c.ts_ns, MESSAGES.c.metric_values)
                .where(MESSAGES.c.ts_ns < cutoff)
                .execution_options(yield_per=10_000)
            )
            for machine_id, ts_ns, values in old:
                hour_ns = ts_ns // HOUR_NS * HOUR_NS
                for metric, value in (values or {}).items():
                    v = float(value)
                    n += 1
                    g = groups.get((machine_id, metric, hour_ns))
                    if g is None:
                        groups[(machine_id, metric, hour_ns)] = [v, v, v, 1.0]
                    else:
                        g[0] = min(g[0], v)
                        g[1] = max(g[1], v)
                        g[2] += v
                        g[3] += 1.0
            if groups:
                self._merge_rollups(conn, groups)
            conn.execute(delete(MESSAGES).where(MESSAGES.c.ts_ns < cutoff))
        if n:
            log.info("rolled up and pruned %d metric values before %s", n, from_ns(cutoff))
        return n

    def _merge_rollups(
        self, conn: Connection, groups: dict[tuple[str, str, int], list[float]]
    ) -> None:
        least = func.least if self._dialect == "postgresql" else func.min
        greatest = func.greatest if self._dialect == "postgresql" else func.max
        stmt = self._upsert(ROLLUPS)
        stmt = stmt.on_conflict_do_update(
            index_elements=[ROLLUPS.c.machine_id, ROLLUPS.c.metric, ROLLUPS.c.hour_ns],
            set_={
                "min": least(ROLLUPS.c.min, stmt.excluded.min),
                "max": greatest(ROLLUPS.c.max, stmt.excluded.max),
                "sum": ROLLUPS.c.sum + stmt.excluded.sum,
                "count": ROLLUPS.c.count + stmt.excluded.count,
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "machine_id": machine_id,
                    "metric": metric,
                    "hour_ns": hour_ns,
                    "min": g[0],
                    "max": g[1],
                    "sum": g[2],
                    "count": int(g[3]),
                }
                for (machine_id, metric, hour_ns), g in groups.items()
            ],
        )


def _metric(metric: str) -> ColumnElement[float]:
    """One metric's value of a message row (NULL when the message did not carry it)."""
    return MESSAGES.c.metric_values[metric].as_float()


def require_role(principal: Principal | None, role: Role) -> Principal:
    """The principal when its role is at least ``role``.

    Raises:
        FleetAuthError: no principal, or a role too low.
    """
    if principal is None:
        raise FleetAuthError("a login token is required (Authorization: Bearer <token>)")
    if not principal.allows(role):
        raise FleetForbidden(
            f"user {principal.username!r} is {principal.role}; this needs {role} or higher"
        )
    return principal
