"""The SQL databases of rigwatch's parts (the pipeline's manifest, the fleet's store): one way
to open them, SQLite in WAL mode on local disk or PostgreSQL by URL, and one way to apply the
Alembic migrations a part ships in its package.

SQLite settings and why:

- ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers; a
  commit appends to the WAL instead of rewriting pages (refused file systems are reported).
- ``synchronous=NORMAL`` by default (``FULL`` on request): in WAL mode NORMAL never corrupts
  the database and loses nothing when a *process* dies; only an OS crash or power cut can roll
  back the last commits before a checkpoint. FULL adds an fsync of the WAL to every commit
  (https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html).
- ``busy_timeout``: a writer waits for the lock instead of failing with "database is locked".
- writing transactions start with ``BEGIN IMMEDIATE``: they take the write lock first, so two
  writers never deadlock upgrading read locks; read-only work runs on connections with
  :data:`READ_ONLY` (a deferred ``BEGIN``).
- ``foreign_keys=ON``.

Every function takes the part's exception class (``ManifestError``, ``FleetStoreError``) and
the name of what it opens, so messages say which database was wrong and why.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
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

from rigwatch.errors import RigwatchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Synchronous = Literal["NORMAL", "FULL"]

READ_ONLY = {"rigwatch_read_only": True}
"""Execution options of a connection that only reads (a deferred ``BEGIN`` on SQLite)."""

_MIGRATE_LOCK = threading.Lock()  # alembic's migration context is process-global


def database_url(target: str | Path, error: type[RigwatchError], what: str) -> URL:
    """The URL of a database given as a URL or as a SQLite file path.

    Raises:
        error: a malformed URL.
    """
    text_target = str(target)
    if "://" not in text_target:
        return URL.create("sqlite+pysqlite", database=str(Path(text_target)))
    try:
        return make_url(text_target)
    except ArgumentError as exc:
        raise error(f"malformed {what} URL {text_target!r}: {exc}") from exc


class SqliteWriterLock:
    """A lock that orders the writers of one SQLite database file across processes: an
    exclusive ``flock`` on the file ``<database>.writer-lock`` beside it (created when missing;
    a thread lock orders the threads of one process).

    A writer that waits in SQLite's own busy handler polls with sleeps of 1, 2, 5, 10 ms and
    more (https://sqlite.org/c3ref/busy_timeout.html), so the write lock can lie idle for
    milliseconds after the other process released it. A blocking ``flock`` wakes its waiter
    the moment it is released: with two fleet server processes on one SQLite file (1 message
    per request from 256 connections) about 5 % more messages/s in ``bench/fleet_ingest.py``.
    Taking it is optional for correctness: SQLite's locking still guards every write.

    On systems without ``fcntl`` (Windows) and for in-memory databases it orders threads only.

    Args:
        database: the SQLite database file.
    """

    def __init__(self, database: str | Path | None) -> None:
        self._threads = threading.Lock()
        self._path = (
            None
            if fcntl is None or database in (None, "", ":memory:")
            else Path(f"{database}.writer-lock")
        )
        self._fd: int | None = None
        self._closer: weakref.finalize[Any, Any] | None = None  # the file, when unreferenced

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for it unless ``blocking`` is false.

        Returns:
            True when taken.

        Raises:
            OSError: the lock file cannot be created or locked.
        """
        if not self._threads.acquire(blocking):
            return False
        if self._path is None or fcntl is None:
            return True
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o644)
                self._closer = weakref.finalize(self, os.close, self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            self._threads.release()
            return False
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        """Let the next writer in."""
        try:
            if self._fd is not None and fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def __enter__(self) -> SqliteWriterLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()

    def close(self) -> None:
        """Close the lock file (the lock must not be held)."""
        with self._threads:
            if self._closer is not None:
                self._closer()
                self._closer = None
                self._fd = None


def _journal_mode_wal(cur: Any, timeout_s: float) -> str:
    """``PRAGMA journal_mode = WAL`` on a sqlite3 cursor; the mode the database is in after it.

    Switching a new database to WAL takes an exclusive lock, and when several connections open
    it at once (the pipeline's stages starting together), SQLite may answer "database is
    locked" at once rather than through the busy handler (it does so where waiting could
    deadlock: https://sqlite.org/c3ref/busy_handler.html). The switch is tried again with
    growing pauses until ``timeout_s``; once one connection has switched, the database stays in
    WAL and the others' pragma needs no such lock.

    Raises:
        sqlite3.OperationalError: still locked after ``timeout_s``, or any other error.
    """
    deadline = time.monotonic() + timeout_s
    pause_s = 0.001
    while True:
        try:
            return str(cur.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)  # a backoff between attempts, not a synchronisation
        pause_s = min(pause_s * 2, 0.05)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def sqlite_engine(
    url: URL,
    *,
    synchronous: Synchronous,
    busy_timeout_s: float,
    error: type[RigwatchError],
    what: str,
) -> Engine:
    """An engine for the SQLite database of ``url`` with the settings of the module docstring.

    Raises:
        error: ``synchronous`` is not NORMAL or FULL, the database's folder does not exist;
            at the first connection: WAL refused by the file system.
    """
    if synchronous not in ("NORMAL", "FULL"):
        raise error(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    if url.database not in (None, "", ":memory:"):
        folder = Path(url.database or ".").parent
        if not folder.is_dir():
            raise error(f"{what} folder {folder} does not exist")
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
        pool_size=8,
        max_overflow=16,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )
    busy_ms = round(busy_timeout_s * 1000)
    in_memory = url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # BEGIN is issued below
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            mode = _journal_mode_wal(cur, busy_timeout_s)
            if str(mode).lower() != "wal" and not in_memory:
                raise error(f"{what} {url.database}: journal_mode WAL refused (got {mode})")
            cur.execute(f"PRAGMA synchronous = {synchronous}")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("rigwatch_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def postgres_engine(
    url: URL, *, schema: str | None, error: type[RigwatchError], **engine_args: Any
) -> Engine:
    """An engine for PostgreSQL at ``url``; ``schema`` is created if missing and searched.

    Args:
        engine_args: more :func:`sqlalchemy.create_engine` arguments (pool sizes).

    Raises:
        error: ``schema`` is not an identifier.
    """
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not schema.isidentifier():
            raise error(f"schema name {schema!r} must be an identifier")
        bootstrap = create_engine(url)
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
        **engine_args,
    )


class Migrations:
    """The Alembic migrations a part ships in its package, applied from code (no
    ``alembic.ini``).

    Args:
        script_location: ``"package:folder"`` of the migrations (``env.py``, ``versions/``).
        version_table: the table holding the revision (``None``: Alembic's default).
        error: the part's exception class.
        what: what the database is, for messages and logs.
    """

    def __init__(
        self,
        script_location: str,
        version_table: str | None,
        error: type[RigwatchError],
        what: str,
    ) -> None:
        self.script_location = script_location
        self.version_table = version_table
        self.error = error
        self.what = what

    def config(self, connection: Connection | None = None) -> Config:
        """The Alembic config (with ``connection`` for ``env.py`` to use)."""
        cfg = Config()
        cfg.set_main_option("script_location", self.script_location)
        if connection is not None:
            cfg.attributes["connection"] = connection
        return cfg

    def head_revision(self) -> str:
        """The newest schema revision shipped with rigwatch."""
        head = ScriptDirectory.from_config(self.config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self, engine: Engine) -> str | None:
        """The database's schema revision (``None`` when never migrated)."""
        opts = {} if self.version_table is None else {"version_table": self.version_table}
        with engine.connect().execution_options(**READ_ONLY) as conn:
            rev = MigrationContext.configure(conn, opts=opts).get_current_revision()
            conn.rollback()
            return rev

    def migrate(self, engine: Engine) -> str:
        """Upgrade the database to the newest schema; nothing to do when it is current.

        Safe from several threads and processes at once: on SQLite the migration runs in a
        ``BEGIN IMMEDIATE`` transaction, on PostgreSQL under the migrations' advisory lock,
        and the version is read again inside it.

        Returns:
            The revision the database is at.

        Raises:
            error: the upgrade failed (the database keeps its previous schema).
        """
        head = self.head_revision()
        where = engine.url.render_as_string()
        try:
            if self.current_revision(engine) == head:
                return head
            with _MIGRATE_LOCK, engine.connect() as conn:
                command.upgrade(self.config(conn), "head")
        except SQLAlchemyError as exc:
            raise self.error(f"cannot migrate {self.what} {where}: {exc}") from exc
        log.info("%s %s at schema %s", self.what, where, head)
        return head
