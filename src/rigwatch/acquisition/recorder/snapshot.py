"""Buffer snapshots: the content of a ring buffer written to one Parquet file on demand."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.recorder.open_segment import row_group_rows
from rigwatch.errors import DiskFull, RecorderError
from rigwatch.recordings.files import SNAPSHOT_PREFIX, free_name, write_table_atomically
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
) -> Path:
    """Write the ring buffer's readable rows (or the newest ``last_n``) to one Parquet file.

    The file ``buffer_<device>_<UTC now>.parquet`` (``-<n>`` appended if taken) appears
    atomically in ``directory``; its ``rigwatch.start_index`` is the first row's absolute index.
    Reading is a copy: acquisition is not blocked.

    Returns:
        The file's path.

    Raises:
        DiskFull: no space left for the file (nothing is left behind).
        RecorderError: the buffer is empty, bad codec, or the file could not be written.
    """
    buf = stream.buffer
    r = buf.read_since(buf.oldest_index) if last_n is None else buf.snapshot(last_n)
    if r.data.shape[0] == 0:
        raise RecorderError(f"the buffer of {stream.name} is empty")
    out_dir = Path(directory)
    schema = recording_schema(stream.info, station, r.start_index)
    batch = rows_to_batch(schema, r.timestamps_ns, r.data)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        name = free_name(out_dir, f"{SNAPSHOT_PREFIX}{stream.name}_{file_stamp(time.time_ns())}")
        return write_table_atomically(
            [batch],
            schema,
            out_dir / name,
            codec,
            compression_level,
            row_group_rows=row_group_rows(buf.channels),
            fsync=fsync,
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"cannot write buffer snapshot of {stream.name}: {exc}") from exc
        raise RecorderError(f"cannot write buffer snapshot of {stream.name}: {exc}") from exc
