"""The recorder: a ring-buffer reader per device writing rotating Parquet segments, split by job.

- :mod:`~rigwatch.acquisition.recorder.segments`: :class:`SegmentRecorder`, the thread that
  reads a device's buffer, rotates segments and reports its status;
- :mod:`~rigwatch.acquisition.recorder.open_segment`: one segment being written (temporary
  Parquet file plus crash journal);
- :mod:`~rigwatch.acquisition.recorder.recovery`: :func:`recover`, journals left by a crash
  into segments;
- :mod:`~rigwatch.acquisition.recorder.snapshot`: :func:`save_buffer_snapshot`.
"""

from rigwatch.acquisition.recorder.recovery import recover
from rigwatch.acquisition.recorder.segments import SegmentRecorder
from rigwatch.acquisition.recorder.snapshot import save_buffer_snapshot

__all__ = ["SegmentRecorder", "recover", "save_buffer_snapshot"]
