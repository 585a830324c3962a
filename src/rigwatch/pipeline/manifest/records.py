"""Plain values handed in and out of the manifest (never live ORM objects, so they cross
threads and processes freely)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rigwatch.timefmt import NS_PER_S


def worker_id(name: str = "worker") -> str:
    """A lease owner id unique to this worker instance: ``<name>@<host>:<pid>:<random>``.

    Unique across restarts and hosts, so a restarted worker never mistakes a lease of its
    previous life for its own.
    """
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class NewArtifact:
    """An artifact to add.

    Attributes:
        kind: ``image``, ``segment``, ``temperature``...
        path: the file (unique in the manifest).
        checksum: SHA-256, lowercase hex, or ``None``.
        size_bytes: file size in bytes, or ``None``.
        captured_ns: when the data were taken, ns since the Unix epoch (UTC), or ``None``.
        meta: what the collector knows (JSON object: camera index, temperature readings...).
    """

    kind: str
    path: str | Path
    checksum: str | None = None
    size_bytes: int | None = None
    captured_ns: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact as stored (see :class:`~rigwatch.pipeline.manifest.models.Artifact`)."""

    id: int
    kind: str
    path: str
    checksum: str | None
    size_bytes: int | None
    captured_ns: int | None
    created_ns: int
    updated_ns: int
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class ArtifactChanges:
    """Changes to an artifact's own fields recorded with a completion, in the same
    transaction (the compressor's new path, size and checksum). ``None`` leaves a field."""

    path: str | Path | None = None
    checksum: str | None = None
    size_bytes: int | None = None
    meta: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Lease:
    """A worker's claim on one artifact in one stage.

    Attributes:
        artifact: the artifact as it was when claimed.
        stage: the stage claimed.
        owner: the worker holding the lease.
        attempt: which attempt this is (1 for the first); it fences the lease: a report made
            with an older attempt's lease is refused.
        expires_ns: when another worker may reclaim the item unless a heartbeat extends it.
    """

    artifact: ArtifactRecord
    stage: str
    owner: str
    attempt: int
    expires_ns: int

    @property
    def artifact_id(self) -> int:
        """The claimed artifact's id."""
        return self.artifact.id


@dataclass(frozen=True)
class StageState:
    """One artifact's state in one stage."""

    stage: str
    status: str
    attempts: int
    next_attempt_ns: int
    lease_owner: str | None
    lease_expires_ns: int | None
    last_error: str | None


@dataclass(frozen=True)
class ResultRecord:
    """A recorded result (see :class:`~rigwatch.pipeline.manifest.models.Result`)."""

    seq: int
    artifact_id: int
    stage: str
    ok: bool
    payload: Mapping[str, Any]
    error: str | None
    owner: str | None
    attempt: int
    recorded_ns: int


@dataclass(frozen=True)
class Outcome:
    """What became of a batch of reports.

    Attributes:
        done: artifact ids completed (``complete``) or failed for good (``fail``).
        retrying: artifact ids put back to ``pending`` with a backoff (``fail`` only).
        refused: artifact ids whose lease the reporter no longer held (nothing changed).
    """

    done: tuple[int, ...] = ()
    retrying: tuple[int, ...] = ()
    refused: tuple[int, ...] = ()


@dataclass(frozen=True)
class RetryPolicy:
    """How failures are retried.

    A failed attempt ``n`` (1-based) is retried after ``min(backoff_max_s, backoff_base_s *
    2**(n - 1))`` seconds (exponential backoff, e.g. AWS Architecture Blog, "Exponential
    Backoff and Jitter", 2015; no jitter: workers of one machine do not stampede a remote
    service together). After ``max_attempts`` attempts, or when a lease expired that many
    times (a worker that dies on the item), the stage ends ``failed`` with the error kept.
    """

    max_attempts: int = 5
    backoff_base_s: float = 2.0
    backoff_max_s: float = 600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("max_attempts must be >= 1 and backoff times >= 0")

    def delay_ns(self, attempt: int) -> int:
        """Backoff before the attempt after failed attempt ``attempt``, ns."""
        seconds = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(max(attempt - 1, 0), 60))
        return round(seconds * NS_PER_S)
