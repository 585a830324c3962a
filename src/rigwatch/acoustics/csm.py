"""Cross-spectral matrix (CSM) by Welch averaging, for the FFT bins a map needs.

Welch's method (Welch 1967, IEEE Trans. Audio Electroacoust. 15(2)): the signals are cut into
blocks of ``block_size`` samples overlapping by ``overlap`` (a fraction), each block is
multiplied by a window ``w`` and Fourier transformed, and the outer products of the spectra are
averaged. The scaling is Acoular's (``PowerSpectra.calc_csm``), so results compare with it::

    C[k, m, n] = 2 / (block_size * sum(w**2) * n_blocks) * sum_blocks X_m[k] * conj(X_n[k])

in Pa^2 per bin for data in Pa (the factor 2 makes the spectrum one-sided; it is applied to
every bin, as Acoular does). Only the requested bins are transformed: by a direct DFT as one
matrix product when they are few, by a real FFT otherwise.

:class:`CsmAccumulator` takes samples as they arrive (any chunk length; the overlap is kept
across chunks), rejects chunks with NaN/inf or clipped channels before they touch the sums,
and reports dead microphones; :meth:`CsmAccumulator.csm` can leave channels out, so a dead
microphone is excluded without starting again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import scipy.fft
import scipy.signal
from numpy.typing import NDArray

from rigwatch.errors import BandError, DeadMicrophoneError, SignalError

log = logging.getLogger(__name__)

__all__ = ["CsmAccumulator", "Precision", "cross_spectral_matrix", "window_function"]

Precision = Literal["complex64", "complex128"]

#: Acoular's window names (symmetric NumPy windows, as ``PowerSpectra.window``).
_ACOULAR_WINDOWS: dict[str, Callable[[int], NDArray[np.float64]]] = {
    "Rectangular": np.ones,
    "Hanning": np.hanning,
    "Hamming": np.hamming,
    "Bartlett": np.bartlett,
    "Blackman": np.blackman,
}

#: Use a direct DFT (matrix product) when fewer bins than this are needed, else an FFT.
_DFT_MAX_BINS = 48


def window_function(name: str, block_size: int) -> NDArray[np.float64]:
    """Window of length ``block_size``.

    Acoular's names ``Rectangular``, ``Hanning``, ``Hamming``, ``Bartlett``, ``Blackman`` give
    NumPy's symmetric windows (as Acoular); any other name is passed to
    :func:`scipy.signal.get_window` (periodic windows, e.g. ``"hann"``).

    Raises:
        SignalError: unknown window name.
    """
    if name in _ACOULAR_WINDOWS:
        return np.asarray(_ACOULAR_WINDOWS[name](block_size), dtype=np.float64)
    try:
        return np.asarray(scipy.signal.get_window(name, block_size), dtype=np.float64)
    except ValueError as exc:
        raise SignalError(f"unknown window {name!r}: {exc}") from exc


class CsmAccumulator:
    """Incremental Welch CSM over selected FFT bins.

    Args:
        n_channels: number of microphone channels in each chunk.
        sample_rate_hz: sampling rate.
        bins: indices of the one-sided FFT bins to keep (e.g. from
            :func:`rigwatch.acoustics.bands.union_bins`); ``None`` keeps all.
        block_size: FFT length in samples.
        window: window name (see :func:`window_function`); Acoular's default is rectangular,
            ``"Hanning"`` is the usual choice.
        overlap: block overlap as a fraction in ``[0, 1)``; ``block_size * (1 - overlap)``
            must be a whole number of samples.
        precision: ``"complex128"`` or ``"complex64"`` for the spectra and the sums.
        full_scale: if given, the input's full-scale value: a channel with ``clip_samples``
            or more samples at >= 99.9 % of it in a chunk is clipped and the chunk is refused.
        clip_samples: see ``full_scale``.
        dead_ratio: a channel whose RMS in the selected bins is below ``dead_ratio`` times the
            median of all channels (a constant channel has none) is reported dead by
            :attr:`dead_channels` (default 1e-3: 60 dB below the median).

    Raises:
        SignalError, BandError: invalid parameters.
    """

    def __init__(
        self,
        n_channels: int,
        sample_rate_hz: float,
        bins: Iterable[int] | None = None,
        *,
        block_size: int = 1024,
        window: str = "Hanning",
        overlap: float = 0.5,
        precision: Precision = "complex128",
        full_scale: float | None = None,
        clip_samples: int = 3,
        dead_ratio: float = 1e-3,
    ) -> None:
        if n_channels < 1 or block_size < 2 or not sample_rate_hz > 0:
            raise SignalError(
                f"CSM needs >= 1 channel, block size >= 2 and a positive rate; got "
                f"{n_channels}, {block_size}, {sample_rate_hz}"
            )
        hop = block_size * (1.0 - overlap)
        if not 0 <= overlap < 1 or abs(hop - round(hop)) > 1e-9 or round(hop) < 1:
            raise SignalError(
                f"overlap {overlap} with block size {block_size} is not a whole hop in samples"
            )
        n_freq = block_size // 2 + 1
        idx = np.arange(n_freq) if bins is None else np.asarray(list(bins), dtype=np.intp)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_freq:
            raise BandError(f"FFT bins {idx.tolist()} outside 0..{n_freq - 1}")
        self.n_channels = n_channels
        self.sample_rate_hz = float(sample_rate_hz)
        self.block_size = block_size
        self.hop = round(hop)
        self.bins = idx
        self.frequencies_hz = np.asarray(idx * (self.sample_rate_hz / block_size), np.float64)
        self.precision: Precision = precision
        self.window = window_function(window, block_size)
        self.full_scale = full_scale
        self.clip_samples = clip_samples
        self.dead_ratio = dead_ratio
        self._real = np.float32 if precision == "complex64" else np.float64
        self._dft: NDArray[np.floating] | None = None
        if idx.size < _DFT_MAX_BINS:
            # windowed DFT rows: cos for the real parts, -sin for the imaginary parts
            n = np.arange(block_size)
            arg = 2 * np.pi * (np.outer(idx, n) % block_size) / block_size
            self._dft = np.vstack([np.cos(arg) * self.window, -np.sin(arg) * self.window]).astype(
                self._real
            )
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every block added so far."""
        self._sum = np.zeros((self.bins.size, self.n_channels, self.n_channels), self.precision)
        self._pending = np.zeros((0, self.n_channels), self._real)
        self.n_blocks = 0
        self.weight = 0.0

    @property
    def dead_channels(self) -> tuple[int, ...]:
        """Channels that look dead in the data added so far (see ``dead_ratio``)."""
        if self.n_blocks == 0:
            return ()
        power = np.einsum("kii->i", self._sum).real.astype(np.float64)
        ref = float(np.median(power))
        dead = (power <= 0) | (power < self.dead_ratio**2 * ref)
        return tuple(int(i) for i in np.flatnonzero(dead))

    def check_alive(self) -> None:
        """Raise :class:`DeadMicrophoneError` naming the dead channels, if any."""
        dead = self.dead_channels
        if dead:
            raise DeadMicrophoneError(
                f"microphone channel(s) {list(dead)} are dead (constant or more than "
                f"{-20 * np.log10(self.dead_ratio):.0f} dB below the median channel)",
                dead,
            )

    # ------------------------------------------------------------------ input
    def _validate(self, chunk: NDArray[np.floating]) -> None:
        if chunk.ndim != 2 or chunk.shape[1] != self.n_channels:
            raise SignalError(
                f"chunk must have shape (n_samples, {self.n_channels}), got {chunk.shape}"
            )
        # a sum is finite only if every term is: one fast pass, precise check only on failure
        finite = np.isfinite(chunk.sum(axis=0))
        if not finite.all():
            finite = np.isfinite(chunk).all(axis=0)
        if not finite.all():
            bad = np.flatnonzero(~finite).tolist()
            raise SignalError(f"channel(s) {bad} hold NaN or inf samples; chunk refused")
        if self.full_scale is not None:
            at_fs = (np.abs(chunk) >= 0.999 * self.full_scale).sum(axis=0)
            clipped = np.flatnonzero(at_fs >= self.clip_samples).tolist()
            if clipped:
                raise SignalError(
                    f"channel(s) {clipped} are clipped ({self.clip_samples} or more samples at "
                    f"full scale {self.full_scale:g}); chunk refused"
                )

    def add(self, chunk: NDArray[np.floating]) -> int:
        """Add ``chunk`` (``(n_samples, n_channels)``, Pa) and return the blocks it completed.

        Raises:
            SignalError: wrong shape, NaN/inf samples, or a clipped channel (chunk not added).
        """
        chunk = np.asarray(chunk)
        self._validate(chunk)
        if chunk.shape[0] == 0:
            return 0
        data = chunk.astype(self._real, copy=False)
        if self._pending.shape[0]:
            data = np.concatenate([self._pending, data]).astype(self._real, copy=False)
        n_new = (
            0
            if data.shape[0] < self.block_size
            else ((data.shape[0] - self.block_size) // self.hop + 1)
        )
        if n_new:
            self._accumulate(data, n_new)
        self._pending = np.array(data[n_new * self.hop :], dtype=self._real)
        return n_new

    def _spectra(self, data: NDArray[Any], n_blocks: int) -> NDArray[np.complexfloating]:
        """Windowed spectra of the blocks, ``(n_bins, n_channels, n_blocks)``."""
        bs, hop, m, k = self.block_size, self.hop, self.n_channels, self.bins.size
        data = np.ascontiguousarray(data)
        s0, s1 = data.strides
        blocks = np.lib.stride_tricks.as_strided(
            data, shape=(n_blocks, bs, m), strides=(hop * s0, s0, s1), writeable=False
        )
        spec = np.empty((k, m, n_blocks), self.precision)
        if self._dft is not None:
            # one product (2K, bs) @ (B, bs, M) -> (B, 2K, M): real rows, then imaginary rows
            y = np.matmul(self._dft, blocks)
            spec.real = y[:, :k].transpose(1, 2, 0)
            spec.imag = y[:, k:].transpose(1, 2, 0)
            return spec
        win = self.window.astype(self._real)[None, :, None]
        full = scipy.fft.rfft(blocks * win, axis=1)  # keeps float32 -> complex64
        spec[...] = full[:, self.bins, :].transpose(1, 2, 0)
        return spec

    def _accumulate(self, data: NDArray[Any], n_blocks: int) -> None:
        spec = self._spectra(data, n_blocks)
        # sum over blocks of X X^H per bin: (K, M, B) @ (K, B, M)
        self._sum += np.matmul(spec, spec.conj().transpose(0, 2, 1))
        self.n_blocks += n_blocks
        self.weight += n_blocks

    def forget(self, factor: float) -> None:
        """Scale everything added so far by ``factor`` in ``(0, 1]``: an exponential average.

        Called with ``exp(-n / (fs * tau))`` before adding ``n`` new samples, the CSM becomes
        the exponentially weighted average with time constant ``tau`` seconds (a live map's
        averaging time). The weights cancel in :meth:`csm`, so the level stays calibrated.

        Raises:
            SignalError: ``factor`` outside ``(0, 1]``.
        """
        if not 0 < factor <= 1:
            raise SignalError(f"forgetting factor must be in (0, 1], got {factor}")
        if factor < 1:
            self._sum *= np.asarray(factor, dtype=self._real)
            self.weight *= factor

    # ------------------------------------------------------------------ output
    def csm(self, exclude: Iterable[int] = ()) -> NDArray[np.complexfloating]:
        """The averaged CSM, ``(n_bins, n_kept, n_kept)`` in Pa^2, Acoular's scaling.

        Args:
            exclude: channels to leave out (e.g. :attr:`dead_channels`).

        Raises:
            SignalError: no complete block has been added yet.
        """
        if self.n_blocks == 0:
            raise SignalError(
                f"no complete block of {self.block_size} samples yet; cannot form a CSM"
            )
        scale = 2.0 / (self.block_size * float(self.window @ self.window) * self.weight)
        out = self._sum * np.asarray(scale, dtype=self._real)
        drop = sorted(set(exclude))
        if drop:
            keep = np.setdiff1d(np.arange(self.n_channels), drop)
            out = out[:, keep[:, None], keep[None, :]]
        return out


def cross_spectral_matrix(
    data: NDArray[np.floating],
    sample_rate_hz: float,
    bins: Iterable[int] | None = None,
    *,
    block_size: int = 1024,
    window: str = "Hanning",
    overlap: float = 0.5,
    precision: Precision = "complex128",
) -> NDArray[np.complexfloating]:
    """Welch CSM of ``data`` (``(n_samples, n_channels)``), ``(n_bins, n_ch, n_ch)`` Pa^2.

    See :class:`CsmAccumulator` for the arguments and errors.
    """
    acc = CsmAccumulator(
        np.asarray(data).shape[1] if np.ndim(data) == 2 else 0,
        sample_rate_hz,
        bins,
        block_size=block_size,
        window=window,
        overlap=overlap,
        precision=precision,
    )
    acc.add(data)
    return acc.csm()
