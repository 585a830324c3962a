"""What the supervisor does for a stage process that died (SIGKILL, crash, out of memory).

The supervisor reaped the process, so nothing it held can still be completed by it:

- :func:`expire_leases_of`: its leases end now instead of at their expiry, so the next
  claimer of the stage takes the items over at once. The attempt stays counted (unlike a
  release), so an item that kills every worker that touches it still ends ``failed`` after
  ``max_attempts``.
- :func:`catch_up_lines_of`: results it recorded in the manifest whose JSONL results line it
  did not append (it died between its commit and its append) are appended now. Only its last
  results can be missing, and only its own: the other workers append theirs themselves, so
  this runs while they keep working without writing a line twice.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson
from sqlalchemy import select, update

from rigwatch.pipeline.manifest import Manifest, Status, results_line
from rigwatch.pipeline.manifest.database import READ_ONLY
from rigwatch.pipeline.manifest.models import Result, StageStatus

log = logging.getLogger(__name__)

TAIL_BYTES = 8 * 2**20
"""How much of the end of each of the two newest log files is searched for a result's line."""


def expire_leases_of(manifest: Manifest, owner: str) -> int:
    """End every lease of ``owner`` (a process known to be dead) now. Returns how many."""
    now = time.time_ns()
    with manifest.engine.begin() as conn:
        result = conn.execute(
            update(StageStatus)
            .where(
                StageStatus.status == Status.LEASED.value,
                StageStatus.lease_owner == owner,
                StageStatus.lease_expires_ns > now,
            )
            .values(lease_expires_ns=now)
        )
    return int(result.rowcount)


def _logged_seqs(paths: list[Path]) -> set[int]:
    seqs: set[int] = set()
    for path in paths:
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - TAIL_BYTES))
                tail = fh.read()
        except OSError:
            continue
        for raw in tail.split(b"\n"):
            try:
                seq = orjson.loads(raw).get("seq")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(seq, int):
                seqs.add(seq)
    return seqs


def catch_up_lines_of(manifest: Manifest, owner: str, last: int = 1000) -> int:
    """Append the results lines of ``owner``'s last ``last`` results of the logged stages that
    are not in the log. Returns how many were appended."""
    results_log = manifest.results_log
    if results_log is None or not manifest.log_stages:
        return 0
    with manifest.engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(
            select(*Result.__table__.c)
            .where(Result.owner == owner, Result.stage.in_(sorted(manifest.log_stages)))
            .order_by(Result.seq.desc())
            .limit(last)
        ).all()
        conn.rollback()
    if not rows:
        return 0
    present = _logged_seqs(list(reversed(results_log.files()))[:2])
    missing = sorted((r for r in rows if r.seq not in present), key=lambda r: r.seq)
    lines = [
        results_line(
            manifest.get(r.artifact_id),
            r.stage,
            seq=r.seq,
            ok=r.ok,
            payload=r.payload or {},
            error=r.error,
            recorded_ns=r.recorded_ns,
        )
        for r in missing
    ]
    results_log.append(lines)
    if lines:
        log.info("results log: %d lines of %s caught up", len(lines), owner)
    return len(lines)
