"""Readers of recording files: NumPy ``.npz``, WAV, Parquet (rigwatch's own and plain) and HDF5.

One entry point, :func:`read_recording`, turns a file into a :class:`Recording`: a
``(samples, channels)`` ``float32`` array with its sample rate, channel names and units.

Every problem with a file (missing, truncated, corrupt, wrong layout, wrong dtype, channels of
different lengths, unknown keys) is raised as :class:`~rigwatch.errors.FormatError` whose message
names the file and says what is wrong; exceptions of numpy, scipy, h5py or pyarrow never leak
out.

Supported layouts:

- ``.npz``: each array is a channel, shape ``(n,)`` or ``(n, 1)``; an array of shape ``(n, c)``
  contributes ``c`` channels (``ch0..`` for the unnamed ``arr_0`` of ``np.savez(path, a)``,
  ``<key>_0..`` otherwise). A scalar ``sample_rate_hz`` or ``fs`` array gives the rate; other
  scalars become metadata. Values are converted with ``astype(np.float32)``.
- ``.wav``: PCM ``uint8``/``int16``/``int32`` scaled to ``[-1, 1)``; float WAV kept as is.
- ``.parquet`` / ``.pq``: rigwatch recordings (schema metadata ``rigwatch.*``) or any table whose
  numeric columns are channels, with an optional ``timestamp`` column.
- ``.h5`` / ``.hdf5``: Acoular's ``time_data`` dataset (attribute ``sample_freq``) or the
  microphone-array benchmark's ``MicrophoneData/microphoneDataPa`` (attribute ``sampleRateHz``).
"""

from __future__ import annotations

import logging
import math
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rigwatch.errors import FormatError
from rigwatch.recordings.layout import (
    TIMESTAMP_COLUMN,
    channel_columns,
    is_numeric,
    read_meta,
    timestamps_ns,
)

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("npz", "wav", "parquet", "hdf5")
"""Format names accepted by :func:`read_recording` besides ``"auto"``."""

SUFFIXES: dict[str, str] = {
    ".npz": "npz",
    ".wav": "wav",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}
"""File suffix (lower case) -> format, used by ``format="auto"``."""

RATE_KEYS: tuple[str, ...] = ("sample_rate_hz", "fs")
"""Names of a scalar array of an ``.npz`` file that holds the sample rate in Hz."""

_ACOULAR_DATASET = "time_data"
_BENCHMARK_DATASET = "MicrophoneData/microphoneDataPa"
_ACCEPTED_KINDS = "biuf"  # bool, signed and unsigned integers, floats


@dataclass(frozen=True)
class Recording:
    """A recording loaded in memory.

    Attributes:
        data: ``(samples, channels)`` ``float32``, C-contiguous, the file's values (PCM WAV
            scaled to ``[-1, 1)``).
        sample_rate_hz: samples per second, > 0.
        channel_names: one name per column of ``data``.
        units: one unit per column (``""`` when the file does not say).
        timestamps_ns: ``(samples,)`` ``int64`` nanoseconds since the Unix epoch when the file
            stores timestamps (Parquet), else ``None``.
        source: path of the file read.
        metadata: facts found in the file (attributes, schema metadata, scalars), as strings.
        format: the format the file was read as (``"npz"``, ``"wav"``, ``"parquet"``,
            ``"hdf5"``).
    """

    data: np.ndarray
    sample_rate_hz: float
    channel_names: list[str]
    units: list[str]
    timestamps_ns: np.ndarray | None
    source: str
    metadata: dict[str, str] = field(default_factory=dict)
    format: str = ""

    @property
    def samples(self) -> int:
        """Number of sample rows."""
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels (columns)."""
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds: ``samples / sample_rate_hz``."""
        return self.samples / self.sample_rate_hz


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its suffix.

    Returns:
        one of :data:`FORMATS`.

    Raises:
        FormatError: unknown suffix; the message lists the supported ones.
    """
    p = Path(path)
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        supported = ", ".join(f"{s} ({f})" for s, f in SUFFIXES.items())
        raise FormatError(
            f"{p}: unknown recording format (suffix {p.suffix or 'none'!r}); "
            f"supported: {supported}; or give format explicitly"
        )
    return fmt


def read_recording(
    path: str | Path,
    format: str = "auto",
    keys: Sequence[str] | None = None,
    sample_rate_hz: float | None = None,
) -> Recording:
    """Read a recording file into memory.

    Args:
        path: the file.
        format: ``"auto"`` (from the suffix, see :data:`SUFFIXES`) or one of :data:`FORMATS`.
        keys: which channels to read, in this order: array names (npz), column names (parquet)
            or channel names (``ch0``, ``ch1``... for wav and hdf5). ``None``: all channels.
        sample_rate_hz: rate of the samples, in Hz, for files that do not state it (npz without
            a ``sample_rate_hz``/``fs`` scalar, plain Parquet, HDF5 without a rate attribute).
            When the file states a rate, the file wins (a different value is logged).

    Returns:
        a :class:`Recording` with ``data`` of shape ``(samples, channels)``, ``float32``.

    Raises:
        FormatError: the file is missing, unreadable, truncated, of an unknown format or layout,
            holds a non-numeric or complex dtype, empty arrays, channels of different lengths,
            or ``keys`` names something the file does not have; or the rate is unknown.
    """
    p = Path(path)
    if format == "auto":
        fmt = detect_format(p)
    elif format in FORMATS:
        fmt = format
    else:
        raise FormatError(f"{p}: unknown format {format!r}; supported: auto, {', '.join(FORMATS)}")
    if keys is not None:
        keys = list(keys)
        if not keys:
            raise FormatError(f"{p}: keys is empty; give at least one key or None for all")
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise FormatError(f"{p}: keys repeated: {', '.join(dup)}")
    if sample_rate_hz is not None:
        _check_rate(p, sample_rate_hz, "sample_rate_hz argument")
    if not p.exists():
        raise FormatError(f"{p}: file does not exist")
    if not p.is_file():
        raise FormatError(f"{p}: not a regular file")
    reader = {"npz": _read_npz, "wav": _read_wav, "parquet": _read_parquet, "hdf5": _read_hdf5}
    rec = reader[fmt](p, keys, sample_rate_hz)
    log.debug(
        "read %s (%s): %d samples x %d channels at %g Hz",
        p,
        fmt,
        rec.samples,
        rec.channels,
        rec.sample_rate_hz,
    )
    return rec


# ---------------------------------------------------------------------------------------------
# helpers


def _check_rate(path: Path, rate: Any, what: str) -> float:
    try:
        value = float(rate)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: {what} {rate!r} is not a number") from exc
    if not math.isfinite(value) or value <= 0:
        raise FormatError(f"{path}: {what} must be a positive finite number of Hz, got {rate!r}")
    return value


def _rate_missing(path: Path, why: str) -> FormatError:
    return FormatError(
        f"{path}: the sample rate is unknown ({why}); set sample_rate_hz "
        f"(argument, or sample_rate_hz in the device config)"
    )


def _pick_rate(path: Path, from_file: float | None, given: float | None, where: str) -> float:
    """The file's rate when it has one (logging a disagreement with ``given``), else ``given``."""
    if from_file is not None:
        if given is not None and not math.isclose(from_file, given, rel_tol=1e-9):
            log.warning(
                "%s: file states %g Hz (%s), ignoring sample_rate_hz=%g",
                path,
                from_file,
                where,
                given,
            )
        return from_file
    if given is None:
        raise _rate_missing(path, f"the file has no {where}")
    return given


def _check_dtype(path: Path, name: str, dtype: np.dtype) -> None:
    if dtype.kind not in _ACCEPTED_KINDS:
        raise FormatError(
            f"{path}: {name} has dtype {dtype}, expected a real numeric dtype "
            f"(integer or float; complex, string and object arrays are not samples)"
        )


def _as_columns(path: Path, name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as ``(n, c)``: ``(n,)`` -> ``(n, 1)``; checks dtype, rank and emptiness."""
    _check_dtype(path, name, arr.dtype)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2:
        raise FormatError(
            f"{path}: {name} has shape {arr.shape}; expected (samples,) or (samples, channels)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise FormatError(f"{path}: {name} is empty (shape {arr.shape})")
    return arr


def _to_float32(arr: np.ndarray) -> np.ndarray:
    """Plain ``astype(np.float32)`` (round to nearest), C-contiguous."""
    return np.ascontiguousarray(arr.astype(np.float32))


def _check_lengths(path: Path, lengths: dict[str, int]) -> int:
    distinct = set(lengths.values())
    if len(distinct) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise FormatError(f"{path}: channels have different lengths ({detail})")
    return distinct.pop()


def _select(path: Path, names: list[str], keys: list[str] | None, what: str) -> list[int]:
    """Column indexes of ``keys`` among ``names`` (all when ``keys`` is None)."""
    if keys is None:
        return list(range(len(names)))
    missing = [k for k in keys if k not in names]
    if missing:
        raise FormatError(
            f"{path}: unknown {what} {', '.join(map(repr, missing))}; "
            f"the file has: {', '.join(names)}"
        )
    return [names.index(k) for k in keys]


def _stack(columns: list[np.ndarray]) -> np.ndarray:
    """Stack float32 ``(n,)`` columns into a C-contiguous ``(n, c)`` float32 array."""
    out = np.empty((columns[0].shape[0], len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        out[:, j] = col
    return out


def _attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ", max_line_width=10_000)
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


# ---------------------------------------------------------------------------------------------
# npz


def _read_npz(path: Path, keys: list[str] | None, rate: float | None) -> Recording:
    try:
        # our own handle: np.load leaks its file when the archive is corrupt
        with path.open("rb") as fh:
            names, arrays = _load_npz_arrays(path, fh, keys)
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc}") from exc
    wanted = names if keys is None else keys

    file_rate: float | None = None
    rate_key = ""
    for rk in RATE_KEYS:
        a = arrays.get(rk)
        if a is not None and a.size == 1 and (keys is None or rk not in keys):
            _check_dtype(path, f"array {rk!r}", a.dtype)
            file_rate = _check_rate(path, a.reshape(()).item(), f"array {rk!r}")
            rate_key = rk
            break

    metadata: dict[str, str] = {}
    channel_arrays: dict[str, np.ndarray] = {}
    for k in wanted:
        a = arrays[k]
        if k == rate_key:
            continue
        if a.ndim == 0:
            if keys is not None:
                raise FormatError(f"{path}: array {k!r} is a scalar, not a channel")
            metadata[k] = _attr_str(a)
            continue
        channel_arrays[k] = _as_columns(path, f"array {k!r}", a)
    if not channel_arrays:
        raise FormatError(f"{path}: no channel arrays (only scalars: {', '.join(names)})")

    _check_lengths(path, {k: a.shape[0] for k, a in channel_arrays.items()})
    sr = _pick_rate(path, file_rate, rate, "'sample_rate_hz' or 'fs' array")

    columns: list[np.ndarray] = []
    channel_names: list[str] = []
    for k, a in channel_arrays.items():
        c = a.shape[1]
        if c == 1:
            channel_names.append(k)
        elif k == "arr_0" and len(channel_arrays) == 1:
            channel_names.extend(f"ch{i}" for i in range(c))
        else:
            channel_names.extend(f"{k}_{i}" for i in range(c))
        # each column converted on its own with a plain astype: bit-identical to
        # ``np.load(path)[k].astype(np.float32)``
        columns.extend(_to_float32(a[:, i]) for i in range(c))
    if rate_key:
        metadata[rate_key] = repr(sr)
    return Recording(
        data=_stack(columns),
        sample_rate_hz=sr,
        channel_names=channel_names,
        units=[""] * len(channel_names),
        timestamps_ns=None,
        source=str(path),
        metadata=metadata,
        format="npz",
    )


def _load_npz_arrays(
    path: Path, fh: Any, keys: list[str] | None
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Names of the archive's arrays, and the arrays in ``keys`` (all if None) plus any rate
    scalar."""
    try:
        npz = np.load(fh, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(
            f"{path}: not a valid .npz archive (truncated or corrupt): {exc}"
        ) from exc
    except ValueError as exc:  # a pickle, or garbage
        raise FormatError(f"{path}: not an .npz archive of arrays: {exc}") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        if isinstance(npz, np.ndarray):
            npz_kind = f"a single .npy array {npz.shape}"
        else:
            npz_kind = type(npz).__name__
        raise FormatError(f"{path}: expected an .npz archive, found {npz_kind}")
    with npz:
        names = list(npz.files)
        if not names:
            raise FormatError(f"{path}: the archive holds no arrays")
        if keys is not None:
            missing = [k for k in keys if k not in names]
            if missing:
                raise FormatError(
                    f"{path}: unknown keys {', '.join(map(repr, missing))}; "
                    f"the archive has: {', '.join(names)}"
                )
        wanted = names if keys is None else keys
        arrays: dict[str, np.ndarray] = {}
        for k in dict.fromkeys([*wanted, *(k for k in RATE_KEYS if k in names)]):
            try:
                arrays[k] = np.asarray(npz[k])
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise FormatError(
                        f"{path}: array {k!r} holds Python objects (dtype object), "
                        f"not numeric samples"
                    ) from exc
                raise FormatError(
                    f"{path}: array {k!r} cannot be read (truncated or corrupt): {exc}"
                ) from exc
            except Exception as exc:  # zlib.error, EOFError, BadZipFile, OSError...
                raise FormatError(
                    f"{path}: array {k!r} cannot be read (truncated or corrupt): {exc}"
                ) from exc
    return names, arrays


# ---------------------------------------------------------------------------------------------
# wav

_PCM_SCALE: dict[str, tuple[float, float]] = {
    # dtype -> (offset, scale): value = (raw - offset) / scale
    "uint8": (128.0, 128.0),
    "int16": (0.0, 32768.0),
    "int32": (0.0, 2147483648.0),
    "int64": (0.0, 9223372036854775808.0),
}


def _read_wav(path: Path, keys: list[str] | None, rate: float | None) -> Recording:
    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", wavfile.WavFileWarning)
            file_rate, raw = wavfile.read(path, mmap=False)
    except wavfile.WavFileWarning as exc:
        raise FormatError(f"{path}: damaged WAV file: {exc}") from exc
    except Exception as exc:  # ValueError, struct.error, EOFError, OSError...
        raise FormatError(f"{path}: not a readable WAV file (truncated or corrupt): {exc}") from exc
    raw = np.asarray(raw)
    sr = _pick_rate(path, _check_rate(path, file_rate, "WAV sample rate"), rate, "WAV header")
    arr = _as_columns(path, "WAV data", raw)
    name = arr.dtype.name
    if name in _PCM_SCALE:
        off, scale = _PCM_SCALE[name]
        values = (arr.astype(np.float64) - off) / scale
    elif arr.dtype.kind == "f":
        values = arr
    else:
        raise FormatError(f"{path}: unsupported WAV sample type {arr.dtype}")
    names = [f"ch{i}" for i in range(arr.shape[1])]
    cols = _select(path, names, keys, "channels")
    data = np.ascontiguousarray(values[:, cols].astype(np.float32))
    return Recording(
        data=data,
        sample_rate_hz=sr,
        channel_names=[names[i] for i in cols],
        units=[""] * len(cols),
        timestamps_ns=None,
        source=str(path),
        metadata={"wav_dtype": name},
        format="wav",
    )


# ---------------------------------------------------------------------------------------------
# parquet


def _read_parquet(path: Path, keys: list[str] | None, rate: float | None) -> Recording:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # ArrowInvalid, OSError...
        raise FormatError(
            f"{path}: not a readable Parquet file (truncated or corrupt): {exc}"
        ) from exc
    try:
        schema = pf.schema_arrow
        meta = read_meta(schema, path)
        if meta.is_rigwatch:
            all_names = meta.channel_names
            idx = _select(path, all_names, keys, "columns")
            names = [all_names[i] for i in idx]
            units = [meta.units[i] for i in idx]
        else:
            names = _foreign_channels(path, schema, channel_columns(schema), keys)
            units = [""] * len(names)
        has_ts = TIMESTAMP_COLUMN in schema.names
        try:
            table = pf.read(columns=[*names, TIMESTAMP_COLUMN] if has_ts else names)
        except Exception as exc:
            raise FormatError(
                f"{path}: Parquet data cannot be read (truncated or corrupt): {exc}"
            ) from exc
    finally:
        pf.close()

    if table.num_rows == 0:
        raise FormatError(f"{path}: the table has no rows")
    cols: list[np.ndarray] = []
    for n in names:
        try:
            values = np.asarray(table.column(n).to_numpy(zero_copy_only=False))
        except Exception as exc:
            raise FormatError(f"{path}: column {n!r} cannot be converted: {exc}") from exc
        cols.append(_to_float32(values))
    timestamps = timestamps_ns(table.column(TIMESTAMP_COLUMN), path) if has_ts else None

    if meta.sample_rate_hz is None and rate is None:
        if timestamps is None:
            raise _rate_missing(path, "no rigwatch metadata and no timestamp column")
        if timestamps.shape[0] < 2:
            raise _rate_missing(path, "a single row: no timestamp spacing to infer it from")
        step = float(np.median(np.diff(timestamps)))
        if step <= 0:
            raise _rate_missing(path, "timestamps are not increasing")
        rate = 1e9 / step
        log.info("%s: sample rate inferred from timestamps: %g Hz", path, rate)
    sr = _pick_rate(path, meta.sample_rate_hz, rate, "rigwatch.sample_rate_hz")
    return Recording(
        data=_stack(cols),
        sample_rate_hz=sr,
        channel_names=names,
        units=units,
        timestamps_ns=timestamps,
        source=str(path),
        metadata=dict(meta.text),
        format="parquet",
    )


def _foreign_channels(
    path: Path,
    schema: Any,
    columns: list[str],
    keys: list[str] | None,
) -> list[str]:
    """Channel columns of a Parquet file without rigwatch metadata: its numeric columns, or
    ``keys`` (each checked to be a numeric column)."""
    numeric = [n for n in columns if is_numeric(schema.field(n).type)]
    if keys is None:
        skipped = [n for n in columns if n not in numeric]
        if skipped:
            log.info("%s: skipping non-numeric columns %s", path, ", ".join(skipped))
        names = numeric
    else:
        absent = [k for k in keys if k not in columns]
        if absent:
            raise FormatError(
                f"{path}: unknown columns {', '.join(map(repr, absent))}; "
                f"channel columns: {', '.join(numeric) or 'none'}"
            )
        for k in keys:
            if k not in numeric:
                raise FormatError(
                    f"{path}: column {k!r} has type {schema.field(k).type}, "
                    f"expected a real numeric type"
                )
        names = list(keys)
    if not names:
        raise FormatError(f"{path}: no numeric channel columns; columns: {', '.join(schema.names)}")
    return names


# ---------------------------------------------------------------------------------------------
# hdf5


def _read_hdf5(path: Path, keys: list[str] | None, rate: float | None) -> Recording:
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # OSError for truncated / not HDF5
        raise FormatError(
            f"{path}: not a readable HDF5 file (truncated or corrupt): {exc}"
        ) from exc
    try:
        with f:
            if _ACOULAR_DATASET in f:
                ds_name, rate_attr, unit = _ACOULAR_DATASET, "sample_freq", ""
            elif _BENCHMARK_DATASET in f:
                ds_name, rate_attr, unit = _BENCHMARK_DATASET, "sampleRateHz", "Pa"
            else:
                found: list[str] = []
                f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None)
                raise FormatError(
                    f"{path}: no dataset {_ACOULAR_DATASET!r} (Acoular) or "
                    f"{_BENCHMARK_DATASET!r} (array benchmark); datasets: "
                    f"{', '.join(found) or 'none'}"
                )
            ds = f[ds_name]
            if not isinstance(ds, h5py.Dataset):
                raise FormatError(f"{path}: {ds_name!r} is a group, expected a dataset")
            _check_dtype(path, f"dataset {ds_name!r}", ds.dtype)
            attrs = {k: ds.attrs[k] for k in ds.attrs}
            raw = np.asarray(ds[()])
    except FormatError:
        raise
    except Exception as exc:
        raise FormatError(
            f"{path}: HDF5 data cannot be read (truncated or corrupt): {exc}"
        ) from exc

    arr = _as_columns(path, f"dataset {ds_name!r}", raw)
    file_rate = None
    if rate_attr in attrs:
        file_rate = _check_rate(path, np.asarray(attrs[rate_attr]).reshape(-1)[0], rate_attr)
    sr = _pick_rate(path, file_rate, rate, f"attribute {rate_attr!r} on {ds_name!r}")
    names = [f"ch{i}" for i in range(arr.shape[1])]
    cols = _select(path, names, keys, "channels")
    data = np.ascontiguousarray(arr[:, cols].astype(np.float32))
    metadata = {"dataset": ds_name, **{k: _attr_str(v) for k, v in attrs.items()}}
    return Recording(
        data=data,
        sample_rate_hz=sr,
        channel_names=[names[i] for i in cols],
        units=[unit] * len(cols),
        timestamps_ns=None,
        source=str(path),
        metadata=metadata,
        format="hdf5",
    )
