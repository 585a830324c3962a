"""The manifest's leases: claim, heartbeat, expiry and reclaim, backoff, failure, release,
exactly-once completion, stage unblocking, concurrent claimers (SQLite, threads)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rigwatch.errors import DuplicateArtifact, LeaseLost, ManifestError
from rigwatch.pipeline.manifest import (
    ArtifactChanges,
    Flow,
    Manifest,
    NewArtifact,
    RetryPolicy,
    Stage,
    Status,
)
from rigwatch.timefmt import NS_PER_S
from support.pipeline_manifest import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manifest(tmp_path: Path, clock: FakeClock) -> Manifest:
    m = Manifest.open(
        tmp_path / "manifest.sqlite",
        lease_s=10,
        retry=RetryPolicy(max_attempts=3, backoff_base_s=2, backoff_max_s=5),
        clock=clock,
    )
    yield m
    m.close()


def add(manifest: Manifest, n: int, kind: str = "image") -> list[int]:
    return manifest.add_many([NewArtifact(kind, f"/data/{kind}_{i}.png") for i in range(n)])


def test_flow_orders_stages_and_rejects_cycles() -> None:
    flow = Flow.standard()
    assert flow.stages == ("collect", "process", "report", "compress", "sync", "retention")
    assert flow.prerequisites["retention"] == ("report", "sync")
    assert Flow.standard(compress=False, sync=False).prerequisites["retention"] == (
        "process",
        "report",
    )
    with pytest.raises(ManifestError, match="cycle"):
        Flow.of({"a": ["b"], "b": ["a"]})
    with pytest.raises(ManifestError, match="unknown stages"):
        Flow.of({"a": ["zz"]})


def test_add_creates_stage_rows_and_refuses_a_duplicate_path(manifest: Manifest) -> None:
    ids = add(manifest, 3)
    assert len(set(ids)) == 3
    counts = manifest.counts()
    assert counts["collect"] == {"done": 3}
    assert counts["process"] == {"pending": 3}
    assert counts["report"] == {"blocked": 3}
    with pytest.raises(DuplicateArtifact):
        manifest.add_many(
            [NewArtifact("image", "/data/new.png"), NewArtifact("image", "/data/image_0.png")]
        )
    assert manifest.find("/data/new.png") is None  # the whole batch was refused
    with pytest.raises(ManifestError, match="SHA-256"):
        manifest.add(NewArtifact("image", "/data/x.png", checksum="XYZ"))


def test_claim_leases_disjoint_batches_with_owner_and_expiry(
    manifest: Manifest, clock: FakeClock
) -> None:
    ids = add(manifest, 5)
    a = manifest.claim("process", "A", limit=3)
    b = manifest.claim("process", "B", limit=3)
    assert [x.artifact_id for x in a] == ids[:3]
    assert [x.artifact_id for x in b] == ids[3:]
    assert manifest.claim("process", "C", limit=3) == []
    assert all(x.expires_ns == clock.now_ns + 10 * NS_PER_S and x.attempt == 1 for x in a)
    state = manifest.stages_of(ids[0])["process"]
    assert (state.status, state.lease_owner, state.lease_expires_ns) == (
        Status.LEASED,
        "A",
        clock.now_ns + 10 * NS_PER_S,
    )
    assert a[0].artifact.path == "/data/image_0.png"
    with pytest.raises(ManifestError, match="unknown stage"):
        manifest.claim("nope", "A")


def test_heartbeat_keeps_a_lease_that_would_have_expired(
    manifest: Manifest, clock: FakeClock
) -> None:
    add(manifest, 1)
    (lease,) = manifest.claim("process", "A")
    clock.advance(8)
    (renewed,) = manifest.heartbeat([lease])
    assert renewed.expires_ns == clock.now_ns + 10 * NS_PER_S
    clock.advance(8)  # past the first expiry, within the renewed one
    assert manifest.claim("process", "B") == []
    manifest.complete(renewed, {"ok": 1})
    assert manifest.stages_of(lease.artifact_id)["process"].status == Status.DONE


def test_expired_lease_is_reclaimed_and_the_old_owner_is_refused(
    manifest: Manifest, clock: FakeClock
) -> None:
    add(manifest, 1)
    (old,) = manifest.claim("process", "A")
    clock.advance(10)  # lease expired: A is presumed dead
    (new,) = manifest.claim("process", "B")
    assert (new.artifact_id, new.attempt, new.owner) == (old.artifact_id, 2, "B")
    assert manifest.heartbeat([old]) == []
    with pytest.raises(LeaseLost, match="no longer held"):
        manifest.complete(old, {"by": "A"})
    with pytest.raises(LeaseLost):
        manifest.fail(old, "A's late error")
    manifest.complete(new, {"by": "B"})
    with pytest.raises(LeaseLost):  # a second completion by the same holder is refused too
        manifest.complete(new, {"by": "B again"})
    result = manifest.result(new.artifact_id, "process")
    assert result is not None and result.payload == {"by": "B"} and result.owner == "B"
    assert len(manifest.results("process")) == 1


def test_same_owner_with_a_stale_attempt_is_refused(manifest: Manifest, clock: FakeClock) -> None:
    add(manifest, 1)
    (first,) = manifest.claim("process", "A")
    clock.advance(10)
    (second,) = manifest.claim("process", "A")  # A reclaims its own expired item
    assert second.attempt == 2
    assert manifest.complete_many([(first, {})]).refused == (first.artifact_id,)
    manifest.complete(second, {})


def test_failures_back_off_exponentially_then_end_failed_with_the_error(
    manifest: Manifest, clock: FakeClock
) -> None:
    (aid,) = add(manifest, 1)
    (lease,) = manifest.claim("process", "A")
    assert manifest.fail(lease, "camera glitch 1") == Status.PENDING
    state = manifest.stages_of(aid)["process"]
    assert state.next_attempt_ns == clock.now_ns + 2 * NS_PER_S  # base * 2**0
    assert state.last_error == "camera glitch 1"
    clock.advance(1.9)
    assert manifest.claim("process", "A") == []  # not before the backoff
    clock.advance(0.1)
    (lease,) = manifest.claim("process", "A")
    assert lease.attempt == 2
    assert manifest.fail(lease, "camera glitch 2") == Status.PENDING
    assert manifest.stages_of(aid)["process"].next_attempt_ns == clock.now_ns + 4 * NS_PER_S
    clock.advance(4)
    (lease,) = manifest.claim("process", "A")
    assert manifest.fail(lease, "camera glitch 3") == Status.FAILED  # 3 = max_attempts
    state = manifest.stages_of(aid)["process"]
    assert (state.status, state.last_error, state.attempts) == ("failed", "camera glitch 3", 3)
    clock.advance(3600)
    assert manifest.claim("process", "A") == []
    result = manifest.result(aid, "process")
    assert result is not None and not result.ok and result.error == "camera glitch 3"
    assert manifest.stages_of(aid)["report"].status == Status.BLOCKED


def test_backoff_is_capped(manifest: Manifest) -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base_s=2, backoff_max_s=5)
    assert [policy.delay_ns(n) // NS_PER_S for n in (1, 2, 3, 4)] == [2, 4, 5, 5]


def test_bad_input_fails_at_once_and_an_operator_can_retry(manifest: Manifest) -> None:
    (aid,) = add(manifest, 1)
    (lease,) = manifest.claim("process", "A")
    assert manifest.fail(lease, "truncated PNG", retry=False) == Status.FAILED
    assert manifest.retry_failed("process") == 1
    assert manifest.result(aid, "process") is None
    (lease,) = manifest.claim("process", "A")
    assert lease.attempt == 1
    manifest.complete(lease, {"fixed": True})


def test_a_worker_that_keeps_dying_on_an_item_ends_it_failed(
    manifest: Manifest, clock: FakeClock
) -> None:
    (aid,) = add(manifest, 1)
    for _ in range(3):  # three workers die holding it
        assert len(manifest.claim("process", "dies")) == 1
        clock.advance(11)
    assert manifest.claim("process", "B") == []
    state = manifest.stages_of(aid)["process"]
    assert state.status == Status.FAILED
    assert "expired on attempt 3 of 3" in (state.last_error or "")


def test_release_gives_items_back_without_counting_an_attempt(
    manifest: Manifest,
) -> None:
    add(manifest, 4)
    leases = manifest.claim("process", "A", limit=4)
    assert manifest.release(leases[:2]) == 2
    assert manifest.release_owner("A") == 2
    assert manifest.release_owner("A") == 0
    again = manifest.claim("process", "B", limit=4)
    assert len(again) == 4 and all(x.attempt == 1 for x in again)
    with pytest.raises(LeaseLost):
        manifest.complete(leases[0], {})


def test_completion_unblocks_dependent_stages_when_all_prerequisites_are_done(
    manifest: Manifest,
) -> None:
    (aid,) = add(manifest, 1)

    def run(stage: str) -> None:
        (lease,) = manifest.claim(stage, "W")
        manifest.complete(lease, {"stage": stage})

    run("process")
    states = manifest.stages_of(aid)
    assert states["report"].status == states["compress"].status == Status.PENDING
    assert states["sync"].status == Status.BLOCKED
    run("compress")
    run("sync")
    assert manifest.stages_of(aid)["retention"].status == Status.BLOCKED  # report not done
    run("report")
    assert manifest.stages_of(aid)["retention"].status == Status.PENDING
    run("retention")
    assert all(s.status == Status.DONE for s in manifest.stages_of(aid).values())


def test_compressor_changes_the_artifact_in_the_same_transaction(manifest: Manifest) -> None:
    aid, _ = add(manifest, 2)
    (p,) = manifest.claim("process", "W")
    manifest.complete(p, {})
    (c,) = manifest.claim("compress", "W")
    with pytest.raises(DuplicateArtifact, match="not recorded"):
        manifest.complete(c, {"codec": "gzip"}, ArtifactChanges(path="/data/image_1.png"))
    assert manifest.stages_of(aid)["compress"].status == Status.LEASED  # nothing recorded
    assert manifest.result(aid, "compress") is None
    digest = "ab" * 32
    gz = ArtifactChanges(path="/data/image_0.png.gz", size_bytes=10, checksum=digest)
    manifest.complete(c, {"codec": "gzip"}, gz)
    art = manifest.get(aid)
    assert (art.path, art.size_bytes, art.checksum) == ("/data/image_0.png.gz", 10, digest)
    assert manifest.find("/data/image_0.png") is None
    assert manifest.stages_of(aid)["sync"].status == Status.PENDING


def test_results_are_plain_json_rows(manifest: Manifest) -> None:
    add(manifest, 2)
    a, b = manifest.claim("process", "W", limit=2)
    manifest.complete(a, {"mean": np.float32(1.5), "rows": np.arange(3), "bad": float("nan")})
    with pytest.raises(ManifestError, match="not JSON"):
        manifest.complete(b, {"x": object()})
    result = manifest.result(a.artifact_id, "process")
    assert result is not None and result.payload == {"mean": 1.5, "rows": [0, 1, 2], "bad": None}
    manifest.complete(b, {})


def test_threads_never_double_claim(tmp_path: Path) -> None:
    manifest = Manifest.open(tmp_path / "m.sqlite", lease_s=600)
    n_items, n_threads = 600, 6
    add(manifest, n_items)
    # Every thread claims its first batch at the same moment and holds it until all have
    # one: without that, a thread claiming and completing in a tight loop could take the
    # write lock again right after each commit while the others sleep in SQLite's busy
    # handler, and finish all items alone (nothing would have competed).
    start = threading.Barrier(n_threads)
    all_hold_one = threading.Barrier(n_threads)
    completed: list[list[int]] = [[] for _ in range(n_threads)]
    refused: list[int] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            start.wait(timeout=30)
            leases = manifest.claim("process", f"T{k}", limit=7)
            all_hold_one.wait(timeout=30)
            while leases:
                outcome = manifest.complete_many([(x, {"by": k}) for x in leases])
                completed[k] += outcome.done
                refused.extend(outcome.refused)
                leases = manifest.claim("process", f"T{k}", limit=7)
        except BaseException as exc:
            errors.append(exc)
            start.abort()
            all_hold_one.abort()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not refused
    everything = Counter(i for ids in completed for i in ids)
    assert len(everything) == n_items and set(everything.values()) == {1}
    assert all(completed), "every claimer completed its first, concurrently claimed batch"
    assert len(manifest.results("process", limit=5000)) == n_items
    assert manifest.counts()[Stage.PROCESS] == {"done": n_items}
    manifest.close()
