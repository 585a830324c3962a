"""The pipeline's manifest: a durable table of artifacts with per-stage status, leases,
retries and results, on SQLite (WAL, local disk) or PostgreSQL, through SQLAlchemy 2.

Typical worker loop::

    manifest = Manifest.open("data/manifest.sqlite", results_log=ResultsLog("results/r.jsonl"))
    me = worker_id("processor")
    leases = manifest.claim("process", me, limit=16, lease_s=60)
    for lease in leases:
        try:
            manifest.complete(lease, {"image_analysis": analyse(lease.artifact.path)})
        except BadInput as exc:
            manifest.fail(lease, str(exc), retry=False)
    ...
    manifest.release_owner(me)   # on SIGTERM
"""

from rigwatch.pipeline.manifest.backup import backup_sqlite
from rigwatch.pipeline.manifest.database import create_manifest_engine, migrate
from rigwatch.pipeline.manifest.flow import Flow, Stage, Status
from rigwatch.pipeline.manifest.records import (
    ArtifactChanges,
    ArtifactRecord,
    Lease,
    NewArtifact,
    Outcome,
    ResultRecord,
    RetryPolicy,
    StageState,
    worker_id,
)
from rigwatch.pipeline.manifest.results_log import ResultsLog, results_line
from rigwatch.pipeline.manifest.store import Manifest

__all__ = [
    "ArtifactChanges",
    "ArtifactRecord",
    "Flow",
    "Lease",
    "Manifest",
    "NewArtifact",
    "Outcome",
    "ResultRecord",
    "ResultsLog",
    "RetryPolicy",
    "Stage",
    "StageState",
    "Status",
    "backup_sqlite",
    "create_manifest_engine",
    "migrate",
    "results_line",
    "worker_id",
]
