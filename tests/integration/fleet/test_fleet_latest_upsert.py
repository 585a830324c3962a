"""The latest state written for many machines in one commit, on SQLite and PostgreSQL.

PostgreSQL takes the whole commit as one statement of JSON records (``json_to_recordset``);
SQLite one row at a time (``executemany``). Both must store the same: new machines inserted,
known ones replaced, JSON columns (values, metrics, info) and NULLs kept as given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.schemas import MachineIn
from rigwatch.fleet.store import FleetStore, LatestWrite, MessageWrite
from support.fleet_server import pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    if request.param == "sqlite":
        engine = create_fleet_engine(tmp_path / "fleet.sqlite3")
        migrate(engine)
        yield FleetStore(engine, time.time_ns)
        engine.dispose()
        return
    with pg_schema() as (url, schema):
        engine = create_fleet_engine(url, schema=schema)
        migrate(engine)
        yield FleetStore(engine, time.time_ns)
        engine.dispose()


def _latest(machine_id: str, k: int, info: dict[str, object] | None) -> LatestWrite:
    return LatestWrite(
        machine_id,
        "red" if k % 2 else "green",
        f"reason {k} 'quoted' \"text\"",
        {"temperature": "red" if k % 2 else "green"},
        k,
        full=True,
        ts_ns=1_700_000_000_000_000_000 + k,
        received_ns=1_700_000_000_000_000_500 + k,
        last_fresh_ns=1_700_000_000_000_000_500 + k,
        values={"temperature": 40.0 + k, "speed": 1450.0},
        info_json=None if info is None else orjson.dumps(info).decode(),
    )


def _message(machine_id: str, k: int) -> MessageWrite:
    return MessageWrite(
        machine_id, k, 1_700_000_000_000_000_000 + k, 1_700_000_000_000_000_500 + k,
        False, "online", True, None, {"temperature": 40.0 + k},
    )  # fmt: skip


def test_fleet_latest_upsert_many_machines_in_one_commit(store: FleetStore) -> None:
    ids = [f"m{i}" for i in range(5)]
    for mid in ids:
        store.add_machine(MachineIn(id=mid, name=mid), "test")
    info = {"system_info": {"system": {"name": "HMC-ECM-RELINNI"}}, "status": "online"}
    first = [_latest(mid, i, info if i != 2 else None) for i, mid in enumerate(ids[:3])]
    store.write_batch([_message(w.machine_id, 1) for w in first], first)
    # a second commit: two known machines replaced, two new ones inserted
    second = [_latest(mid, 10 + i, info) for i, mid in enumerate(ids[1:])]
    store.write_batch([_message(w.machine_id, 2) for w in second], second)

    got = {row.machine_id: row for row in store.all_latest()}
    assert sorted(got) == ids
    m0 = got["m0"]  # written once, by the first commit only
    assert (m0.colour.value, m0.values["temperature"]) == ("green", 40.0)
    assert m0.reason == "reason 0 'quoted' \"text\""
    assert m0.info == info
    for i, mid in enumerate(ids[1:]):
        row, k = got[mid], 10 + i
        assert row.colour.value == ("red" if k % 2 else "green")
        assert row.values == {"temperature": 40.0 + k, "speed": 1450.0}
        assert row.metrics == {"temperature": "red" if k % 2 else "green"}
        assert row.info == info  # m2's NULL info of the first commit replaced
        assert row.timestamp is not None
        assert row.timestamp.timestamp() == pytest.approx(1_700_000_000 + k * 1e-9, abs=1e-6)
    assert store.last_seqs() == {"m0": 0, "m1": 10, "m2": 11, "m3": 12, "m4": 13}


def test_fleet_group_commit_of_300_machines_stores_every_row(store: FleetStore) -> None:
    ids = [f"m{i:03d}" for i in range(300)]
    for mid in ids:
        store.add_machine(MachineIn(id=mid, name=mid), "test")
    latest = [_latest(mid, k, {"k": k}) for k, mid in enumerate(ids)]
    store.write_batch([_message(mid, k + 1) for k, mid in enumerate(ids)], latest)

    got = {row.machine_id: row for row in store.all_latest()}
    assert sorted(got) == ids
    for k, mid in enumerate(ids):  # each row in its place
        assert got[mid].values["temperature"] == 40.0 + k
        assert got[mid].info == {"k": k}
        assert store.existing_seqs(mid, [k + 1, k + 2]) == {k + 1}
    assert store.last_seqs() == {mid: k for k, mid in enumerate(ids)}
