"""Segment recorder: a ring-buffer reader that writes a device's stream to Parquet segments.

The recorder never slows acquisition: the acquisition thread only sets a
:class:`threading.Event`; the recorder's own thread reads the ring buffer from its own position
and does all the I/O. If it falls behind by more than the buffer's capacity, the rows it lost
are counted (``recorder.<device>.missed_rows``) and the open segment is closed, so that every
segment holds consecutive rows (its ``rigwatch.start_index`` plus row number is the absolute
index of each row).

Files in the recordings directory (see :mod:`rigwatch.acquisition.parquet_files` for the
layout), for a segment ``<device>_<UTC start>Z.parquet``:

- ``.<name>.tmp``: the Parquet file being written (row groups of bounded size);
- ``.<name>.arrows``: the crash journal, an Arrow IPC *stream* holding the schema then one
  record batch per flush (at most ``flush_interval_s`` apart); the file is flushed to the OS
  (and fsynced when ``config.fsync``) after each batch;
- closing a segment: the Parquet writer is closed, the file fsynced and renamed to ``<name>``,
  the directory fsynced, then the journal deleted. A closed segment is therefore always a
  complete Parquet file.

After a crash, :func:`recover` (called before recording starts) turns each leftover journal
into the segment it was journaling, up to its last complete batch: at most the last flush
interval of the open segment is lost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.parquet_files import (
    META_FORMAT_VERSION,
    TIMESTAMP_COLUMN,
    fsync_dir,
    fsync_path,
    open_parquet_writer,
    recording_schema,
    rows_to_batch,
    write_table_atomically,
    writer_options,
)
from rigwatch.config.station import RecorderConfig
from rigwatch.counters import Counters
from rigwatch.errors import RecorderError

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".arrows"
TMP_SUFFIX = ".tmp"
_ENDED_STATES = frozenset({"finished", "failed", "stopped"})
_ROW_GROUP_MAX_BYTES = 64 * 1024 * 1024
_ROW_GROUP_MAX_ROWS = 1 << 20
_READ_CHUNK_BYTES = 16 * 1024 * 1024
# size estimate of a Parquet segment (measured with pyarrow 26, then rounded up):
_FIXED_OVERHEAD = 8192  # magic, footer framing, file-level metadata
_META_FACTOR = 3  # key-value metadata is stored twice (once base64 in ARROW:schema)
_PER_COLUMN = 384  # schema and column-chunk metadata per column
_PER_COLUMN_PER_ROW_GROUP = 256  # column-chunk metadata + statistics per row group
_DATA_MARGIN = 1.01  # page headers, codec framing on incompressible data
_DURATION_ROW_GUARD = 2.0  # a segment also ends after 2 x duration x rate rows
_ERROR_BACKOFF_S = 1.0


def utc_stamp(ts_ns: int) -> str:
    """``%Y%m%dT%H%M%S_%fZ`` of a ns timestamp (wall clock now when out of range)."""
    try:
        dt = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).replace(
            microsecond=(ts_ns % 1_000_000_000) // 1000
        )
    except (OverflowError, OSError, ValueError):
        dt = datetime.now(tz=UTC)
    return dt.strftime("%Y%m%dT%H%M%S_%fZ")


def _free_name(directory: Path, stem: str) -> str:
    """``<stem>.parquet``, or ``<stem>-<n>.parquet`` if that name or its work files exist."""
    n = 0
    while True:
        name = f"{stem}.parquet" if n == 0 else f"{stem}-{n}.parquet"
        taken = (
            (directory / name).exists()
            or (directory / f".{name}{TMP_SUFFIX}").exists()
            or (directory / f".{name}{JOURNAL_SUFFIX}").exists()
        )
        if not taken:
            return name
        n += 1


def _row_group_rows(channels: int) -> int:
    return max(1, min(_ROW_GROUP_MAX_ROWS, _ROW_GROUP_MAX_BYTES // (8 + 4 * channels)))


def _footer_bytes(columns: int, meta_bytes: int, row_groups: int) -> int:
    """Upper estimate of a Parquet file's non-data bytes (header, footer, metadata)."""
    return (
        _FIXED_OVERHEAD
        + _META_FACTOR * meta_bytes
        + _PER_COLUMN * columns
        + _PER_COLUMN_PER_ROW_GROUP * columns * row_groups
    )


class _Segment:
    """One open segment: the temporary Parquet file and its journal."""

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
        self.tmp = directory / f".{name}{TMP_SUFFIX}"
        self.journal = directory / f".{name}{JOURNAL_SUFFIX}"
        self.schema = schema
        self.first_ts = first_ts
        self.row_cap = row_cap
        self.rows = 0
        self.pending_rows = 0
        self._limit = config.segment_max_bytes
        self._columns = len(schema.names)
        self._row_bytes = 8 + 4 * (self._columns - 1)
        self._meta_bytes = sum(len(k) + len(v) for k, v in (schema.metadata or {}).items())
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
        new = directory / f".{name}{JOURNAL_SUFFIX}.new"
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
        self._written_bytes = _size(self.tmp)
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


@dataclass
class _FlushRequest:
    done: threading.Event = field(default_factory=threading.Event)
    result: int = 0
    error: str | None = None


RECORDER_NICE = 10
"""Scheduling niceness added to recorder threads: encoding and compression yield the CPU to
acquisition and live streaming, which have no slack, while the recorder has the whole ring
buffer as slack."""


def lower_thread_priority(increment: int) -> bool:
    """Raise the calling thread's niceness by ``increment`` (Linux: per-thread priority).

    Returns:
        ``True`` when applied; ``False`` where the platform has no per-thread niceness.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError:
        return False
    return True


class SegmentRecorder:
    """Records one device's stream into rotating Parquet segments.

    Args:
        stream: the device's stream; the recorder reads ``stream.buffer`` and listens to it.
        config: directory, rotation (``segment_duration_s``, ``segment_max_bytes``), codec,
            journal flush interval and fsync policy.
        counters: where ``recorder.<device>.missed_rows`` and write errors are counted.
        station: station name stored in each file's metadata.
        start_index: absolute buffer index of the first row to record; default: the buffer's
            write index now (0 before acquisition starts).
        row_group_rows: rows per Parquet row group (default: 64 MiB of raw rows, at most 1 Mi).

    Rotation: a segment ends before its first row whose timestamp is ``segment_duration_s`` or
    more after the segment's first timestamp (and, against stuck clocks, after
    ``2 * duration * sample_rate`` rows), and before the row that would bring the estimated
    file size (raw bytes + 1 % + metadata, an upper bound) over ``segment_max_bytes``. Rows
    are never lost or duplicated at a rotation. A gap (rows missed) also ends the segment.

    Raises:
        RecorderError: bad codec/level, or ``start_index`` beyond the buffer's write index.
    """

    def __init__(
        self,
        stream: DeviceStream,
        config: RecorderConfig,
        counters: Counters,
        station: str = "station",
        start_index: int | None = None,
        *,
        row_group_rows: int | None = None,
    ) -> None:
        self._stream = stream
        self._config = config
        self._counters = counters
        self._station = station
        self._device = stream.name
        self._dir = Path(config.directory)
        channels = stream.buffer.channels
        self._row_bytes = 8 + 4 * channels
        self._rg_rows = int(row_group_rows) if row_group_rows else _row_group_rows(channels)
        if self._rg_rows < 1:
            raise RecorderError(f"row_group_rows must be >= 1, got {row_group_rows}")
        self._chunk_rows = max(1, _READ_CHUNK_BYTES // self._row_bytes)
        self._duration_ns = round(config.segment_duration_s * 1e9)
        rate = float(stream.info.sample_rate_hz)
        self._duration_rows = (
            max(1, math.ceil(_DURATION_ROW_GUARD * config.segment_duration_s * rate))
            if rate > 0
            else None
        )
        # validate codec/level now rather than at the first segment
        writer_options([], config.codec, config.compression_level)
        write_index = stream.buffer.write_index
        self._index = write_index if start_index is None else int(start_index)
        if not 0 <= self._index <= write_index:
            raise RecorderError(
                f"{self._device}: start_index {self._index} outside [0, {write_index}]"
            )

        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._stop_target: int | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flush_requests: list[_FlushRequest] = []
        self._closed = False  # thread ended: no more flush requests served
        self._seg: _Segment | None = None
        self._pending_since: float | None = None
        # status (written by the recorder thread, read under _lock)
        self._state = "idle"
        self._segments: list[Path] = []
        self._closed_bytes = 0
        self._open_bytes = 0
        self._rows_recorded = 0
        self._missed = 0
        self._last_error: str | None = None

    # -- public ----------------------------------------------------------------------------
    @property
    def segments(self) -> list[Path]:
        """Closed segment files of this recorder, oldest first."""
        with self._lock:
            return list(self._segments)

    @property
    def device(self) -> str:
        """The recorded device's name."""
        return self._device

    def start(self) -> None:
        """Create the directory and start the recorder thread (once).

        Raises:
            RecorderError: already started, or the directory cannot be created.
        """
        if self._thread is not None:
            raise RecorderError(f"recorder of {self._device} already started")
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecorderError(f"cannot create {self._dir}: {exc}") from exc
        with self._lock:
            self._state = "recording"
        self._stream.add_listener(self._on_advance)
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{self._device}", daemon=True
        )
        self._wake.set()  # read what is already there
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Record everything up to the buffer's write index now, close the segment, join.

        Idempotent; a recorder never started just becomes ``"stopped"``.

        Raises:
            RecorderError: the thread did not end within ``timeout_s``.
        """
        thread = self._thread
        if thread is None:
            with self._lock:
                self._state = "stopped"
            return
        if thread.is_alive():
            self._stop_target = self._stream.buffer.write_index
            self._stop_requested.set()
            self._wake.set()
            thread.join(timeout_s)
            if thread.is_alive():
                raise RecorderError(f"recorder of {self._device} did not stop in {timeout_s} s")
        self._stream.remove_listener(self._on_advance)

    def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Block until the recorder thread ended (after :meth:`stop` or the stream's end).

        Returns:
            True when it ended (or never started), False on timeout.
        """
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def flush(self, timeout_s: float = 30.0) -> int:
        """Read everything written so far and journal it now (for tests and shutdown hooks).

        Returns:
            The absolute buffer index up to which rows are journaled or in closed segments.

        Raises:
            RecorderError: the recorder is not running, the flush failed or timed out.
        """
        req = _FlushRequest()
        with self._lock:
            if self._thread is None or self._closed:
                raise RecorderError(f"recorder of {self._device} is not running")
            self._flush_requests.append(req)
        self._wake.set()
        if not req.done.wait(timeout_s):
            raise RecorderError(f"recorder of {self._device}: flush timed out")
        if req.error is not None:
            raise RecorderError(f"recorder of {self._device}: flush failed: {req.error}")
        return req.result

    def status(self) -> dict[str, Any]:
        """``{"device", "state", "segment", "segments_closed", "rows_recorded",
        "bytes_written", "missed_rows", "last_error", "directory"}``.

        ``state`` is ``"idle"``, ``"recording"``, ``"error"`` (last write failed; retrying),
        ``"finished"`` (the stream ended and the last segment is closed) or ``"stopped"``.
        ``bytes_written`` counts closed segments plus the open segment's bytes on disk so far
        (its temporary Parquet file and its journal).
        """
        with self._lock:
            return {
                "device": self._device,
                "state": self._state,
                "segment": self._seg.name if self._seg is not None else None,
                "segments_closed": len(self._segments),
                "rows_recorded": self._rows_recorded,
                "bytes_written": self._closed_bytes + self._open_bytes,
                "missed_rows": self._missed,
                "last_error": self._last_error,
                "directory": str(self._dir),
            }

    # -- thread ----------------------------------------------------------------------------
    def _on_advance(self, _write_index: int) -> None:
        self._wake.set()

    def _run(self) -> None:
        lower_thread_priority(RECORDER_NICE)
        final_state = "stopped"
        requests: list[_FlushRequest] = []
        try:
            while True:
                self._wake.wait(self._flush_timeout())
                self._wake.clear()
                with self._lock:  # served after this iteration's reads; failed by its error
                    requests, self._flush_requests = self._flush_requests, []
                try:
                    if self._stop_requested.is_set():
                        self._pump(self._stop_target)
                        self._close_segment()
                        self._answer(requests)
                        final_state = "stopped"
                        return
                    ended = self._stream.state in _ENDED_STATES
                    self._pump(None)
                    if requests:
                        self._flush()
                        self._answer(requests)
                        requests = []
                    if self._flush_due():
                        self._flush()
                    if ended:
                        self._pump(None)
                        self._close_segment()
                        self._answer(requests)
                        final_state = "finished"
                        log.info("%s: stream ended, recorder finished", self._device)
                        return
                    with self._lock:
                        if self._state == "error":
                            self._state = "recording"
                except Exception as exc:
                    self._on_error(exc)
                    for req in requests:
                        req.error = self._last_error
                        req.done.set()
                    if self._stop_requested.is_set() or self._stream.state in _ENDED_STATES:
                        final_state = "stopped" if self._stop_requested.is_set() else "finished"
                        return
                    self._stop_requested.wait(_ERROR_BACKOFF_S)  # then retry
                    self._wake.set()
        finally:
            with self._lock:
                self._closed = True
                self._state = final_state
                requests += self._flush_requests
                self._flush_requests = []
            for req in requests:
                if not req.done.is_set():
                    req.error = "recorder stopped"
                    req.done.set()

    def _answer(self, requests: list[_FlushRequest]) -> None:
        for req in requests:
            req.result = self._index
            req.done.set()

    def _flush_timeout(self) -> float | None:
        if self._pending_since is None:
            return None
        return max(0.0, self._pending_since + self._config.flush_interval_s - time.monotonic())

    def _flush_due(self) -> bool:
        return (
            self._pending_since is not None
            and time.monotonic() - self._pending_since >= self._config.flush_interval_s
        )

    def _pump(self, limit: int | None) -> None:
        """Read (up to absolute index ``limit``) until caught up, flushing when due."""
        buf = self._stream.buffer
        while True:
            max_rows = self._chunk_rows
            if limit is not None:
                max_rows = min(max_rows, limit - self._index)
                if max_rows <= 0:
                    return
            elif self._stop_requested.is_set():
                return
            r = buf.read_since(self._index, max_rows=max_rows)
            if r.missed:
                self._on_missed(r.missed)
                self._index = r.start_index
            if r.data.shape[0] == 0:
                return
            self._consume(r.timestamps_ns, r.data, r.start_index)
            if self._flush_due():
                self._flush()

    def _on_missed(self, missed: int) -> None:
        self._counters.inc(
            f"recorder.{self._device}.missed_rows",
            missed,
            message=f"recorder fell behind the ring buffer at index {self._index}",
        )
        with self._lock:
            self._missed += missed
        log.warning("%s: recorder missed %d rows at index %d", self._device, missed, self._index)
        self._close_segment()  # a segment holds consecutive rows only

    def _consume(self, ts: np.ndarray, data: np.ndarray, start_index: int) -> None:
        """Append rows to segments, rotating as needed; advances ``self._index`` row-exactly
        (so that after a write error nothing is recorded twice)."""
        n = int(ts.shape[0])
        pos = 0
        while pos < n:
            if self._seg is None:
                self._open_segment(int(ts[pos]), start_index + pos)
            seg = self._seg
            assert seg is not None
            take = min(seg.room(), n - pos)
            late = np.flatnonzero(ts[pos : pos + take] >= seg.first_ts + self._duration_ns)
            if late.size:
                take = int(late[0])
            if take > 0:
                seg.append(ts[pos : pos + take], data[pos : pos + take])
                if self._pending_since is None:
                    self._pending_since = time.monotonic()
                with self._lock:
                    self._rows_recorded += take
                pos += take
                self._index = start_index + pos
            if take == 0 or late.size or seg.room() == 0:
                self._close_segment()

    def _open_segment(self, first_ts: int, start_index: int) -> None:
        schema = recording_schema(self._stream.info, self._station, start_index)
        name = _free_name(self._dir, f"{self._device}_{utc_stamp(first_ts)}")
        seg = _Segment(
            self._dir, name, schema, first_ts, self._duration_rows, self._config, self._rg_rows
        )
        with self._lock:
            self._seg = seg
            self._open_bytes = 0
        log.debug("%s: opened segment %s at index %d", self._device, name, start_index)

    def _flush(self) -> None:
        if self._seg is not None:
            self._seg.flush()
            # the open segment's rows are on disk in its journal until row groups are written
            size = _size(self._seg.tmp) + _size(self._seg.journal)
            with self._lock:
                self._open_bytes = size
        self._pending_since = None

    def _close_segment(self) -> None:
        seg = self._seg
        if seg is None:
            return
        path = seg.close()
        size = _size(path)
        with self._lock:
            self._seg = None
            self._segments.append(path)
            self._closed_bytes += size
            self._open_bytes = 0
        self._pending_since = None
        log.info(
            "%s: closed segment %s (%d rows, %d bytes)", self._device, path.name, seg.rows, size
        )

    def _on_error(self, exc: Exception) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        log.exception("%s: recording failed", self._device)
        self._counters.inc(f"recorder.{self._device}.write_error", message=msg)
        seg = self._seg
        if seg is not None:
            if seg.pending_rows:
                self._counters.inc(
                    f"recorder.{self._device}.lost_rows", seg.pending_rows, message=msg
                )
            seg.abort()
            try:  # salvage what was journaled; else the journal waits for recover()
                salvaged = _recover_journal(
                    seg.journal, self._counters, self._config.codec, self._config.compression_level
                )
                if salvaged is not None:
                    with self._lock:
                        self._segments.append(salvaged)
                        self._closed_bytes += _size(salvaged)
            except Exception:
                log.exception("%s: cannot salvage %s now", self._device, seg.journal)
        self._pending_since = None
        with self._lock:
            self._seg = None
            self._open_bytes = 0
            self._state = "error"
            self._last_error = msg


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- snapshot -------------------------------------------------------------------------------
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
        name = _free_name(out_dir, f"buffer_{stream.name}_{utc_stamp(time.time_ns())}")
        return write_table_atomically(
            [batch],
            schema,
            out_dir / name,
            codec,
            compression_level,
            row_group_rows=_row_group_rows(buf.channels),
            fsync=fsync,
        )
    except OSError as exc:
        raise RecorderError(f"cannot write buffer snapshot of {stream.name}: {exc}") from exc


# -- recovery -------------------------------------------------------------------------------
class _CorruptJournal(Exception):
    pass


def _read_journal(path: Path, counters: Counters) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """Schema and complete batches of a journal; raises _CorruptJournal if it has no schema."""
    batches: list[pa.RecordBatch] = []
    with pa.OSFile(os.fspath(path), "rb") as src:
        try:
            reader = pa.ipc.open_stream(src)
        except (pa.ArrowException, OSError) as exc:
            raise _CorruptJournal(f"no readable schema: {exc}") from exc
        schema = reader.schema
        meta = schema.metadata or {}
        if (
            META_FORMAT_VERSION not in meta
            or not schema.names
            or schema.names[0] != TIMESTAMP_COLUMN
            or not pa.types.is_timestamp(schema.field(0).type)
        ):
            raise _CorruptJournal("not a rigwatch journal (schema)")
        while True:
            try:
                batch = reader.read_next_batch()
                if not batch.schema.equals(schema):
                    raise ValueError("batch schema differs from the journal schema")
                batch.validate(full=True)
            except StopIteration:
                break
            except (pa.ArrowException, OSError, ValueError) as exc:
                counters.inc("recorder.recovered_truncated_tail", message=f"{path.name}: {exc}")
                log.info("journal %s: tail after %d batches unusable (%s)", path, len(batches), exc)
                break
            batches.append(batch)
    return schema, batches


def _existing_rows(path: Path) -> int | None:
    try:
        return int(pq.read_metadata(path).num_rows)
    except Exception:
        return None


def _recover_journal(
    journal: Path, counters: Counters, codec: str, compression_level: int | None
) -> Path | None:
    directory = journal.parent
    final_name = journal.name[1 : -len(JOURNAL_SUFFIX)]
    tmp = directory / f".{final_name}{TMP_SUFFIX}"
    if journal.stat().st_size == 0:  # cannot happen with our writer, but harmless
        batches: list[pa.RecordBatch] = []
        schema = None
    else:
        schema, batches = _read_journal(journal, counters)
    rows = sum(b.num_rows for b in batches)
    if rows == 0:
        counters.inc("recorder.empty_journal", message=journal.name)
        log.info("journal %s holds no complete rows: removed", journal)
        tmp.unlink(missing_ok=True)
        journal.unlink()
        return None
    assert schema is not None
    final = directory / final_name
    if final.exists():
        existing = _existing_rows(final)
        if existing is not None and existing >= rows:
            # crashed after the segment was closed but before its journal was deleted
            counters.inc("recorder.recovered_already_closed", message=final_name)
            tmp.unlink(missing_ok=True)
            journal.unlink()
            return None
        stem = final_name[: -len(".parquet")]
        final = directory / _free_name(directory, f"{stem}-recovered")
    tmp.unlink(missing_ok=True)  # the crashed writer's partial file has no footer
    rg_rows = _row_group_rows(len(schema.names) - 1)
    writer = open_parquet_writer(tmp, schema, codec, compression_level)
    try:
        group: list[pa.RecordBatch] = []
        group_rows = 0
        for batch in batches:
            group.append(batch)
            group_rows += batch.num_rows
            if group_rows >= rg_rows:
                writer.write_table(pa.Table.from_batches(group, schema=schema))
                group, group_rows = [], 0
        if group:
            writer.write_table(pa.Table.from_batches(group, schema=schema))
    finally:
        writer.close()
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_dir(directory)
    journal.unlink()
    counters.inc("recorder.recovered_segments", message=final.name)
    log.warning("recovered %d rows of an interrupted segment into %s", rows, final)
    return final


def recover(
    directory: str | os.PathLike[str],
    counters: Counters,
    codec: str = "zstd",
    compression_level: int | None = None,
) -> list[Path]:
    """Turn the journals left by a crash into Parquet segments; call before recording starts.

    Each ``.<name>.arrows`` journal is read batch by batch up to its last complete batch (a
    cut tail is expected after a kill: counted ``recorder.recovered_truncated_tail``) and
    written as ``<name>`` (the segment's final name); the partial ``.<name>.tmp`` and the
    journal are removed. A journal without complete rows is removed (``recorder.empty_journal``).
    A journal that cannot be read at all is renamed ``.<name>.arrows.corrupt`` and counted
    ``recorder.unrecoverable_journal`` (message: its file name). Stale temporary files without
    a journal are removed (``recorder.removed_stale_tmp``). Never raises for a bad file.

    Returns:
        The Parquet files written, sorted by name. A missing directory returns ``[]``.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    written: list[Path] = []
    for journal in sorted(root.glob(f".*.parquet{JOURNAL_SUFFIX}")):
        try:
            path = _recover_journal(journal, counters, codec, compression_level)
        except _CorruptJournal as exc:
            _move_aside(journal, counters, str(exc))
            continue
        except Exception as exc:
            log.exception("cannot recover journal %s", journal)
            _move_aside(journal, counters, f"{type(exc).__name__}: {exc}")
            continue
        if path is not None:
            written.append(path)
    stale = [*root.glob(f".*.parquet{TMP_SUFFIX}"), *root.glob(f".*.parquet{JOURNAL_SUFFIX}.new")]
    for p in sorted(stale):
        journal = root / f".{_final_name_of(p)}{JOURNAL_SUFFIX}"
        if journal.exists():  # belongs to a journal that could not be removed: keep
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            counters.inc("recorder.removed_stale_tmp", message=p.name)
            log.info("removed stale temporary file %s", p)
    return sorted(written)


def _final_name_of(work_file: Path) -> str:
    name = work_file.name[1:]
    for suffix in (f"{JOURNAL_SUFFIX}.new", TMP_SUFFIX, JOURNAL_SUFFIX):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _move_aside(journal: Path, counters: Counters, reason: str) -> None:
    counters.inc("recorder.unrecoverable_journal", message=f"{journal.name}: {reason}")
    log.error("journal %s cannot be recovered (%s): moved aside", journal, reason)
    try:
        os.replace(journal, journal.with_name(journal.name + ".corrupt"))
    except OSError:
        log.exception("cannot move %s aside", journal)
