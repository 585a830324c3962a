"""The manifest's tables (SQLAlchemy 2 declarative models).

Three tables:

- ``artifacts``: one row per file the pipeline handles (an image, a recorded segment, a
  temperature reading...): what it is and where it is.
- ``stage_status``: one row per (artifact, stage). Per-stage rows rather than one status column
  per stage because a claimer then asks one narrow question, "rows of my stage that are due",
  answered by a *partial* index that holds only the rows still to do (``pending`` rows by
  ``next_attempt_ns``, ``leased`` rows by ``lease_expires_ns``). Done and failed rows leave
  these indexes, so a claim costs the same with 10 000 or 1 000 000 artifacts in the table,
  and a new stage is a new value, not a schema change. Attempts, the last error and the lease
  are per stage too: processing may have failed twice while the upload never did.
- ``results``: one row per completed or finally failed (artifact, stage): the stage's result
  as JSON, queryable; its primary key makes a second completion of the same stage impossible.

Times are int64 nanoseconds since the Unix epoch, UTC (the project's convention), which
compare and index the same way on SQLite and PostgreSQL.

The migrations in ``rigwatch/pipeline/migrations/versions`` create the same schema; a test
compares them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT autoincrement is not a rowid alias on SQLite; INTEGER there, BIGINT elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the manifest's tables."""

    metadata = MetaData(naming_convention=NAMING)


class Artifact(Base):
    """A file handled by the pipeline.

    Attributes:
        id: the artifact's identity for its whole life (never an index into a list).
        kind: what the file holds: ``image``, ``segment``, ``temperature``...
        path: where the file is now (the compressor changes it); unique.
        checksum: SHA-256 of the file's bytes, lowercase hex (64 chars), or ``None`` when
            not computed yet.
        size_bytes: the file's size in bytes, or ``None``.
        captured_ns: when the data were taken (camera trigger, segment start), ns since epoch.
        created_ns: when the artifact entered the manifest.
        updated_ns: last change of this row's own fields (path, checksum, size, meta).
        meta: what the collector knew (camera index, temperature readings...), JSON object.
    """

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text, unique=True)
    checksum: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    captured_ns: Mapped[int | None] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index(None, "kind", "created_ns"),)


class StageStatus(Base):
    """The state of one artifact in one stage.

    Attributes:
        status: a :class:`~rigwatch.pipeline.manifest.flow.Status` value.
        attempts: how many times the stage was claimed (a release gives one back); it is also
            the fencing token of the current lease.
        next_attempt_ns: a ``pending`` row is not claimed before this time (backoff).
        lease_owner: the worker holding a ``leased`` row.
        lease_expires_ns: when a ``leased`` row may be reclaimed by another worker.
        last_error: the last failure's message (kept when the row ends ``failed``).
        updated_ns: last change of this row.
    """

    __tablename__ = "stage_status"

    artifact_id: Mapped[int] = mapped_column(
        Id, ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # "what is ready for my stage": only rows still to do are in these two indexes
        Index(
            "ix_stage_status_pending",
            "stage",
            "next_attempt_ns",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_stage_status_leased",
            "stage",
            "lease_expires_ns",
            sqlite_where=text("status = 'leased'"),
            postgresql_where=text("status = 'leased'"),
        ),
        # releasing every lease of a worker on shutdown
        Index(
            "ix_stage_status_owner",
            "lease_owner",
            sqlite_where=text("status = 'leased'"),
            postgresql_where=text("status = 'leased'"),
        ),
        # counts per stage and status (TUI, status command)
        Index("ix_stage_status_stage_status", "stage", "status"),
    )


class Result(Base):
    """What a stage produced for an artifact (or why it finally failed).

    Attributes:
        seq: order of recording, for exports and for catching the JSONL log up.
        ok: ``True`` for a completion, ``False`` for a final failure.
        payload: the stage's result, JSON object.
        error: the failure's message when ``ok`` is false.
        owner: the worker that recorded it; attempt: its lease's attempt number.
        recorded_ns: when it was recorded.
    """

    __tablename__ = "results"

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    artifact_id: Mapped[int] = mapped_column(Id, ForeignKey("artifacts.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    recorded_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "artifact_id", "stage", unique=True),)
