"""The manifest: artifacts, their per-stage state, leases and results.

Workers of a stage call :meth:`Manifest.claim` for a batch of ready items, work on them while
calling :meth:`Manifest.heartbeat` well within the lease time, and end each item with
:meth:`Manifest.complete` or :meth:`Manifest.fail`; on shutdown they :meth:`Manifest.release`
what they did not finish. Each call is one transaction. A worker that dies keeps its leases
until they expire; the next claimer of that stage takes them over.

Guarantees: an item is held by at most one live lease; a completion or failure is accepted only
from the holder of the current lease (owner and attempt match), so each (artifact, stage) is
completed exactly once and its result recorded once, even when a slow worker's lease expired
and another worker took the item over (the work itself may then have run twice: it is
at-least-once, its recording exactly-once).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    Row,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.types import TupleType

from rigwatch.errors import DuplicateArtifact, LeaseLost, ManifestError
from rigwatch.pipeline.manifest.database import (
    READ_ONLY,
    Synchronous,
    create_manifest_engine,
    migrate,
)
from rigwatch.pipeline.manifest.flow import Flow, Stage, Status
from rigwatch.pipeline.manifest.location import Mount
from rigwatch.pipeline.manifest.models import Artifact, Result, StageStatus
from rigwatch.pipeline.manifest.records import (
    ArtifactChanges,
    ArtifactRecord,
    Lease,
    NewArtifact,
    Outcome,
    ResultRecord,
    RetryPolicy,
    StageState,
)
from rigwatch.pipeline.manifest.results_log import ResultsLog, results_line
from rigwatch.timefmt import NS_PER_S

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 1000
"""Largest batch per call (keeps each statement's parameter list well under SQLite's limit)."""

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
TRANSACTION_TRIES = 5

_SS = StageStatus
_SS_OTHER = StageStatus.__table__.alias("other")


def _clean_json(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """``value`` as plain JSON (NumPy values converted, NaN and infinities as null).

    Raises:
        ManifestError: not serialisable.
    """
    if value is None:
        return {}
    try:
        out = orjson.loads(
            orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        )
    except TypeError as exc:
        raise ManifestError(f"{what} is not JSON-serialisable: {exc}") from exc
    if not isinstance(out, dict):
        raise ManifestError(f"{what} must be a JSON object, not {type(value).__name__}")
    return out


def _artifact_record(row: Sequence[Any], start: int = 0) -> ArtifactRecord:
    """An artifact from the :data:`_ARTIFACT_COLUMNS` of a row, starting at ``start``."""
    i, kind, path, checksum, size, captured, created, updated, meta = row[start : start + 9]
    return ArtifactRecord(i, kind, path, checksum, size, captured, created, updated, meta or {})


_PAIR = TupleType(BigInteger(), Integer())


def _many(values: list[Any], type_: Any = None) -> Any:
    """An expanding bound parameter for ``IN``: the list is sent as parameters without
    coercing each element into an expression (much cheaper for large batches)."""
    return bindparam(None, values, expanding=True, type_=type_ or BigInteger())


_ARTIFACT_COLUMNS = (
    Artifact.id,
    Artifact.kind,
    Artifact.path,
    Artifact.checksum,
    Artifact.size_bytes,
    Artifact.captured_ns,
    Artifact.created_ns,
    Artifact.updated_ns,
    Artifact.meta,
)


def _claim_stmt(status: Status, due: Any) -> Any:
    """Rows of a stage in ``status`` that are due (``due <= now``), oldest due first, with
    their artifact; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (not rendered on SQLite, where
    ``BEGIN IMMEDIATE`` already serialises claimers)."""
    return (
        select(_SS.attempts, _SS.lease_owner, *_ARTIFACT_COLUMNS)
        .join_from(StageStatus, Artifact, _SS.artifact_id == Artifact.id)
        .where(_SS.stage == bindparam("p_stage"), _SS.status == status.value)
        .where(due <= bindparam("p_now"))
        .order_by(due)
        .limit(bindparam("p_limit", type_=Integer()))
        .with_for_update(of=StageStatus, skip_locked=True)
    )


# Statements of the hot path, built once (building a statement costs more than running it).
_CLAIM_EXPIRED = _claim_stmt(Status.LEASED, _SS.lease_expires_ns)
_CLAIM_PENDING = _claim_stmt(Status.PENDING, _SS.next_attempt_ns)
_LEASE = (
    update(StageStatus)
    .where(
        _SS.stage == bindparam("p_stage"),
        _SS.artifact_id.in_(bindparam("p_ids", expanding=True, type_=BigInteger())),
    )
    .values(
        status=Status.LEASED.value,
        lease_owner=bindparam("p_owner"),
        lease_expires_ns=bindparam("p_expires"),
        attempts=_SS.attempts + 1,
        updated_ns=bindparam("p_now"),
    )
)


_RELEASE_VALUES: dict[str, Any] = {  # a released row: pending at once, attempt given back
    "status": Status.PENDING.value,
    "attempts": _SS.attempts - 1,
    "next_attempt_ns": bindparam("p_now"),
    "lease_owner": None,
    "lease_expires_ns": None,
    "updated_ns": bindparam("p_now"),
}
_INSERT_RESULTS = insert(Result)
_INSERT_RESULTS_SEQ = insert(Result).returning(Result.seq, sort_by_parameter_order=True)


class Manifest:
    """The pipeline's durable table of artifacts (thread-safe: one instance may serve several
    worker threads; each call uses its own connection from the engine's pool).

    Args:
        engine: a migrated engine (see :meth:`open`, which makes one).
        flow: the stages and their order; every worker of one manifest must use the same.
        retry: attempts and backoff.
        lease_s: default lease duration, seconds.
        results_log: where results of ``log_stages`` are also written as JSON lines.
        log_stages: the stages whose results go to the log (processing, as today).
        clock: wall clock in ns since the Unix epoch (tests pass a controlled one). Across
            hosts (PostgreSQL) the workers' clocks must agree within a fraction of the lease.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        flow: Flow | None = None,
        retry: RetryPolicy | None = None,
        lease_s: float = 60.0,
        results_log: ResultsLog | None = None,
        log_stages: Iterable[str] = (Stage.PROCESS,),
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if lease_s <= 0:
            raise ManifestError(f"lease_s must be > 0, not {lease_s}")
        self.engine = engine
        self.flow = flow or Flow.standard()
        self.retry = retry or RetryPolicy()
        self.lease_ns = round(lease_s * NS_PER_S)
        self.results_log = results_log
        self.log_stages = frozenset(str(s) for s in log_stages)
        self.clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        # Rows addressed by primary key must be found through it. Given ``stage = ? AND
        # status = ? AND artifact_id IN (...)``, SQLite's planner (without statistics) prefers
        # the (stage, status) index and walks every row of that status; ``status || ''`` is
        # not indexable, which leaves it the primary key. PostgreSQL plans by statistics.
        self._status_expr: Any = _SS.status if self._postgres else _SS.status + ""
        self._logging = results_log is not None
        self._done_stmt = self._held_stmt(
            {
                "status": Status.DONE.value,
                "lease_owner": None,
                "lease_expires_ns": None,
                "last_error": None,
                "updated_ns": bindparam("p_now"),
            }
        )
        self._renew_stmt = self._held_stmt(
            {"lease_expires_ns": bindparam("p_expires"), "updated_ns": bindparam("p_now")}
        )
        self._release_stmt = self._held_stmt(_RELEASE_VALUES)
        self._unblock_stmts: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout_s: float = 30.0,
        schema: str | None = None,
        mounts_reader: Callable[[], list[Mount]] | None = None,
        **kwargs: Any,
    ) -> Manifest:
        """Open (creating or upgrading the schema) the manifest at ``target``: a SQLite path
        or URL, or ``postgresql+psycopg://...``. ``kwargs`` go to the constructor.

        Raises:
            ManifestError: cannot connect, migrate, or an invalid setting.
            ManifestLocationError: a SQLite file on a network file system.
        """
        engine = create_manifest_engine(
            target,
            synchronous=synchronous,
            busy_timeout_s=busy_timeout_s,
            schema=schema,
            mounts_reader=mounts_reader,
        )
        try:
            migrate(engine)
            return cls(engine, **kwargs)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------

    def _transact(self, work: Callable[[Connection], T], read_only: bool = False) -> T:
        """Run ``work`` in one transaction, again on a deadlock or serialization failure."""
        for attempt in range(1, TRANSACTION_TRIES + 1):
            try:
                if read_only:
                    with (
                        self.engine.connect().execution_options(**READ_ONLY) as conn,
                        conn.begin(),
                    ):
                        return work(conn)
                with self.engine.begin() as conn:
                    return work(conn)
            except IntegrityError:
                raise
            except (OperationalError, DBAPIError) as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if sqlstate in TRANSIENT_SQLSTATES and attempt < TRANSACTION_TRIES:
                    log.debug("transaction retried after %s", sqlstate)
                    continue
                raise ManifestError(
                    f"manifest {self.engine.url.render_as_string()}: {exc.orig or exc}"
                ) from exc
        raise AssertionError("unreachable")

    # -- artifacts ----------------------------------------------------------------------

    def add(self, artifact: NewArtifact, completed: Iterable[str] = (Stage.COLLECT,)) -> int:
        """Add one artifact; see :meth:`add_many`."""
        return self.add_many([artifact], completed)[0]

    def add_many(
        self, artifacts: Sequence[NewArtifact], completed: Iterable[str] = (Stage.COLLECT,)
    ) -> list[int]:
        """Add artifacts in one transaction, with their stage rows: ``completed`` stages
        ``done``, stages whose prerequisites are done ``pending``, the rest ``blocked``.

        Returns:
            The new ids, in the order given.

        Raises:
            DuplicateArtifact: a path is already in the manifest (nothing is added).
            ManifestError: a completed stage not in the flow, a bad checksum, meta not JSON.
        """
        done = [s for s in (str(c) for c in completed) if s in self.flow.prerequisites]
        statuses = self.flow.initial_statuses(done)
        now = self.clock()
        rows = []
        for a in artifacts:
            if a.checksum is not None and (
                len(a.checksum) != 64 or any(c not in "0123456789abcdef" for c in a.checksum)
            ):
                raise ManifestError(f"checksum of {a.path} is not a lowercase SHA-256 hex")
            if not a.kind or len(a.kind) > 32:
                raise ManifestError(f"artifact kind {a.kind!r} must have 1..32 characters")
            rows.append(
                {
                    "kind": a.kind,
                    "path": str(a.path),
                    "checksum": a.checksum,
                    "size_bytes": a.size_bytes,
                    "captured_ns": a.captured_ns,
                    "created_ns": now,
                    "updated_ns": now,
                    "meta": _clean_json(a.meta, f"meta of {a.path}"),
                }
            )

        def work(conn: Connection) -> list[int]:
            ids: list[int] = []
            for start in range(0, len(rows), MAX_BATCH):
                chunk = rows[start : start + MAX_BATCH]
                result = conn.execute(
                    insert(Artifact).returning(Artifact.id, sort_by_parameter_order=True),
                    chunk,
                )
                new_ids = [r[0] for r in result]
                ids.extend(new_ids)
                conn.execute(
                    insert(StageStatus),
                    [
                        {
                            "artifact_id": aid,
                            "stage": stage,
                            "status": status.value,
                            "attempts": 0,
                            "next_attempt_ns": now,
                            "updated_ns": now,
                        }
                        for aid in new_ids
                        for stage, status in statuses.items()
                    ],
                )
            return ids

        try:
            return self._transact(work)
        except IntegrityError as exc:
            raise DuplicateArtifact(
                f"an artifact with one of these paths is already in the manifest: "
                f"{[r['path'] for r in rows][:5]} ({exc.orig})"
            ) from exc

    def get(self, artifact_id: int) -> ArtifactRecord:
        """The artifact ``artifact_id``.

        Raises:
            ManifestError: no such artifact.
        """

        def work(conn: Connection) -> Row[Any] | None:
            return conn.execute(
                select(*_ARTIFACT_COLUMNS).where(Artifact.id == artifact_id)
            ).first()

        row = self._transact(work, read_only=True)
        if row is None:
            raise ManifestError(f"no artifact with id {artifact_id} in the manifest")
        return _artifact_record(row)

    def find(self, path: str | Path) -> ArtifactRecord | None:
        """The artifact at ``path``, or ``None``."""

        def work(conn: Connection) -> Row[Any] | None:
            return conn.execute(
                select(*_ARTIFACT_COLUMNS).where(Artifact.path == str(path))
            ).first()

        row = self._transact(work, read_only=True)
        return None if row is None else _artifact_record(row)

    def stages_of(self, artifact_id: int) -> dict[str, StageState]:
        """Every stage's state of one artifact, in flow order (empty for an unknown id)."""

        def work(conn: Connection) -> list[Row[Any]]:
            return list(
                conn.execute(select(*StageStatus.__table__.c).where(_SS.artifact_id == artifact_id))
            )

        rows = {r.stage: r for r in self._transact(work, True)}
        return {
            s: StageState(
                stage=s,
                status=r.status,
                attempts=r.attempts,
                next_attempt_ns=r.next_attempt_ns,
                lease_owner=r.lease_owner,
                lease_expires_ns=r.lease_expires_ns,
                last_error=r.last_error,
            )
            for s in self.flow.stages
            if (r := rows.get(s)) is not None
        }

    # -- claiming -----------------------------------------------------------------------

    def claim(
        self, stage: str, owner: str, limit: int = 1, lease_s: float | None = None
    ) -> list[Lease]:
        """Lease up to ``limit`` items of ``stage`` that are due: leases expired first (their
        worker is presumed dead), then pending items by ``next_attempt_ns``.

        One transaction; on PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED``, so
        concurrent claimers take disjoint items without waiting for each other. An expired
        item that already had ``max_attempts`` attempts is not leased again but ends
        ``failed`` ("lease expired ...").

        Args:
            stage: a stage of the flow.
            owner: this worker's id (:func:`~rigwatch.pipeline.manifest.records.worker_id`).
            limit: batch size, 1..1000.
            lease_s: lease duration (default: the manifest's).

        Returns:
            The leases, possibly fewer than ``limit`` (none when nothing is due).

        Raises:
            ManifestError: unknown stage, bad limit, database unavailable.
        """
        stage = self.flow.check(stage)
        if not 1 <= limit <= MAX_BATCH:
            raise ManifestError(f"claim limit must be 1..{MAX_BATCH}, not {limit}")
        if not owner or len(owner) > 128:
            raise ManifestError("lease owner must have 1..128 characters")
        lease_ns = self.lease_ns if lease_s is None else round(lease_s * NS_PER_S)
        max_attempts = self.retry.max_attempts

        Dead = list[tuple[ArtifactRecord, int, str, str | None]]

        def work(conn: Connection) -> tuple[list[Lease], Dead, list[dict[str, Any]]]:
            now = self.clock()
            expires = now + lease_ns
            params = {"p_stage": stage, "p_now": now, "p_limit": limit}
            picked = list(conn.execute(_CLAIM_EXPIRED, params))
            if len(picked) < limit:
                params["p_limit"] = limit - len(picked)
                picked += conn.execute(_CLAIM_PENDING, params).all()
            exhausted = [r for r in picked if r.attempts >= max_attempts]
            take = {r.id: r.attempts + 1 for r in picked if r.attempts < max_attempts}
            if take:
                conn.execute(
                    _LEASE,
                    {
                        "p_stage": stage,
                        "p_ids": list(take),
                        "p_owner": owner,
                        "p_expires": expires,
                        "p_now": now,
                    },
                )
            artifacts = {r.id: _artifact_record(r, 2) for r in picked}
            leases = [
                Lease(artifacts[aid], stage, owner, attempt, expires)
                for aid, attempt in take.items()
            ]
            dead: Dead = []
            for r in exhausted:
                error = (
                    f"lease of {r.lease_owner} expired on attempt {r.attempts} of "
                    f"{max_attempts}: the worker died or hung on this item"
                )
                dead.append((artifacts[r.id], r.attempts, error, None))
            lines = self._finish_failed(conn, stage, dead, now=now) if dead else []
            return leases, dead, lines

        leases, dead, lines = self._transact(work)
        self._write_lines(lines)
        for artifact, attempt, error, _ in dead:
            log.warning("%s of %s failed: %s (attempt %d)", stage, artifact.path, error, attempt)
        return leases

    def heartbeat(self, leases: Sequence[Lease], lease_s: float | None = None) -> list[Lease]:
        """Extend leases still held to ``now + lease``.

        Returns:
            The renewed leases (with their new expiry); a lease missing from it was lost
            (expired and taken over, or released): stop working on that item.
        """
        lease_ns = self.lease_ns if lease_s is None else round(lease_s * NS_PER_S)
        by_stage = self._by_stage(leases)

        def work(conn: Connection) -> list[Lease]:
            now = self.clock()
            expires = now + lease_ns
            renewed: list[Lease] = []
            for stage, group in by_stage.items():
                held = self._update_held(
                    conn, self._renew_stmt, stage, group, {"p_now": now, "p_expires": expires}
                )
                renewed += [Lease(x.artifact, x.stage, x.owner, x.attempt, expires) for x in held]
            return renewed

        renewed = self._transact(work)
        if len(renewed) < len(leases):
            log.warning("%d of %d leases were lost", len(leases) - len(renewed), len(leases))
        return renewed

    # -- reporting ----------------------------------------------------------------------

    def complete(
        self,
        lease: Lease,
        result: Mapping[str, Any] | None = None,
        changes: ArtifactChanges | None = None,
    ) -> None:
        """Record the stage's ``result`` and mark it done; unblock the stages waiting for it.

        Raises:
            LeaseLost: the lease is no longer held (nothing was recorded: another worker
                owns the item now, or it was released).
            ManifestError: result not a JSON object; ``changes.path`` already taken.
        """
        outcome = self.complete_many([(lease, result, changes)])
        if outcome.refused:
            raise LeaseLost(
                f"{lease.stage} of artifact {lease.artifact_id} ({lease.artifact.path}): "
                f"lease of {lease.owner} (attempt {lease.attempt}) is no longer held"
            )

    def complete_many(
        self,
        items: Sequence[
            tuple[Lease, Mapping[str, Any] | None]
            | tuple[Lease, Mapping[str, Any] | None, ArtifactChanges | None]
        ],
    ) -> Outcome:
        """Complete a batch in one transaction (see :meth:`complete`); items whose lease is
        lost are refused and reported in :attr:`Outcome.refused`, the others are done."""
        prepared = [
            (
                it[0],
                _clean_json(it[1], f"result of {it[0].artifact.path}"),
                it[2] if len(it) > 2 else None,
            )
            for it in items
        ]
        leases = [p[0] for p in prepared]
        by_stage = self._by_stage(leases)
        extras = {(p[0].stage, p[0].artifact_id): p for p in prepared}

        def work(conn: Connection) -> tuple[list[int], list[dict[str, Any]]]:
            now = self.clock()
            done_ids: list[int] = []
            lines: list[dict[str, Any]] = []
            for stage, group in by_stage.items():
                held = self._update_held(conn, self._done_stmt, stage, group, {"p_now": now})
                if not held:
                    continue
                ids = [x.artifact_id for x in held]
                artifacts = {x.artifact_id: x.artifact for x in held}
                for x in held:
                    change = extras[(stage, x.artifact_id)][2]
                    if change is not None:
                        artifacts[x.artifact_id] = self._apply_changes(
                            conn, x.artifact, change, now
                        )
                rows = [
                    {
                        "artifact_id": x.artifact_id,
                        "stage": stage,
                        "ok": True,
                        "payload": extras[(stage, x.artifact_id)][1],
                        "error": None,
                        "owner": x.owner,
                        "attempt": x.attempt,
                        "recorded_ns": now,
                    }
                    for x in held
                ]
                logged = self._logging and stage in self.log_stages
                seqs = self._insert_results(conn, rows, want_seq=logged)
                self._unblock(conn, stage, ids, now)
                done_ids += ids
                if logged:
                    lines += [
                        results_line(
                            artifacts[x.artifact_id],
                            stage,
                            seq=seq,
                            ok=True,
                            payload=extras[(stage, x.artifact_id)][1],
                            error=None,
                            recorded_ns=now,
                        )
                        for x, seq in zip(held, seqs, strict=True)
                    ]
            return done_ids, lines

        done_ids, lines = self._transact(work)
        self._write_lines(lines)
        done = set(done_ids)
        return Outcome(
            done=tuple(done_ids),
            refused=tuple(x.artifact_id for x in leases if x.artifact_id not in done),
        )

    def fail(self, lease: Lease, error: str, retry: bool = True) -> Status:
        """Record a failed attempt: the item goes back to ``pending`` after a backoff, or ends
        ``failed`` (error kept, a failed result recorded) after ``max_attempts`` attempts or
        when ``retry`` is false (bad input that no retry will fix).

        Returns:
            ``Status.PENDING`` (will retry) or ``Status.FAILED``.

        Raises:
            LeaseLost: the lease is no longer held (nothing was recorded).
        """
        outcome = self.fail_many([(lease, error)], retry=retry)
        if outcome.refused:
            raise LeaseLost(
                f"{lease.stage} of artifact {lease.artifact_id} ({lease.artifact.path}): "
                f"lease of {lease.owner} (attempt {lease.attempt}) is no longer held"
            )
        return Status.PENDING if outcome.retrying else Status.FAILED

    def fail_many(self, items: Sequence[tuple[Lease, str]], retry: bool = True) -> Outcome:
        """Record failed attempts of a batch in one transaction (see :meth:`fail`)."""
        leases = [lease for lease, _ in items]
        errors = {(lease.stage, lease.artifact_id): str(err) for lease, err in items}
        by_stage = self._by_stage(leases)
        max_attempts = self.retry.max_attempts

        def work(
            conn: Connection,
        ) -> tuple[list[int], list[int], list[dict[str, Any]]]:
            now = self.clock()
            final_ids: list[int] = []
            retry_ids: list[int] = []
            lines: list[dict[str, Any]] = []
            for stage, group in by_stage.items():
                held = self._held(conn, stage, group)
                again = [x for x in held if retry and x.attempt < max_attempts]
                final = [x for x in held if not (retry and x.attempt < max_attempts)]
                by_delay: dict[tuple[int, str], list[int]] = defaultdict(list)
                for x in again:
                    err = errors[(stage, x.artifact_id)]
                    by_delay[(self.retry.delay_ns(x.attempt), err)].append(x.artifact_id)
                for (delay, err), ids in by_delay.items():
                    conn.execute(
                        update(StageStatus)
                        .where(_SS.stage == stage, _SS.artifact_id.in_(_many(ids)))
                        .values(
                            status=Status.PENDING,
                            next_attempt_ns=now + delay,
                            lease_owner=None,
                            lease_expires_ns=None,
                            last_error=err,
                            updated_ns=now,
                        )
                    )
                retry_ids += [x.artifact_id for x in again]
                if final:
                    dead = [
                        (x.artifact, x.attempt, errors[(stage, x.artifact_id)], x.owner)
                        for x in final
                    ]
                    lines += self._finish_failed(conn, stage, dead, now=now)
                    final_ids += [x.artifact_id for x in final]
            return final_ids, retry_ids, lines

        final_ids, retry_ids, lines = self._transact(work)
        self._write_lines(lines)
        touched = set(final_ids) | set(retry_ids)
        return Outcome(
            done=tuple(final_ids),
            retrying=tuple(retry_ids),
            refused=tuple(x.artifact_id for x in leases if x.artifact_id not in touched),
        )

    def release(self, leases: Sequence[Lease]) -> int:
        """Give leases back (graceful shutdown): the items are ``pending`` again at once and
        the attempt is not counted. Leases no longer held are ignored.

        Returns:
            How many were released.
        """
        by_stage = self._by_stage(leases)

        def work(conn: Connection) -> int:
            now = self.clock()
            n = 0
            for stage, group in by_stage.items():
                n += len(self._update_held(conn, self._release_stmt, stage, group, {"p_now": now}))
            return n

        return self._transact(work)

    def release_owner(self, owner: str) -> int:
        """Release every lease held by ``owner`` (a worker shutting down, or its supervisor
        after the worker exited). Returns how many were released."""

        def work(conn: Connection) -> int:
            return self._release_rows(
                conn, (_SS.status == Status.LEASED, _SS.lease_owner == owner), self.clock()
            )

        return self._transact(work)

    def retry_failed(self, stage: str, artifact_ids: Iterable[int] | None = None) -> int:
        """Put ``failed`` items of ``stage`` back to ``pending`` with fresh attempts (an
        operator's decision after fixing the cause); their failed results are removed.

        Returns:
            How many items were reset.
        """
        stage = self.flow.check(stage)
        ids = None if artifact_ids is None else list(artifact_ids)

        def work(conn: Connection) -> int:
            cond = [_SS.stage == stage, _SS.status == Status.FAILED]
            if ids is not None:
                cond.append(_SS.artifact_id.in_(_many(ids)))
            failed = [r[0] for r in conn.execute(select(_SS.artifact_id).where(*cond))]
            for start in range(0, len(failed), MAX_BATCH):
                chunk = failed[start : start + MAX_BATCH]
                conn.execute(
                    delete(Result).where(Result.stage == stage, Result.artifact_id.in_(chunk))
                )
                conn.execute(
                    update(StageStatus)
                    .where(_SS.stage == stage, _SS.artifact_id.in_(chunk))
                    .values(
                        status=Status.PENDING,
                        attempts=0,
                        next_attempt_ns=self.clock(),
                        updated_ns=self.clock(),
                    )
                )
            return len(failed)

        return self._transact(work)

    # -- queries ------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """``{stage: {status: count}}`` over the whole manifest, stages in flow order."""

        def work(conn: Connection) -> list[tuple[str, str, int]]:
            stmt = select(_SS.stage, _SS.status, func.count()).group_by(_SS.stage, _SS.status)
            return [(str(a), str(b), int(n)) for a, b, n in conn.execute(stmt)]

        out: dict[str, dict[str, int]] = {s: {} for s in self.flow.stages}
        for stage, status, n in self._transact(work, read_only=True):
            out.setdefault(stage, {})[status] = n
        return out

    def result(self, artifact_id: int, stage: str) -> ResultRecord | None:
        """The recorded result of one artifact in one stage, or ``None``."""
        rows = self._results((Result.artifact_id == artifact_id, Result.stage == str(stage)), 1)
        return rows[0] if rows else None

    def results(
        self, stage: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[ResultRecord]:
        """Results recorded after ``after_seq`` (in recording order), of one stage or all."""
        cond = [Result.seq > after_seq]
        if stage is not None:
            cond.append(Result.stage == str(stage))
        return self._results(tuple(cond), limit)

    def catch_up_log(self) -> int:
        """Append to the results log the results of the logged stages recorded after the
        log's last line (lines lost when a process died between its commit and its append).
        Call it while no worker of a logged stage runs (at start-up).

        Returns:
            How many lines were appended.
        """
        if self.results_log is None:
            return 0
        last = self.results_log.last_seq()
        n = 0
        while True:
            batch = [r for r in self.results(after_seq=last, limit=MAX_BATCH)]
            if not batch:
                return n
            last = batch[-1].seq
            logged = [r for r in batch if r.stage in self.log_stages]
            lines = [
                results_line(
                    self.get(r.artifact_id),
                    r.stage,
                    seq=r.seq,
                    ok=r.ok,
                    payload=r.payload,
                    error=r.error,
                    recorded_ns=r.recorded_ns,
                )
                for r in logged
            ]
            self._write_lines(lines)
            n += len(lines)

    # -- internals ----------------------------------------------------------------------

    def _results(self, cond: tuple[Any, ...], limit: int) -> list[ResultRecord]:
        def work(conn: Connection) -> list[Row[Any]]:
            return list(
                conn.execute(
                    select(*Result.__table__.c).where(*cond).order_by(Result.seq).limit(limit)
                )
            )

        return [
            ResultRecord(
                seq=r.seq,
                artifact_id=r.artifact_id,
                stage=r.stage,
                ok=r.ok,
                payload=r.payload or {},
                error=r.error,
                owner=r.owner,
                attempt=r.attempt,
                recorded_ns=r.recorded_ns,
            )
            for r in self._transact(work, read_only=True)
        ]

    def _by_stage(self, leases: Sequence[Lease]) -> dict[str, list[Lease]]:
        if len(leases) > MAX_BATCH:
            raise ManifestError(f"at most {MAX_BATCH} items per call, not {len(leases)}")
        out: dict[str, list[Lease]] = defaultdict(list)
        for lease in leases:
            out[self.flow.check(lease.stage)].append(lease)
        return out

    def _held(self, conn: Connection, stage: str, leases: Sequence[Lease]) -> list[Lease]:
        """The leases of ``leases`` still held: the row is leased to the same owner with the
        same attempt. Locks those rows on PostgreSQL until the transaction ends."""
        rows = conn.execute(
            select(_SS.artifact_id, _SS.lease_owner, _SS.attempts)
            .where(
                _SS.stage == stage,
                _SS.artifact_id.in_(_many([x.artifact_id for x in leases])),
                self._status_expr == Status.LEASED,
            )
            .order_by(_SS.artifact_id)
            .with_for_update()
        )
        current = {r.artifact_id: (r.lease_owner, r.attempts) for r in rows}
        return [x for x in leases if current.get(x.artifact_id) == (x.owner, x.attempt)]

    def _held_stmt(self, values: dict[str, Any]) -> Any:
        """An update of the rows still held by a lease: leased, same owner, same attempt."""
        return (
            update(StageStatus)
            .where(
                _SS.stage == bindparam("p_stage"),
                _SS.artifact_id.in_(bindparam("p_ids", expanding=True, type_=BigInteger())),
                self._status_expr == Status.LEASED.value,
                _SS.lease_owner == bindparam("p_owner"),
                tuple_(_SS.artifact_id, _SS.attempts).in_(
                    bindparam("p_pairs", expanding=True, type_=_PAIR)
                ),
            )
            .values(**values)
            .returning(_SS.artifact_id)
        )

    def _update_held(
        self,
        conn: Connection,
        stmt: Any,
        stage: str,
        leases: Sequence[Lease],
        params: dict[str, Any],
    ) -> list[Lease]:
        """Run a :meth:`_held_stmt` for ``leases``, one execution per owner; returns the
        leases it changed (the others were no longer held)."""
        changed: set[int] = set()
        for owner, owned in _by_owner(leases).items():
            result = conn.execute(
                stmt,
                {
                    **params,
                    "p_stage": stage,
                    "p_owner": owner,
                    "p_ids": [x.artifact.id for x in owned],
                    "p_pairs": [(x.artifact.id, x.attempt) for x in owned],
                },
            )
            changed.update(r[0] for r in result)
        return [x for x in leases if x.artifact.id in changed]

    def _release_rows(self, conn: Connection, cond: tuple[Any, ...], now: int) -> int:
        result = conn.execute(
            update(StageStatus).where(*cond).values(**_RELEASE_VALUES), {"p_now": now}
        )
        return int(result.rowcount)

    def _apply_changes(
        self, conn: Connection, artifact: ArtifactRecord, change: ArtifactChanges, now: int
    ) -> ArtifactRecord:
        values: dict[str, Any] = {"updated_ns": now}
        if change.path is not None:
            values["path"] = str(change.path)
        if change.checksum is not None:
            values["checksum"] = change.checksum
        if change.size_bytes is not None:
            values["size_bytes"] = change.size_bytes
        if change.meta is not None:
            values["meta"] = _clean_json(change.meta, f"meta of {artifact.path}")
        try:  # a failure aborts the whole completion: nothing of it is recorded
            conn.execute(update(Artifact).where(Artifact.id == artifact.id).values(**values))
        except IntegrityError as exc:
            raise DuplicateArtifact(
                f"cannot move artifact {artifact.id} to {values.get('path')}: another artifact "
                "has that path; the completion was not recorded"
            ) from exc
        fields = {k: v for k, v in values.items() if k != "updated_ns"}
        return ArtifactRecord(**{**artifact.__dict__, **fields, "updated_ns": now})

    def _insert_results(
        self, conn: Connection, rows: list[dict[str, Any]], want_seq: bool
    ) -> list[int]:
        if not want_seq:
            conn.execute(_INSERT_RESULTS, rows)
            return [0] * len(rows)
        result = conn.execute(_INSERT_RESULTS_SEQ, rows)
        return [r[0] for r in result]

    def _finish_failed(
        self,
        conn: Connection,
        stage: str,
        dead: Sequence[tuple[ArtifactRecord, int, str, str | None]],
        now: int,
    ) -> list[dict[str, Any]]:
        """Mark items ``failed`` with their error and record failed results; ``dead`` holds
        (artifact, attempt, error, lease owner or ``None``). Returns the log lines to write
        after the commit."""
        by_error: dict[str, list[int]] = defaultdict(list)
        for artifact, _, err, _ in dead:
            by_error[err].append(artifact.id)
        for err, ids in by_error.items():
            conn.execute(
                update(StageStatus)
                .where(_SS.stage == stage, _SS.artifact_id.in_(_many(ids)))
                .values(
                    status=Status.FAILED,
                    lease_owner=None,
                    lease_expires_ns=None,
                    last_error=err,
                    updated_ns=now,
                )
            )
        rows: list[dict[str, Any]] = [
            {
                "artifact_id": artifact.id,
                "stage": stage,
                "ok": False,
                "payload": {},
                "error": err,
                "owner": owner,
                "attempt": attempt,
                "recorded_ns": now,
            }
            for artifact, attempt, err, owner in dead
        ]
        logged = self._logging and stage in self.log_stages
        seqs = self._insert_results(conn, rows, want_seq=logged)
        if not logged:
            return []
        return [
            results_line(artifact, stage, seq=seq, ok=False, payload={}, error=err, recorded_ns=now)
            for (artifact, _, err, _), seq in zip(dead, seqs, strict=True)
        ]

    def _unblock(self, conn: Connection, stage: str, ids: list[int], now: int) -> None:
        """Make the stages waiting for ``stage`` pending where all their prerequisites are
        done now (one statement for the stages that wait for ``stage`` alone)."""
        params = {"p_ids": ids, "p_now": now}
        dependents = self.flow.dependents(stage)
        alone = tuple(d for d in dependents if self.flow.prerequisites[d] == (stage,))
        if alone:
            conn.execute(self._unblock_stmt(alone, ()), params)
        for dependent in dependents:
            others = tuple(p for p in self.flow.prerequisites[dependent] if p != stage)
            if not others:
                continue
            if self._postgres:
                # two workers completing two prerequisites of one artifact at once: lock the
                # dependent rows first so the second sees the first's commit (READ COMMITTED
                # takes a new snapshot per statement)
                conn.execute(
                    select(_SS.artifact_id)
                    .where(_SS.stage == dependent, _SS.artifact_id.in_(_many(ids)))
                    .order_by(_SS.artifact_id)
                    .with_for_update()
                ).all()
            conn.execute(self._unblock_stmt((dependent,), others), params)

    def _unblock_stmt(self, stages: tuple[str, ...], others: tuple[str, ...]) -> Any:
        """``blocked`` rows of ``stages`` among ``p_ids`` become pending, when every stage of
        ``others`` is done for the artifact (built once per shape)."""
        key = (stages, others)
        stmt = self._unblock_stmts.get(key)
        if stmt is None:
            stmt = (
                update(StageStatus)
                .where(
                    _SS.stage.in_(stages),
                    self._status_expr == Status.BLOCKED.value,
                    _SS.artifact_id.in_(bindparam("p_ids", expanding=True, type_=BigInteger())),
                )
                .values(
                    status=Status.PENDING.value,
                    next_attempt_ns=bindparam("p_now"),
                    updated_ns=bindparam("p_now"),
                )
            )
            if others:
                stmt = stmt.where(
                    ~exists().where(
                        _SS_OTHER.c.artifact_id == StageStatus.__table__.c.artifact_id,
                        _SS_OTHER.c.stage.in_(others),
                        _SS_OTHER.c.status != Status.DONE.value,
                    )
                )
            self._unblock_stmts[key] = stmt
        return stmt

    def _write_lines(self, lines: list[dict[str, Any]]) -> None:
        if lines and self.results_log is not None:
            self.results_log.append(lines)


def _by_owner(leases: Sequence[Lease]) -> dict[str, list[Lease]]:
    out: dict[str, list[Lease]] = defaultdict(list)
    for lease in leases:
        out[lease.owner].append(lease)
    return out
