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
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import URL, Engine

from rigwatch.errors import ManifestError
from rigwatch.pipeline.manifest.location import Mount, check_local
from rigwatch.storage import READ_ONLY, Migrations, Synchronous, postgres_engine, sqlite_engine
from rigwatch.storage import database_url as _database_url

log = logging.getLogger(__name__)

__all__ = [
    "READ_ONLY",
    "Synchronous",
    "create_manifest_engine",
    "current_revision",
    "head_revision",
    "manifest_url",
    "migrate",
]

SCRIPT_LOCATION = "rigwatch.pipeline:migrations"
MIGRATIONS = Migrations(SCRIPT_LOCATION, None, ManifestError, "manifest")
"""The manifest's Alembic migrations (Alembic's default version table)."""


def manifest_url(target: str | Path) -> URL:
    """The URL of a manifest given as a URL or as a SQLite file path.

    Raises:
        ManifestError: a malformed URL, or an in-memory SQLite database (a manifest must be
            shared by the stage processes).
    """
    url = _database_url(target, ManifestError, "manifest")
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ManifestError("a manifest needs a SQLite file (stage processes share it)")
    return url


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
        assert url.database is not None
        path = check_local(Path(url.database), mounts_reader)
        return sqlite_engine(
            url.set(database=str(path)),
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            error=ManifestError,
            what="manifest",
        )
    if backend == "postgresql":
        return postgres_engine(url, schema=schema, error=ManifestError)
    raise ManifestError(f"unsupported manifest database {backend!r}: use SQLite or PostgreSQL")


def head_revision() -> str:
    """The newest schema revision shipped with rigwatch."""
    return MIGRATIONS.head_revision()


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (``None`` when never migrated)."""
    return MIGRATIONS.current_revision(engine)


def migrate(engine: Engine) -> str:
    """Upgrade the database to the newest schema; nothing to do when it is current (safe from
    several threads and processes at once, see :meth:`rigwatch.storage.Migrations.migrate`).

    Returns:
        The revision the database is at.

    Raises:
        ManifestError: the upgrade failed (the database keeps its previous schema).
    """
    return MIGRATIONS.migrate(engine)
