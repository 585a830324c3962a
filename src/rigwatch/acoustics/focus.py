"""Listening to a point: streaming time-domain delay-and-sum focused on selected points.

For a selection at point ``x`` and microphones at ``y_m`` (distances ``r_m = |x - y_m|``,
nearest weighted microphone at ``r_ref``), the focused signal is

    b(t) = sum_m w_m (r_m / r_ref) p_m(t - T + (r_m - r_ref) / c)

with weights ``w_m`` normalised to ``sum_m w_m = 1`` (uniform by default; 0 excludes a dead
microphone). For a monopole at ``x`` in free field (``p_m(t) = s(t - r_m / c) / r_m``, the
model of :mod:`rigwatch.acoustics.scene`), ``b(t) = s(t - T - r_ref / c) / r_ref``: the pressure
the nearest microphone hears, delayed by ``T``. Noise independent between microphones, of
equal power ``sigma^2``, adds up to ``sigma^2 sum_m w_m^2 (r_m / r_ref)^2``, so the SNR gain over
the nearest microphone (the array gain) is ``1 / sum_m w_m^2 (r_m / r_ref)^2``: ``M`` (i.e.
``10 log10 M`` dB) for ``M`` uniformly weighted microphones far from the point (Van Trees,
*Optimum Array Processing*, 2002, sec. 2.2 and 6.2: delay-and-sum white-noise array gain).

Delays are relative to the nearest microphone, so ``T`` is small: the array's aperture (largest
distance between two microphones) over ``c``, which bounds every point's delay differences
(triangle inequality), rounded up to a whole sample, plus half the length of the
fractional-delay filter. ``T`` is the same for every selection, so their outputs are aligned in
time and a selection's sound goes on seamlessly when others are added or removed. Each delay is a
windowed-sinc FIR (Kaiser window, ``FRACTIONAL_DELAY_TAPS`` taps; Laakso et al., "Splitting the
unit delay", IEEE SP Magazine 1996), applied by overlap-save FFT convolution over the block and
a history tail of the previous input, so consecutive blocks give the same output as the whole
signal at once. The focused signal then goes through a Butterworth filter in second-order
sections (``scipy.signal.butter(..., output="sos")`` and ``sosfilt`` with its state carried
between blocks).

Latency (:attr:`FocusedBeam.latency_s`) is ``T`` plus the filter's group delay at its reference
frequency; the caller adds its own block length (a sample leaves only when its block arrives).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.fft
import scipy.signal
from numpy.typing import ArrayLike, NDArray

from rigwatch.acoustics.scene import distances_m
from rigwatch.errors import AcousticsError, BandError, GeometryError, SignalError

log = logging.getLogger(__name__)

__all__ = [
    "FRACTIONAL_DELAY_TAPS",
    "BandFilter",
    "FocusedBeam",
    "array_gain_db",
    "fractional_delay_fir",
]

#: Taps of each fractional-delay FIR (even). 32 taps with a Kaiser window of beta 8 keep the
#: complex error of the delay's frequency response below 2e-4 up to 80 % of the Nyquist
#: frequency (about 6 % at 90 %): band-limit what you listen to below 0.8 x Nyquist.
FRACTIONAL_DELAY_TAPS = 32
#: Kaiser window parameter of the fractional-delay FIR (Kaiser & Schafer 1980: beta ~ 8 gives
#: about 80 dB side-lobe attenuation).
KAISER_BETA = 8.0

FilterKind = Literal["bandpass", "lowpass", "highpass", "none"]


@dataclass(frozen=True, slots=True)
class BandFilter:
    """A Butterworth filter applied to every focused signal.

    Attributes:
        kind: ``"bandpass"`` (``low_hz`` and ``high_hz``), ``"lowpass"`` (``high_hz``),
            ``"highpass"`` (``low_hz``) or ``"none"``.
        low_hz: lower cut-off in Hz (-3 dB), for band-pass and high-pass.
        high_hz: upper cut-off in Hz (-3 dB), for band-pass and low-pass.
        order: Butterworth order (a band-pass has twice as many poles), 1..12.
    """

    kind: FilterKind = "none"
    low_hz: float | None = None
    high_hz: float | None = None
    order: int = 4

    def design(self, sample_rate_hz: float) -> NDArray[np.float64] | None:
        """Second-order sections ``(n_sections, 6)`` for this rate, or ``None`` for ``"none"``.

        Raises:
            BandError: a cut-off missing, not positive, at or above the Nyquist frequency
                (``sample_rate_hz / 2``), a band whose low edge is not below its high edge, an
                order outside 1..12 or an unknown kind.
        """
        if self.kind == "none":
            return None
        if not 1 <= self.order <= 12:
            raise BandError(f"filter order must be within 1..12, got {self.order}")
        nyquist = sample_rate_hz / 2.0
        needed = {
            "bandpass": ("low_hz", "high_hz"),
            "lowpass": ("high_hz",),
            "highpass": ("low_hz",),
        }.get(self.kind)
        if needed is None:
            raise BandError(
                f"unknown filter kind {self.kind!r}: use bandpass, lowpass, highpass or none"
            )
        edges: list[float] = []
        for name in needed:
            value = getattr(self, name)
            if value is None or not math.isfinite(value) or value <= 0:
                raise BandError(f"{self.kind} filter needs {name} > 0, got {value}")
            if value >= nyquist:
                raise BandError(
                    f"{self.kind} filter {name} = {value} Hz is at or above the Nyquist "
                    f"frequency {nyquist} Hz (sample rate {sample_rate_hz} Hz)"
                )
            edges.append(float(value))
        if self.kind == "bandpass" and edges[0] >= edges[1]:
            raise BandError(
                f"bandpass filter needs low_hz < high_hz, got {edges[0]} and {edges[1]} Hz"
            )
        wn: float | list[float] = edges if len(edges) == 2 else edges[0]
        sos = scipy.signal.butter(self.order, wn, btype=self.kind, fs=sample_rate_hz, output="sos")
        return np.asarray(sos, dtype=np.float64)

    def reference_hz(self, sample_rate_hz: float) -> float:
        """Frequency at which the group delay is quoted: the band's geometric centre (band-pass),
        0 Hz (low-pass), twice the cut-off capped at 90 % of Nyquist (high-pass), 0 (none)."""
        if self.kind == "bandpass" and self.low_hz and self.high_hz:
            return math.sqrt(self.low_hz * self.high_hz)
        if self.kind == "highpass" and self.low_hz:
            return min(2.0 * self.low_hz, 0.45 * sample_rate_hz)
        return 0.0


def _sos_group_delay_samples(sos: NDArray[np.float64], freq_hz: float, fs: float) -> float:
    total = 0.0
    for section in sos:
        _, gd = scipy.signal.group_delay((section[:3], section[3:]), w=[freq_hz], fs=fs)
        total += float(gd[0])
    return total


def fractional_delay_fir(delay_samples: ArrayLike, length: int) -> NDArray[np.float64]:
    """Kaiser-windowed sinc FIRs that delay by (fractional) numbers of samples.

    Args:
        delay_samples: any shape ``S``; each delay must lie within
            ``[FRACTIONAL_DELAY_TAPS / 2, length - 1 - FRACTIONAL_DELAY_TAPS / 2]``.
        length: number of taps of each returned filter.

    Returns:
        ``(length, *S)`` float64: tap ``k`` is ``sinc(k - D) * kaiser(k - D)`` for ``|k - D| <=
        FRACTIONAL_DELAY_TAPS / 2``, else 0 (Laakso et al. 1996, windowed sinc).

    Raises:
        AcousticsError: a delay outside the range the filter length allows.
    """
    d = np.asarray(delay_samples, dtype=np.float64)
    half = FRACTIONAL_DELAY_TAPS / 2
    if d.size and (np.min(d) < half or np.max(d) > length - 1 - half):
        raise AcousticsError(
            f"fractional delays must lie within [{half}, {length - 1 - half}] samples for a "
            f"{length}-tap filter, got {np.min(d)}..{np.max(d)}"
        )
    k = np.arange(length, dtype=np.float64).reshape((length,) + (1,) * d.ndim)
    x = k - d[None, ...]
    inside = np.abs(x) <= half
    ratio = np.where(inside, x / half, 0.0)
    window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - ratio**2, 0.0, None))) / np.i0(KAISER_BETA)
    return np.where(inside, np.sinc(x) * window, 0.0)


def array_gain_db(
    mic_positions_m: ArrayLike, point_m: ArrayLike, weights: ArrayLike | None = None
) -> float:
    """Expected SNR gain of the focused signal over the nearest microphone, in dB.

    ``10 log10(1 / sum_m w_m^2 (r_m / r_ref)^2)`` with weights normalised to sum 1, for noise
    independent between microphones and of equal power (module docstring). ``10 log10 M`` for
    ``M`` uniform weights in the far field.

    Args:
        mic_positions_m: (n_mics, 3) metres.
        point_m: (3,) focus point in metres.
        weights: (n_mics,) or ``None`` for uniform.

    Raises:
        AcousticsError: bad shapes or weights (see :class:`FocusedBeam`).
    """
    r = distances_m(point_m, mic_positions_m)[0]
    w = _normalised_weights(weights, 1, r.size)[0]
    r_ref = float(np.min(r[w != 0]))
    return float(-10.0 * np.log10(np.sum((w * r / r_ref) ** 2)))


def _normalised_weights(weights: ArrayLike | None, n_sel: int, n_mics: int) -> NDArray[np.float64]:
    if weights is None:
        return np.full((n_sel, n_mics), 1.0 / n_mics)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = np.broadcast_to(w, (n_sel, w.shape[0]))
    if w.shape != (n_sel, n_mics):
        raise AcousticsError(
            f"weights must have shape ({n_mics},) or ({n_sel}, {n_mics}), got {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise AcousticsError("weights hold NaN or infinite values")
    sums = w.sum(axis=1, keepdims=True)
    if np.any(sums == 0):
        raise AcousticsError("the weights of a selection sum to 0 (every microphone excluded?)")
    return np.asarray(w / sums, dtype=np.float64)


class FocusedBeam:
    """Streaming delay-and-sum beams focused on points, one mono output per selection.

    Feed consecutive blocks of the array's signals to :meth:`process`; the output of block
    after block equals the output of the whole signal at once (to float32 rounding). Not
    thread-safe: one thread feeds it.

    Args:
        mic_positions_m: (n_mics, 3) microphone positions in metres, in channel order.
        points_m: (n_selections, 3) or (3,) focus points in metres.
        sample_rate_hz: sampling rate of the blocks, Hz.
        speed_of_sound_m_s: speed of sound, m/s.
        band: filter applied to every focused signal (default none).
        weights: (n_mics,) or (n_selections, n_mics) microphone weights, ``None`` for uniform;
            normalised to sum 1 per selection; 0 excludes a microphone.

    Raises:
        GeometryError: positions or points not (n, 3) or not finite, a point on a microphone.
        BandError: a filter that cannot be designed at this rate (cut-off at or above Nyquist).
        AcousticsError: bad weights, a non-positive rate or speed of sound.
    """

    def __init__(
        self,
        mic_positions_m: ArrayLike,
        points_m: ArrayLike,
        sample_rate_hz: float,
        speed_of_sound_m_s: float,
        *,
        band: BandFilter | None = None,
        weights: ArrayLike | None = None,
    ) -> None:
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise AcousticsError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
        if not (math.isfinite(speed_of_sound_m_s) and speed_of_sound_m_s > 0):
            raise AcousticsError(f"speed_of_sound_m_s must be positive, got {speed_of_sound_m_s}")
        self._mics = np.asarray(mic_positions_m, dtype=np.float64)
        if self._mics.ndim != 2 or self._mics.shape[1] != 3 or self._mics.shape[0] == 0:
            raise GeometryError(
                f"mic_positions_m must have shape (n_mics, 3), got {self._mics.shape}"
            )
        self._fs = float(sample_rate_hz)
        self._c = float(speed_of_sound_m_s)
        self._band = band or BandFilter()
        self._sos = self._band.design(self._fs)
        self._filter_gd = (
            0.0
            if self._sos is None
            else _sos_group_delay_samples(self._sos, self._band.reference_hz(self._fs), self._fs)
        )
        # |r_m - r_ref| <= |y_m - y_ref| (triangle inequality): the aperture bounds every
        # selection's delay spread, so the latency does not change with the selection
        diff = self._mics[:, None, :] - self._mics[None, :, :]
        aperture_m = float(np.sqrt(np.max(np.einsum("ijk,ijk->ij", diff, diff))))
        self._budget = math.ceil(round(aperture_m * self._fs / self._c, 9))
        self._tail = np.zeros((0, self.n_mics), dtype=np.float32)
        self._nonfinite = np.zeros(self.n_mics, dtype=np.int64)
        self._points = np.zeros((0, 3))
        self._zi = np.zeros((0, 2, 0))
        self.set_points(points_m, weights=weights)

    # -- configuration ----------------------------------------------------------------------

    @property
    def n_mics(self) -> int:
        """Number of microphones (input channels)."""
        return int(self._mics.shape[0])

    @property
    def points_m(self) -> NDArray[np.float64]:
        """(n_selections, 3) focus points in metres (a copy)."""
        return self._points.copy()

    @property
    def n_selections(self) -> int:
        """Number of focused outputs (columns of :meth:`process`'s result)."""
        return int(self._points.shape[0])

    @property
    def sample_rate_hz(self) -> float:
        """Sampling rate of input and output, Hz."""
        return self._fs

    @property
    def delay_spread_samples(self) -> int:
        """Largest possible delay difference across the array (its aperture, the largest
        distance between two microphones, over c), rounded up to whole samples."""
        return self._budget

    @property
    def filter_group_delay_s(self) -> float:
        """Group delay of the band filter at its reference frequency, seconds."""
        return self._filter_gd / self._fs

    @property
    def latency_s(self) -> float:
        """Algorithmic latency, seconds: delay spread + half the fractional-delay FIR + filter
        group delay. The block length the caller buffers comes on top."""
        return (self._budget + FRACTIONAL_DELAY_TAPS / 2 + self._filter_gd) / self._fs

    @property
    def nonfinite_samples(self) -> NDArray[np.int64]:
        """(n_mics,) count of NaN or infinite input samples per channel (replaced by 0)."""
        return self._nonfinite.copy()

    def set_points(self, points_m: ArrayLike, *, weights: ArrayLike | None = None) -> None:
        """Focus on new points; history is kept, and so is the filter state of every selection
        whose point is unchanged (same row index and coordinates), so its sound goes on
        seamlessly.

        Args:
            points_m: (n_selections, 3) or (3,) in metres; may be (0, 3) for no selection.
            weights: as in the constructor (``None``: uniform).

        Raises:
            GeometryError: points not (n, 3) or not finite, a point on a microphone.
            AcousticsError: bad weights.
        """
        pts = np.asarray(points_m, dtype=np.float64)
        if pts.ndim == 1 and pts.shape[0] == 3:
            pts = pts.reshape(1, 3)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise GeometryError(f"points_m must have shape (n_selections, 3), got {pts.shape}")
        if not np.all(np.isfinite(pts)):
            raise GeometryError("points_m holds NaN or infinite coordinates")
        n_sel = pts.shape[0]
        w = _normalised_weights(weights, n_sel, self.n_mics)
        if n_sel:
            r = distances_m(pts, self._mics)  # (n_sel, n_mics)
            if np.min(r) <= 0:
                raise GeometryError("a focus point lies on a microphone (distance 0)")
            r_ref = np.min(np.where(w != 0, r, np.inf), axis=1, keepdims=True)
            # delay of each mic behind the nearest (excluded mics: none, their gain is 0)
            rel = np.where(w != 0, (r - r_ref) * self._fs / self._c, 0.0)
            gains = w * r / r_ref
        else:
            rel = np.zeros((0, self.n_mics))
            gains = np.zeros((0, self.n_mics))
        budget = self._budget
        half = FRACTIONAL_DELAY_TAPS // 2
        length = budget + FRACTIONAL_DELAY_TAPS + 1
        # mic m is advanced by rel (it hears the source later): delay it by budget - rel
        h = fractional_delay_fir((budget - rel + half).T, length) * gains.T[None, :, :]
        self._h = h.astype(np.float64)  # (length, n_mics, n_sel)
        self._h_cache: dict[int, NDArray[np.complex64]] = {}
        # history: the last length - 1 input samples (zeros before the first block)
        need = length - 1
        if self._tail.shape[0] < need:
            pad = np.zeros((need - self._tail.shape[0], self.n_mics), dtype=np.float32)
            self._tail = np.concatenate([pad, self._tail], axis=0)
        else:
            self._tail = self._tail[self._tail.shape[0] - need :]
        n_sections = 0 if self._sos is None else self._sos.shape[0]
        zi = np.zeros((n_sections, 2, n_sel))
        for i in range(min(n_sel, self._points.shape[0])):
            if np.array_equal(pts[i], self._points[i]) and self._zi.shape[2] > i:
                zi[:, :, i] = self._zi[:, :, i]
        self._zi = zi
        self._points = pts
        log.debug(
            "focus on %d point(s): delay spread %d samples, latency %.2f ms",
            n_sel,
            budget,
            self.latency_s * 1e3,
        )

    def reset(self) -> None:
        """Forget the history and the filter state (as if no block had arrived)."""
        self._tail[:] = 0.0
        self._zi[:] = 0.0

    # -- processing -------------------------------------------------------------------------

    def _spectra(self, nfft: int) -> NDArray[np.complex64]:
        cached = self._h_cache.get(nfft)
        if cached is None:
            spectra = scipy.fft.rfft(self._h, n=nfft, axis=0).astype(np.complex64)
            # (n_bins, n_sel, n_mics): one small matrix-vector product per bin (batched matmul)
            cached = np.ascontiguousarray(spectra.transpose(0, 2, 1))
            self._h_cache = {nfft: cached}  # one block length at a time in steady state
        return cached

    def process(self, block: ArrayLike) -> NDArray[np.float32]:
        """Focus one block.

        Args:
            block: (n_samples, n_mics) float32 (float64 accepted), the next samples of every
                channel in the order of ``mic_positions_m``. NaN or infinite samples are
                replaced by 0 and counted in :attr:`nonfinite_samples`.

        Returns:
            (n_samples, n_selections) float32: the focused, filtered signal of each selection,
            in the input's unit, row ``n`` aligned with the block's row ``n`` (delayed by
            :attr:`latency_s` relative to the source).

        Raises:
            SignalError: the block is not 2-D or its channel count is not ``n_mics``.
        """
        x = np.asarray(block)
        if x.ndim != 2 or x.shape[1] != self.n_mics:
            raise SignalError(
                f"block must have shape (n_samples, {self.n_mics}) (one column per microphone), "
                f"got {x.shape}"
            )
        x = x.astype(np.float32, copy=False)
        n = x.shape[0]
        if n == 0:
            return np.zeros((0, self.n_selections), dtype=np.float32)
        finite = np.isfinite(x)
        if not finite.all():
            bad = (~finite).sum(axis=0)
            self._nonfinite += bad
            log.warning("non-finite samples replaced by 0 on channels %s", np.flatnonzero(bad))
            x = np.where(finite, x, np.float32(0.0))
        ext = np.concatenate([self._tail, x], axis=0)
        self._tail = ext[ext.shape[0] - self._tail.shape[0] :].copy()
        if self.n_selections == 0:
            return np.zeros((n, 0), dtype=np.float32)
        nfft = scipy.fft.next_fast_len(ext.shape[0], real=True)
        spectra = scipy.fft.rfft(ext, n=nfft, axis=0)  # (n_bins, n_mics) complex64
        summed = np.matmul(self._spectra(nfft), spectra[:, :, None])[:, :, 0]
        y = scipy.fft.irfft(summed, n=nfft, axis=0)[ext.shape[0] - n : ext.shape[0]]
        if self._sos is not None:
            y, self._zi = scipy.signal.sosfilt(self._sos, y, axis=0, zi=self._zi)
        return np.ascontiguousarray(y, dtype=np.float32)
