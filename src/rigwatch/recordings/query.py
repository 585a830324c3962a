"""Time-range queries of a recording with min/max decimation, for plotting.

Only the ``timestamp`` column and the requested channels are read, and only row groups whose
timestamp statistics overlap the range; each bucket of consecutive rows gives the minimum and
maximum of each channel, so a single-sample peak always shows however far a plot zooms out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from rigwatch.errors import FormatError, RecordingError
from rigwatch.recordings.files import guess_device
from rigwatch.recordings.layout import (
    TIMESTAMP_COLUMN,
    RecordingMeta,
    channel_columns,
    read_meta,
    row_group_ts_range,
    timestamp_unit_ns,
    timestamps_ns,
)


class UnknownChannel(RecordingError):
    """A requested channel is not in the recording; the message names it and lists the
    available channels."""


class QueryTooLarge(RecordingError):
    """A query whose reply could exceed the allowed number of values; the message gives the
    arithmetic and what to ask for instead."""


class ChannelUnit(BaseModel):
    """A channel's name and unit."""

    name: str
    unit: str


class MinMaxSeries(BaseModel):
    """Per-bucket extremes of one channel; ``None`` where a bucket holds only NaN or an
    infinite extreme (NaN and infinities are written to JSON as ``null``)."""

    model_config = ConfigDict(ser_json_inf_nan="null")
    min: list[float | None]
    max: list[float | None]


class RangeQuery(BaseModel):
    """The reply to a range query (:meth:`RangeArrays.to_model` of :func:`query_range`)."""

    model_config = ConfigDict(ser_json_inf_nan="null")

    filename: str
    device: str
    sample_rate_hz: float | None = Field(description="Nominal rate in Hz, if the file says.")
    channels: list[ChannelUnit]
    rows_total: int = Field(description="Rows in the file.")
    rows_selected: int = Field(description="Rows within the time range.")
    bucket_size: int = Field(description="Rows per bucket.")
    t_s: list[float] = Field(description="Time of each bucket's first row, s since the epoch.")
    series: dict[str, MinMaxSeries] = Field(description="Extremes per channel.")


def select_channels(available: Sequence[str], channels: Sequence[str] | None) -> list[str]:
    """``channels`` (duplicates dropped, order kept), or every available channel for ``None``.

    Raises:
        UnknownChannel: a requested channel is not available.
    """
    if channels is None:
        return list(available)
    unknown = [c for c in channels if c not in available]
    if unknown:
        raise UnknownChannel(
            f"unknown channel {unknown[0]!r}; available: {', '.join(available) or '(none)'}"
        )
    return list(dict.fromkeys(channels))


def open_recording(path: Path) -> pq.ParquetFile:
    """Open a recording's Parquet footer.

    Raises:
        FileNotFoundError: no such file.
        FormatError: not a readable Parquet file.
    """
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise FormatError(f"{path.name}: not a readable Parquet recording: {exc}") from exc


@dataclass(frozen=True)
class RangeArrays:
    """A :class:`RangeQuery` with its numbers as arrays (what :func:`query_range` returns).

    Attributes:
        head: every field of the reply but ``t_s`` and ``series`` (``filename``, ``device``,
            ``sample_rate_hz``, ``channels``, ``rows_total``, ``rows_selected``,
            ``bucket_size``).
        t_s: ``(buckets,)`` float64, time of each bucket's first row, s since the epoch.
        mins, maxs: per channel, ``(buckets,)`` float32 extremes (NaN: no finite value).
    """

    head: dict[str, Any]
    t_s: np.ndarray
    mins: dict[str, np.ndarray]
    maxs: dict[str, np.ndarray]

    def to_model(self) -> RangeQuery:
        """The reply as a :class:`RangeQuery` of Python lists (``None`` for non-finite)."""
        head = dict(self.head)
        head["channels"] = [ChannelUnit(**c) for c in head["channels"]]
        return RangeQuery.model_construct(
            **head,
            t_s=self.t_s.tolist(),
            series={
                c: MinMaxSeries.model_construct(
                    min=_json_floats(self.mins[c]), max=_json_floats(self.maxs[c])
                )
                for c in self.mins
            },
        )

    def to_json(self) -> bytes:
        """The reply as :class:`RangeQuery` JSON, encoded straight from the arrays (orjson:
        float32 values in their shortest form, NaN and infinities as ``null``): about a third
        of the time a model's encoder takes, which matters because encoding holds the GIL."""
        # one encoder call per array, so the GIL is handed over between them (a reply of
        # 400 000 numbers would otherwise hold it for tens of milliseconds at once)
        opt = orjson.OPT_SERIALIZE_NUMPY
        parts = [orjson.dumps(self.head)[:-1], b',"t_s":', orjson.dumps(self.t_s, option=opt)]
        parts.append(b',"series":{')
        for i, c in enumerate(self.mins):
            parts += [
                b"," if i else b"",
                orjson.dumps(c),
                b':{"min":',
                orjson.dumps(self.mins[c], option=opt),
                b',"max":',
                orjson.dumps(self.maxs[c], option=opt),
                b"}",
            ]
        parts.append(b"}}")
        return b"".join(parts)


def _json_floats(values: np.ndarray) -> list[float | None]:
    """Values as Python floats, non-finite ones as ``None`` (one C loop when all are finite,
    the common case: a per-value check would hold the GIL for the whole reply)."""
    as64 = values.astype(np.float64)
    finite = np.isfinite(as64)
    if finite.all():
        return as64.tolist()
    out: list[float | None] = as64.tolist()
    for i in np.flatnonzero(~finite).tolist():
        out[i] = None
    return out


def query_range(
    path: str | os.PathLike[str],
    start_ns: int | None = None,
    end_ns: int | None = None,
    channels: Sequence[str] | None = None,
    max_points: int = 2000,
    max_values: int | None = None,
) -> RangeArrays:
    """Rows of a recording in a time range, min/max-decimated for plotting.

    The rows selected by ``[start_ns, end_ns]`` (both inclusive) are cut into consecutive
    buckets of ``bucket_size = ceil(rows_selected / max_points)`` rows; each bucket yields the
    minimum and maximum of each channel. NaN values are ignored within a bucket.

    Args:
        path: the recording.
        start_ns, end_ns: time range in ns since the epoch; ``None`` for open ends.
        channels: channel names; ``None`` for all.
        max_points: at most this many buckets (>= 1).
        max_values: refuse, before reading any data, a query whose reply could hold more
            than this many numbers (``2 x max_points x channels``); ``None``: no bound.

    Returns:
        a :class:`RangeArrays` (:meth:`~RangeArrays.to_model`, :meth:`~RangeArrays.to_json`).

    Raises:
        QueryTooLarge: the reply could exceed ``max_values``.
        UnknownChannel: a requested channel is not in the file.
        FormatError: the file is not a readable recording (corrupt footer or data pages, bad
            metadata, no timestamp column).
        FileNotFoundError: no such file.
        ValueError: ``max_points`` < 1.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    p = Path(path)
    lo = -(2**63) if start_ns is None else int(start_ns)
    hi = 2**63 - 1 if end_ns is None else int(end_ns)
    with open_recording(p) as pf:
        schema = pf.schema_arrow
        meta = read_meta(schema, p.name)
        unit_ns = timestamp_unit_ns(schema)
        if unit_ns is None:
            raise FormatError(f"{p.name}: no timestamp column")
        chans = select_channels(channel_columns(schema), channels)
        values = 2 * max_points * len(chans)
        if max_values is not None and values > max_values:
            raise QueryTooLarge(
                f"{len(chans)} channels x {max_points} points x 2 (min and max) = {values} "
                f"values exceeds the limit of {max_values}; ask for fewer points or channels"
            )
        try:
            return _query(pf, p.name, meta, chans, lo, hi, max_points, unit_ns)
        except (pa.ArrowException, OSError) as exc:  # corrupt pages behind an intact footer
            raise FormatError(f"{p.name}: data cannot be read (corrupt file): {exc}") from exc


def _query(
    pf: pq.ParquetFile,
    name: str,
    meta: RecordingMeta,
    chans: list[str],
    lo: int,
    hi: int,
    max_points: int,
    unit_ns: int,
) -> RangeArrays:
    md = pf.metadata
    ts_idx = pf.schema_arrow.get_field_index(TIMESTAMP_COLUMN)
    units = dict(zip(meta.channel_names, meta.units, strict=True))

    # pass 1: which row groups, and how many rows are selected
    plan: list[tuple[int, bool]] = []  # (row group, fully inside the range)
    rows_selected = 0
    for rg in range(md.num_row_groups):
        n = md.row_group(rg).num_rows
        if n == 0:
            continue
        r = row_group_ts_range(md, rg, ts_idx, unit_ns)
        if r is not None and (r[1] < lo or r[0] > hi):
            continue
        if r is not None and lo <= r[0] and r[1] <= hi:
            plan.append((rg, True))
            rows_selected += n
            continue
        ts = timestamps_ns(pf.read_row_group(rg, columns=[TIMESTAMP_COLUMN]).column(0), name)
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
        ts = timestamps_ns(t.column(TIMESTAMP_COLUMN), name)
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

    head = {
        "filename": name,
        "device": meta.device or guess_device(name),
        "sample_rate_hz": meta.sample_rate_hz,
        "channels": [{"name": c, "unit": units.get(c, "")} for c in chans],
        "rows_total": int(md.num_rows),
        "rows_selected": int(rows_selected),
        "bucket_size": int(bucket),
    }
    return RangeArrays(head, t_first / 1e9, mins, maxs)
