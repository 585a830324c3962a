"""Retention of a recordings directory: which recordings are deleted, and the free-space floor.

One :class:`Retention` serves one directory; a station shares it among the recorders of all its
devices (they write into the same directory), and it is safe to call from several threads.
It applies the ``[recorder.retention]`` limits (:class:`~rigwatch.config.station.RetentionConfig`)
to every *recording* of the directory: a visible ``.parquet`` file whose name follows the
recordings naming of :mod:`rigwatch.recordings.files` (segments, recovered segments, buffer
snapshots). Hidden work files (open segments' temporary files and journals), other files,
symbolic links and sub-directories are never deleted.

Order: oldest first by modification time, i.e. when the file was completed on this disk (a
device's clock, which names the file, may be wrong or replayed from years ago); ties are broken
by name. Each deletion is logged and counted: ``recorder.retention_deleted`` (files, the message
names the file and the rule) and ``recorder.retention_deleted_bytes``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rigwatch.acquisition.recorder.disk import Disk
from rigwatch.config.station import RetentionConfig
from rigwatch.counters import Counters
from rigwatch.errors import DiskFull
from rigwatch.recordings.files import is_recording_name

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE_BYTES = 1 << 30
"""Free-space floor when ``min_free_bytes`` is unset: 1 GiB..."""
DEFAULT_MIN_FREE_FRACTION = 0.05
"""...or 5 % of the file system's size when that is smaller (a 16 GB card keeps 0.8 GB)."""


def min_free_floor(config: RetentionConfig, total_bytes: int) -> int:
    """The free-space floor in bytes: ``config.min_free_bytes``, or when unset
    ``min(1 GiB, 5 % of total_bytes)``."""
    if config.min_free_bytes is not None:
        return config.min_free_bytes
    return min(DEFAULT_MIN_FREE_BYTES, int(total_bytes * DEFAULT_MIN_FREE_FRACTION))


@dataclass(frozen=True)
class Space:
    """Free space of the recordings file system against its floor, in bytes."""

    free_bytes: int
    total_bytes: int
    min_free_bytes: int

    @property
    def below_floor(self) -> bool:
        """True when ``free_bytes < min_free_bytes``."""
        return self.free_bytes < self.min_free_bytes


@dataclass(frozen=True)
class RecordingFile:
    """One recording as retention sees it."""

    path: Path
    size_bytes: int
    mtime_ns: int


class Retention:
    """Applies ``[recorder.retention]`` to one recordings directory (see the module docstring).

    Args:
        directory: the recordings directory (may not exist yet).
        config: the limits and the free-space floor.
        counters: where deletions and failed deletions (``recorder.retention_error``) are
            counted.
        disk: the file-system seam used for free space (default: the operating system's).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        config: RetentionConfig,
        counters: Counters,
        *,
        disk: Disk | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.config = config
        self.disk = disk if disk is not None else Disk()
        self._counters = counters
        self._lock = threading.Lock()
        self._deleted_files = 0
        self._deleted_bytes = 0

    @property
    def deleted_files(self) -> int:
        """Recordings this instance deleted since it was created."""
        with self._lock:
            return self._deleted_files

    @property
    def deleted_bytes(self) -> int:
        """Bytes of the recordings this instance deleted since it was created."""
        with self._lock:
            return self._deleted_bytes

    def space(self) -> Space:
        """Free bytes of the directory's file system and the floor that applies to it.

        Raises:
            OSError: the file system cannot be queried.
        """
        usage = self.disk.usage(self.directory)
        return Space(
            free_bytes=usage.free_bytes,
            total_bytes=usage.total_bytes,
            min_free_bytes=min_free_floor(self.config, usage.total_bytes),
        )

    def require_room(self, what: str) -> None:
        """Refuse to write when free space is below the floor; a file system that cannot be
        queried is no reason to refuse (the writes will tell).

        Args:
            what: names what would have been written, for the message.

        Raises:
            DiskFull: free space is below ``min_free_bytes``.
        """
        try:
            space = self.space()
        except OSError as exc:
            log.debug("cannot query free space of %s: %s", self.directory, exc)
            return
        if space.below_floor:
            raise DiskFull(
                f"no {what}: {self.directory} has {space.free_bytes} bytes free, below "
                f"min_free_bytes {space.min_free_bytes}"
            )

    def recordings(self) -> list[RecordingFile]:
        """The recordings retention applies to, oldest first; ``[]`` for a missing directory."""
        out: list[RecordingFile] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not is_recording_name(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:  # vanished meanwhile
                continue
            out.append(RecordingFile(Path(entry.path), st.st_size, st.st_mtime_ns))
        out.sort(key=lambda f: (f.mtime_ns, f.path.name))
        return out

    def enforce(self, keep: Collection[Path] = ()) -> list[Path]:
        """Delete the recordings beyond the limits, oldest first.

        In order: files older than ``max_age_s``; the oldest beyond ``max_files``; the oldest
        until the total is at most ``max_bytes``; with ``delete_for_min_free``, the oldest
        while free space is below the floor. Files in ``keep`` (the segment or snapshot just
        written) are not deleted by this call. Never raises: a file that cannot be deleted is
        logged, counted ``recorder.retention_error`` and kept; a directory that cannot be read
        deletes nothing.

        Returns:
            The files deleted by this call.
        """
        cfg = self.config
        if (
            cfg.max_files is None
            and cfg.max_age_s is None
            and cfg.max_bytes is None
            and not cfg.delete_for_min_free
        ):
            return []
        protected = {Path(p).name for p in keep}
        deleted: list[Path] = []
        with self._lock:
            try:
                files = self.recordings()
            except OSError as exc:
                log.warning("retention: cannot list %s: %s", self.directory, exc)
                self._counters.inc("recorder.retention_error", message=f"{self.directory}: {exc}")
                return []
            count = len(files)
            total = sum(f.size_bytes for f in files)
            # oldest first; a file is considered once per call (deleted, or kept when it
            # cannot be deleted: an undeletable file does not stop the others from going)
            candidates = deque(f for f in files if f.path.name not in protected)

            def drop(f: RecordingFile, reason: str) -> None:
                nonlocal count, total
                outcome = self._delete(f, reason)
                if outcome != "kept":
                    count -= 1
                    total -= f.size_bytes
                if outcome == "deleted":
                    deleted.append(f.path)

            if cfg.max_age_s is not None:
                cutoff = time.time_ns() - round(cfg.max_age_s * 1e9)
                young: deque[RecordingFile] = deque()
                for f in candidates:
                    if f.mtime_ns < cutoff:
                        drop(f, f"older than max_age_s={cfg.max_age_s:g}")
                    else:
                        young.append(f)
                candidates = young
            if cfg.max_files is not None:
                while count > cfg.max_files and candidates:
                    drop(candidates.popleft(), f"more than max_files={cfg.max_files}")
            if cfg.max_bytes is not None:
                while total > cfg.max_bytes and candidates:
                    drop(candidates.popleft(), f"more than max_bytes={cfg.max_bytes}")
            if cfg.delete_for_min_free:
                while candidates:
                    try:
                        space = self.space()
                    except OSError as exc:
                        log.warning("retention: cannot query free space: %s", exc)
                        break
                    if not space.below_floor:
                        break
                    drop(
                        candidates.popleft(),
                        f"{space.free_bytes} bytes free, below min_free_bytes="
                        f"{space.min_free_bytes}",
                    )
        return deleted

    def _delete(self, f: RecordingFile, reason: str) -> Literal["deleted", "gone", "kept"]:
        """Delete one recording (under ``_lock``): ``"deleted"`` by this call, ``"gone"``
        already (another process or instance), ``"kept"`` when it cannot be deleted."""
        try:
            f.path.unlink()
        except FileNotFoundError:
            return "gone"
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", f.path, exc)
            self._counters.inc("recorder.retention_error", message=f"{f.path.name}: {exc}")
            return "kept"
        self._deleted_files += 1
        self._deleted_bytes += f.size_bytes
        self._counters.inc("recorder.retention_deleted", message=f"{f.path.name}: {reason}")
        self._counters.inc("recorder.retention_deleted_bytes", f.size_bytes)
        log.info("retention: deleted %s (%d bytes): %s", f.path.name, f.size_bytes, reason)
        return "deleted"
