"""Retention: the sync-aware ring buffer of local files, by count and by bytes.

Local usage counts every artifact whose ``retention`` stage is not done yet, with its current
size (a compressed file counts with its compressed size). While usage is above ``max_count``
or ``max_bytes``, the oldest artifacts whose ``retention`` stage is ready are deleted. The
manifest's flow makes that stage ready only once the artifact is processed, reported and,
with sync on, synced: an artifact not yet synced or processed is never deleted (usage may
then stay above the bounds; the collector's free-space floor protects the disk).

A compressed artifact's leftover original (the compressor died between its commit and deleting
the original) is deleted with it. A deleted artifact keeps its row (``retention`` done, the
result says what was freed).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from rigwatch.pipeline.manifest import Lease, Manifest
from rigwatch.pipeline.stages.queries import local_usage
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import ClaimingStage, Handled, WorkerSettings, data_path

log = logging.getLogger(__name__)


class Retention(ClaimingStage):
    """The retention stage.

    Args:
        max_count: most artifacts on local disk (``None``: no bound).
        max_bytes: most bytes on local disk (``None``: no bound).
    """

    name = "retention"
    stage = "retention"

    def __init__(
        self,
        manifest: Manifest,
        max_count: int | None = None,
        max_bytes: int | None = None,
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(manifest, settings, status, owner)
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._bytes_over = 0

    def claim_limit(self) -> int:
        count, nbytes = local_usage(self.manifest)
        self.status.data["local_count"] = count
        self.status.data["local_bytes"] = nbytes
        over = 0
        if self.max_count is not None:
            over = max(over, count - self.max_count)
        self._bytes_over = 0 if self.max_bytes is None else max(0, nbytes - self.max_bytes)
        if self._bytes_over > 0 and count > 0:
            # files of the average size that free the excess (the oldest are about average)
            over = max(over, math.ceil(self._bytes_over / max(nbytes / count, 1.0)))
        return over

    def handle(self, lease: Lease) -> Handled:
        path = data_path(lease)
        size = 0
        for p in (path, *_original_of(lease)):
            size += p.stat().st_size if p.exists() else 0
            p.unlink(missing_ok=True)
        self.sync_dir_before_commit(path.parent)
        return Handled({"deleted": str(path), "freed_bytes": size})


def _original_of(lease: Lease) -> list[Path]:
    """The uncompressed original of a compressed artifact, when the compressor died between
    recording the compressed file and deleting the original (it is freed with the artifact)."""
    path = data_path(lease)
    if "codec" not in lease.artifact.meta or path.suffix not in (".gz", ".zst"):
        return []
    return [path.with_suffix("")]
