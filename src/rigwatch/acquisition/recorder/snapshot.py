"""Buffer snapshots: the content of a ring buffer written to one Parquet file on demand."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.recorder.disk import is_disk_full
from rigwatch.acquisition.recorder.open_segment import row_group_rows
from rigwatch.counters import Counters
from rigwatch.errors import DiskFull, RecorderError
from rigwatch.recordings.files import SNAPSHOT_PREFIX, free_name, write_batches_atomically
from rigwatch.recordings.layout import recording_schema, rows_to_batch
from rigwatch.timefmt import file_stamp


def save_buffer_snapshot(
    stream: DeviceStream,
    directory: str | os.PathLike[str],
    codec: str = "zstd",
    station: str = "station",
    last_n: int | None = None,
    *,
    compression_level: int | None = None,
    fsync: bool = True,
    counters: Counters | None = None,
    chunk_rows: int | None = None,
) -> Path:
    """Write the ring buffer's readable rows (or the newest ``last_n``) to one Parquet file.

    The file ``buffer_<device>_<UTC now>.parquet`` (``-<n>`` appended if taken) appears
    atomically in ``directory``; its ``rigwatch.start_index`` is the first row's absolute index.
    The rows are read from the buffer one row group at a time (memory holds one, not the whole
    buffer), up to the write index at the call: acquisition is never blocked. Should the writer
    overwrite rows not yet read (a buffer far smaller than the snapshot takes to write), the
    snapshot ends before them, so it holds consecutive rows only; that is counted
    (``recorder.<device>.snapshot_truncated``).

    Args:
        chunk_rows: rows read (and written as one row group) at a time; default: the
            recorder's row-group size (64 MiB of rows).

    Returns:
        The file's path.

    Raises:
        DiskFull: no space left for the file (nothing is left behind).
        RecorderError: the buffer is empty, bad codec, or the file could not be written.
    """
    buf = stream.buffer
    end = buf.write_index
    start = buf.oldest_index if last_n is None else max(buf.oldest_index, end - max(0, last_n))
    chunk = chunk_rows or row_group_rows(buf.channels)
    first = buf.read_since(start, max_rows=min(chunk, end - start))
    while first.data.shape[0] == 0 and first.missed and buf.oldest_index < end:
        # overwritten as it was read: start again from the oldest row still there
        start = buf.oldest_index
        first = buf.read_since(start, max_rows=min(chunk, end - start))
    if first.data.shape[0] == 0:
        raise RecorderError(f"the buffer of {stream.name} is empty")
    schema = recording_schema(stream.info, station, first.start_index)

    def batches() -> Iterator[pa.RecordBatch]:
        r = first
        while True:
            yield rows_to_batch(schema, r.timestamps_ns, r.data)
            if r.end_index >= end:
                return
            r = buf.read_since(r.end_index, max_rows=min(chunk, end - r.end_index))
            if r.missed:  # overwritten before it was read: keep the file gap-free
                if counters is not None:
                    counters.inc(
                        f"recorder.{stream.name}.snapshot_truncated",
                        message=f"snapshot ends at index {r.start_index - r.missed}: the "
                        f"buffer was overwritten while it was written",
                    )
                return
            if r.data.shape[0] == 0:
                return

    out_dir = Path(directory)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        name = free_name(out_dir, f"{SNAPSHOT_PREFIX}{stream.name}_{file_stamp(time.time_ns())}")
        path = out_dir / name
        write_batches_atomically(batches(), schema, path, codec, compression_level, fsync=fsync)
        return path
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(f"cannot write buffer snapshot of {stream.name}: {exc}") from exc
        raise RecorderError(f"cannot write buffer snapshot of {stream.name}: {exc}") from exc
