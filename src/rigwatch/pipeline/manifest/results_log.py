"""The results log: one JSON line per processed artifact, in today's results-line layout, with
rotation by size.

The manifest's ``results`` table is the record; this log is the plain-text copy that existing
tools read (``processing_results.jsonl``). A line holds today's keys::

    manifest_entry_timestamp, image_timestamp, temperature_timestamp, image_filename,
    processing_timestamp_iso, processing_successful, processing_error_message,
    image_analysis, temperature_readings

followed by rigwatch's own (``artifact_id``, ``kind``, ``path``, ``stage``, ``seq``) and any
other key of the stage's result (a vibration analysis, for example). Times are ISO 8601 UTC.

Rotation: when appending would make the file larger than ``max_bytes``, ``results.jsonl``
becomes ``results.jsonl.1`` (``.1`` becomes ``.2``...; the oldest beyond ``backups`` is
deleted). Appends and rotation happen under an ``fcntl`` lock on ``<log>.lock``, so workers
of several processes share one log and a line is never split or lost in a rotation.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from rigwatch.errors import PipelineError
from rigwatch.pipeline.manifest.records import ArtifactRecord
from rigwatch.timefmt import iso_utc

log = logging.getLogger(__name__)

LEGACY_KEYS = (
    "manifest_entry_timestamp",
    "image_timestamp",
    "temperature_timestamp",
    "image_filename",
    "processing_timestamp_iso",
    "processing_successful",
    "processing_error_message",
    "image_analysis",
    "temperature_readings",
)
"""Keys of today's results line, in its order."""


def results_line(
    artifact: ArtifactRecord,
    stage: str,
    *,
    seq: int,
    ok: bool,
    payload: Mapping[str, Any],
    error: str | None,
    recorded_ns: int,
) -> dict[str, Any]:
    """The JSONL line of one result.

    ``image_analysis`` and ``temperature_readings`` come from the result (the processor's
    output), else from the artifact's ``meta`` (what the collector read); a
    ``temperature_timestamp`` likewise.
    """
    meta = artifact.meta

    def pick(key: str) -> Any:
        return payload.get(key, meta.get(key))

    is_image = artifact.kind == "image"
    line: dict[str, Any] = {
        "manifest_entry_timestamp": iso_utc(artifact.created_ns),
        "image_timestamp": (
            iso_utc(artifact.captured_ns) if is_image and artifact.captured_ns else None
        ),
        "temperature_timestamp": pick("temperature_timestamp"),
        "image_filename": Path(artifact.path).name if is_image else None,
        "processing_timestamp_iso": iso_utc(recorded_ns),
        "processing_successful": ok,
        "processing_error_message": error,
        "image_analysis": pick("image_analysis"),
        "temperature_readings": pick("temperature_readings"),
        "artifact_id": artifact.id,
        "kind": artifact.kind,
        "path": artifact.path,
        "stage": stage,
        "seq": seq,
    }
    for key, value in payload.items():
        line.setdefault(key, value)
    return line


class ResultsLog:
    """An append-only JSONL file rotated by size.

    Args:
        path: the live file (``results/processing_results.jsonl``); its folder is created.
        max_bytes: rotate before the live file would exceed this size (> 0).
        backups: rotated files kept (``path.1`` newest ... ``path.<backups>`` oldest), >= 0.
        fsync: fsync after each append (off by default: the manifest is the durable record;
            :meth:`~rigwatch.pipeline.manifest.store.Manifest.catch_up_log` rewrites missing
            lines from it).

    Raises:
        PipelineError: bad sizes, or the folder cannot be created.
    """

    def __init__(
        self, path: str | Path, max_bytes: int = 64 * 2**20, backups: int = 10, fsync: bool = False
    ) -> None:
        if max_bytes <= 0 or backups < 0:
            raise PipelineError(f"results log: max_bytes must be > 0 and backups >= 0 ({path})")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PipelineError(f"results log folder {self.path.parent}: {exc}") from exc
        self._lock_path = self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def rotated(self, n: int) -> Path:
        """The ``n``-th rotated file (1 = newest)."""
        return self.path.with_name(f"{self.path.name}.{n}")

    def files(self) -> list[Path]:
        """Existing log files, oldest first, the live file last."""
        out = [self.rotated(n) for n in range(self.backups, 0, -1) if self.rotated(n).exists()]
        if self.path.exists():
            out.append(self.path)
        return out

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        self.rotated(self.backups).unlink(missing_ok=True)
        for n in range(self.backups - 1, 0, -1):
            if self.rotated(n).exists():
                os.replace(self.rotated(n), self.rotated(n + 1))
        os.replace(self.path, self.rotated(1))
        log.info("rotated results log %s", self.path)

    def append(self, lines: Sequence[Mapping[str, Any]]) -> None:
        """Append ``lines`` (JSON objects), rotating first when they would not fit.

        A batch larger than ``max_bytes`` is written to a fresh file of its own.

        Raises:
            PipelineError: the file cannot be written (disk full...); lines already written
                stay complete.
        """
        if not lines:
            return
        data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        try:
            with self._locked():
                size = self.path.stat().st_size if self.path.exists() else 0
                if size > 0 and size + len(data) > self.max_bytes:
                    self._rotate()
                with open(self.path, "ab") as fh:
                    fh.write(data)
                    fh.flush()
                    if self.fsync:
                        os.fsync(fh.fileno())
        except OSError as exc:
            raise PipelineError(f"cannot append to results log {self.path}: {exc}") from exc

    def read(self) -> Iterator[dict[str, Any]]:
        """Every line of every log file, oldest first (an incomplete last line is skipped)."""
        for path in self.files():
            with open(path, "rb") as fh:
                for raw in fh:
                    if raw.endswith(b"\n"):
                        yield orjson.loads(raw)

    def last_seq(self) -> int:
        """The highest ``seq`` in the log files (0 for an empty log)."""
        best = 0
        for path in reversed(self.files()):
            for raw in path.read_bytes().splitlines():
                try:
                    best = max(best, int(orjson.loads(raw).get("seq", 0)))
                except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
                    continue
            if best:
                return best
        return best
