"""Alembic migrations of the pipeline's manifest, applied by
:func:`rigwatch.pipeline.manifest.database.migrate` when a manifest is opened."""
