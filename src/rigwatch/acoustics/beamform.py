"""Conventional (delay-and-sum) beamforming in the frequency domain, and band maps in dB.

For each FFT bin the map value at a focus point is ``b = h^H C h`` (Pa^2), with ``h`` the
steering vector (:mod:`rigwatch.acoustics.steering`) and ``C`` the cross-spectral matrix
(:mod:`rigwatch.acoustics.csm`). With diagonal removal the auto-spectra (which hold the
microphones' own noise) are left out, ``b = h^H (C - diag C) h * N / (N - 1)``; the factor
``N / (N - 1)`` restores the level of a coherent source and negative values (unphysical) are
set to 0 — both as Acoular's ``BeamformerBase(r_diag=True)``. A band map is the sum of the
bins of the band; its sound pressure level is ``L_p = 10 lg(b / p_ref**2)``, ``p_ref = 20 uPa``.

Computation: for a cache-sized chunk of points and one bin at a time, the products ``h^H C``
are one matrix product ``(points, mics) @ (mics, mics)``; the steering vectors of successive
bins come from the previous bin's by one complex multiply; removing the diagonal is zeroing it
in ``C`` first. A complex64 CSM is processed in single precision (maps agree with double
precision to about 1e-5 dB).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rigwatch.acoustics.bands import Band, union_bins
from rigwatch.acoustics.csm import CsmAccumulator, Precision
from rigwatch.acoustics.geometry import Grid, MicArray
from rigwatch.acoustics.steering import Steering, SteerType
from rigwatch.errors import GeometryError

log = logging.getLogger(__name__)

__all__ = [
    "P_REF_PA",
    "BandMap",
    "beamform_bins",
    "conventional_map",
    "sound_pressure_level_db",
]

#: Reference sound pressure (Pa) for levels in dB (ISO 1683).
P_REF_PA = 20e-6

#: Steering vectors of at most this many (point x microphone) elements at once (cache-sized).
_CHUNK_ELEMENTS = 65_536


def sound_pressure_level_db(p2: NDArray[np.floating]) -> NDArray[np.float64]:
    """``10 lg(p2 / (20 uPa)**2)`` in dB; values <= 0 give the floor of Acoular's ``L_p``."""
    x = np.asarray(p2, dtype=np.float64) / P_REF_PA**2
    return 10 * np.log10(np.maximum(x, np.finfo(np.float64).eps))


Quantity = Literal["Pa^2", "pseudo-spectrum"]


@dataclass(frozen=True)
class BandMap:
    """A map over a grid.

    Attributes:
        values: float64 map of shape ``shape``: squared sound pressure (Pa^2) summed over the
            band's bins for beamforming and CLEAN-SC, or a dimensionless pseudo-spectrum for
            MUSIC (``quantity`` says which).
        quantity: ``"Pa^2"`` or ``"pseudo-spectrum"``.
        label: the band(s) and method.
    """

    values: NDArray[np.float64]
    quantity: Quantity
    label: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the map."""
        return tuple(self.values.shape)

    def spl_db(self) -> NDArray[np.float64]:
        """Sound pressure level (dB re 20 uPa) of each cell.

        Raises:
            ValueError: the map is a MUSIC pseudo-spectrum, which has no level.
        """
        if self.quantity != "Pa^2":
            raise ValueError(f"a {self.quantity} map has no sound pressure level")
        return sound_pressure_level_db(self.values)

    def peak_index(self) -> tuple[int, ...]:
        """Index of the largest cell."""
        return tuple(int(i) for i in np.unravel_index(np.argmax(self.values), self.values.shape))


def beamform_bins(
    csm: NDArray[np.complexfloating],
    frequencies_hz: NDArray[np.float64],
    steering: Steering,
    *,
    remove_diagonal: bool = True,
    sum_bins: bool = False,
    clip_negative: bool = True,
) -> NDArray[np.float64]:
    """Conventional beamforming of a CSM, per bin or summed over bins.

    Args:
        csm: ``(n_bins, n_mics, n_mics)`` (complex64 computes in single precision).
        frequencies_hz: ``(n_bins,)`` frequency of each CSM slice.
        steering: steering vectors of the focus points for the same microphones.
        remove_diagonal: leave out the CSM diagonal (with the ``N / (N - 1)`` factor).
        sum_bins: return the sum over bins, ``(n_points,)``, instead of ``(n_bins, n_points)``.
        clip_negative: with diagonal removal, set negative values to 0 (Acoular's
            ``BeamformerBase``; CLEAN-SC works on the unclipped map).

    Returns:
        float64 Pa^2 per point (and bin); negative values are set to 0 when the diagonal is
        removed (per bin, before summing, as Acoular).

    Raises:
        GeometryError: the CSM size does not match the steering's microphone count.
    """
    c = np.asarray(csm)
    k, m = c.shape[0], steering.n_mics
    if c.ndim != 3 or c.shape[1:] != (m, m):
        raise GeometryError(
            f"CSM of shape {c.shape} does not fit {m} microphones (steering vectors)"
        )
    freqs = np.asarray(frequencies_hz, dtype=np.float64).reshape(-1)
    if freqs.size != k:
        raise GeometryError(f"{freqs.size} frequencies for a CSM of {k} bins")
    cdtype = np.complex64 if c.dtype == np.complex64 else np.complex128
    c = c.astype(cdtype, copy=True)
    if remove_diagonal:
        idx = np.arange(m)
        c[:, idx, idx] = 0
        norm = m / (m - 1) if m > 1 else 1.0
    else:
        norm = 1.0
    c_conj = np.conj(c)
    n_points = steering.n_points
    out = np.empty((k, n_points), np.float64)
    real = np.float32 if cdtype == np.complex64 else np.float64
    step = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, n_points, step):
        sl = slice(start, min(n_points, start + step))
        t = np.empty((sl.stop - sl.start, m), cdtype)
        for i, h in enumerate(steering.iter_bins(freqs, sl, cdtype)):  # h: (P, M)
            # C is Hermitian, so t = h conj(C) = conj(h^H C) and h^H C h = Re sum_n t_n
            # conj(h_n), the real dot product of the (re, im) pairs: no conjugated copy of h.
            np.matmul(h, c_conj[i], out=t)
            out[i, sl] = np.einsum("pi,pi->p", t.view(real), h.view(real))
    out *= norm
    if remove_diagonal and clip_negative:
        np.maximum(out, 0.0, out=out)
    return out.sum(axis=0) if sum_bins else out


def conventional_map(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    mics: MicArray,
    grid: Grid,
    bands: Band | Sequence[Band],
    speed_of_sound_m_s: float,
    *,
    steer_type: SteerType = "true level",
    ref: float | NDArray[np.float64] | None = None,
    block_size: int = 1024,
    window: str = "Hanning",
    overlap: float = 0.5,
    remove_diagonal: bool = True,
    precision: Precision = "complex64",
) -> BandMap:
    """Band map (Pa^2 summed over the bins of ``bands``) from time data, CSM included.

    Several bands are summed (the seed system's sum of custom bands). ``data`` is
    ``(n_samples, n_channels)`` in Pa; the array's channel mapping picks the columns and its
    excluded microphones are left out.

    Raises:
        GeometryError: channel-count mismatch, grid behind/through the array.
        BandError: a band above Nyquist or narrower than one bin.
        SignalError: NaN/inf samples, too little data for one block.
    """
    band_list = [bands] if isinstance(bands, Band) else list(bands)
    bins = union_bins(band_list, block_size, sample_rate_hz)
    steering = Steering(mics, grid.points_m, speed_of_sound_m_s, steer_type, ref)
    x = mics.select(np.asarray(data))
    acc = CsmAccumulator(
        x.shape[1],
        sample_rate_hz,
        bins,
        block_size=block_size,
        window=window,
        overlap=overlap,
        precision=precision,
    )
    acc.add(x)
    p2 = beamform_bins(
        acc.csm(), acc.frequencies_hz, steering, remove_diagonal=remove_diagonal, sum_bins=True
    )
    label = " + ".join(b.label for b in band_list)
    return BandMap(p2.reshape(grid.shape), "Pa^2", f"beamforming {label}")
