"""One open segment on disk: the temporary Parquet file being written and its crash journal.

For a segment that will become ``<name>.parquet`` (names and work files: see
:mod:`rigwatch.recordings.files`):

- ``.<name>.tmp``: the Parquet file being written, in row groups of bounded size;
- ``.<name>.arrows``: the crash journal, an Arrow IPC *stream* holding the schema then one
  record batch per flush; the file is flushed to the OS (and fsynced when ``config.fsync``)
  after each batch. It appears atomically, schema included (via ``.<name>.arrows.new``);
- closing: the Parquet writer is closed, the file fsynced and renamed to ``<name>``, the
  directory fsynced, then the journal deleted. A closed segment is always a complete file.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rigwatch.config.station import RecorderConfig
from rigwatch.recordings.files import NEW_SUFFIX, fsync_dir, fsync_path, journal_path, tmp_path
from rigwatch.recordings.layout import metadata_bytes, open_parquet_writer, rows_to_batch

ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
ROW_GROUP_MAX_ROWS = 1 << 20
# size estimate of a Parquet segment (measured with pyarrow 26, then rounded up):
_FIXED_OVERHEAD = 8192  # magic, footer framing, file-level metadata
_META_FACTOR = 3  # key-value metadata is stored twice (once base64 in ARROW:schema)
_PER_COLUMN = 384  # schema and column-chunk metadata per column
_PER_COLUMN_PER_ROW_GROUP = 256  # column-chunk metadata + statistics per row group
_DATA_MARGIN = 1.01  # page headers, codec framing on incompressible data


def row_group_rows(channels: int) -> int:
    """Rows per Parquet row group for ``channels`` float32 columns: 64 MiB of raw rows, at most
    1 Mi rows."""
    return max(1, min(ROW_GROUP_MAX_ROWS, ROW_GROUP_MAX_BYTES // (8 + 4 * channels)))


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _footer_bytes(columns: int, meta_bytes: int, row_groups: int) -> int:
    """Upper estimate of a Parquet file's non-data bytes (header, footer, metadata)."""
    return (
        _FIXED_OVERHEAD
        + _META_FACTOR * meta_bytes
        + _PER_COLUMN * columns
        + _PER_COLUMN_PER_ROW_GROUP * columns * row_groups
    )


class OpenSegment:
    """One open segment: the temporary Parquet file and its journal (see the module docstring).

    Raises:
        OSError: the journal or the Parquet file cannot be created (nothing is left behind).
        RecorderError: bad codec/level.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        schema: pa.Schema,
        first_ts: int,
        row_cap: int | None,
        config: RecorderConfig,
        rg_rows: int,
    ) -> None:
        self.name = name
        self.final = directory / name
        self.tmp = tmp_path(self.final)
        self.journal = journal_path(self.final)
        self.schema = schema
        self.first_ts = first_ts
        self.row_cap = row_cap
        self.rows = 0
        self.pending_rows = 0
        self._limit = config.segment_max_bytes
        self._columns = len(schema.names)
        self._row_bytes = 8 + 4 * (self._columns - 1)
        self._meta_bytes = metadata_bytes(schema.metadata)
        self._meta_bytes += sum(len(f.name) + 16 for f in schema)
        self._written_rows = 0  # rows in row groups already written to the file
        self._written_groups = 0
        self._written_bytes = 0  # file size after the last row group
        self._dir = directory
        self._fsync = config.fsync
        self._rg_rows = rg_rows
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._group: list[pa.RecordBatch] = []
        self._group_rows = 0
        self._writer: pq.ParquetWriter | None = None
        # the journal appears atomically with its schema, so a journal always has one
        new = self.journal.with_name(self.journal.name + NEW_SUFFIX)
        with open(new, "wb") as f:
            f.write(schema.serialize())
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(new, self.journal)
        self._jf = open(self.journal, "ab")  # noqa: SIM115 - kept open for the segment
        try:
            if self._fsync:
                fsync_dir(directory)
            self._writer = open_parquet_writer(
                self.tmp, schema, config.codec, config.compression_level
            )
        except BaseException:
            self.abort()
            self.journal.unlink(missing_ok=True)  # holds no rows yet
            self.tmp.unlink(missing_ok=True)
            raise

    def room(self) -> int:
        """Rows this segment can still take.

        Size bound: bytes of the row groups already in the file, plus the raw size of every
        row not yet in a row group (+1 %), plus the footer estimate, stays within
        ``segment_max_bytes`` (an upper bound of the closed file's size). A segment always
        takes its first row.
        """
        unwritten = self.rows - self._written_rows

        def estimate(extra: int) -> int:
            rows = unwritten + extra
            groups = self._written_groups + math.ceil(rows / self._rg_rows)
            return (
                self._written_bytes
                + _footer_bytes(self._columns, self._meta_bytes, groups)
                + math.ceil(_DATA_MARGIN * rows * self._row_bytes)
            )

        lo, hi = 0, max(0, self._limit // self._row_bytes)
        if self.row_cap is not None:
            hi = min(hi, self.row_cap - self.rows)
        while lo < hi:  # largest extra with estimate(extra) <= limit
            mid = (lo + hi + 1) // 2
            if estimate(mid) <= self._limit:
                lo = mid
            else:
                hi = mid - 1
        if self.rows == 0:
            return max(1, lo)
        return max(0, lo)

    def append(self, ts: np.ndarray, data: np.ndarray) -> None:
        """Queue rows for the next journal flush."""
        self._pending.append((ts, data))
        self.pending_rows += int(ts.shape[0])
        self.rows += int(ts.shape[0])

    def flush(self) -> int:
        """Journal the queued rows as one batch; write full row groups. Returns rows flushed."""
        if not self._pending:
            return 0
        ts = np.concatenate([p[0] for p in self._pending])
        data = np.concatenate([p[1] for p in self._pending])
        batch = rows_to_batch(self.schema, ts, data)
        self._jf.write(batch.serialize())
        self._jf.flush()
        if self._fsync:
            os.fsync(self._jf.fileno())
        n = self.pending_rows
        self._pending.clear()
        self.pending_rows = 0
        self._group.append(batch)
        self._group_rows += n
        if self._group_rows >= self._rg_rows:
            self._write_groups(final=False)
        return n

    def _write_groups(self, final: bool) -> None:
        assert self._writer is not None
        table = pa.Table.from_batches(self._group, schema=self.schema)
        off = 0
        while table.num_rows - off >= self._rg_rows or (final and off < table.num_rows):
            part = table.slice(off, self._rg_rows)
            self._writer.write_table(part, row_group_size=part.num_rows)
            off += part.num_rows
            self._written_rows += part.num_rows
            self._written_groups += 1
        self._written_bytes = file_size(self.tmp)
        rest = table.slice(off)
        self._group = rest.to_batches() if rest.num_rows else []
        self._group_rows = rest.num_rows

    def close(self) -> Path:
        """Finish the Parquet file, make it visible under its final name, drop the journal."""
        self.flush()
        assert self._writer is not None
        if self._group_rows:
            self._write_groups(final=True)
        self._writer.close()
        self._writer = None
        if self._fsync:
            fsync_path(self.tmp)
        os.replace(self.tmp, self.final)
        if self._fsync:
            fsync_dir(self._dir)
        self._jf.close()
        self.journal.unlink()
        return self.final

    def abort(self) -> None:
        """Release file handles, leaving the journal for :func:`recover`."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(Exception):
            self._jf.close()
