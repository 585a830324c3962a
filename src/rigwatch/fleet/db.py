"""Opening the fleet's database: engine (SQLite in WAL mode, or PostgreSQL by URL) and the
Alembic migrations shipped in the package, applied at start.

SQLite settings: ``journal_mode=WAL`` (readers never block the writer), ``synchronous=NORMAL``
by default (a process crash loses no commit; FULL also survives a power cut,
https://sqlite.org/pragma.html#pragma_synchronous), ``busy_timeout`` (a writer waits for the
lock instead of failing), ``foreign_keys=ON``, and writing transactions start with
``BEGIN IMMEDIATE`` (they take the write lock first, so two writers never deadlock upgrading a
read lock); read-only work runs on connections with :data:`READ_ONLY`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from rigwatch.errors import FleetStoreError

log = logging.getLogger(__name__)

SCRIPT_LOCATION = "rigwatch.fleet:migrations"
VERSION_TABLE = "fleet_alembic_version"
READ_ONLY = {"fleet_read_only": True}
"""Execution options of a connection that only reads (a deferred ``BEGIN`` on SQLite)."""


def database_url(target: str | Path) -> URL:
    """The URL of a database given as a URL or a SQLite file path.

    Raises:
        FleetStoreError: a malformed URL.
    """
    text_target = str(target)
    if "://" not in text_target:
        return URL.create("sqlite+pysqlite", database=str(Path(text_target)))
    try:
        return make_url(text_target)
    except ArgumentError as exc:
        raise FleetStoreError(f"malformed database URL {text_target!r}: {exc}") from exc


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_engine(url: URL, synchronous: str, busy_timeout_s: float) -> Engine:
    if url.database not in (None, "", ":memory:"):
        folder = Path(url.database or ".").parent
        if not folder.is_dir():
            raise FleetStoreError(f"database folder {folder} does not exist")
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    busy_ms = round(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is issued below
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute(f"PRAGMA synchronous = {synchronous}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("fleet_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not schema.isidentifier():
            raise FleetStoreError(f"schema name {schema!r} must be an identifier")
        bootstrap = create_engine(url)
        try:
            with bootstrap.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        except DBAPIError as exc:  # a concurrent starter created it first
            log.debug("create schema %s: %s", schema, exc)
        finally:
            bootstrap.dispose()
        connect_args["options"] = f"-csearch_path={schema}"
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=8,
        max_overflow=16,
        connect_args=connect_args,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def create_fleet_engine(
    target: str | Path,
    *,
    synchronous: str = "NORMAL",
    schema: str | None = None,
    busy_timeout_s: float = 30.0,
) -> Engine:
    """An engine for the fleet database at ``target`` (URL or SQLite path), not yet migrated.

    Raises:
        FleetStoreError: unsupported database, malformed URL, missing folder.
    """
    url = database_url(target)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if synchronous not in ("NORMAL", "FULL"):
            raise FleetStoreError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        return _sqlite_engine(url, synchronous, busy_timeout_s)
    if backend == "postgresql":
        return _postgres_engine(url, schema)
    raise FleetStoreError(f"unsupported fleet database {backend!r}: use SQLite or PostgreSQL")


def _alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest fleet schema revision shipped with rigwatch."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The fleet schema revision of the database (``None`` when never migrated)."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        rev = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        conn.rollback()
        return rev


def migrate(engine: Engine) -> str:
    """Upgrade the database to the newest fleet schema (nothing to do when current).

    Safe from several processes at once (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
    PostgreSQL).

    Returns:
        The revision the database is at.

    Raises:
        FleetStoreError: the upgrade failed (the database keeps its previous schema).
    """
    head = head_revision()
    try:
        if current_revision(engine) == head:
            return head
        with engine.connect() as conn:
            command.upgrade(_alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise FleetStoreError(
            f"cannot migrate fleet database {engine.url.render_as_string()}: {exc}"
        ) from exc
    log.info("fleet database %s at schema %s", engine.url.render_as_string(), head)
    return head
