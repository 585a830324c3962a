"""The manifest across processes: competing worker processes never double-claim, a worker
SIGKILLed mid-lease loses its items to the next claimer after expiry and each is completed
exactly once; on SQLite and on PostgreSQL (``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from rigwatch.errors import LeaseLost
from rigwatch.pipeline.manifest import Manifest, NewArtifact, RetryPolicy, Status
from rigwatch.pipeline.manifest.database import current_revision, head_revision, migrate
from rigwatch.pipeline.manifest.models import Base
from rigwatch.timefmt import NS_PER_S
from support.pipeline_manifest import FakeClock, WorkerProcess, pg_schema

__all__ = ["pg_schema"]  # the fixture, imported for pytest

LEASE_S = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Where the manifest lives: ``{"target": ..., "schema": ...}``."""
    if request.param == "sqlite":
        yield {"target": str(tmp_path / "manifest.sqlite"), "schema": None}
    else:
        url, schema = request.getfixturevalue("pg_schema")
        yield {"target": url, "schema": schema}


def _args(where: dict[str, Any]) -> list[str]:
    return [where["target"], *(["--schema", where["schema"]] if where["schema"] else [])]


def test_worker_processes_never_double_claim(target: dict[str, Any]) -> None:
    manifest = Manifest.open(target["target"], schema=target["schema"])
    n_items = 600
    ids = manifest.add_many([NewArtifact("image", f"/d/img_{i}.png") for i in range(n_items)])
    workers = [
        WorkerProcess.start(
            ["drain", *_args(target), "--name", f"p{k}", "--batch", "5", "--work-s", "0.005"]
        )
        for k in range(2)
    ]
    try:
        for w in workers:
            assert w.read() == {"ready": True}
        for w in workers:
            w.go()
        reports = [w.read() for w in workers]
    finally:
        for w in workers:
            w.finish()
    done = Counter(i for r in reports for i in r["done"])
    assert all(r["refused"] == [] for r in reports)
    assert set(done) == set(ids) and set(done.values()) == {1}
    assert all(r["done"] for r in reports), "both workers should have taken part"
    results = manifest.results("process", limit=10 * n_items)
    assert len(results) == n_items
    assert {r.owner for r in results} == {r["owner"] for r in reports}
    manifest.close()


def test_a_killed_workers_items_are_reclaimed_after_expiry_and_completed_once(
    target: dict[str, Any],
) -> None:
    clock = FakeClock(time.time_ns())
    manifest = Manifest.open(
        target["target"],
        schema=target["schema"],
        clock=clock,
        lease_s=LEASE_S,
        retry=RetryPolicy(max_attempts=3),
    )
    ids = manifest.add_many([NewArtifact("image", f"/d/img_{i}.png") for i in range(12)])
    victim = WorkerProcess.start(
        ["hold", *_args(target), "--batch", "8", "--lease-s", str(LEASE_S)]
    )
    try:
        held = victim.read()
        victim.proc.send_signal(signal.SIGKILL)
        assert victim.proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        victim.finish()
    claimed = held["claimed"]
    assert len(claimed) == 8
    expiries = set()
    for aid in claimed:
        state = manifest.stages_of(aid)["process"]
        assert (state.status, state.lease_owner) == (Status.LEASED, held["owner"])
        expiries.add(state.lease_expires_ns)
    (expiry,) = expiries  # one batch, one lease time

    # before the lease expires only the items nobody held are claimable
    fresh = manifest.claim("process", "rescuer", limit=20)
    assert sorted(x.artifact_id for x in fresh) == sorted(set(ids) - set(claimed))
    manifest.complete_many([(x, {"by": "rescuer"}) for x in fresh])
    clock.now_ns = expiry - 1
    assert manifest.claim("process", "rescuer", limit=20) == []

    clock.now_ns = expiry  # the dead worker's leases expire
    reclaimed = manifest.claim("process", "rescuer", limit=20)
    assert sorted(x.artifact_id for x in reclaimed) == sorted(claimed)
    assert all(x.attempt == 2 for x in reclaimed)
    outcome = manifest.complete_many([(x, {"by": "rescuer"}) for x in reclaimed])
    assert sorted(outcome.done) == sorted(claimed) and outcome.refused == ()
    with pytest.raises(LeaseLost):
        manifest.complete(reclaimed[0], {"twice": True})

    results = manifest.results("process", limit=100)
    assert Counter(r.artifact_id for r in results) == Counter(ids)  # each exactly once
    assert {r.owner for r in results} == {"rescuer"}
    assert manifest.counts()["process"] == {"done": len(ids)}
    manifest.close()


def test_postgres_lease_lifecycle_and_migrations(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    clock = FakeClock()
    manifest = Manifest.open(
        url, schema=schema, clock=clock, lease_s=10, retry=RetryPolicy(2, 1.0, 10.0)
    )
    assert current_revision(manifest.engine) == head_revision()
    assert migrate(manifest.engine) == head_revision()  # idempotent
    with manifest.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        tables = conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        ).scalars()
        assert {"artifacts", "stage_status", "results"} <= set(tables)
    (a, b) = manifest.add_many(
        [NewArtifact("segment", "/r/s1.parquet"), NewArtifact("segment", "/r/s2.parquet")]
    )
    leases = manifest.claim("process", "A", limit=2)
    clock.advance(10)
    (taken,) = manifest.claim("process", "B", limit=1)
    assert taken.attempt == 2
    with pytest.raises(LeaseLost):
        manifest.complete(next(x for x in leases if x.artifact_id == taken.artifact_id), {})
    assert manifest.fail(taken, "disk error") == Status.FAILED  # 2 = max_attempts
    other = next(x for x in leases if x.artifact_id != taken.artifact_id)
    assert manifest.fail(other, "glitch") == Status.PENDING
    assert manifest.stages_of(other.artifact_id)["process"].next_attempt_ns == (
        clock.now_ns + 1 * NS_PER_S
    )
    clock.advance(1)
    (again,) = manifest.claim("process", "B")
    manifest.complete(again, {"rms": 0.5})
    assert manifest.stages_of(again.artifact_id)["report"].status == Status.PENDING
    assert {r.artifact_id: r.ok for r in manifest.results("process")} == {
        taken.artifact_id: False,
        other.artifact_id: True,
    }
    assert {a, b} == {taken.artifact_id, other.artifact_id}
    manifest.close()
