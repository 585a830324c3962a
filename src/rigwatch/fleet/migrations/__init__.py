"""Alembic migrations of the fleet's database, applied by :func:`rigwatch.fleet.db.migrate`
when the server starts (version table ``fleet_alembic_version``, apart from the pipeline's)."""
