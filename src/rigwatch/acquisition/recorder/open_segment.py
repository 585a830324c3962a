"""One open segment on disk: the temporary Parquet file being written and its crash journal.

For a segment that will become ``<name>.parquet`` (names and work files: see
:mod:`rigwatch.recordings.files`):

- ``.<name>.tmp``: the Parquet file being written, in row groups of bounded size;
- ``.<name>.arrows``: the crash journal, an Arrow IPC *stream* holding the schema then one
  record batch per flush; the file is flushed to the OS (and fsynced when ``config.fsync``)
  after each batch. It appears atomically, schema included (via ``.<name>.arrows.new``);
- closing: the Parquet writer is closed, the file fsynced and renamed to ``<name>``, the
  directory fsynced, then the journal deleted. A closed segment is always a complete file;
- abandoning (a write failed, the disk is full): the partial temporary file is deleted and the
  journal kept, so its rows up to the last complete batch become the segment later
  (:func:`~rigwatch.acquisition.recorder.recovery.recover_journal`).

Every write is announced to a :class:`~rigwatch.acquisition.recorder.disk.Disk` first (the
seam through which tests make writes fail).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rigwatch.acquisition.recorder.disk import Disk
from rigwatch.config.station import RecorderConfig
from rigwatch.recordings.files import NEW_SUFFIX, fsync_dir, fsync_path, journal_path, tmp_path
from rigwatch.recordings.layout import blocks_to_batch, metadata_bytes, open_parquet_writer
from rigwatch.threads import background_pool

ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
ROW_GROUP_MAX_ROWS = 1 << 20
# size estimate of a Parquet segment (measured with pyarrow 26, then rounded up):
_FIXED_OVERHEAD = 8192  # magic, footer framing, file-level metadata
_META_FACTOR = 3  # key-value metadata is stored twice (once base64 in ARROW:schema)
_PER_COLUMN = 384  # schema and column-chunk metadata per column
_PER_COLUMN_PER_ROW_GROUP = 256  # column-chunk metadata + statistics per row group
_DATA_MARGIN = 1.01  # page headers, codec framing on incompressible data
MAX_QUEUED_WRITES = 2
"""Row groups (or journal batches) a segment handed to a writer thread and not yet done; one
more waits for the oldest, so a recorder that cannot keep up falls behind in the ring buffer
(and is told so), never in memory."""


class Writers:
    """A recorder's writer threads, one each, used by every segment it opens in turn:
    ``encode`` (Parquet row groups: zstd and byte-stream split release the GIL), ``sync``
    (journal appends and fsyncs) and ``publish`` (fsync, rename and journal removal of a
    sealed segment). They run at a lower scheduling priority than acquisition and the live
    stream (:func:`rigwatch.threads.background_pool`).

    Args:
        device: names the threads (``encode-<device>``...).
    """

    def __init__(self, device: str) -> None:
        self.encode = background_pool(1, f"encode-{device}")
        self.sync = background_pool(1, f"sync-{device}")
        self.publish = background_pool(1, f"publish-{device}")

    def shutdown(self) -> None:
        """Finish what was handed over, then end the threads."""
        for pool in (self.encode, self.sync, self.publish):
            pool.shutdown(wait=True)


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

    Args:
        directory: the recordings directory.
        name: the segment's final file name (``<name>``).
        schema: the recording schema (timestamp column, then one float32 column per channel).
        first_ts: timestamp of the segment's first row, int64 ns since the epoch.
        row_cap: most rows the segment takes (``None``: no row bound).
        config: size bound, codec, compression level and fsync policy.
        rg_rows: rows per Parquet row group.
        writers: the recorder's threads row groups and journal batches are handed to.
        disk: told before every write (default: lets every write through).

    Attributes:
        rows: rows appended; ``journaled_rows``: rows of complete journal batches;
        pending_rows: rows appended but not yet journaled; ``failed``: a write of this
        segment raised (its temporary Parquet file may be inconsistent: abandon it).

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
        writers: Writers,
        *,
        disk: Disk | None = None,
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
        self.journaled_rows = 0
        self.failed = False
        self._disk = disk if disk is not None else Disk()
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
        # row groups and journal batches go to the writer threads, beside the recorder's
        # reading; their errors surface at the next flush or at the seal
        self._written_lock = threading.Lock()
        self._pools = {"encode": writers.encode, "sync": writers.sync}
        self._queued: dict[str, list[Future[None]]] = {"encode": [], "sync": []}
        # the journal appears atomically with its schema, so a journal always has one
        new = self.journal.with_name(self.journal.name + NEW_SUFFIX)
        header = schema.serialize()
        try:
            self._disk.before_write(new, header.size)
            with open(new, "wb") as f:
                f.write(header)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            os.replace(new, self.journal)
        except BaseException:
            new.unlink(missing_ok=True)
            raise
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
        with self._written_lock:
            written_rows = self._written_rows
            written_groups = self._written_groups
            written_bytes = self._written_bytes
        unwritten = self.rows - written_rows

        def estimate(extra: int) -> int:
            rows = unwritten + extra
            groups = written_groups + math.ceil(rows / self._rg_rows)
            return (
                written_bytes
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

    def flush(self, wait: bool = False) -> int:
        """Journal the queued rows as one batch and write full row groups, on the segment's
        writer threads (journal: ``"sync"``; Parquet: ``"encode"``).

        Args:
            wait: return only once the journal holds every row flushed so far (and raise
                what failed); otherwise a failure surfaces at a later flush or the close.

        Returns:
            Rows handed to the journal now.

        Raises:
            OSError: a write of this or an earlier flush failed (``failed`` is then set).
        """
        self._raise_queued_error()
        n = self.pending_rows
        if self._pending:
            batch = blocks_to_batch(self.schema, self._pending)
            self._pending.clear()
            self.pending_rows = 0
            self._queue("sync", self._journal_batch, batch, n)
            self._group.append(batch)
            self._group_rows += n
            if self._group_rows >= self._rg_rows:
                self._write_groups(final=False)
        if wait:
            self._drain("sync")
        return n

    def _journal_batch(self, batch: pa.RecordBatch, rows: int) -> None:
        """Append one batch to the journal, flush it to the OS and fsync it (on the sync
        writer thread)."""
        payload = batch.serialize()
        self._disk.before_write(self.journal, payload.size)
        self._jf.write(payload)
        self._jf.flush()
        if self._fsync:
            os.fsync(self._jf.fileno())
        with self._written_lock:
            self.journaled_rows += rows

    def _queue(self, worker: str, fn: Callable[..., Any], *args: object) -> None:
        """Run ``fn(*args)`` on the ``worker`` thread (``"encode"``: Parquet row groups;
        ``"sync"``: journal writes and fsyncs), after what this segment queued there before;
        with :data:`MAX_QUEUED_WRITES` queued, wait for the oldest first.

        Raises:
            OSError: a queued write failed (``failed`` is then set).
        """
        queue = self._queued[worker]
        while len(queue) >= MAX_QUEUED_WRITES:
            self._wait_oldest(queue)
        queue.append(self._pools[worker].submit(fn, *args))

    def _wait_oldest(self, queue: list[Future[None]]) -> None:
        future = queue.pop(0)
        try:
            future.result()
        except BaseException:
            self.failed = True
            raise

    def _raise_queued_error(self) -> None:
        """Raise the error of a queued write that failed, if any (without waiting)."""
        for queue in self._queued.values():
            while queue and queue[0].done():
                self._wait_oldest(queue)

    def _drain(self, worker: str | None = None) -> None:
        """Wait for every queued write (of ``worker`` only, when given).

        Raises:
            OSError: one of them failed (``failed`` is then set; the rest were still waited for).
        """
        error: BaseException | None = None
        for name, queue in self._queued.items():
            if worker is not None and name != worker:
                continue
            while queue:
                try:
                    self._wait_oldest(queue)
                except BaseException as exc:
                    error = error or exc
        if error is not None:
            raise error

    def _write_groups(self, final: bool) -> None:
        table = pa.Table.from_batches(self._group, schema=self.schema)
        off = 0
        parts: list[pa.Table] = []
        while table.num_rows - off >= self._rg_rows or (final and off < table.num_rows):
            part = table.slice(off, self._rg_rows)
            parts.append(part)
            off += part.num_rows
        rest = table.slice(off)
        self._group = rest.to_batches() if rest.num_rows else []
        self._group_rows = rest.num_rows
        for part in parts:
            self._queue("encode", self._write_row_group, part)

    def _write_row_group(self, part: pa.Table) -> None:
        """Encode and write one row group (on the writer thread)."""
        assert self._writer is not None
        self._disk.before_write(self.tmp, part.nbytes)
        self._writer.write_table(part, row_group_size=part.num_rows)
        size = file_size(self.tmp)
        with self._written_lock:
            self._written_rows += part.num_rows
            self._written_groups += 1
            self._written_bytes = size

    def close(self) -> Path:
        """Finish the Parquet file, make it visible under its final name, drop the journal
        (:meth:`seal` then :meth:`publish`).

        Returns:
            The closed segment's path.

        Raises:
            OSError: a write failed before the file became visible (``failed`` is set; the
                segment is still open: :meth:`abandon` it).
        """
        self.seal()
        return self.publish()

    def seal(self) -> None:
        """Journal and write every row, wait for the writer threads, write the Parquet footer:
        the temporary file is now complete (and the journal still holds every row).

        Raises:
            OSError: a write failed (``failed`` is set; :meth:`abandon` the segment).
        """
        self.flush()
        assert self._writer is not None
        if self._group_rows:
            self._write_groups(final=True)
        self._drain()
        try:
            footer = _footer_bytes(self._columns, self._meta_bytes, self._written_groups)
            self._disk.before_write(self.tmp, footer)
            self._writer.close()
            self._writer = None
        except BaseException:
            self.failed = True
            raise

    def publish(self) -> Path:
        """After :meth:`seal`: fsync the file, rename it to its final name, fsync the
        directory, delete the journal. Only waits on the disk, so a recorder hands it to its
        ``publish`` thread.

        Returns:
            The segment's final path.

        Raises:
            OSError: fsync or rename failed (the temporary file and the journal stay: the
                next :func:`~rigwatch.acquisition.recorder.recovery.recover` turns the journal
                into the segment).
        """
        if self._fsync:
            fsync_path(self.tmp)
        os.replace(self.tmp, self.final)
        if self._fsync:
            fsync_dir(self._dir)
        self._jf.close()
        self.journal.unlink()
        return self.final

    def abandon(self) -> int:
        """Give the segment up after a failed write: release the file handles, delete the
        partial temporary Parquet file, keep the journal (its complete batches are the rows
        :func:`~rigwatch.acquisition.recorder.recovery.recover_journal` makes a segment of).

        Returns:
            Rows of this segment that are in no complete journal batch: lost.
        """
        self.abort()
        with contextlib.suppress(OSError):
            self.tmp.unlink(missing_ok=True)
        return self.rows - self.journaled_rows

    def abort(self) -> None:
        """Release file handles, leaving the journal for :func:`recover`."""
        with contextlib.suppress(BaseException):
            self._drain()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        with contextlib.suppress(Exception):
            self._jf.close()
