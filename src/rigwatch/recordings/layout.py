"""The Parquet layout of a rigwatch recording, and the one reader and writer of its metadata.

Layout of a recording (segment, recovered segment or buffer snapshot):

- column ``timestamp``: ``timestamp[ns, tz=UTC]``, not nullable, encoded
  ``DELTA_BINARY_PACKED``, with min/max statistics per row group;
- then one ``float32`` column per channel, not nullable (a missing value is NaN), named by the
  channel, with field metadata ``{b"unit": unit}``, encoded ``BYTE_STREAM_SPLIT``; dictionary
  encoding is off, and so are statistics;
- schema key-value metadata (bytes): ``rigwatch.format_version`` (``"1"``),
  ``rigwatch.device``, ``rigwatch.driver``, ``rigwatch.station`` (optional),
  ``rigwatch.sample_rate_hz`` (``repr`` of a float), ``rigwatch.channels`` (JSON list of
  ``{"name", "unit", "gain", "offset"}``), ``rigwatch.start_index`` (absolute ring-buffer
  index of the first row) and ``rigwatch.extra`` (JSON object of the driver's extra facts).

So any Parquet reader (pyarrow, DuckDB, Polars, pandas) understands a file on its own; the
encodings follow the measurements in ``docs/benchmarks.md`` (dictionary off and byte-stream
split halve the size of float sensor data against pyarrow's defaults).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

from rigwatch.channels import ChannelInfo, StreamInfo
from rigwatch.errors import FormatError, RecorderError
from rigwatch.recordings.codecs import CODECS, LEVEL_CODECS

FORMAT_VERSION = "1"
TIMESTAMP_COLUMN = "timestamp"
TIMESTAMP_TYPE = pa.timestamp("ns", tz="UTC")
META_PREFIX = "rigwatch."
META_FORMAT_VERSION = b"rigwatch.format_version"
META_DEVICE = b"rigwatch.device"
META_DRIVER = b"rigwatch.driver"
META_STATION = b"rigwatch.station"
META_SAMPLE_RATE = b"rigwatch.sample_rate_hz"
META_CHANNELS = b"rigwatch.channels"
META_START_INDEX = b"rigwatch.start_index"
META_EXTRA = b"rigwatch.extra"
NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


# -- writing --------------------------------------------------------------------------------
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
    fields = [pa.field(TIMESTAMP_COLUMN, TIMESTAMP_TYPE, nullable=False)]
    fields += [
        pa.field(c.name, pa.float32(), nullable=False, metadata={b"unit": c.unit.encode()})
        for c in info.channels
    ]
    meta: dict[bytes, bytes] = {
        META_FORMAT_VERSION: FORMAT_VERSION.encode(),
        META_DEVICE: info.device.encode(),
        META_DRIVER: info.driver.encode(),
    }
    if station:
        meta[META_STATION] = station.encode()
    meta[META_SAMPLE_RATE] = repr(float(info.sample_rate_hz)).encode()
    meta[META_CHANNELS] = _channels_json(info.channels)
    meta[META_START_INDEX] = str(int(start_index)).encode()
    meta[META_EXTRA] = json.dumps(dict(info.extra), sort_keys=True).encode()
    return pa.schema(fields, metadata=meta)


def _channels_json(channels: Sequence[ChannelInfo]) -> bytes:
    return json.dumps(
        [
            {"name": c.name, "unit": c.unit, "gain": float(c.gain), "offset": float(c.offset)}
            for c in channels
        ]
    ).encode()


def restrict_channels(schema: pa.Schema, channels: Sequence[str]) -> pa.Schema:
    """``schema`` with only the ``timestamp`` column (if any) and ``channels``, in that order;
    ``rigwatch.channels`` in its metadata lists only those channels.

    Raises:
        KeyError: a channel is not a column of ``schema``.
    """
    cols = [TIMESTAMP_COLUMN] if TIMESTAMP_COLUMN in schema.names else []
    cols += list(channels)
    out = pa.schema([schema.field(c) for c in cols], metadata=schema.metadata)
    meta = dict(schema.metadata or {})
    if META_CHANNELS in meta:
        try:
            listed = json.loads(meta[META_CHANNELS])
            meta[META_CHANNELS] = json.dumps([c for c in listed if c["name"] in channels]).encode()
        except (ValueError, TypeError, KeyError):
            return out  # a foreign or damaged list is kept as it was
        out = out.with_metadata(meta)
    return out


def channel_columns(schema: pa.Schema) -> list[str]:
    """Names of the channel columns of a recording schema (every column but ``timestamp``)."""
    return [n for n in schema.names if n != TIMESTAMP_COLUMN]


def writer_options(
    channel_names: Sequence[str], codec: str = "zstd", compression_level: int | None = None
) -> dict[str, Any]:
    """Keyword arguments of :class:`pyarrow.parquet.ParquetWriter` for a recording.

    Args:
        channel_names: the float32 columns (written BYTE_STREAM_SPLIT).
        codec: one of :data:`~rigwatch.recordings.codecs.CODECS`; ``"none"`` writes
            uncompressed pages.
        compression_level: codec level, only for zstd, gzip, brotli and lz4.

    Raises:
        RecorderError: unknown codec, or a level given for a codec without levels.
    """
    if codec not in CODECS:
        raise RecorderError(f"unknown codec {codec!r}, expected one of {', '.join(CODECS)}")
    if compression_level is not None and codec not in LEVEL_CODECS:
        raise RecorderError(f"codec {codec!r} does not take a compression_level")
    return {
        "compression": None if codec == "none" else codec,
        "compression_level": compression_level,
        "use_dictionary": False,
        "use_byte_stream_split": list(channel_names),
        "column_encoding": {TIMESTAMP_COLUMN: "DELTA_BINARY_PACKED"},
        # readers use the timestamp's min/max to skip row groups; channel statistics would
        # cost 6 % of the encoding and serve no query
        "write_statistics": [TIMESTAMP_COLUMN],
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


TRANSPOSE_SLAB_ROWS = 16
"""Rows per slab when rows are turned into columns: a whole-array transpose of wide rows (4 KiB
at 1 024 channels) strides through memory hostile to the cache; 16-row slabs keep it hot (on
one second of 1 024 x 51.2 kHz: 114 ms instead of 510 ms, see docs/benchmarks.md)."""

_SLAB_MIN_CHANNELS = 128  # below this a plain transpose is as fast


def rows_to_columns(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Consecutive ``(rows_i, channels)`` float32 blocks as one ``(channels, sum rows_i)``
    float32 C-contiguous array (each row of the result is one channel)."""
    channels = int(blocks[0].shape[1])
    rows = sum(int(b.shape[0]) for b in blocks)
    out = np.empty((channels, rows), dtype=np.float32)
    off = 0
    for block in blocks:
        n = int(block.shape[0])
        if channels < _SLAB_MIN_CHANNELS:
            out[:, off : off + n] = block.T
        else:
            for s in range(0, n, TRANSPOSE_SLAB_ROWS):
                e = min(n, s + TRANSPOSE_SLAB_ROWS)
                out[:, off + s : off + e] = block[s:e].T
        off += n
    return out


def blocks_to_batch(
    schema: pa.Schema, blocks: Sequence[tuple[np.ndarray, np.ndarray]]
) -> pa.RecordBatch:
    """One record batch of ``schema`` from consecutive ``(timestamps_ns, data)`` blocks:
    ``(rows_i,)`` int64 ns and ``(rows_i, channels)`` float32, concatenated in order."""
    ts = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in blocks])
    by_channel = rows_to_columns([np.asarray(d, dtype=np.float32) for _, d in blocks])
    cols: list[pa.Array] = [pa.array(ts, TIMESTAMP_TYPE)]
    cols += [pa.array(by_channel[i]) for i in range(by_channel.shape[0])]
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def rows_to_batch(schema: pa.Schema, timestamps_ns: np.ndarray, data: np.ndarray) -> pa.RecordBatch:
    """A record batch of ``schema`` from ``(rows,)`` int64 ns and ``(rows, channels)`` float32."""
    return blocks_to_batch(schema, [(timestamps_ns, data)])


# -- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordingMeta:
    """What a Parquet file's metadata says about the recording it holds.

    Attributes:
        is_rigwatch: the file carries ``rigwatch.*`` metadata (then every field below was
            checked); ``False`` for a foreign Parquet file.
        device, driver, station: from the metadata (``None`` when absent).
        sample_rate_hz: nominal rate in Hz (``None`` when absent).
        channels: every non-timestamp column, in column order, with unit (from
            ``rigwatch.channels``, else the field's ``unit`` metadata) and calibration.
        start_index: absolute ring-buffer index of the first row (``None`` when absent).
        extra: the driver's extra facts (``rigwatch.extra``).
        text: every key-value of the schema metadata, decoded as text (Arrow's own
            ``ARROW:schema`` left out).
    """

    is_rigwatch: bool
    device: str | None
    driver: str | None
    station: str | None
    sample_rate_hz: float | None
    channels: tuple[ChannelInfo, ...]
    start_index: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)

    @property
    def channel_names(self) -> list[str]:
        """Channel names in column order."""
        return [c.name for c in self.channels]

    @property
    def units(self) -> list[str]:
        """Units in column order."""
        return [c.unit for c in self.channels]


def read_meta(schema: pa.Schema, source: object) -> RecordingMeta:
    """Parse the metadata of a recording's schema.

    A file with ``rigwatch.*`` keys must have a complete, valid set of them: the version this
    reader understands, a positive ``rigwatch.sample_rate_hz``, a ``rigwatch.channels`` list of
    unique names that each have a numeric column. A file without them is a foreign Parquet
    file: its channels are its non-timestamp columns, units from the field metadata.

    Args:
        schema: the file's Arrow schema.
        source: how error messages name the file (its path or name).

    Returns:
        The parsed :class:`RecordingMeta`.

    Raises:
        FormatError: rigwatch metadata that is incomplete or invalid; the message names the
            file, the key and what is wrong.
    """
    raw = dict(schema.metadata or {})
    text = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in raw.items()
        if k != b"ARROW:schema"
    }
    mine = {k: v for k, v in text.items() if k.startswith(META_PREFIX)}
    columns = channel_columns(schema)
    if not mine:
        channels = tuple(
            ChannelInfo(n, (schema.field(n).metadata or {}).get(b"unit", b"").decode("utf-8"))
            for n in columns
        )
        return RecordingMeta(False, None, None, None, None, channels, text=text)

    version = mine.get("rigwatch.format_version")
    if version != FORMAT_VERSION:
        raise FormatError(
            f"{source}: rigwatch.format_version is {version!r}, this reader understands "
            f"{FORMAT_VERSION!r}"
        )
    rate_text = mine.get("rigwatch.sample_rate_hz")
    if rate_text is None:
        raise FormatError(f"{source}: rigwatch metadata lacks rigwatch.sample_rate_hz")
    try:
        rate = float(rate_text)
    except ValueError:
        raise FormatError(
            f"{source}: rigwatch.sample_rate_hz {rate_text!r} is not a number"
        ) from None
    if not (np.isfinite(rate) and rate > 0):
        raise FormatError(f"{source}: rigwatch.sample_rate_hz must be > 0, got {rate_text!r}")
    channels = _parse_channels(source, mine.get("rigwatch.channels"))
    absent = [c.name for c in channels if c.name not in columns]
    if absent:
        raise FormatError(
            f"{source}: channels {', '.join(map(repr, absent))} listed in rigwatch.channels "
            f"have no column; columns: {', '.join(columns)}"
        )
    for c in channels:
        t = schema.field(c.name).type
        if not (pat.is_integer(t) or pat.is_floating(t)):
            raise FormatError(f"{source}: column {c.name!r} has type {t}, expected numeric")
    start_index: int | None = None
    if "rigwatch.start_index" in mine:
        try:
            start_index = int(mine["rigwatch.start_index"])
        except ValueError:
            raise FormatError(
                f"{source}: rigwatch.start_index {mine['rigwatch.start_index']!r} is not an integer"
            ) from None
    extra: dict[str, str] = {}
    if "rigwatch.extra" in mine:
        try:
            parsed = json.loads(mine["rigwatch.extra"])
        except ValueError as exc:
            raise FormatError(f"{source}: rigwatch.extra is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise FormatError(f"{source}: rigwatch.extra must be a JSON object")
        extra = {str(k): str(v) for k, v in parsed.items()}
    return RecordingMeta(
        True,
        mine.get("rigwatch.device"),
        mine.get("rigwatch.driver"),
        mine.get("rigwatch.station"),
        rate,
        channels,
        start_index,
        extra,
        text,
    )


def _parse_channels(source: object, text: str | None) -> tuple[ChannelInfo, ...]:
    if text is None:
        raise FormatError(f"{source}: rigwatch metadata lacks rigwatch.channels")
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise FormatError(f"{source}: rigwatch.channels is not valid JSON: {exc}") from None
    if not isinstance(items, list) or not items:
        raise FormatError(f"{source}: rigwatch.channels must be a non-empty JSON list")
    out: list[ChannelInfo] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise FormatError(f"{source}: rigwatch.channels[{i}] must be an object with a name")
        unit = item.get("unit", "")
        if not isinstance(unit, str):
            raise FormatError(f"{source}: rigwatch.channels[{i}].unit must be a string")
        try:
            gain = float(item.get("gain", 1.0))
            offset = float(item.get("offset", 0.0))
        except (TypeError, ValueError):
            raise FormatError(
                f"{source}: rigwatch.channels[{i}] gain and offset must be numbers"
            ) from None
        out.append(ChannelInfo(item["name"], unit, gain, offset))
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FormatError(f"{source}: rigwatch.channels repeats {', '.join(dup)}")
    return tuple(out)


def timestamp_unit_ns(schema: pa.Schema) -> int | None:
    """Nanoseconds per unit of the schema's ``timestamp`` column, or ``None`` when it has no
    ``timestamp`` column of an Arrow timestamp type."""
    if TIMESTAMP_COLUMN not in schema.names:
        return None
    t = schema.field(TIMESTAMP_COLUMN).type
    if not pat.is_timestamp(t):
        return None
    return NS_PER_UNIT[t.unit]


def timestamps_ns(col: pa.ChunkedArray | pa.Array, source: object) -> np.ndarray:
    """A ``timestamp`` column as ``(rows,)`` int64 nanoseconds since the Unix epoch.

    Accepts an Arrow timestamp of any unit, or integer nanoseconds.

    Raises:
        FormatError: the column has nulls or another type (message names ``source``).
    """
    if col.null_count:
        raise FormatError(f"{source}: column 'timestamp' has {col.null_count} null values")
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pat.is_timestamp(t):
        out = arr.view(pa.int64()).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        factor = NS_PER_UNIT[t.unit]
        return out * factor if factor != 1 else out
    if pat.is_integer(t):
        try:
            return np.ascontiguousarray(arr.cast(pa.int64()).to_numpy(), dtype=np.int64)
        except pa.ArrowException as exc:
            raise FormatError(f"{source}: column 'timestamp' cannot be converted: {exc}") from exc
    raise FormatError(
        f"{source}: column 'timestamp' has type {t}, expected an Arrow timestamp or int64 "
        f"nanoseconds"
    )


def is_numeric(t: pa.DataType) -> bool:
    """True for Arrow integer and floating types (the types a channel column may have)."""
    return bool(pat.is_integer(t) or pat.is_floating(t))


def metadata_bytes(meta: Mapping[bytes, bytes] | None) -> int:
    """Bytes of a schema's key-value metadata (keys plus values)."""
    return sum(len(k) + len(v) for k, v in (meta or {}).items())


def row_group_ts_range(
    md: pq.FileMetaData, row_group: int, ts_col: int, unit_ns: int
) -> tuple[int, int] | None:
    """First and last timestamp (ns) of a row group from its statistics, or ``None`` when the
    writer kept no statistics."""
    st = md.row_group(row_group).column(ts_col).statistics
    if st is None or not st.has_min_max:
        return None
    return int(st.min_raw) * unit_ns, int(st.max_raw) * unit_ns


def file_ts_range(pf: pq.ParquetFile, source: object) -> tuple[int, int] | None:
    """First and last timestamp (ns) of a recording, from row-group statistics (reading the
    timestamp column of groups without them); ``None`` for a file without rows or without a
    timestamp column.

    Raises:
        FormatError: a timestamp column that cannot be read.
    """
    unit_ns = timestamp_unit_ns(pf.schema_arrow)
    md = pf.metadata
    if unit_ns is None or md.num_rows == 0:
        return None
    idx = pf.schema_arrow.get_field_index(TIMESTAMP_COLUMN)
    lo: int | None = None
    hi: int | None = None
    for rg in range(md.num_row_groups):
        if md.row_group(rg).num_rows == 0:
            continue
        r = row_group_ts_range(md, rg, idx, unit_ns)
        if r is None:
            ts = timestamps_ns(pf.read_row_group(rg, columns=[TIMESTAMP_COLUMN]).column(0), source)
            r = (int(ts.min()), int(ts.max()))
        lo = r[0] if lo is None else min(lo, r[0])
        hi = r[1] if hi is None else max(hi, r[1])
    return None if lo is None or hi is None else (lo, hi)
