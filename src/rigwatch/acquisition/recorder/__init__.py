"""The recorder: a ring-buffer reader per device writing rotating Parquet segments, split by job.

- :mod:`~rigwatch.acquisition.recorder.segments`: :class:`SegmentRecorder`, the thread that
  reads a device's buffer, rotates segments and reports its status;
- :mod:`~rigwatch.acquisition.recorder.open_segment`: one segment being written (temporary
  Parquet file plus crash journal);
- :mod:`~rigwatch.acquisition.recorder.recovery`: :func:`recover`, journals left by a crash
  into segments;
- :mod:`~rigwatch.acquisition.recorder.retention`: :class:`Retention`, which recordings of a
  directory are deleted, and the free-space floor;
- :mod:`~rigwatch.acquisition.recorder.disk`: :class:`Disk`, the file-system seam (free space,
  a hook before each write);
- :mod:`~rigwatch.acquisition.recorder.snapshot`: :func:`save_buffer_snapshot`.
"""

from rigwatch.acquisition.recorder.disk import Disk, DiskUsage, is_disk_full
from rigwatch.acquisition.recorder.recovery import recover
from rigwatch.acquisition.recorder.retention import Retention, Space
from rigwatch.acquisition.recorder.segments import SegmentRecorder
from rigwatch.acquisition.recorder.snapshot import save_buffer_snapshot

__all__ = [
    "Disk",
    "DiskUsage",
    "Retention",
    "SegmentRecorder",
    "Space",
    "is_disk_full",
    "recover",
    "save_buffer_snapshot",
]
