"""The fleet's tables (SQLAlchemy 2 typed models). The schema itself is created by the Alembic
migrations in :mod:`rigwatch.fleet.migrations`; a test checks these models match them.

Times are int64 nanoseconds since the Unix epoch, UTC (``*_ns``), as everywhere in rigwatch.

=================  ==========================================================================
table              holds
=================  ==========================================================================
machines           the registry: id, name, type, site, latitude/longitude (deg), tags
api_keys           per-machine keys, SHA-256 of the key only; revoked keys keep their row
users, tokens      people (argon2 password hash, role) and their login tokens (SHA-256)
status_messages    one row per accepted message (seq, timestamps, backfill, alarms, errors)
                   and its metric values (the raw history)
metric_rollups     hourly min/max/sum/count per (machine, metric) of rolled-up raw data
latest_state       per machine: colour, values, system info, last seq (duplicate detection)
alerts             alerts (indexed columns plus the whole alert as JSON)
audit              every human action: who, what, on what, when
=================  ==========================================================================
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-increment id: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite."""


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class (typed for Core statements)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Base(DeclarativeBase):
    """Declarative base of the fleet's tables, with a naming convention for constraints."""

    metadata = MetaData(naming_convention=NAMING)


class Machine(Base):
    """A machine of the fleet."""

    __tablename__ = "machines"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(128), default="")
    site: Mapped[str] = mapped_column(String(256), default="")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_ns: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key of a machine (the key's SHA-256 only; the key itself is shown once)."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    machine_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("machines.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    revoked_ns: Mapped[int | None] = mapped_column(BigInteger)


class User(Base):
    """A person using the dashboard or the API."""

    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Token(Base):
    """A login token (its SHA-256), valid until ``expires_ns``."""

    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.username", ondelete="CASCADE"), index=True
    )
    created_ns: Mapped[int] = mapped_column(BigInteger)
    expires_ns: Mapped[int] = mapped_column(BigInteger)


class StatusMessageRow(Base):
    """One accepted status message with its metric values (the raw history).

    The values are one JSON object per message rather than one row per metric: a row per
    metric costs SQLite about eight times more per message (two B-trees per value), and every
    history query names a machine, so it reads that machine's messages by
    ``(machine_id, ts_ns)`` and takes one key of each.
    """

    __tablename__ = "status_messages"
    __table_args__ = (
        UniqueConstraint("machine_id", "seq"),
        Index(None, "machine_id", "ts_ns"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    machine_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    received_ns: Mapped[int] = mapped_column(BigInteger)
    backfill: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str | None] = mapped_column(String(32))
    accessible: Mapped[bool | None] = mapped_column(Boolean)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """sensor_errors, alarms, errors, access_error when the message had any."""
    metric_values: Mapped[dict[str, float]] = mapped_column(JSON, server_default=text("'{}'"))
    """metric name -> value of the metrics that were read (missing ones are absent)."""


class MetricRollup(Base):
    """Hourly aggregate of one metric of one machine (``hour_ns``: the hour's start)."""

    __tablename__ = "metric_rollups"
    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour_ns: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    min: Mapped[float] = mapped_column(Float)
    max: Mapped[float] = mapped_column(Float)
    sum: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(BigInteger)


class LatestState(Base):
    """The latest state of a machine."""

    __tablename__ = "latest_state"
    machine_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True
    )
    colour: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text, default="")
    ts_ns: Mapped[int | None] = mapped_column(BigInteger)
    received_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_fresh_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """system_info, status, accessible, alarms, errors, sensor_errors of the newest message."""


class AlertRow(Base):
    """An alert; at most one open (not cleared) per (machine, rule), enforced by a partial
    unique index."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open",
            "machine_id",
            "rule_id",
            unique=True,
            sqlite_where=text("state != 'cleared'"),
            postgresql_where=text("state != 'cleared'"),
        ),
        Index(None, "opened_ns"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    machine_id: Mapped[str] = mapped_column(String(64), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    opened_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditEntry(Base):
    """One human action."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
