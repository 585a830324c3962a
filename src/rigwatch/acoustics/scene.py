"""Synthetic acoustic scenes: monopole point sources propagated to a microphone array.

Free-field model
----------------
Each source ``k`` at position ``x_k`` emits the signal ``s_k(t)``; microphone ``m`` at ``y_m``
receives the sum over sources of

    p_m(t) = s_k(t - r_km / c) / r_km,        r_km = |x_k - y_m|  (metres)

(the free-field Green's function of a monopole, without the ``1 / (4 pi)`` factor). This is the
amplitude convention of Acoular's ``PointSource`` (``acoular/sources.py``: the mic signal is
``signal[...] / rm`` with ``rm`` the Euclidean distance), so a source of signal ``s`` gives the
same pressures here and in Acoular: ``s`` is the pressure the source produces at 1 m.

Delays
------
Delays are exact fractional delays applied as phase shifts ``exp(-2j pi f r / c)`` on the
discrete Fourier transform of the whole source signal, i.e. the source signal is taken to be
the band-limited (DFT, periodic) interpolation of its samples. For a signal periodic in its
length (white noise treated as periodic, a sinusoid with a whole number of cycles) the result
is exact to rounding. For an even length, the Nyquist bin of a real signal cannot carry a phase
shift; it is kept as ``cos(phase)`` times its value (the real part of the shifted bin).
Acoular instead rounds each delay to the nearest 1/16 sample of a 16x up-sampled copy
(``PointSource.up``), so comparisons against Acoular agree in amplitude and to within 1/32
sample in delay.

Time origin and trimming
------------------------
Source sample ``i`` is emitted at ``t = i / fs``. Output row ``n`` is the pressure at reception
time ``t = (start + n) / fs`` with ``start = ceil(max_km r_km fs / c)`` (see
:func:`valid_output_range`): rows are kept only where every microphone's emission time for every
source lies inside the given signal, so no microphone hears the periodic wrap-around (except
the band-limited interpolation's ringing at the seam, for signals that are not periodic).
Acoular's ``PointSource`` with ``start_t = start = 0`` and ``prepadding='zeros'`` puts the same
pressure at its row ``start + n``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rigwatch.errors import AcousticsError, GeometryError, SignalError

log = logging.getLogger(__name__)

__all__ = [
    "distances_m",
    "propagate_free_field",
    "valid_output_range",
    "white_noise",
]


def _positions(name: str, value: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 3:
        arr = arr.reshape(1, 3)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise GeometryError(f"{name} must have shape (n, 3) in metres, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name} holds NaN or infinite coordinates")
    return arr


def _check_rate_and_c(sample_rate_hz: float, speed_of_sound_m_s: float) -> None:
    if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise AcousticsError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    if not (math.isfinite(speed_of_sound_m_s) and speed_of_sound_m_s > 0):
        raise AcousticsError(f"speed_of_sound_m_s must be positive, got {speed_of_sound_m_s}")


def distances_m(points_m: ArrayLike, mic_positions_m: ArrayLike) -> NDArray[np.float64]:
    """Euclidean distances between points and microphones.

    Args:
        points_m: (n_points, 3) or (3,) positions in metres.
        mic_positions_m: (n_mics, 3) positions in metres.

    Returns:
        (n_points, n_mics) float64 distances in metres.

    Raises:
        GeometryError: a shape is not (n, 3) or a coordinate is not finite.
    """
    pts = _positions("points_m", points_m)
    mics = _positions("mic_positions_m", mic_positions_m)
    diff = pts[:, None, :] - mics[None, :, :]
    return np.asarray(np.sqrt(np.einsum("pmk,pmk->pm", diff, diff)), dtype=np.float64)


def valid_output_range(
    source_positions_m: ArrayLike,
    mic_positions_m: ArrayLike,
    n_samples: int,
    sample_rate_hz: float,
    speed_of_sound_m_s: float,
) -> tuple[int, int]:
    """The rows of the propagated scene in which every microphone hears only the given signal.

    Args:
        source_positions_m: (n_sources, 3) in metres.
        mic_positions_m: (n_mics, 3) in metres.
        n_samples: length of the source signals.
        sample_rate_hz: sampling rate in Hz.
        speed_of_sound_m_s: speed of sound in m/s.

    Returns:
        ``(start, n_out)``: output row ``n`` is reception time ``(start + n) / fs``, with
        ``start = ceil(max r fs / c)`` and ``n_out = n_samples - start + floor(min r fs / c)``.

    Raises:
        GeometryError: bad position shapes or values, a source on a microphone (r = 0).
        SignalError: a signal too short for the array's delay spread (``n_out < 1``).
        AcousticsError: a non-positive rate or speed of sound (the base of both).
    """
    _check_rate_and_c(sample_rate_hz, speed_of_sound_m_s)
    r = distances_m(source_positions_m, mic_positions_m)
    if np.min(r) <= 0.0:
        raise GeometryError("a source lies on a microphone (distance 0): 1/r is undefined")
    delays = r * sample_rate_hz / speed_of_sound_m_s
    # round away float noise (an exact integer delay computed as 12.000000000000002)
    start = math.ceil(round(float(np.max(delays)), 9))
    last = n_samples - 1 + math.floor(round(float(np.min(delays)), 9))
    n_out = last - start + 1
    if n_out < 1:
        raise SignalError(
            f"signals of {n_samples} samples are shorter than the delay spread of the scene "
            f"({start} samples to the farthest microphone): no row has valid samples on all mics"
        )
    return start, n_out


def propagate_free_field(
    signals: ArrayLike,
    source_positions_m: ArrayLike,
    mic_positions_m: ArrayLike,
    sample_rate_hz: float,
    speed_of_sound_m_s: float,
) -> NDArray[np.float64]:
    """Microphone pressures of monopole point sources in free field (see the module docstring).

    Args:
        signals: (n_samples,) for one source or (n_samples, n_sources) source signals, the
            pressure each source produces at 1 m (Pa, or any unit: the output has the same unit).
        source_positions_m: (n_sources, 3) or (3,) source positions in metres.
        mic_positions_m: (n_mics, 3) microphone positions in metres.
        sample_rate_hz: sampling rate of ``signals`` and of the output, Hz.
        speed_of_sound_m_s: speed of sound in m/s.

    Returns:
        (n_out, n_mics) float64: ``p_m(t) = sum_k s_k(t - r_km / c) / r_km`` at reception times
        ``(start + n) / fs`` with ``(start, n_out)`` from :func:`valid_output_range`.

    Raises:
        GeometryError: positions not (n, 3) or not finite, a source on a microphone, a number
            of source positions that is not the number of signals' columns.
        SignalError: signals not 1-D/2-D, non-finite, or shorter than the scene's delay spread.
        AcousticsError: a non-positive rate or speed of sound (the base of both).
    """
    sig = np.asarray(signals, dtype=np.float64)
    if sig.ndim == 1:
        sig = sig[:, None]
    if sig.ndim != 2 or sig.shape[0] == 0:
        raise SignalError(f"signals must have shape (n_samples, n_sources), got {sig.shape}")
    if not np.all(np.isfinite(sig)):
        raise SignalError("signals hold NaN or infinite samples")
    src = _positions("source_positions_m", source_positions_m)
    mics = _positions("mic_positions_m", mic_positions_m)
    if src.shape[0] != sig.shape[1]:
        raise GeometryError(
            f"{sig.shape[1]} source signal(s) (columns of signals) but "
            f"{src.shape[0]} source position(s)"
        )
    n_samples = sig.shape[0]
    start, n_out = valid_output_range(src, mics, n_samples, sample_rate_hz, speed_of_sound_m_s)
    r = distances_m(src, mics)  # (n_sources, n_mics)
    delays_s = r / speed_of_sound_m_s
    freqs = np.fft.rfftfreq(n_samples, d=1.0 / sample_rate_hz)
    out = np.zeros((n_out, mics.shape[0]), dtype=np.float64)
    # the delayed (periodic) signal's index j is reception time j / fs modulo the period:
    # rows start + n may run past n_samples, their emission times do not
    rows = (start + np.arange(n_out)) % n_samples
    for k in range(src.shape[0]):
        spectrum = np.fft.rfft(sig[:, k])
        # one source at a time, microphones in chunks: bounded memory for long signals
        chunk = max(1, int(2**22 // max(1, freqs.size)))
        for m0 in range(0, mics.shape[0], chunk):
            tau = delays_s[k, m0 : m0 + chunk]
            shifted = spectrum[:, None] * np.exp(-2j * np.pi * freqs[:, None] * tau[None, :])
            delayed = np.fft.irfft(shifted, n=n_samples, axis=0)
            out[:, m0 : m0 + chunk] += delayed[rows, :] / r[k, m0 : m0 + chunk]
    log.debug(
        "propagated %d source(s) to %d mics: %d of %d rows kept (start %d)",
        src.shape[0],
        mics.shape[0],
        n_out,
        n_samples,
        start,
    )
    return out


def white_noise(
    n_samples: int, n_sources: int = 1, *, seed: int | None = None, rms: float = 1.0
) -> NDArray[np.float64]:
    """Independent Gaussian white noise signals, reproducible from a seed.

    Args:
        n_samples: samples per signal (> 0).
        n_sources: number of independent signals (> 0).
        seed: seed of :func:`numpy.random.default_rng` (PCG64); ``None`` for fresh entropy.
        rms: standard deviation of each signal (>= 0), in the unit of the scene (Pa at 1 m).

    Returns:
        (n_samples, n_sources) float64.

    Raises:
        AcousticsError: a non-positive size or a negative ``rms``.
    """
    if n_samples < 1 or n_sources < 1:
        raise AcousticsError(
            f"n_samples and n_sources must be positive, got {n_samples} and {n_sources}"
        )
    if not (math.isfinite(rms) and rms >= 0):
        raise AcousticsError(f"rms must be finite and >= 0, got {rms}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_samples, n_sources)) * rms
