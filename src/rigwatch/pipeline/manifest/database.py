"""Opening the manifest's database: engine, SQLite settings, migrations.

A manifest is named by a SQLAlchemy URL (``postgresql+psycopg://user@host/db``) or by a path to
a SQLite file (the default: zero set-up, one machine).

SQLite settings and why:

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers
  (status queries, backups run while workers claim); a commit appends to the WAL instead of
  rewriting pages.
- ``synchronous=NORMAL`` (default; ``FULL`` on request): in WAL mode NORMAL never corrupts the
  database and loses nothing when a *process* dies (SIGKILL, crash: the WAL is in the OS page
  cache); only an OS crash or power cut can roll back the last commits before a checkpoint,
  which the pipeline survives as at-least-once (a stage redone, never a state half-written).
  FULL adds an fsync of the WAL to every commit: several ms each on an SD card, and wear.
  Choose FULL where power cuts are common and stages have effects that must not repeat.
  (https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html)
- ``busy_timeout``: a writer waits for the lock instead of failing with "database is locked".
- every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock at its start, so
  two claimers never both read the same pending rows and then deadlock upgrading their locks;
  read-only work starts a deferred transaction (:data:`READ_ONLY`).
- ``foreign_keys=ON``: stage rows and results go with their artifact.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from rigwatch.errors import ManifestError
from rigwatch.pipeline.manifest.location import Mount, check_local

log = logging.getLogger(__name__)

Synchronous = Literal["NORMAL", "FULL"]

READ_ONLY = {"manifest_read_only": True}
"""Execution options of a connection that only reads (a deferred ``BEGIN`` on SQLite)."""

SCRIPT_LOCATION = "rigwatch.pipeline:migrations"

_MIGRATE_LOCK = threading.Lock()  # alembic's migration context is process-global


def manifest_url(target: str | Path) -> URL:
    """The URL of a manifest given as a URL or as a SQLite file path.

    Raises:
        ManifestError: a malformed URL, or an in-memory SQLite database (a manifest must be
            shared by the stage processes).
    """
    text_target = str(target)
    if "://" not in text_target:
        return URL.create("sqlite+pysqlite", database=str(Path(text_target)))
    try:
        url = make_url(text_target)
    except ArgumentError as exc:
        raise ManifestError(f"malformed manifest URL {text_target!r}: {exc}") from exc
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ManifestError("a manifest needs a SQLite file (stage processes share it)")
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_engine(
    url: URL,
    synchronous: Synchronous,
    busy_timeout_s: float,
    mounts_reader: Callable[[], list[Mount]] | None,
) -> Engine:
    assert url.database is not None
    path = check_local(Path(url.database), mounts_reader)
    if not path.parent.is_dir():
        raise ManifestError(f"manifest folder {path.parent} does not exist")
    engine = create_engine(
        url.set(database=str(path)),
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    busy_ms = round(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ManifestError(f"manifest {path}: journal_mode WAL refused (got {mode})")
            cur.execute(f"PRAGMA synchronous = {synchronous}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("manifest_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not schema.isidentifier():
            raise ManifestError(f"schema name {schema!r} must be an identifier")
        bootstrap = create_engine(url, poolclass=None)
        try:
            with bootstrap.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except DBAPIError as exc:  # a concurrent opener created it first
            log.debug("create schema %s: %s", schema, exc)
        finally:
            bootstrap.dispose()
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args=connect_args,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def create_manifest_engine(
    target: str | Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout_s: float = 30.0,
    schema: str | None = None,
    mounts_reader: Callable[[], list[Mount]] | None = None,
) -> Engine:
    """An engine for the manifest at ``target`` (URL or SQLite path), not yet migrated.

    Args:
        target: ``postgresql+psycopg://...``, ``sqlite:///path`` or a file path.
        synchronous: SQLite's ``synchronous`` pragma (see the module's notes).
        busy_timeout_s: how long a SQLite writer waits for the lock.
        schema: PostgreSQL schema to create (if missing) and use; ``None`` for the default.
        mounts_reader: the host's mounts (tests); default ``/proc/mounts``.

    Raises:
        ManifestError: unsupported database, malformed URL, missing folder.
        ManifestLocationError: a SQLite file on a network file system.
    """
    url = manifest_url(target)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if synchronous not in ("NORMAL", "FULL"):
            raise ManifestError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        return _sqlite_engine(url, synchronous, busy_timeout_s, mounts_reader)
    if backend == "postgresql":
        return _postgres_engine(url, schema)
    raise ManifestError(f"unsupported manifest database {backend!r}: use SQLite or PostgreSQL")


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest schema revision shipped with rigwatch."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (``None`` when never migrated)."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
        return rev


def migrate(engine: Engine) -> str:
    """Upgrade the database to the newest schema; nothing to do when it is current.

    Safe to call from several threads and processes at once: on SQLite the migration runs in
    a ``BEGIN IMMEDIATE`` transaction, on PostgreSQL under an advisory lock, and the version
    is read again inside it.

    Returns:
        The revision the database is at.

    Raises:
        ManifestError: the upgrade failed (the database keeps its previous schema).
    """
    head = head_revision()
    try:
        if current_revision(engine) == head:
            return head
        with _MIGRATE_LOCK, engine.connect() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise ManifestError(
            f"cannot migrate manifest {engine.url.render_as_string()}: {exc}"
        ) from exc
    log.info("manifest %s at schema %s", engine.url.render_as_string(), head)
    return head
