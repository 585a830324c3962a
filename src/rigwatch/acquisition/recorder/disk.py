"""The file system under a recordings directory as the recorder sees it: space and writes.

:class:`Disk` is the recorder's one seam to the operating system's file-system state: the
recorder and :class:`~rigwatch.acquisition.recorder.retention.Retention` ask it for the free
space, and :class:`~rigwatch.acquisition.recorder.open_segment.OpenSegment` tells it before
each write. The default reports what the operating system reports and lets every write through;
a subclass can report a full disk or make writes fail with ``ENOSPC``, deterministically.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from pathlib import Path

from rigwatch.errors import DiskFull

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``errno`` values meaning "no room for this write": no space left, disk quota exceeded."""


@dataclass(frozen=True)
class DiskUsage:
    """Size of a file system and the bytes this process may still write to it."""

    total_bytes: int
    free_bytes: int


class Disk:
    """The file system of the recordings, as seen by the recorder (see the module docstring)."""

    def usage(self, directory: Path) -> DiskUsage:
        """Size and free bytes of the file system holding ``directory``; free bytes are those
        available to this (unprivileged) process, not counting the blocks reserved for root.

        Raises:
            OSError: ``directory`` cannot be queried (it does not exist...).
        """
        u = shutil.disk_usage(directory)
        return DiskUsage(total_bytes=int(u.total), free_bytes=int(u.free))

    def before_write(self, path: Path, nbytes: int) -> None:
        """Called before about ``nbytes`` bytes are written to ``path`` (a journal batch, a
        Parquet row group, a Parquet footer). Does nothing here.

        Raises:
            OSError: in a subclass, to make that write fail as the operating system would
                (``OSError(errno.ENOSPC, ...)`` for a full disk).
        """


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from or while handling, is a
    :class:`~rigwatch.errors.DiskFull` or an :class:`OSError` with ``errno`` ``ENOSPC`` or
    ``EDQUOT`` (pyarrow keeps the ``errno`` of a failed write)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DiskFull):
            return True
        if isinstance(cur, OSError) and cur.errno in DISK_FULL_ERRNOS:
            return True
        cur = cur.__cause__ or cur.__context__
    return False
