"""Frequency bands for beamforming maps and the FFT bins each one covers.

A :class:`Band` is a half-open interval ``[f_low, f_high)`` in Hz; it covers the FFT bins whose
frequency ``f_k`` satisfies ``f_low <= f_k < f_high`` (the rule of Acoular's
``BeamformerBase.synthetic``), so adjacent bands never share a bin. A narrow band is one bin.

Fractional-octave bands follow IEC 61260-1:2014 (base-ten): the exact midband frequency of band
``x`` is ``f_m = 1000 * G**(x / b)`` with ``G = 10**(3/10)`` and ``b`` bands per octave
(1 = octave, 3 = third-octave); the band edges are ``f_m * G**(-1/(2b))`` and
``f_m * G**(+1/(2b))``. Bands are named by their nominal centre frequencies (IEC 61260-1,
annex E; e.g. 4000 Hz for the exact midband 3981.07 Hz).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rigwatch.errors import BandError

__all__ = [
    "OCTAVE_NOMINAL_HZ",
    "THIRD_OCTAVE_NOMINAL_HZ",
    "Band",
    "bins_of",
    "fft_frequencies",
    "seed_bands",
]

#: IEC 61260-1 nominal octave-band centre frequencies (Hz).
OCTAVE_NOMINAL_HZ: tuple[float, ...] = (
    31.5, 63, 125, 250, 500, 1000, 2000, 4000, 8000, 16000,
)  # fmt: skip

#: IEC 61260-1 nominal one-third-octave-band centre frequencies (Hz).
THIRD_OCTAVE_NOMINAL_HZ: tuple[float, ...] = (
    25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250,
    1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000, 20000,
)  # fmt: skip

_G = 10.0 ** (3.0 / 10.0)


@dataclass(frozen=True)
class Band:
    """A frequency band ``[f_low_hz, f_high_hz)``; ``label`` names it in maps and logs.

    For a narrow band (one FFT bin) set ``f_low_hz == f_high_hz`` to the wanted frequency:
    the bin nearest to it is used.
    """

    f_low_hz: float
    f_high_hz: float
    label: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.f_low_hz) and math.isfinite(self.f_high_hz)):
            raise BandError(f"band edges must be finite, got {self.f_low_hz}, {self.f_high_hz}")
        if self.f_low_hz < 0 or self.f_high_hz < self.f_low_hz:
            raise BandError(
                f"band [{self.f_low_hz}, {self.f_high_hz}) Hz: need 0 <= f_low <= f_high"
            )
        if not self.label:
            object.__setattr__(self, "label", f"{self.f_low_hz:g}-{self.f_high_hz:g} Hz")

    @property
    def is_narrow(self) -> bool:
        """True for a single-bin band."""
        return self.f_low_hz == self.f_high_hz

    @property
    def centre_hz(self) -> float:
        """Geometric centre for fractional-octave bands, arithmetic centre otherwise."""
        if self.f_low_hz > 0 and not self.is_narrow:
            return math.sqrt(self.f_low_hz * self.f_high_hz)
        return (self.f_low_hz + self.f_high_hz) / 2

    @classmethod
    def narrow(cls, frequency_hz: float) -> Band:
        """The single FFT bin nearest ``frequency_hz``."""
        return cls(frequency_hz, frequency_hz, f"{frequency_hz:g} Hz")

    @classmethod
    def fractional_octave(cls, nominal_hz: float, fraction: int = 3) -> Band:
        """The IEC 61260-1 base-ten band ``1/fraction`` octave wide with this nominal centre.

        ``fraction`` 1 gives octave bands, 3 third-octave bands. The exact midband is the
        ``1000 * G**(x/b)`` nearest to ``nominal_hz`` (see the module docstring).

        Raises:
            BandError: ``fraction`` < 1 or ``nominal_hz`` <= 0.
        """
        if fraction < 1 or not nominal_hz > 0:
            raise BandError(f"fractional-octave band 1/{fraction} at {nominal_hz} Hz is invalid")
        x = round(fraction * math.log(nominal_hz / 1000.0, _G))
        fm = 1000.0 * _G ** (x / fraction)
        half = _G ** (1.0 / (2 * fraction))
        name = "octave" if fraction == 1 else f"1/{fraction}-octave"
        return cls(fm / half, fm * half, f"{nominal_hz:g} Hz {name}")

    @classmethod
    def octave(cls, nominal_hz: float) -> Band:
        """IEC 61260-1 octave band (see :meth:`fractional_octave`)."""
        return cls.fractional_octave(nominal_hz, 1)

    @classmethod
    def third_octave(cls, nominal_hz: float) -> Band:
        """IEC 61260-1 one-third-octave band (see :meth:`fractional_octave`)."""
        return cls.fractional_octave(nominal_hz, 3)


def seed_bands(
    f_start_hz: float = 1000.0, f_stop_hz: float = 7000.0, width_hz: float = 400.0
) -> tuple[Band, ...]:
    """The ball mill's custom bands: consecutive ``width_hz`` bands from start to stop.

    Defaults: 15 bands of 400 Hz between 1 and 7 kHz (the seed system's MUSIC bands).
    """
    n = round((f_stop_hz - f_start_hz) / width_hz)
    if n < 1:
        raise BandError(f"no {width_hz} Hz band fits between {f_start_hz} and {f_stop_hz} Hz")
    return tuple(Band(f_start_hz + i * width_hz, f_start_hz + (i + 1) * width_hz) for i in range(n))


def fft_frequencies(block_size: int, sample_rate_hz: float) -> NDArray[np.float64]:
    """Frequencies (Hz) of the ``block_size // 2 + 1`` bins of a one-sided FFT."""
    return np.asarray(np.fft.rfftfreq(block_size, 1.0 / sample_rate_hz), dtype=np.float64)


def bins_of(band: Band, block_size: int, sample_rate_hz: float) -> NDArray[np.intp]:
    """Indices of the one-sided FFT bins covered by ``band``, ascending.

    Raises:
        BandError: the band reaches above Nyquist, or covers no bin (narrower than one bin).
    """
    nyquist = sample_rate_hz / 2
    df = sample_rate_hz / block_size
    if band.f_low_hz > nyquist or (not band.is_narrow and band.f_high_hz > nyquist + df / 2):
        raise BandError(
            f"band {band.label} ([{band.f_low_hz:g}, {band.f_high_hz:g}) Hz) lies above the "
            f"Nyquist frequency {nyquist:g} Hz"
        )
    if band.is_narrow:
        return np.array([round(band.f_low_hz / df)], dtype=np.intp)
    freqs = fft_frequencies(block_size, sample_rate_hz)
    lo, hi = np.searchsorted(freqs, [band.f_low_hz, band.f_high_hz])
    if hi <= lo:
        raise BandError(
            f"band {band.label} ([{band.f_low_hz:g}, {band.f_high_hz:g}) Hz) is narrower than "
            f"one FFT bin ({df:g} Hz at block size {block_size}) and covers no bin"
        )
    return np.arange(lo, hi, dtype=np.intp)


def union_bins(bands: Sequence[Band], block_size: int, sample_rate_hz: float) -> NDArray[np.intp]:
    """Sorted union of the bins of all ``bands`` (see :func:`bins_of`)."""
    parts = [bins_of(b, block_size, sample_rate_hz) for b in bands]
    return np.unique(np.concatenate(parts)).astype(np.intp)
