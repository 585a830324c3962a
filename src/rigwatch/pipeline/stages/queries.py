"""Questions the stages ask the manifest that its API does not answer (read-only queries on
its tables): when a stage next has work, which paths it already holds, and how much is still
on local disk.

They read the manifest's own tables (:mod:`rigwatch.pipeline.manifest.models`) through its
engine and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text

from rigwatch.pipeline.manifest import Manifest, Stage, Status
from rigwatch.pipeline.manifest.database import READ_ONLY
from rigwatch.pipeline.manifest.models import Artifact, Result, StageStatus

CHUNK = 500


_PENDING = text("stage_status.status = 'pending'")  # literal: the partial indexes apply
_LEASED = text("stage_status.status = 'leased'")


def next_due_ns(manifest: Manifest, stage: str) -> int | None:
    """When ``stage`` next has an item to claim, ns since the epoch: the earliest
    ``next_attempt_ns`` of its pending rows or ``lease_expires_ns`` of its leased rows
    (``None``: nothing pending or leased).

    A read (no write lock on SQLite): an idle worker asks this before it claims, so idle
    workers polling do not queue for the lock the busy ones write under. Two index look-ups
    (the manifest's partial indexes on pending and leased rows).
    """
    with manifest.engine.connect().execution_options(**READ_ONLY) as conn:
        pending = conn.execute(
            select(func.min(StageStatus.next_attempt_ns)).where(
                StageStatus.stage == stage, _PENDING
            )
        ).scalar()
        leased = conn.execute(
            select(func.min(StageStatus.lease_expires_ns)).where(
                StageStatus.stage == stage, _LEASED
            )
        ).scalar()
        conn.rollback()
    times = [int(t) for t in (pending, leased) if t is not None]
    return min(times) if times else None


def stage_results(manifest: Manifest, stage: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    """``{artifact id: payload}`` of the successful ``stage`` results of ``ids`` (one query
    for a batch instead of one per artifact)."""
    out: dict[int, dict[str, Any]] = {}
    with manifest.engine.connect().execution_options(**READ_ONLY) as conn:
        for start in range(0, len(ids), CHUNK):
            rows = conn.execute(
                select(Result.artifact_id, Result.payload).where(
                    Result.stage == stage,
                    Result.ok.is_(True),
                    Result.artifact_id.in_(ids[start : start + CHUNK]),
                )
            )
            out.update((int(r[0]), dict(r[1] or {})) for r in rows)
        conn.rollback()
    return out


def known_paths(manifest: Manifest, paths: Iterable[str]) -> set[str]:
    """The paths of ``paths`` that are an artifact's path in the manifest."""
    wanted = list(dict.fromkeys(paths))
    found: set[str] = set()
    with manifest.engine.connect().execution_options(**READ_ONLY) as conn:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            found.update(
                r[0] for r in conn.execute(select(Artifact.path).where(Artifact.path.in_(chunk)))
            )
        conn.rollback()
    return found


def local_usage(manifest: Manifest) -> tuple[int, int]:
    """``(artifacts, bytes)`` still on local disk: artifacts whose retention stage is not done
    (their current size: compressed files count with their compressed size)."""
    with manifest.engine.connect().execution_options(**READ_ONLY) as conn:
        row = conn.execute(
            select(func.count(), func.coalesce(func.sum(Artifact.size_bytes), 0))
            .select_from(StageStatus)
            .join(Artifact, Artifact.id == StageStatus.artifact_id)
            .where(StageStatus.stage == Stage.RETENTION, StageStatus.status != Status.DONE)
        ).one()
        conn.rollback()
    return int(row[0] or 0), int(row[1] or 0)
