"""The fleet's storage on SQLite: migrations, machines and keys, users and tokens, batches,
roll-ups, the SQL alert store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rigwatch.errors import AlertError, FleetAuthError, FleetForbidden, FleetStoreError
from rigwatch.fleet.alert_store import SqlAlertStore
from rigwatch.fleet.alerts import Alert, AlertManager, AlertQuery, AlertState
from rigwatch.fleet.db import create_fleet_engine, current_revision, head_revision, migrate
from rigwatch.fleet.models import Base
from rigwatch.fleet.schemas import MachineIn, MachineUpdate
from rigwatch.fleet.security import password_hasher, secret_hash
from rigwatch.fleet.signals import Severity, Signal
from rigwatch.fleet.store import (
    HOUR_NS,
    FleetStore,
    LatestWrite,
    MessageWrite,
    Principal,
    require_role,
)
from rigwatch.timefmt import to_ns

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.ns = to_ns(T0)

    def __call__(self) -> int:
        return self.ns


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[FleetStore]:
    engine = create_fleet_engine(tmp_path / "fleet.sqlite3")
    migrate(engine)
    yield FleetStore(engine, clock, password_hasher(1, 8192))
    engine.dispose()


def test_fleet_store_migrations_match_the_models(tmp_path: Path) -> None:
    engine = create_fleet_engine(tmp_path / "m.sqlite3")
    assert current_revision(engine) is None
    assert migrate(engine) == head_revision()
    assert migrate(engine) == head_revision()  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": "fleet_alembic_version"}),
            Base.metadata,
        )
    assert diff == []
    tables = set(inspect(engine).get_table_names())
    assert "fleet_alembic_version" in tables
    assert "alembic_version" not in tables  # the pipeline's version table stays its own
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_fleet_store_keys_hashed_rotated_and_revoked(store: FleetStore) -> None:
    _, key = store.add_machine(MachineIn(id="m1", name="M1"), "admin")
    assert key.api_key.startswith("rwk_")
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash, prefix FROM api_keys").all()
    assert stored[0][0] == secret_hash(key.api_key)
    assert key.api_key not in repr(stored)
    assert store.machine_for_key(key.api_key) == "m1"
    assert store.machine_for_key("rwk_guess") is None
    new = store.rotate_key("m1", "admin")
    assert store.machine_for_key(key.api_key) is None
    assert store.machine_for_key(new.api_key) == "m1"
    assert store.revoke_keys("m1", "admin") == 1
    assert store.machine_for_key(new.api_key) is None
    assert not store.machine_has_key("m1")
    assert [k.revoked_at is not None for k in store.list_keys("m1")] == [True, True]
    with pytest.raises(FleetStoreError, match="already exists"):
        store.add_machine(MachineIn(id="m1", name="again"), "admin")
    with pytest.raises(FleetStoreError, match="no machine"):
        store.rotate_key("nope", "admin")
    assert [e.action for e in store.list_audit()] == ["key.revoke", "key.rotate", "machine.add"]


def test_fleet_store_update_and_delete_machine(store: FleetStore) -> None:
    store.add_machine(MachineIn(id="m1", name="M1", tags={"a": "1"}), "admin")
    out = store.update_machine("m1", MachineUpdate(latitude=48.1, tags={"b": "2"}), "admin")
    assert (out.name, out.latitude, out.tags) == ("M1", 48.1, {"b": "2"})
    store.write_batch(
        [MessageWrite("m1", 1, 1, 1, False, None, None, None, {"temperature": 1.0})],
        [LatestWrite("m1", "green", "", {}, 1, True, 1, 1, 1, {"temperature": 1.0}, None)],
    )
    store.delete_machine("m1", "admin")
    assert store.list_machines() == []
    assert store.message_count() == 0
    assert store.history("m1", "temperature", 0, 10, "raw").value == []
    with pytest.raises(FleetStoreError):
        store.delete_machine("m1", "admin")


def test_fleet_store_users_tokens_and_roles(store: FleetStore, clock: Clock) -> None:
    store.add_user("ann", "correct horse", "operator", "admin")
    with store.engine.connect() as conn:
        hashed = conn.exec_driver_sql("SELECT password_hash FROM users").scalar()
    assert str(hashed).startswith("$argon2id$")
    with pytest.raises(FleetAuthError):
        store.login("ann", "wrong", 60)
    with pytest.raises(FleetAuthError):
        store.login("bob", "correct horse", 60)
    token, role, _ = store.login("ann", "correct horse", 60)
    assert role == "operator"
    who = store.principal_for_token(token)
    assert who == Principal("ann", "operator")
    assert require_role(who, "viewer") is who
    with pytest.raises(FleetForbidden):
        require_role(who, "admin")
    clock.ns += 61 * 1_000_000_000
    assert store.principal_for_token(token) is None  # expired


def test_fleet_store_partial_latest_keeps_values(store: FleetStore) -> None:
    store.add_machine(MachineIn(id="m1", name="M1"), "admin")
    full = LatestWrite("m1", "green", "", {"t": "ok"}, 5, True, 10, 11, 11, {"t": 1.0}, '{"x": 1}')
    store.write_batch([], [full])
    store.write_batch([], [LatestWrite("m1", "red", "hot", {"t": "critical"}, None)])
    latest = store.latest("m1")
    assert (latest.colour, latest.reason, latest.values, latest.info) == (
        "red",
        "hot",
        {"t": 1.0},
        {"x": 1},
    )
    assert store.last_seqs() == {"m1": 5}


def test_fleet_store_rollup_merges_and_prunes(store: FleetStore, clock: Clock) -> None:
    store.add_machine(MachineIn(id="m1", name="M1"), "admin")
    base = to_ns(T0 - timedelta(days=40))
    base -= base % HOUR_NS

    def write(values: list[float], start: int) -> None:
        store.write_batch(
            [
                MessageWrite("m1", None, start + i, start, False, None, None, None, {"t": v})
                for i, v in enumerate(values)
            ],
            [],
        )

    write([1.0, 5.0, 3.0], base)
    write([10.0], base + HOUR_NS)
    assert store.rollup_and_prune(clock.ns, 30 * 86400) == 4
    assert store.history("m1", "t", base, clock.ns, "raw").value == []
    write([0.5], base + 10)  # late backfill into a rolled-up hour
    assert store.rollup_and_prune(clock.ns, 30 * 86400) == 1
    h = store.history("m1", "t", base, clock.ns, "hour")
    assert h.resolution == "hour"
    assert h.min == [0.5, 10.0]
    assert h.max == [5.0, 10.0]
    assert h.count == [4, 1]
    assert h.value == pytest.approx([9.5 / 4, 10.0])


def _signal(severity: Severity | None, at_s: float = 0.0) -> Signal:
    return Signal("m1", "temperature", severity, T0 + timedelta(seconds=at_s), "t", "t", 85.0)


def test_fleet_store_sql_alert_store_lifecycle(store: FleetStore) -> None:
    alerts = SqlAlertStore(store.engine)
    manager = AlertManager(alerts)
    [opened] = manager.apply([_signal(Severity.WARNING)])
    manager.apply([_signal(Severity.WARNING, 1), _signal(Severity.CRITICAL, 2)])
    again = SqlAlertStore(store.engine)  # a restarted server sees the open alert
    found = again.find_open("m1", "temperature")
    assert found is not None
    assert (found.count, found.severity, found.id) == (3, Severity.CRITICAL, opened.alert.id)
    manager.acknowledge(opened.alert.id, "ann", "looking")
    manager.apply([_signal(None, 3)])
    assert alerts.find_open("m1", "temperature") is None
    [cleared] = alerts.query(AlertQuery(states=frozenset({AlertState.CLEARED})))
    assert (cleared.acknowledged_by, cleared.cleared_by) == ("ann", "rules")


def test_fleet_store_one_open_alert_per_rule_across_stores(store: FleetStore) -> None:
    first, second = SqlAlertStore(store.engine), SqlAlertStore(store.engine)
    AlertManager(first).apply([_signal(Severity.WARNING)])
    other = Alert(
        id="f" * 32,
        machine_id="m1",
        rule_id="temperature",
        severity=Severity.WARNING,
        peak_severity=Severity.WARNING,
        opened_at=T0,
        last_seen_at=T0,
    )
    with pytest.raises(AlertError, match="already has an open alert"):
        second.save(other)  # a second worker's stale cache: the database refuses
    assert second.find_open("m1", "temperature") is not None  # and its cache was reloaded
