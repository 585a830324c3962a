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

from sqlalchemy import URL, Engine

from rigwatch.errors import FleetStoreError
from rigwatch.storage import READ_ONLY, Migrations, postgres_engine, sqlite_engine
from rigwatch.storage import database_url as _database_url

log = logging.getLogger(__name__)

__all__ = [
    "READ_ONLY",
    "create_fleet_engine",
    "current_revision",
    "database_url",
    "head_revision",
    "migrate",
]

SCRIPT_LOCATION = "rigwatch.fleet:migrations"
VERSION_TABLE = "fleet_alembic_version"
MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE, FleetStoreError, "fleet database")
"""The fleet's Alembic migrations, in their own version table."""


def database_url(target: str | Path) -> URL:
    """The URL of a database given as a URL or a SQLite file path.

    Raises:
        FleetStoreError: a malformed URL.
    """
    return _database_url(target, FleetStoreError, "database")


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
        return sqlite_engine(
            url,
            synchronous="FULL" if synchronous == "FULL" else "NORMAL",
            busy_timeout_s=busy_timeout_s,
            error=FleetStoreError,
            what="database",
        )
    if backend == "postgresql":
        return postgres_engine(
            url, schema=schema, error=FleetStoreError, pool_size=8, max_overflow=16
        )
    raise FleetStoreError(f"unsupported fleet database {backend!r}: use SQLite or PostgreSQL")


def head_revision() -> str:
    """The newest fleet schema revision shipped with rigwatch."""
    return MIGRATIONS.head_revision()


def current_revision(engine: Engine) -> str | None:
    """The fleet schema revision of the database (``None`` when never migrated)."""
    return MIGRATIONS.current_revision(engine)


def migrate(engine: Engine) -> str:
    """Upgrade the database to the newest fleet schema (nothing to do when current); safe from
    several processes at once (see :meth:`rigwatch.storage.Migrations.migrate`).

    Returns:
        The revision the database is at.

    Raises:
        FleetStoreError: the upgrade failed (the database keeps its previous schema).
    """
    return MIGRATIONS.migrate(engine)
