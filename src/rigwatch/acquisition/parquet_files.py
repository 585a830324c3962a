"""Parquet recording files: their layout, listing, safe lookup, range queries and export.

Layout of a rigwatch recording (segment, recovered segment or buffer snapshot):

- column ``timestamp``: ``timestamp[ns, tz=UTC]``, encoded ``DELTA_BINARY_PACKED``;
- then one ``float32`` column per channel, named by the channel, with field metadata
  ``{b"unit": unit}``, encoded ``BYTE_STREAM_SPLIT``; dictionary encoding is off;
- schema key-value metadata (bytes): ``rigwatch.format_version`` (``"1"``),
  ``rigwatch.device``, ``rigwatch.driver``, ``rigwatch.station`` (optional),
  ``rigwatch.sample_rate_hz`` (``repr`` of a float), ``rigwatch.channels`` (JSON list of
  ``{"name", "unit", "gain", "offset"}``), ``rigwatch.start_index`` (absolute ring-buffer
  index of the first row) and ``rigwatch.extra`` (JSON object of the driver's extra facts).

Files live in one flat directory shared by every device. Hidden names (leading ``.``) are work
files (temporary Parquet, journals) and are never listed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from rigwatch.devices.protocols import StreamInfo
from rigwatch.errors import RecorderError

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
TIMESTAMP_COLUMN = "timestamp"
TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")
META_FORMAT_VERSION = b"rigwatch.format_version"
META_DEVICE = b"rigwatch.device"
META_DRIVER = b"rigwatch.driver"
META_STATION = b"rigwatch.station"
META_SAMPLE_RATE = b"rigwatch.sample_rate_hz"
META_CHANNELS = b"rigwatch.channels"
META_START_INDEX = b"rigwatch.start_index"
META_EXTRA = b"rigwatch.extra"

CODECS = ("zstd", "snappy", "lz4", "gzip", "brotli", "none")
_LEVEL_CODECS = frozenset({"zstd", "gzip", "brotli", "lz4"})
_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_NAME_RE = re.compile(
    r"^(?:buffer_)?(?P<device>.+)_\d{8}T\d{6}_\d{6}Z(?:-\d+)?\.parquet$",
)


class UnsafePath(RecorderError):
    """A recording file name that could reach outside the recordings directory or is not a
    visible ``.parquet`` file. The message says why it was refused."""


class UnknownChannel(RecorderError):
    """A requested channel is not in the recording; the message names it and lists the
    available channels."""


# -- layout ---------------------------------------------------------------------------------
def recording_schema(info: StreamInfo, station: str | None, start_index: int) -> pa.Schema:
    """The Arrow schema (with rigwatch metadata) of a recording of ``info``'s stream.

    Args:
        info: the device's stream description (names, units, rate, calibration).
        station: station name stored as ``rigwatch.station``; omitted when empty/``None``.
        start_index: absolute ring-buffer index of the file's first row.

    Returns:
        ``timestamp`` (``timestamp[ns, tz=UTC]``) followed by one ``float32`` field per
        channel carrying ``{b"unit": unit}``.
    """
    fields = [pa.field(TIMESTAMP_COLUMN, TIMESTAMP_TYPE)]
    fields += [
        pa.field(c.name, pa.float32(), metadata={b"unit": c.unit.encode()}) for c in info.channels
    ]
    meta: dict[bytes, bytes] = {
        META_FORMAT_VERSION: FORMAT_VERSION.encode(),
        META_DEVICE: info.device.encode(),
        META_DRIVER: info.driver.encode(),
    }
    if station:
        meta[META_STATION] = station.encode()
    meta[META_SAMPLE_RATE] = repr(float(info.sample_rate_hz)).encode()
    meta[META_CHANNELS] = json.dumps(
        [
            {"name": c.name, "unit": c.unit, "gain": float(c.gain), "offset": float(c.offset)}
            for c in info.channels
        ]
    ).encode()
    meta[META_START_INDEX] = str(int(start_index)).encode()
    meta[META_EXTRA] = json.dumps(dict(info.extra), sort_keys=True).encode()
    return pa.schema(fields, metadata=meta)


def channel_columns(schema: pa.Schema) -> list[str]:
    """Names of the channel columns of a recording schema (every column but ``timestamp``)."""
    return [n for n in schema.names if n != TIMESTAMP_COLUMN]


def writer_options(
    channel_names: Sequence[str], codec: str = "zstd", compression_level: int | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`pyarrow.parquet.ParquetWriter` for a recording.

    Args:
        channel_names: the float32 columns (written BYTE_STREAM_SPLIT).
        codec: one of :data:`CODECS`; ``"none"`` writes uncompressed pages.
        compression_level: codec level, only for zstd, gzip, brotli and lz4.

    Raises:
        RecorderError: unknown codec, or a level given for a codec without levels.
    """
    if codec not in CODECS:
        raise RecorderError(f"unknown codec {codec!r}, expected one of {', '.join(CODECS)}")
    if compression_level is not None and codec not in _LEVEL_CODECS:
        raise RecorderError(f"codec {codec!r} does not take a compression_level")
    return {
        "compression": None if codec == "none" else codec,
        "compression_level": compression_level,
        "use_dictionary": False,
        "use_byte_stream_split": list(channel_names),
        "column_encoding": {TIMESTAMP_COLUMN: "DELTA_BINARY_PACKED"},
        "write_statistics": True,
    }


def open_parquet_writer(
    path: str | os.PathLike[str],
    schema: pa.Schema,
    codec: str = "zstd",
    compression_level: int | None = None,
) -> pq.ParquetWriter:
    """A :class:`pyarrow.parquet.ParquetWriter` on ``path`` with the recording options.

    Raises:
        RecorderError: bad codec/level (see :func:`writer_options`).
        OSError: the file cannot be created.
    """
    opts = writer_options(channel_columns(schema), codec, compression_level)
    return pq.ParquetWriter(os.fspath(path), schema, **opts)


def rows_to_batch(schema: pa.Schema, timestamps_ns: np.ndarray, data: np.ndarray) -> pa.RecordBatch:
    """A record batch of ``schema`` from ``(rows,)`` int64 ns and ``(rows, channels)`` float32."""
    cols: list[pa.Array] = [pa.array(np.asarray(timestamps_ns, dtype=np.int64), TIMESTAMP_TYPE)]
    by_channel = np.ascontiguousarray(np.asarray(data, dtype=np.float32).T)
    cols += [pa.array(by_channel[i]) for i in range(by_channel.shape[0])]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def fsync_path(path: Path) -> None:
    """Flush a file's content to stable storage."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make renames/creations in ``directory`` durable (no-op where unsupported: Windows)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_table_atomically(
    table_or_batches: pa.Table | Sequence[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    codec: str = "zstd",
    compression_level: int | None = None,
    row_group_rows: int = 1 << 20,
    fsync: bool = True,
) -> Path:
    """Write rows to ``path`` via the hidden ``.<name>.tmp`` and ``os.replace``.

    Returns:
        ``path``.

    Raises:
        RecorderError: bad codec; OSError: I/O failure (the temporary file is removed).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    table = (
        table_or_batches
        if isinstance(table_or_batches, pa.Table)
        else pa.Table.from_batches(list(table_or_batches), schema=schema)
    )
    try:
        writer = open_parquet_writer(tmp, schema, codec, compression_level)
        try:
            for off in range(0, table.num_rows, row_group_rows):
                part = table.slice(off, row_group_rows)
                writer.write_table(part, row_group_size=part.num_rows)
        finally:
            writer.close()
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)
    return path


# -- metadata -------------------------------------------------------------------------------
def _meta_str(meta: dict[bytes, bytes], key: bytes) -> str | None:
    v = meta.get(key)
    return None if v is None else v.decode("utf-8", "replace")


def recording_meta(schema: pa.Schema) -> dict[str, Any]:
    """Parse the rigwatch metadata of ``schema``, tolerating foreign files.

    Returns:
        ``{"device": str | None, "driver": str | None, "station": str | None,
        "sample_rate_hz": float | None, "channels": [{"name", "unit", ...}],
        "start_index": int | None, "extra": dict}``; channels fall back to the non-timestamp
        columns with the ``unit`` field metadata when ``rigwatch.channels`` is absent.
    """
    meta = dict(schema.metadata or {})
    rate: float | None
    try:
        rate = float(meta[META_SAMPLE_RATE])
    except (KeyError, ValueError):
        rate = None
    try:
        start_index: int | None = int(meta[META_START_INDEX])
    except (KeyError, ValueError):
        start_index = None
    try:
        extra = json.loads(meta[META_EXTRA])
    except (KeyError, ValueError):
        extra = {}
    channels: list[dict[str, Any]] = []
    for name in channel_columns(schema):
        fmeta = schema.field(name).metadata or {}
        channels.append({"name": name, "unit": fmeta.get(b"unit", b"").decode("utf-8", "replace")})
    try:
        described = {c["name"]: c for c in json.loads(meta[META_CHANNELS])}
        channels = [{**described.get(c["name"], {}), **c} for c in channels]
    except (KeyError, ValueError, TypeError):
        pass
    return {
        "device": _meta_str(meta, META_DEVICE),
        "driver": _meta_str(meta, META_DRIVER),
        "station": _meta_str(meta, META_STATION),
        "sample_rate_hz": rate,
        "channels": channels,
        "start_index": start_index,
        "extra": extra,
    }


def _ts_factor(schema: pa.Schema) -> int | None:
    if TIMESTAMP_COLUMN not in schema.names:
        return None
    t = schema.field(TIMESTAMP_COLUMN).type
    if not pa.types.is_timestamp(t):
        return None
    return _NS_PER_UNIT[t.unit]


def _timestamps_ns(col: pa.ChunkedArray | pa.Array, factor: int) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    out = arr.view(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return out * factor if factor != 1 else out


def _rg_ts_range(md: pq.FileMetaData, rg: int, ts_col: int, factor: int) -> tuple[int, int] | None:
    st = md.row_group(rg).column(ts_col).statistics
    if st is None or not st.has_min_max:
        return None
    return int(st.min_raw) * factor, int(st.max_raw) * factor


# -- listing and safe lookup ----------------------------------------------------------------
@dataclass
class RecordingInfo:
    """One recording file as listed by :func:`list_recordings`.

    Attributes:
        filename: file name inside the recordings directory.
        device: device name (metadata; guessed from the name when unreadable).
        size_bytes: file size.
        rows: sample rows.
        start_ns, end_ns: first/last timestamp, ns since the epoch (``None`` if unknown).
        channels: channel names in column order; ``units`` alongside.
        sample_rate_hz: nominal rate (``None`` if absent).
        driver, station: from the metadata (``None`` if absent).
        error: why the file could not be read (then the other fields are best effort).
    """

    filename: str
    device: str
    size_bytes: int
    rows: int = 0
    start_ns: int | None = None
    end_ns: int | None = None
    channels: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    sample_rate_hz: float | None = None
    driver: str | None = None
    station: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return asdict(self)


def _guess_device(filename: str) -> str:
    m = _NAME_RE.match(filename)
    return m.group("device") if m else ""


def _describe_file(path: Path) -> RecordingInfo:
    size = path.stat().st_size
    info = RecordingInfo(filename=path.name, device=_guess_device(path.name), size_bytes=size)
    try:
        with pq.ParquetFile(path) as pf:
            md = pf.metadata
            schema = pf.schema_arrow
            meta = recording_meta(schema)
            info.device = meta["device"] or info.device
            info.rows = int(md.num_rows)
            info.channels = [c["name"] for c in meta["channels"]]
            info.units = [c["unit"] for c in meta["channels"]]
            info.sample_rate_hz = meta["sample_rate_hz"]
            info.driver = meta["driver"]
            info.station = meta["station"]
            factor = _ts_factor(schema)
            if factor is not None and md.num_rows > 0:
                info.start_ns, info.end_ns = _file_ts_range(pf, factor)
    except Exception as exc:  # a corrupt file is listed, not fatal
        info.error = f"{type(exc).__name__}: {exc}"
        log.warning("cannot read recording %s: %s", path, exc)
    return info


def _file_ts_range(pf: pq.ParquetFile, factor: int) -> tuple[int, int]:
    md = pf.metadata
    idx = pf.schema_arrow.get_field_index(TIMESTAMP_COLUMN)
    lo: int | None = None
    hi: int | None = None
    for rg in range(md.num_row_groups):
        if md.row_group(rg).num_rows == 0:
            continue
        r = _rg_ts_range(md, rg, idx, factor)
        if r is None:  # no statistics: read the column
            ts = _timestamps_ns(pf.read_row_group(rg, columns=[TIMESTAMP_COLUMN]).column(0), factor)
            r = (int(ts.min()), int(ts.max()))
        lo = r[0] if lo is None else min(lo, r[0])
        hi = r[1] if hi is None else max(hi, r[1])
    if lo is None or hi is None:
        raise RecorderError("no timestamps")
    return lo, hi


def _is_inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True


def list_recordings(directory: str | os.PathLike[str]) -> list[RecordingInfo]:
    """Describe every visible ``*.parquet`` file of ``directory``, sorted by file name.

    Hidden files (temporary Parquet, journals), other extensions, sub-directories and symlinks
    leading out of the directory are skipped. A file that cannot be read is listed with
    ``error`` set. A missing directory lists as empty.

    Returns:
        One :class:`RecordingInfo` per file. Only footers are read (plus the timestamp column
        of row groups without statistics).
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    real_root = root.resolve()
    out: list[RecordingInfo] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        name = entry.name
        if name.startswith(".") or not name.endswith(".parquet"):
            continue
        path = root / name
        if entry.is_symlink() and not _is_inside(path.resolve(), real_root):
            continue
        if not path.is_file():
            continue
        try:
            st = path.stat()
        except OSError as exc:  # vanished or unreadable between scandir and stat
            log.warning("cannot stat recording %s: %s", path, exc)
            continue
        info = _describe_cached(str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        out.append(dataclasses.replace(info, channels=list(info.channels), units=list(info.units)))
    return out


_DESCRIBED: dict[tuple[str, int, int, int], RecordingInfo] = {}
_DESCRIBED_MAX = 100_000


def _describe_cached(path: str, size: int, mtime_ns: int, inode: int) -> RecordingInfo:
    """:func:`_describe_file`, read once per version of a file.

    Segments appear by atomic rename and are never rewritten in place, so a file with the same
    name, size, modification time and inode holds the same footer: listing a folder of a
    day's segments reads only the new ones. A file that could not be read is not remembered,
    so a passing I/O error is not listed forever.
    """
    key = (path, size, mtime_ns, inode)
    info = _DESCRIBED.get(key)
    if info is None:
        info = _describe_file(Path(path))
        if info.error is None:
            if len(_DESCRIBED) >= _DESCRIBED_MAX:
                _DESCRIBED.pop(next(iter(_DESCRIBED)))
            _DESCRIBED[key] = info
    return info


def safe_recording_path(directory: str | os.PathLike[str], filename: str) -> Path:
    """Resolve a client-given recording file name inside ``directory``.

    The name must be a plain, visible file name ending in ``.parquet``: no directory part
    (``/`` or ``\\``), no drive, not absolute, no leading ``.``, no NUL; and if it is a symlink
    its target must stay inside ``directory``. Existence is *not* checked.

    Returns:
        The resolved absolute path.

    Raises:
        UnsafePath: the name was refused; the message says why.
    """
    if not isinstance(filename, str) or not filename:
        raise UnsafePath("empty file name")
    if "\x00" in filename:
        raise UnsafePath("file name contains a NUL character")
    if PurePosixPath(filename).is_absolute() or PureWindowsPath(filename).is_absolute():
        raise UnsafePath(f"{filename!r} is an absolute path")
    if "/" in filename or "\\" in filename or PureWindowsPath(filename).drive:
        raise UnsafePath(f"{filename!r} has a directory part; give a bare file name")
    if filename.startswith("."):
        raise UnsafePath(f"{filename!r} is a hidden file")
    if not filename.endswith(".parquet"):
        raise UnsafePath(f"{filename!r} is not a .parquet file")
    root = Path(directory).resolve()
    candidate = root / filename
    resolved = candidate.resolve()
    if not _is_inside(resolved, root) or resolved == root:
        raise UnsafePath(f"{filename!r} leads outside the recordings directory")
    return resolved


# -- query ----------------------------------------------------------------------------------
def _select_channels(available: list[str], channels: Sequence[str] | None) -> list[str]:
    if channels is None:
        return list(available)
    unknown = [c for c in channels if c not in available]
    if unknown:
        raise UnknownChannel(
            f"unknown channel {unknown[0]!r}; available: {', '.join(available) or '(none)'}"
        )
    return list(dict.fromkeys(channels))


def _json_floats(values: np.ndarray) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.astype(np.float64).tolist()]


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise RecorderError(f"{path.name}: not a readable Parquet recording: {exc}") from exc


def query_recording(
    path: str | os.PathLike[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    channels: Sequence[str] | None = None,
    max_points: int = 2000,
) -> dict[str, Any]:
    """Rows of a recording in a time range, min/max-decimated for plotting.

    Only the ``timestamp`` column and the requested channels are read, and only row groups
    whose timestamp statistics overlap ``[start_ns, end_ns]`` (both inclusive). The selected
    rows are cut into consecutive buckets of ``bucket_size = ceil(rows_selected / max_points)``
    rows; each bucket yields the minimum and maximum of each channel, so a single-sample peak
    always shows. NaN values are ignored within a bucket; a bucket of only NaN (or an
    infinite extreme) gives ``None``.

    Args:
        path: the recording.
        start_ns, end_ns: time range in ns since the epoch; ``None`` for open ends.
        channels: channel names; ``None`` for all.
        max_points: at most this many buckets (>= 1).

    Returns:
        ``{"filename", "device", "sample_rate_hz", "channels": [{"name", "unit"}],
        "rows_total", "rows_selected", "bucket_size", "t_s": [float s since epoch of each
        bucket's first row], "series": {name: {"min": [float | None], "max": [...]}}}``.

    Raises:
        UnknownChannel: a requested channel is not in the file.
        RecorderError: the file is not a readable recording (or has no timestamp column).
        FileNotFoundError: no such file.
        ValueError: ``max_points`` < 1.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    p = Path(path)
    lo = -(2**63) if start_ns is None else int(start_ns)
    hi = 2**63 - 1 if end_ns is None else int(end_ns)
    with _open(p) as pf:
        schema = pf.schema_arrow
        meta = recording_meta(schema)
        factor = _ts_factor(schema)
        if factor is None:
            raise RecorderError(f"{p.name}: no timestamp column")
        chans = _select_channels(channel_columns(schema), channels)
        units = {c["name"]: c["unit"] for c in meta["channels"]}
        md = pf.metadata
        ts_idx = schema.get_field_index(TIMESTAMP_COLUMN)

        # pass 1: which row groups, and how many rows are selected
        plan: list[tuple[int, bool]] = []  # (row group, fully inside the range)
        rows_selected = 0
        for rg in range(md.num_row_groups):
            n = md.row_group(rg).num_rows
            if n == 0:
                continue
            r = _rg_ts_range(md, rg, ts_idx, factor)
            if r is not None and (r[1] < lo or r[0] > hi):
                continue
            if r is not None and lo <= r[0] and r[1] <= hi:
                plan.append((rg, True))
                rows_selected += n
                continue
            ts = _timestamps_ns(pf.read_row_group(rg, columns=[TIMESTAMP_COLUMN]).column(0), factor)
            k = int(np.count_nonzero((ts >= lo) & (ts <= hi)))
            if k:
                plan.append((rg, False))
                rows_selected += k

        bucket = max(1, math.ceil(rows_selected / max_points))
        nb = math.ceil(rows_selected / bucket)
        t_first = np.zeros(nb, dtype=np.int64)
        mins = {c: np.full(nb, np.nan, dtype=np.float32) for c in chans}
        maxs = {c: np.full(nb, np.nan, dtype=np.float32) for c in chans}

        # pass 2: per row group, bucket the selected rows
        off = 0
        for rg, inside in plan:
            t = pf.read_row_group(rg, columns=[TIMESTAMP_COLUMN, *chans])
            ts = _timestamps_ns(t.column(TIMESTAMP_COLUMN), factor)
            mask = None if inside else (ts >= lo) & (ts <= hi)
            if mask is not None:
                ts = ts[mask]
            m = int(ts.shape[0])
            if m == 0:
                continue
            first = (-off) % bucket
            starts = np.arange(first, m, bucket, dtype=np.int64)
            if first != 0:
                starts = np.concatenate((np.zeros(1, dtype=np.int64), starts))
            b_idx = (off + starts) // bucket
            aligned = (off + starts) % bucket == 0
            t_first[b_idx[aligned]] = ts[starts[aligned]]
            for c in chans:
                v = t.column(c).to_numpy().astype(np.float32, copy=False)
                if mask is not None:
                    v = v[mask]
                mins[c][b_idx] = np.fmin(mins[c][b_idx], np.fmin.reduceat(v, starts))
                maxs[c][b_idx] = np.fmax(maxs[c][b_idx], np.fmax.reduceat(v, starts))
            off += m

    return {
        "filename": p.name,
        "device": meta["device"] or _guess_device(p.name),
        "sample_rate_hz": meta["sample_rate_hz"],
        "channels": [{"name": c, "unit": units.get(c, "")} for c in chans],
        "rows_total": int(md.num_rows),
        "rows_selected": int(rows_selected),
        "bucket_size": int(bucket),
        "t_s": (t_first / 1e9).tolist(),
        "series": {c: {"min": _json_floats(mins[c]), "max": _json_floats(maxs[c])} for c in chans},
    }


# -- export ---------------------------------------------------------------------------------
def export_recording(
    path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    fmt: Literal["csv", "parquet"],
    channels: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    codec: str = "zstd",
) -> int:
    """Copy a recording (or some of its channels) to CSV or Parquet, row group by row group.

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
        RecorderError: unreadable source, ``out_path`` is the source.
        ValueError: unknown ``fmt``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    src = Path(path)
    dst = Path(out_path)
    if dst.resolve() == src.resolve():
        raise RecorderError(f"cannot export {src.name} onto itself")
    tmp = dst.with_name(f".{dst.name}.tmp")
    done = 0
    with _open(src) as pf:
        schema = pf.schema_arrow
        chans = _select_channels(channel_columns(schema), channels)
        cols = [TIMESTAMP_COLUMN, *chans] if TIMESTAMP_COLUMN in schema.names else chans
        out_schema = pa.schema([schema.field(c) for c in cols], metadata=schema.metadata)
        meta = dict(schema.metadata or {})
        if META_CHANNELS in meta:
            try:
                listed = json.loads(meta[META_CHANNELS])
                meta[META_CHANNELS] = json.dumps([c for c in listed if c["name"] in chans]).encode()
                out_schema = out_schema.with_metadata(meta)
            except (ValueError, TypeError, KeyError):
                pass
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
                    t = pf.read_row_group(rg, columns=cols)
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
