"""The fleet's Alembic migrations: they build exactly what the models describe, and moving
a message's metric values into its row (f0002) carries every value of an f0001 database
over, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from rigwatch.fleet.db import MIGRATIONS, create_fleet_engine, current_revision, migrate
from rigwatch.fleet.models import Base
from rigwatch.fleet.store import FleetStore
from support.fleet_server import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = create_fleet_engine(tmp_path / "fleet.sqlite3")
        yield eng
        eng.dispose()
        return
    with pg_schema() as (url, schema):
        eng = create_fleet_engine(url, schema=schema)
        yield eng
        eng.dispose()


def _upgrade_to(engine: Engine, revision: str) -> None:
    with engine.connect() as conn:
        command.upgrade(MIGRATIONS.config(conn), revision)


def test_fleet_migrations_build_what_the_models_describe(engine: Engine) -> None:
    migrate(engine)
    assert "metric_samples" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": MIGRATIONS.version_table})
        diff = compare_metadata(context, Base.metadata)
    assert [d for d in diff if not _is_version_table(d)] == []


def _is_version_table(change: object) -> bool:
    return (
        isinstance(change, tuple)
        and change[0] == "remove_table"
        and change[1].name == MIGRATIONS.version_table
    )


def test_fleet_f0002_moves_every_metric_value_into_its_message(engine: Engine) -> None:
    _upgrade_to(engine, "f0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO machines (id, name, type, site, tags, created_ns) "
                "VALUES ('m1', 'M1', '', '', '[]', 0)"
            )
        )
        for seq, ts in ((1, 1_000), (2, 2_000), (3, 3_000)):
            conn.execute(
                text(
                    "INSERT INTO status_messages (machine_id, seq, ts_ns, received_ns, backfill) "
                    "VALUES ('m1', :seq, :ts, :ts, false)"
                ),
                {"seq": seq, "ts": ts},
            )
        samples = [
            ("temperature", 1_000, 41.5),
            ("pressure", 1_000, 2.25),
            ("temperature", 2_000, 42.0),
        ]  # the message at 3 000 ns had no readable metric
        for metric, ts, value in samples:
            conn.execute(
                text(
                    "INSERT INTO metric_samples (machine_id, metric, ts_ns, value, backfill) "
                    "VALUES ('m1', :metric, :ts, :value, false)"
                ),
                {"metric": metric, "ts": ts, "value": value},
            )
    migrate(engine)
    assert current_revision(engine) == "f0002"
    store = FleetStore(engine, lambda: 10_000)
    temperature = store.history("m1", "temperature", 0, 10_000, "raw")
    assert temperature.value == [41.5, 42.0]
    assert [t.timestamp() for t in temperature.t] == [1e-6, 2e-6]
    assert store.history("m1", "pressure", 0, 10_000, "raw").value == [2.25]
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM status_messages")).scalar_one()
    assert n == 3  # messages without values stay


def test_fleet_f0002_downgrade_restores_one_row_per_value(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO machines (id, name, type, site, tags, created_ns) "
                "VALUES ('m1', 'M1', '', '', '[]', 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO status_messages "
                "(machine_id, seq, ts_ns, received_ns, backfill, metric_values) "
                "VALUES ('m1', 1, 1000, 1000, true, :v)"
            ),
            {"v": '{"temperature": 41.5, "pressure": 2.25}'},
        )
    with engine.connect() as conn:
        command.downgrade(MIGRATIONS.config(conn), "f0001")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT metric, ts_ns, value, backfill FROM metric_samples ORDER BY metric")
        ).all()
    assert [tuple(r) for r in rows] == [
        ("pressure", 1000, 2.25, True),
        ("temperature", 1000, 41.5, True),
    ]
    assert "metric_values" not in {
        c["name"] for c in inspect(engine).get_columns("status_messages")
    }
