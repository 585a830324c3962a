"""Export of a recording (or some of its channels) to CSV or Parquet, row group by row group,
so a file of any size is exported in bounded memory."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from rigwatch.errors import FormatError, RecordingError
from rigwatch.recordings.files import tmp_path
from rigwatch.recordings.layout import (
    TIMESTAMP_COLUMN,
    channel_columns,
    open_parquet_writer,
    restrict_channels,
)
from rigwatch.recordings.query import open_recording, select_channels

ExportFormat = Literal["csv", "parquet"]


def export_recording(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: ExportFormat,
    channels: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    codec: str = "zstd",
) -> int:
    """Copy a recording (or some of its channels) to CSV or Parquet.

    CSV has a header line; ``timestamp`` is ISO 8601 UTC text with ns
    (``2024-05-01T12:00:00.123456789Z``), values are the float32 values' shortest text.
    Parquet keeps the recording layout and metadata (``rigwatch.channels`` restricted to the
    exported channels). The output appears atomically (written to ``.<name>.tmp`` beside it).

    Args:
        path: source recording.
        out_path: destination file (replaced if it exists; must differ from ``path``).
        fmt: ``"csv"`` or ``"parquet"``.
        channels: channels to export; ``None`` for all.
        progress: called as ``progress(rows_done, rows_total)`` after each row group.
        codec: Parquet codec of the output.

    Returns:
        Rows written.

    Raises:
        UnknownChannel: a channel is not in the file.
        FormatError: the source is not a readable recording.
        RecordingError: ``out_path`` is the source.
        ValueError: unknown ``fmt``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    src = Path(path)
    dst = Path(out_path)
    if dst.resolve() == src.resolve():
        raise RecordingError(f"cannot export {src.name} onto itself")
    tmp = tmp_path(dst)
    done = 0
    with open_recording(src) as pf:
        schema = pf.schema_arrow
        chans = select_channels(channel_columns(schema), channels)
        out_schema = restrict_channels(schema, chans)
        cols = out_schema.names
        total = int(pf.metadata.num_rows)
        ts_as_text = cols[0] == TIMESTAMP_COLUMN and pa.types.is_timestamp(out_schema.field(0).type)
        csv_schema = (
            pa.schema([pa.field(TIMESTAMP_COLUMN, pa.string()), *list(out_schema)[1:]])
            if ts_as_text
            else out_schema.remove_metadata()
        )
        try:
            writer: Any = (
                open_parquet_writer(tmp, out_schema, codec)
                if fmt == "parquet"
                else pcsv.CSVWriter(os.fspath(tmp), csv_schema)
            )
            try:
                for rg in range(pf.metadata.num_row_groups):
                    try:
                        t = pf.read_row_group(rg, columns=cols)
                    except (pa.ArrowException, OSError) as exc:
                        raise FormatError(
                            f"{src.name}: row group {rg} cannot be read (corrupt file): {exc}"
                        ) from exc
                    if fmt == "parquet":
                        t = pa.Table.from_arrays(t.columns, schema=out_schema)
                        writer.write_table(t, row_group_size=max(1, t.num_rows))
                    else:
                        arrays = list(t.columns)
                        if ts_as_text:  # ISO 8601 in UTC; naive cast keeps the UTC value
                            naive = arrays[0].cast(pa.timestamp(arrays[0].type.unit))
                            arrays[0] = pc.strftime(naive, format="%Y-%m-%dT%H:%M:%SZ")
                        writer.write_table(pa.Table.from_arrays(arrays, schema=csv_schema))
                    done += t.num_rows
                    if progress is not None:
                        progress(done, total)
            finally:
                writer.close()
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return done
