"""Alembic environment of the fleet: runs on the connection handed over in
``config.attributes["connection"]`` (see :func:`rigwatch.fleet.db.migrate`), inside one
transaction, so an interrupted upgrade leaves the previous schema."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from rigwatch.fleet.models import Base

VERSION_TABLE = "fleet_alembic_version"
MIGRATION_LOCK_KEY = 0x666C6565  # PostgreSQL advisory lock: one migrating process at a time


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        transactional_ddl=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("fleet migrations run through rigwatch.fleet.db.migrate")
_run(connection)
