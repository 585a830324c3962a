"""Read and write microphone-array HDF5 files.

* Acoular's time-data format: one dataset ``time_data``, shape ``(n_samples, n_channels)``,
  float32, with attribute ``sample_freq`` (Hz, float64) on that dataset.
* The array-benchmark interchange format (version 2): time series in
  ``MicrophoneData/microphoneDataPa`` ``(n_samples, n_mics)`` with attribute ``sampleRateHz``;
  microphone positions in ``MetaData/ArrayAttributes/microphonePositionsM`` ``(n_mics, 3)``;
  speed of sound in the ``MeasurementData`` group's ``speedOfSoundMPerS`` attribute; a
  cross-spectral matrix in ``CsmData/csmReal`` / ``csmImaginary`` ``(n_mics, n_mics, n_bins)``
  with ``CsmData/binCenterFrequenciesHz`` ``(n_bins,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from rigwatch.errors import AcousticsError, GeometryError

__all__ = [
    "BenchmarkCsm",
    "BenchmarkTimeSeries",
    "read_acoular_time_data",
    "read_benchmark_csm",
    "read_benchmark_positions",
    "read_benchmark_time_series",
    "write_acoular_time_data",
]


def _open(path: str | Path) -> h5py.File:
    try:
        return h5py.File(Path(path), "r")
    except OSError as exc:
        raise AcousticsError(f"cannot open HDF5 file {path}: {exc}") from exc


def _dataset(fh: h5py.File, name: str) -> Any:
    obj = fh.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise AcousticsError(f"{fh.filename}: no dataset {name!r}")
    return obj


def read_acoular_time_data(path: str | Path) -> tuple[NDArray[np.float32], float]:
    """Read Acoular time data: returns ``(data (n_samples, n_channels) float32, sample_freq)``.

    Raises:
        AcousticsError: no ``time_data`` dataset or no ``sample_freq`` attribute.
    """
    with _open(path) as fh:
        ds = _dataset(fh, "time_data")
        if "sample_freq" not in ds.attrs:
            raise AcousticsError(f"{path}: time_data has no 'sample_freq' attribute")
        fs = float(np.asarray(ds.attrs["sample_freq"]).reshape(()))
        data = np.asarray(ds[...], dtype=np.float32)
    if data.ndim != 2:
        raise AcousticsError(f"{path}: time_data must be 2-D, has shape {data.shape}")
    return data, fs


def write_acoular_time_data(
    path: str | Path, data: NDArray[np.floating], sample_freq_hz: float
) -> None:
    """Write ``data`` (``(n_samples, n_channels)``) as Acoular time data (float32).

    Raises:
        AcousticsError: ``data`` is not 2-D or the sampling rate is not positive.
    """
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim != 2:
        raise AcousticsError(f"time data must be (n_samples, n_channels), got {arr.shape}")
    if not sample_freq_hz > 0:
        raise AcousticsError(f"sample_freq must be > 0 Hz, got {sample_freq_hz}")
    with h5py.File(Path(path), "w") as fh:
        ds = fh.create_dataset("time_data", data=arr, chunks=True, maxshape=(None, arr.shape[1]))
        ds.attrs["sample_freq"] = np.float64(sample_freq_hz)


@dataclass(frozen=True)
class BenchmarkTimeSeries:
    """Array-benchmark time series: ``data`` float32 ``(n_samples, n_mics)`` in Pa."""

    data: NDArray[np.float32]
    sample_rate_hz: float
    positions_m: NDArray[np.float64]
    speed_of_sound_m_s: float


@dataclass(frozen=True)
class BenchmarkCsm:
    """Array-benchmark CSM: ``csm`` complex128 ``(n_bins, n_mics, n_mics)`` in Pa^2."""

    csm: NDArray[np.complex128]
    frequencies_hz: NDArray[np.float64]
    positions_m: NDArray[np.float64]
    speed_of_sound_m_s: float


def read_benchmark_positions(path: str | Path) -> NDArray[np.float64]:
    """Microphone positions ``(n_mics, 3)`` (m) of an array-benchmark file.

    Raises:
        GeometryError: the file cannot be read or has no positions of shape ``(n, 3)``.
    """
    try:
        with _open(path) as fh:
            pos = np.asarray(
                _dataset(fh, "MetaData/ArrayAttributes/microphonePositionsM")[...],
                dtype=np.float64,
            )
    except AcousticsError as exc:
        raise GeometryError(str(exc)) from exc
    if pos.ndim != 2 or pos.shape[1] != 3:
        if pos.ndim == 2 and pos.shape[0] == 3:
            pos = pos.T
        else:
            raise GeometryError(f"{path}: microphone positions have shape {pos.shape}")
    return pos


def _speed_of_sound(fh: h5py.File) -> float:
    grp = fh.get("MeasurementData")
    if grp is None or "speedOfSoundMPerS" not in grp.attrs:
        raise AcousticsError(f"{fh.filename}: no MeasurementData/speedOfSoundMPerS attribute")
    return float(np.asarray(grp.attrs["speedOfSoundMPerS"]).reshape(()))


def read_benchmark_time_series(path: str | Path) -> BenchmarkTimeSeries:
    """Read an array-benchmark time-series file (e.g. ``b11aTimeSeries.h5``).

    Raises:
        AcousticsError: a required dataset or attribute is missing.
    """
    pos = read_benchmark_positions(path)
    with _open(path) as fh:
        ds = _dataset(fh, "MicrophoneData/microphoneDataPa")
        if "sampleRateHz" not in ds.attrs:
            raise AcousticsError(f"{path}: microphoneDataPa has no 'sampleRateHz' attribute")
        fs = float(np.asarray(ds.attrs["sampleRateHz"]).reshape(()))
        data = np.asarray(ds[...], dtype=np.float32)
        c = _speed_of_sound(fh)
    if data.ndim != 2 or data.shape[1] != pos.shape[0]:
        raise AcousticsError(f"{path}: data shape {data.shape} for {pos.shape[0]} microphones")
    return BenchmarkTimeSeries(data, fs, pos, c)


def read_benchmark_csm(path: str | Path) -> BenchmarkCsm:
    """Read an array-benchmark CSM file (e.g. ``b11aCsmEss.h5``), bins first.

    Raises:
        AcousticsError: a required dataset or attribute is missing or shapes disagree.
    """
    pos = read_benchmark_positions(path)
    with _open(path) as fh:
        re = np.asarray(_dataset(fh, "CsmData/csmReal")[...], dtype=np.float64)
        im = np.asarray(_dataset(fh, "CsmData/csmImaginary")[...], dtype=np.float64)
        f = np.asarray(_dataset(fh, "CsmData/binCenterFrequenciesHz")[...], dtype=np.float64)
        c = _speed_of_sound(fh)
    f = f.ravel()
    n = pos.shape[0]
    if re.shape != (n, n, f.size) or im.shape != re.shape:
        raise AcousticsError(
            f"{path}: CSM shape {re.shape} does not match {n} microphones x {f.size} bins"
        )
    csm = np.moveaxis(re + 1j * im, -1, 0)
    return BenchmarkCsm(np.ascontiguousarray(csm), f, pos, c)
