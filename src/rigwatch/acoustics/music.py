"""MUSIC pseudo-spectrum maps, including the ball mill system's heatmap.

MUSIC (Schmidt 1986, "Multiple emitter location and signal parameter estimation", IEEE Trans.
Antennas Propag. 34(3)): the eigenvectors of the CSM ``R`` split into a signal subspace (the
``n_sources`` largest eigenvalues) and a noise subspace ``E_n`` (the rest). A steering vector
of a true source is orthogonal to ``E_n``, so the pseudo-spectrum

    P(x) = 1 / || E_n^H h(x) ||^2

peaks at the sources. It is not a level: maps of this module are dimensionless
(``quantity="pseudo-spectrum"``) and are never given in dB.

The ball mill's heatmap (:func:`seed_music_map`), as the system our users run today computes
it: zero-phase (``filtfilt``) Butterworth band-pass of order 5 between 1 and 7 kHz; 15 bands of
400 Hz between 1 and 7 kHz; per band the CSM ``R`` (the Welch CSM summed over the band's bins),
a 2-source signal subspace, steering vectors at the band's centre frequency; each band's map
divided by its maximum, the bands summed, the sum min-max normalised to 0..1. The seed system
does not document its FFT parameters or steering formulation; rigwatch uses 1024-sample Hann
blocks with 50 % overlap and the ``classic`` (phase-only) steering vector, whose constant
modulus the per-band normalisation makes irrelevant.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.signal
from numpy.typing import NDArray

from rigwatch.acoustics.bands import Band, bins_of, seed_bands
from rigwatch.acoustics.beamform import BandMap
from rigwatch.acoustics.csm import CsmAccumulator
from rigwatch.acoustics.geometry import Grid, MicArray
from rigwatch.acoustics.steering import Steering, SteerType
from rigwatch.errors import AcousticsError, BandError

__all__ = [
    "music_band_maps",
    "music_map",
    "music_pseudo_spectrum",
    "seed_bandpass",
    "seed_music_map",
]


def music_pseudo_spectrum(
    csm: NDArray[np.complexfloating], steering_vectors: NDArray[np.complexfloating], n_sources: int
) -> NDArray[np.float64]:
    """MUSIC pseudo-spectrum ``1 / ||E_n^H h||^2`` at each point.

    Args:
        csm: ``(n_mics, n_mics)`` Hermitian matrix.
        steering_vectors: ``(n_points, n_mics)``.
        n_sources: size of the signal subspace, ``0 < n_sources < n_mics``.

    Raises:
        AcousticsError: ``n_sources`` out of range or shapes that do not match.
    """
    r = np.asarray(csm, dtype=np.complex128)
    m = r.shape[0]
    if r.shape != (m, m) or steering_vectors.shape[-1] != m:
        raise AcousticsError(
            f"MUSIC: CSM {r.shape} and steering vectors {steering_vectors.shape} do not match"
        )
    if not 0 < n_sources < m:
        raise AcousticsError(f"MUSIC: n_sources must be in 1..{m - 1}, got {n_sources}")
    _, vecs = np.linalg.eigh(r)  # ascending eigenvalues
    noise = vecs[:, : m - n_sources]
    proj = steering_vectors.conj() @ noise  # (P, M - n_sources): (E_n^H h)^*
    denom = np.einsum("pi,pi->p", proj.real, proj.real) + np.einsum(
        "pi,pi->p", proj.imag, proj.imag
    )
    return 1.0 / np.maximum(denom, np.finfo(np.float64).tiny)


def seed_bandpass(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    f_low_hz: float = 1000.0,
    f_high_hz: float = 7000.0,
    order: int = 5,
) -> NDArray[np.float64]:
    """Zero-phase Butterworth band-pass (``scipy.signal.butter`` + ``filtfilt``) along axis 0.

    Defaults are the seed system's: order 5, 1-7 kHz.

    Raises:
        BandError: the pass band is not inside ``(0, Nyquist)``.
    """
    if not 0 < f_low_hz < f_high_hz < sample_rate_hz / 2:
        raise BandError(
            f"band-pass {f_low_hz:g}-{f_high_hz:g} Hz must lie inside (0, "
            f"{sample_rate_hz / 2:g}) Hz"
        )
    b, a = scipy.signal.butter(order, [f_low_hz, f_high_hz], btype="bandpass", fs=sample_rate_hz)
    return np.asarray(scipy.signal.filtfilt(b, a, np.asarray(data, np.float64), axis=0))


def music_band_maps(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    mics: MicArray,
    points_m: NDArray[np.float64],
    bands: Sequence[Band],
    speed_of_sound_m_s: float,
    *,
    n_sources: int = 2,
    steer_type: SteerType = "classic",
    block_size: int = 1024,
    window: str = "Hanning",
    overlap: float = 0.5,
) -> NDArray[np.float64]:
    """MUSIC pseudo-spectrum of each band, ``(n_bands, n_points)`` (not normalised).

    Each band's CSM is the Welch CSM (:class:`~rigwatch.acoustics.csm.CsmAccumulator`, in
    complex128) summed over the band's bins; steering vectors at the band's arithmetic centre.

    Raises:
        GeometryError, BandError, SignalError, AcousticsError: see the modules used.
    """
    if not bands:
        raise BandError("MUSIC needs at least one band")
    x = mics.select(np.asarray(data))
    band_bins = [bins_of(b, block_size, sample_rate_hz) for b in bands]
    all_bins = np.unique(np.concatenate(band_bins))
    acc = CsmAccumulator(
        x.shape[1], sample_rate_hz, all_bins,
        block_size=block_size, window=window, overlap=overlap, precision="complex128",
    )  # fmt: skip
    acc.add(x)
    csm = acc.csm()
    steering = Steering(mics, points_m, speed_of_sound_m_s, steer_type)
    out = np.empty((len(bands), steering.n_points))
    for i, (band, bins) in enumerate(zip(bands, band_bins, strict=True)):
        r = csm[np.searchsorted(all_bins, bins)].sum(axis=0)
        f_c = (band.f_low_hz + band.f_high_hz) / 2
        out[i] = music_pseudo_spectrum(r, steering.vectors(f_c), n_sources)
    return out


def _combine(per_band: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-band max normalisation, sum over bands, min-max normalisation to 0..1."""
    total = (per_band / per_band.max(axis=1, keepdims=True)).sum(axis=0)
    lo, hi = total.min(), total.max()
    return (total - lo) / (hi - lo) if hi > lo else np.zeros_like(total)


def music_map(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    mics: MicArray,
    grid: Grid,
    bands: Band | Sequence[Band],
    speed_of_sound_m_s: float,
    *,
    n_sources: int = 2,
    steer_type: SteerType = "classic",
    block_size: int = 1024,
    window: str = "Hanning",
    overlap: float = 0.5,
) -> BandMap:
    """MUSIC map over any band(s): per-band max normalisation, summed, min-max normalised.

    Returns a :class:`~rigwatch.acoustics.beamform.BandMap` with
    ``quantity="pseudo-spectrum"``, values in 0..1.
    """
    band_list = [bands] if isinstance(bands, Band) else list(bands)
    per_band = music_band_maps(
        data, sample_rate_hz, mics, grid.points_m, band_list, speed_of_sound_m_s,
        n_sources=n_sources, steer_type=steer_type, block_size=block_size, window=window,
        overlap=overlap,
    )  # fmt: skip
    label = f"MUSIC pseudo-spectrum ({len(band_list)} band(s), {n_sources} sources)"
    return BandMap(_combine(per_band).reshape(grid.shape), "pseudo-spectrum", label)


def seed_music_map(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    mics: MicArray,
    grid: Grid,
    speed_of_sound_m_s: float,
    *,
    block_size: int = 1024,
) -> BandMap:
    """The ball mill's MUSIC heatmap with today's parameters (see the module docstring).

    ``data`` is ``(n_samples, n_channels)``; the band-pass is applied to the whole block.
    """
    x = mics.select(np.asarray(data))
    if x.ndim != 2 or x.shape[0] < 3 * 11 + 1:
        raise AcousticsError(f"MUSIC heatmap needs more samples than {x.shape[0]}")
    filtered = seed_bandpass(x, sample_rate_hz)
    # the columns are already selected: map them to an array with identity channel mapping
    sel = MicArray(mics.active_positions_m, tuple(mics.names[i] for i in mics.active))
    return music_map(
        filtered, sample_rate_hz, sel, grid, seed_bands(), speed_of_sound_m_s,
        n_sources=2, steer_type="classic", block_size=block_size,
    )  # fmt: skip
