"""Segment recorder: a ring-buffer reader that writes a device's stream to Parquet segments.

The recorder never slows acquisition: the acquisition thread only sets a
:class:`threading.Event`; the recorder's own thread reads the ring buffer from its own position
and does all the I/O. If it falls behind by more than the buffer's capacity, the rows it lost
are counted (``recorder.<device>.missed_rows``) and the open segment is closed, so that every
segment holds consecutive rows (its ``rigwatch.start_index`` plus row number is the absolute
index of each row).

Each segment is an :class:`~rigwatch.acquisition.recorder.open_segment.OpenSegment` while it is
written (a temporary Parquet file and a crash journal flushed at most ``flush_interval_s``
apart) and appears under its final name, complete, when it is closed. After a crash,
:func:`~rigwatch.acquisition.recorder.recovery.recover` turns the leftover journal into the
segment.

A segment also closes by the wall clock when its device stops delivering rows (a serial line
gone quiet), and after each close the directory's
:class:`~rigwatch.acquisition.recorder.retention.Retention` runs. A full disk (free space below
the floor, or a write failing with ``ENOSPC``/``EDQUOT``) stops the recording, not the reading:
see :class:`SegmentRecorder`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.recorder.disk import Disk, is_disk_full
from rigwatch.acquisition.recorder.open_segment import OpenSegment, Writers, file_size
from rigwatch.acquisition.recorder.open_segment import row_group_rows as default_row_group_rows
from rigwatch.acquisition.recorder.recovery import recover_journal
from rigwatch.acquisition.recorder.retention import Retention
from rigwatch.config.station import RecorderConfig
from rigwatch.counters import Counters
from rigwatch.errors import DiskFull, RecorderError
from rigwatch.recordings.files import free_name
from rigwatch.recordings.layout import recording_schema, writer_options
from rigwatch.threads import lower_thread_priority
from rigwatch.timefmt import file_stamp

log = logging.getLogger(__name__)

_ENDED_STATES = frozenset({"finished", "failed", "stopped"})
_READ_CHUNK_BYTES = 16 * 1024 * 1024
_DURATION_ROW_GUARD = 2.0  # a segment also ends after 2 x duration x rate rows
_ERROR_BACKOFF_S = 1.0

SEGMENT_CLOSE_GRACE_S = 3.0
"""Seconds past a segment's wall-clock end before a segment whose device delivered no row
past its end is closed: longer than the longest block (``block_duration_s`` <= 2 s) takes to
arrive, so a device that is merely between blocks does not split its segments."""

RESUME_MIN_FREE_BYTES = 1 << 20
"""Recording resumes after a full disk only with at least this much free (and the floor)."""


@dataclass
class _FlushRequest:
    done: threading.Event = field(default_factory=threading.Event)
    result: int = 0
    error: str | None = None
    disk_full: bool = False


class SegmentRecorder:
    """Records one device's stream into rotating Parquet segments.

    Args:
        stream: the device's stream; the recorder reads ``stream.buffer`` and listens to it.
        config: directory, rotation (``segment_duration_s``, ``segment_max_bytes``), codec,
            journal flush interval, fsync policy, retention and ``disk_full_retry_s``.
        counters: where ``recorder.<device>.missed_rows``, ``.lost_rows``, ``.disk_full`` and
            write errors are counted.
        station: station name stored in each file's metadata.
        start_index: absolute buffer index of the first row to record; default: the buffer's
            write index now (0 before acquisition starts).
        row_group_rows: rows per Parquet row group (default: 64 MiB of raw rows, at most 1 Mi).
        retention: the directory's retention, shared by the recorders writing into it
            (default: one of this recorder's own, from ``config.retention``).
        disk: the file-system seam for free space and writes (default: ``retention.disk``).
        close_grace_s: seconds past a segment's wall-clock end before it is closed for want
            of rows (:data:`SEGMENT_CLOSE_GRACE_S`).

    Rotation: a segment ends before its first row whose timestamp is ``segment_duration_s`` or
    more after the segment's first timestamp (and, against stuck clocks, after
    ``2 * duration * sample_rate`` rows), and before the row that would bring the estimated
    file size (raw bytes + 1 % + metadata, an upper bound) over ``segment_max_bytes``. Rows
    are never lost or duplicated at a rotation. A gap (rows missed) also ends the segment.
    A device that stops delivering does not keep its segment open: once the recorder has read
    every row there is, the segment is closed ``segment_duration_s + close_grace_s`` after its
    first row was acquired (by the wall clock: the first row's timestamp when it is within
    ``segment_duration_s`` before ``time.time_ns()`` at opening, else the opening time).

    Full disk: when free space is below the retention's floor (``min_free_bytes``, checked at
    start, at each open, journal flush and close, after retention ran) or a write fails with
    ``ENOSPC``/``EDQUOT``, the open segment is closed, or, when it cannot be, abandoned with
    its journal kept (its journaled rows become a segment when recording resumes, else at the
    next :func:`~rigwatch.acquisition.recorder.recovery.recover`); no visible ``.parquet``
    is ever incomplete. The state becomes ``"disk_full"`` (counted
    ``recorder.<device>.disk_full``; ``last_error`` names the directory and its free bytes)
    and the recorder keeps following the ring buffer, dropping rows (counted
    ``recorder.<device>.lost_rows``), so nothing waits for it. Every ``disk_full_retry_s`` it
    runs retention and checks again; with at least ``max(min_free_bytes, 1 MiB)`` free it
    resumes (state ``"recording"``) in a new segment.

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
        retention: Retention | None = None,
        disk: Disk | None = None,
        close_grace_s: float = SEGMENT_CLOSE_GRACE_S,
    ) -> None:
        self._stream = stream
        self._config = config
        self._counters = counters
        self._station = station
        self._device = stream.name
        self._dir = Path(config.directory)
        if retention is None:
            retention = Retention(self._dir, config.retention, counters, disk=disk)
        self._retention = retention
        self._disk = disk if disk is not None else retention.disk
        channels = stream.buffer.channels
        self._row_bytes = 8 + 4 * channels
        self._rg_rows = int(row_group_rows) if row_group_rows else default_row_group_rows(channels)
        if self._rg_rows < 1:
            raise RecorderError(f"row_group_rows must be >= 1, got {row_group_rows}")
        if close_grace_s < 0:
            raise RecorderError(f"close_grace_s must be >= 0, got {close_grace_s}")
        self._close_grace_s = float(close_grace_s)
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
        self._seg: OpenSegment | None = None
        self._writers: Writers | None = None  # from start() to the thread's end
        self._publishing: list[Future[None]] = []
        self._seg_deadline: float | None = None  # time.monotonic() to close the open segment
        self._pending_since: float | None = None
        self._disk_full = False  # recording stopped by a full disk (recorder thread only)
        self._retry_at: float | None = None  # next free-space check while the disk is full
        self._abandoned: list[Path] = []  # journals of segments given up on a full disk
        # status (written by the recorder thread, read under _lock)
        self._state = "idle"
        self._segments: list[Path] = []
        self._closed_bytes = 0
        self._open_bytes = 0
        self._rows_recorded = 0
        self._missed = 0
        self._lost = 0
        self._last_error: str | None = None

    # -- public ----------------------------------------------------------------------------
    @property
    def segments(self) -> list[Path]:
        """Closed segment files of this recorder, oldest first (retention may have deleted
        some of them since)."""
        with self._lock:
            return list(self._segments)

    @property
    def device(self) -> str:
        """The recorded device's name."""
        return self._device

    @property
    def retention(self) -> Retention:
        """The retention run after each segment this recorder closes."""
        return self._retention

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
        self._writers = Writers(self._device)
        self._stream.add_listener(self._on_advance)
        self._thread = threading.Thread(
            target=self._run, name=f"recorder-{self._device}", daemon=True
        )
        self._wake.set()  # read what is already there
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Record everything up to the buffer's write index now, close the segment, join.

        Idempotent; a recorder never started just becomes ``"stopped"``. A recorder stopped
        by a full disk counts the rows up to that index as lost instead.

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
        """Read everything written so far and journal it now (for tests and shutdown hooks);
        segments closed meanwhile are visible when it returns.

        Returns:
            The absolute buffer index up to which rows are journaled or in closed segments.

        Raises:
            DiskFull: the recorder is stopped by a full disk (the rows read were dropped and
                counted ``recorder.<device>.lost_rows``).
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
            if req.disk_full:
                raise DiskFull(f"recorder of {self._device}: {req.error}")
            raise RecorderError(f"recorder of {self._device}: flush failed: {req.error}")
        return req.result

    def status(self) -> dict[str, Any]:
        """``{"device", "state", "segment", "segments_closed", "rows_recorded",
        "bytes_written", "missed_rows", "lost_rows", "last_error", "directory", "free_bytes",
        "min_free_bytes", "retention_deleted_files", "retention_deleted_bytes"}``.

        ``state`` is ``"idle"``, ``"recording"``, ``"error"`` (last write failed; retrying),
        ``"disk_full"`` (recording stopped by a full disk; rows are dropped until there is
        room), ``"finished"`` (the stream ended and the last segment is closed) or
        ``"stopped"``. ``bytes_written`` counts closed segments plus the open segment's bytes
        on disk so far (its temporary Parquet file and its journal). ``lost_rows`` counts rows
        read but not recorded (a full disk, a failed write). ``free_bytes`` and
        ``min_free_bytes`` are the recordings file system's free bytes now and the floor
        (``None`` when it cannot be queried); ``retention_deleted_*`` count the recordings
        the directory's retention deleted.
        """
        try:
            space = self._retention.space()
            free: int | None = space.free_bytes
            floor: int | None = space.min_free_bytes
        except OSError:
            free = floor = None
        with self._lock:
            return {
                "device": self._device,
                "state": self._state,
                "segment": self._seg.name if self._seg is not None else None,
                "segments_closed": len(self._segments),
                "rows_recorded": self._rows_recorded,
                "bytes_written": self._closed_bytes + self._open_bytes,
                "missed_rows": self._missed,
                "lost_rows": self._lost,
                "last_error": self._last_error,
                "directory": str(self._dir),
                "free_bytes": free,
                "min_free_bytes": floor,
                "retention_deleted_files": self._retention.deleted_files,
                "retention_deleted_bytes": self._retention.deleted_bytes,
            }

    # -- thread ----------------------------------------------------------------------------
    def _on_advance(self, _write_index: int) -> None:
        self._wake.set()

    def _run(self) -> None:
        lower_thread_priority()
        final_state = "stopped"
        requests: list[_FlushRequest] = []
        try:
            try:
                self._check_space()
            except DiskFull as exc:
                self._enter_disk_full(exc)
            while True:
                self._wake.wait(self._wait_timeout())
                self._wake.clear()
                with self._lock:  # served after this iteration's reads; failed by its error
                    requests, self._flush_requests = self._flush_requests, []
                stopping = self._stop_requested.is_set()
                ended = self._stream.state in _ENDED_STATES
                try:
                    if self._disk_full and not stopping and self._retry_due():
                        self._try_resume()
                    if self._disk_full:
                        self._drop(self._stop_target if stopping else None)
                        self._refuse(requests)
                        requests = []
                        if stopping or ended:
                            final_state = "stopped" if stopping else "finished"
                            return
                        continue
                    if stopping:
                        self._pump(self._stop_target)
                        self._close_segment(check_space=False)
                        self._answer(requests)
                        final_state = "stopped"
                        return
                    self._pump(None)
                    if requests:
                        self._flush(wait=True)
                        self._await_published()
                        self._answer(requests)
                        requests = []
                    if self._flush_due():
                        self._flush()
                    if ended:
                        self._pump(None)
                        self._close_segment(check_space=False)
                        self._answer(requests)
                        final_state = "finished"
                        log.info("%s: stream ended, recorder finished", self._device)
                        return
                    if self._segment_overdue():
                        log.info(
                            "%s: no row past the end of segment %s: closed by the wall clock",
                            self._device,
                            self._seg.name if self._seg is not None else "?",
                        )
                        self._close_segment()
                    with self._lock:
                        if self._state == "error":
                            self._state = "recording"
                except Exception as exc:
                    if is_disk_full(exc):
                        self._enter_disk_full(exc)
                        self._refuse(requests)
                        requests = []
                        self._wake.set()  # drop what is waiting; stop or finish if asked
                        continue
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
            self._end_writers()
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

    def _refuse(self, requests: list[_FlushRequest]) -> None:
        """Answer flush requests while the disk is full (once the segments closed before are
        visible, as after a flush that succeeds)."""
        if requests:
            self._await_published()
        for req in requests:
            req.result = self._index
            req.error = self._last_error or "disk full"
            req.disk_full = True
            req.done.set()

    def _wait_timeout(self) -> float | None:
        """Seconds until the next journal flush, segment deadline or free-space check."""
        due: list[float] = []
        if self._pending_since is not None:
            due.append(self._pending_since + self._config.flush_interval_s)
        if self._seg is not None and self._seg_deadline is not None:
            due.append(self._seg_deadline)
        if self._disk_full and self._retry_at is not None:
            due.append(self._retry_at)
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _flush_due(self) -> bool:
        return (
            self._pending_since is not None
            and time.monotonic() - self._pending_since >= self._config.flush_interval_s
        )

    def _segment_overdue(self) -> bool:
        return (
            self._seg is not None
            and self._seg_deadline is not None
            and time.monotonic() >= self._seg_deadline
        )

    def _retry_due(self) -> bool:
        return self._retry_at is None or time.monotonic() >= self._retry_at

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
        self._check_space()
        schema = recording_schema(self._stream.info, self._station, start_index)
        name = free_name(self._dir, f"{self._device}_{file_stamp(first_ts)}")
        seg = OpenSegment(
            self._dir,
            name,
            schema,
            first_ts,
            self._duration_rows,
            self._config,
            self._rg_rows,
            self._live_writers(),
            disk=self._disk,
        )
        # wall-clock end: from the first row's acquisition when its timestamp is plausible
        duration_s = self._config.segment_duration_s
        age_s = (time.time_ns() - first_ts) / 1e9
        if not 0.0 <= age_s <= duration_s:
            age_s = 0.0  # a device clock apart from ours: count from now
        self._seg_deadline = time.monotonic() - age_s + duration_s + self._close_grace_s
        with self._lock:
            self._seg = seg
            self._open_bytes = 0
        log.debug("%s: opened segment %s at index %d", self._device, name, start_index)

    def _flush(self, wait: bool = False) -> None:
        if self._seg is not None:
            self._seg.flush(wait=wait)
            # the open segment's rows are on disk in its journal until row groups are written
            size = file_size(self._seg.tmp) + file_size(self._seg.journal)
            with self._lock:
                self._open_bytes = size
        self._pending_since = None
        if self._seg is not None:
            self._check_space()

    def _close_segment(self, *, check_space: bool = True) -> None:
        """Close the open segment (if any), run retention, then (``check_space``) raise
        :class:`DiskFull` when free space is below the floor."""
        seg = self._seg
        if seg is None:
            return
        seg.seal()
        with self._lock:
            self._seg = None
            self._open_bytes = 0
        self._pending_since = None
        self._seg_deadline = None
        # fsyncs, rename and journal removal only wait on the disk: the publish thread does
        # them, in order, while this thread goes on reading the ring buffer
        self._publishing.append(self._live_writers().publish.submit(self._publish, seg))
        while len(self._publishing) > 2:  # never more than two segments behind
            self._publishing.pop(0).result()
        self._publishing = [f for f in self._publishing if not f.done()]
        if check_space:
            self._check_space()

    def _publish(self, seg: OpenSegment) -> None:
        """Make a sealed segment visible (publisher thread); on failure its journal stays for
        recovery, and the failure is counted."""
        try:
            path = seg.publish()
        except OSError as exc:
            msg = f"cannot publish {seg.name}: {type(exc).__name__}: {exc}"
            log.error("%s: %s; its journal is kept for recovery", self._device, msg)
            self._counters.inc(f"recorder.{self._device}.write_error", message=msg)
            with self._lock:
                self._last_error = msg
            return
        size = self._add_segment(path)
        log.info(
            "%s: closed segment %s (%d rows, %d bytes)", self._device, path.name, seg.rows, size
        )
        self._retention.enforce(keep=[path])

    def _add_segment(self, path: Path) -> int:
        """Count a segment made visible; returns its size in bytes."""
        size = file_size(path)
        with self._lock:
            self._segments.append(path)
            self._closed_bytes += size
        return size

    def _salvage(self, journal: Path) -> None:
        """Turn a journal into its segment now (see
        :func:`~rigwatch.acquisition.recorder.recovery.recover_journal`).

        Raises:
            Exception: what :func:`recover_journal` raises (the journal then stays).
        """
        salvaged = recover_journal(
            journal,
            self._counters,
            self._config.codec,
            self._config.compression_level,
            disk=self._disk,
        )
        if salvaged is not None:
            self._add_segment(salvaged)

    def _live_writers(self) -> Writers:
        assert self._writers is not None, "the recorder is not started"
        return self._writers

    def _await_published(self) -> None:
        """Wait until every sealed segment is visible (or its failure counted)."""
        for future in self._publishing:
            future.result()
        self._publishing.clear()

    def _end_writers(self) -> None:
        """Wait until every sealed segment is visible (or its failure counted), then end the
        writer threads."""
        self._await_published()
        if self._writers is not None:
            self._writers.shutdown()
            self._writers = None

    def _check_space(self) -> None:
        """Raise :class:`DiskFull` when the recordings' free space is below the floor."""
        self._retention.require_room(f"recording of {self._device}")

    def _enter_disk_full(self, exc: BaseException) -> None:
        """Stop recording: close (or abandon, keeping its journal) the open segment, set state
        ``"disk_full"``, count it and schedule the next free-space check."""
        seg = self._seg
        if seg is not None and not seg.failed:
            try:
                self._close_segment(check_space=False)
            except Exception:
                log.warning("%s: cannot close %s on a full disk", self._device, seg.name)
        if seg is not None and self._seg is seg:  # not closed: give it up, keep its journal
            lost = seg.abandon()
            self._abandoned.append(seg.journal)
            with self._lock:
                self._seg = None
                self._open_bytes = 0
            if lost:
                self._count_lost(lost, f"{seg.name}: not journaled when the disk filled")
            log.warning(
                "%s: abandoned segment %s (%d rows lost); journal %s kept for recovery",
                self._device,
                seg.name,
                lost,
                seg.journal.name,
            )
        self._pending_since = None
        self._seg_deadline = None
        try:
            space = self._retention.space()
            where = f"{space.free_bytes} bytes free (min_free_bytes {space.min_free_bytes})"
        except OSError:
            where = "free bytes unknown"
        msg = (
            f"disk full: {self._dir} has {where}; recording stopped, checked again every "
            f"{self._config.disk_full_retry_s:g} s ({type(exc).__name__}: {exc})"
        )
        self._counters.inc(f"recorder.{self._device}.disk_full", message=msg)
        with self._lock:
            self._state = "disk_full"
            self._last_error = msg
        self._disk_full = True
        self._retry_at = time.monotonic() + self._config.disk_full_retry_s
        log.error("%s: %s", self._device, msg)

    def _drop(self, limit: int | None) -> None:
        """Skip the rows up to ``limit`` (default: the write index), counting them lost."""
        target = self._stream.buffer.write_index if limit is None else limit
        n = target - self._index
        if n <= 0:
            return
        self._index = target
        self._count_lost(n, f"not recorded: {self._dir} is full")

    def _count_lost(self, rows: int, message: str) -> None:
        self._counters.inc(f"recorder.{self._device}.lost_rows", rows, message=message)
        with self._lock:
            self._lost += rows

    def _try_resume(self) -> None:
        """Run retention and check free space; with room, turn the abandoned journals into
        segments and leave the ``"disk_full"`` state."""
        self._retry_at = time.monotonic() + self._config.disk_full_retry_s
        self._retention.enforce()
        try:
            space = self._retention.space()
        except OSError as exc:
            log.warning("%s: cannot query free space of %s: %s", self._device, self._dir, exc)
            return
        if space.free_bytes < max(space.min_free_bytes, RESUME_MIN_FREE_BYTES):
            return
        while self._abandoned:
            journal = self._abandoned[0]
            try:
                self._salvage(journal)
            except Exception as exc:
                if is_disk_full(exc):
                    log.info("%s: no room yet to recover %s", self._device, journal.name)
                    return
                log.exception("%s: cannot recover %s now", self._device, journal)
                self._counters.inc(
                    f"recorder.{self._device}.write_error", message=f"{journal.name}: {exc}"
                )
                self._abandoned.pop(0)  # left for recover() at the next start
                continue
            self._abandoned.pop(0)
        self._disk_full = False
        self._retry_at = None
        with self._lock:
            self._state = "recording"
        log.warning(
            "%s: %d bytes free in %s: recording resumes", self._device, space.free_bytes, self._dir
        )

    def _on_error(self, exc: Exception) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        log.exception("%s: recording failed", self._device)
        self._counters.inc(f"recorder.{self._device}.write_error", message=msg)
        seg = self._seg
        if seg is not None:
            seg.abort()  # waits for its queued writes: journaled_rows is final
            lost = seg.rows - seg.journaled_rows
            if lost:
                self._count_lost(lost, msg)
            try:  # salvage what was journaled; else the journal waits for recover()
                self._salvage(seg.journal)
            except Exception:
                log.exception("%s: cannot salvage %s now", self._device, seg.journal)
        self._pending_since = None
        self._seg_deadline = None
        with self._lock:
            self._seg = None
            self._open_bytes = 0
            self._state = "error"
            self._last_error = msg
