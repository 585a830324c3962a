"""Vibration analysis of a recorded channel: time features, spectrum, envelope spectrum.

Envelope analysis follows R. B. Randall and J. Antoni, "Rolling element bearing diagnostics -
A tutorial", Mechanical Systems and Signal Processing 25 (2011) 485-520: band-pass the signal
around a resonance excited by the bearing's impacts, take the envelope as the magnitude of the
analytic signal (Hilbert transform), and look for the defect frequencies
(:mod:`.bearings`) in the spectrum of the envelope. The band is given in config or chosen where
the spectral kurtosis is largest (J. Antoni, "The spectral kurtosis: a useful tool for
characterising non-stationary signals", MSSP 20 (2006) 282-307), estimated from a short-time
Fourier transform as ``SK(f) = <|X(t,f)|^4> / <|X(t,f)|^2>^2 - 2``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from scipy import signal as sps
from scipy import stats

from rigwatch.errors import AnalysisError, RecordingError
from rigwatch.pipeline.analysis.base import Source
from rigwatch.pipeline.analysis.bearings import BearingGeometry, DefectFrequencies
from rigwatch.recordings.readers import read_recording

log = logging.getLogger(__name__)

MIN_SAMPLES = 256
"""Shortest signal analysed (samples)."""

QUIET_BIN_RATIO = 1e-4
"""Spectral-kurtosis bins with a mean power below this fraction of the strongest bin's (40 dB)
are set to 0: they hold no resonance worth demodulating."""


@dataclass(frozen=True)
class TimeFeatures:
    """Features of a signal with its mean removed (unit of the signal, e.g. g).

    Attributes:
        rms: root mean square.
        peak: largest absolute value.
        crest_factor: ``peak / rms`` (dimensionless).
        kurtosis: Pearson kurtosis ``E[(x-mu)^4] / sigma^4`` (3 for a Gaussian signal).
    """

    rms: float
    peak: float
    crest_factor: float
    kurtosis: float


@dataclass(frozen=True)
class Spectrum:
    """A one-sided amplitude spectrum: ``frequency_hz`` and ``amplitude``, both ``(bins,)``
    ``float64``; a sinusoid of amplitude A shows as a line of height ~A (Hann window)."""

    frequency_hz: np.ndarray
    amplitude: np.ndarray


@dataclass(frozen=True)
class DefectLine:
    """The strongest envelope-spectrum line near an expected defect frequency.

    Attributes:
        expected_hz: the defect frequency searched for.
        frequency_hz: frequency of the strongest line within the search tolerance.
        amplitude: its amplitude (unit of the signal).
        prominence: amplitude over the median envelope-spectrum level between 0.5 and 5 times
            the highest defect frequency (dimensionless; ~1-4 for noise).
    """

    expected_hz: float
    frequency_hz: float
    amplitude: float
    prominence: float


def _as_signal(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise AnalysisError(f"a vibration signal must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise AnalysisError(f"a vibration signal must be numeric, got dtype {arr.dtype}")
    if arr.size < MIN_SAMPLES:
        raise AnalysisError(f"a vibration signal needs >= {MIN_SAMPLES} samples, got {arr.size}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise AnalysisError("the vibration signal holds NaN or infinite samples")
    return out


def _check_rate(fs: float) -> float:
    if not np.isfinite(fs) or fs <= 0:
        raise AnalysisError(f"sample rate must be a positive number of Hz, got {fs}")
    return float(fs)


def time_features(x: np.ndarray) -> TimeFeatures:
    """RMS, peak, crest factor and kurtosis of ``x`` (1-D) after removing its mean.

    Raises:
        AnalysisError: not 1-D numeric, too short, non-finite, or constant.
    """
    y = _as_signal(x)
    y = y - y.mean()
    rms = float(np.sqrt(np.mean(y**2)))
    if rms == 0:
        raise AnalysisError("the vibration signal is constant (RMS 0)")
    peak = float(np.max(np.abs(y)))
    kurt = float(stats.kurtosis(y, fisher=False))
    return TimeFeatures(rms=rms, peak=peak, crest_factor=peak / rms, kurtosis=kurt)


def amplitude_spectrum(x: np.ndarray, sample_rate_hz: float) -> Spectrum:
    """Hann-windowed one-sided amplitude spectrum of ``x`` (mean removed), whole length.

    Returns:
        :class:`Spectrum` with ``len(x) // 2 + 1`` bins from 0 to Nyquist.
    """
    fs = _check_rate(sample_rate_hz)
    y = _as_signal(x)
    y = y - y.mean()
    window = np.hanning(y.size)
    amp = np.abs(np.fft.rfft(y * window)) * (2.0 / window.sum())
    return Spectrum(np.fft.rfftfreq(y.size, 1.0 / fs), amp)


def spectral_kurtosis(
    x: np.ndarray, sample_rate_hz: float, window_s: float = 256 / 12_000
) -> Spectrum:
    """STFT estimate of the spectral kurtosis ``<|X|^4>/<|X|^2>^2 - 2`` (Antoni 2006).

    Args:
        x: 1-D signal.
        sample_rate_hz: its rate in Hz.
        window_s: STFT window length in seconds (Hann, 50 % overlap); the same length in
            seconds gives the same frequency resolution at every sample rate.

    Returns:
        :class:`Spectrum` whose ``amplitude`` holds the spectral kurtosis (0 for Gaussian noise,
        large where the signal is impulsive).
    """
    fs = _check_rate(sample_rate_hz)
    y = _as_signal(x)
    nperseg = max(16, round(window_s * fs))
    if nperseg * 4 > y.size:
        raise AnalysisError(
            f"spectral kurtosis needs >= 4 windows of {nperseg} samples, got {y.size} samples"
        )
    freq, _t, z = sps.stft(y - y.mean(), fs=fs, nperseg=nperseg)
    power = np.abs(z) ** 2
    mean_p = power.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sk = (power**2).mean(axis=1) / mean_p**2 - 2.0
    # bins more than 40 dB below the strongest carry no resonance worth demodulating (e.g. above
    # the anti-aliasing cut-off of a resampled signal) yet their estimate is as noisy as any
    sk[~np.isfinite(sk) | (mean_p < mean_p.max() * QUIET_BIN_RATIO)] = 0.0
    return Spectrum(freq, sk)


def kurtosis_band(
    x: np.ndarray,
    sample_rate_hz: float,
    bandwidth_hz: float = 1500.0,
    fmin_hz: float = 500.0,
    fmax_hz: float | None = None,
    window_s: float = 256 / 12_000,
) -> tuple[float, float]:
    """The band of width ``bandwidth_hz`` within ``[fmin_hz, fmax_hz]`` of largest mean spectral
    kurtosis (the resonance band the bearing's impacts excite).

    Args:
        fmax_hz: upper limit of the search; ``None``: 0.95 x Nyquist.

    Returns:
        ``(low_hz, high_hz)``.
    """
    fs = _check_rate(sample_rate_hz)
    top = 0.95 * fs / 2 if fmax_hz is None else min(fmax_hz, 0.95 * fs / 2)
    if not 0 < fmin_hz < top - bandwidth_hz:
        raise AnalysisError(
            f"no room for a {bandwidth_hz} Hz band between {fmin_hz} Hz and {top:.1f} Hz"
        )
    sk = spectral_kurtosis(x, fs, window_s)
    df = float(sk.frequency_hz[1] - sk.frequency_hz[0])
    width = max(1, round(bandwidth_hz / df))
    smooth = np.convolve(sk.amplitude, np.ones(width) / width, mode="same")
    half = bandwidth_hz / 2
    ok = (sk.frequency_hz - half >= fmin_hz) & (sk.frequency_hz + half <= top)
    centre = float(sk.frequency_hz[ok][np.argmax(smooth[ok])])
    return centre - half, centre + half


def envelope_spectrum(
    x: np.ndarray, sample_rate_hz: float, band_hz: tuple[float, float]
) -> Spectrum:
    """Spectrum of the envelope of ``x`` band-passed to ``band_hz``.

    Band-pass: 4th-order Butterworth, zero phase (``sosfiltfilt``); envelope: magnitude of the
    analytic signal (``scipy.signal.hilbert``), mean removed; spectrum as
    :func:`amplitude_spectrum`.

    Raises:
        AnalysisError: band not within ``(0, Nyquist)`` or empty.
    """
    fs = _check_rate(sample_rate_hz)
    low, high = band_hz
    if not 0 < low < high < fs / 2:
        raise AnalysisError(f"band {band_hz} Hz must satisfy 0 < low < high < {fs / 2} Hz")
    y = _as_signal(x)
    sos = sps.butter(4, [low, high], btype="bandpass", fs=fs, output="sos")
    env = np.abs(sps.hilbert(sps.sosfiltfilt(sos, y - y.mean())))
    return amplitude_spectrum(env, fs)


def strongest_line(
    spectrum: Spectrum, expected_hz: float, tolerance: float, noise_floor: float
) -> DefectLine:
    """The largest bin of ``spectrum`` within ``expected_hz * (1 +- tolerance)``."""
    f = spectrum.frequency_hz
    sel = np.flatnonzero(
        (f >= expected_hz * (1 - tolerance)) & (f <= expected_hz * (1 + tolerance))
    )
    if sel.size == 0:
        raise AnalysisError(
            f"no spectrum bin within {tolerance:.0%} of {expected_hz:.2f} Hz "
            f"(resolution {f[1] - f[0]:.3f} Hz, top {f[-1]:.1f} Hz)"
        )
    i = sel[np.argmax(spectrum.amplitude[sel])]
    amp = float(spectrum.amplitude[i])
    return DefectLine(
        expected_hz=expected_hz,
        frequency_hz=float(f[i]),
        amplitude=amp,
        prominence=amp / noise_floor if noise_floor > 0 else float("inf"),
    )


class BearingConfig(pydantic.BaseModel):
    """Bearing geometry and speed (lengths in any one unit)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    n_elements: int = pydantic.Field(gt=0)
    element_diameter: float = pydantic.Field(gt=0)
    pitch_diameter: float = pydantic.Field(gt=0)
    contact_angle_deg: float = 0.0
    shaft_speed_rpm: float = pydantic.Field(gt=0)

    def geometry(self) -> BearingGeometry:
        """The :class:`BearingGeometry` (validates ``element_diameter < pitch_diameter``)."""
        return BearingGeometry(
            self.n_elements, self.element_diameter, self.pitch_diameter, self.contact_angle_deg
        )


class VibrationConfig(pydantic.BaseModel):
    """Config of the vibration plugin.

    Attributes:
        channel: channel (column/array name) analysed in a recording file; ``None``: the first.
        sample_rate_hz: rate for arrays and for files that do not state it.
        band_hz: envelope band ``[low, high]`` in Hz; ``None``: chosen by spectral kurtosis.
        band_width_hz, band_min_hz, band_max_hz: the spectral-kurtosis band search.
        sk_window_s: STFT window of the spectral kurtosis, seconds.
        bearing: geometry and shaft speed; ``None``: no defect lines.
        search_tolerance: relative half-width of the window searched around each defect
            frequency.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    channel: str | None = None
    sample_rate_hz: float | None = pydantic.Field(default=None, gt=0)
    band_hz: tuple[float, float] | None = None
    band_width_hz: float = pydantic.Field(default=1500.0, gt=0)
    band_min_hz: float = pydantic.Field(default=500.0, gt=0)
    band_max_hz: float | None = None
    sk_window_s: float = pydantic.Field(default=256 / 12_000, gt=0)
    bearing: BearingConfig | None = None
    search_tolerance: float = pydantic.Field(default=0.05, gt=0, lt=0.5)


@dataclass(frozen=True)
class VibrationResult:
    """Result of :func:`analyse_signal`; ``to_record()`` drops the spectra (arrays)."""

    sample_rate_hz: float
    samples: int
    features: TimeFeatures
    band_hz: tuple[float, float]
    spectrum: Spectrum
    envelope: Spectrum
    defect_frequencies: DefectFrequencies | None = None
    lines: dict[str, DefectLine] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready summary: rate, samples, features, band, defect frequencies and lines."""
        return {
            "analysis": "vibration",
            "sample_rate_hz": self.sample_rate_hz,
            "samples": self.samples,
            "rms": self.features.rms,
            "peak": self.features.peak,
            "crest_factor": self.features.crest_factor,
            "kurtosis": self.features.kurtosis,
            "envelope_band_hz": list(self.band_hz),
            "defect_frequencies": (
                None if self.defect_frequencies is None else self.defect_frequencies.as_dict()
            ),
            "defect_lines": {
                name: {
                    "expected_hz": line.expected_hz,
                    "frequency_hz": line.frequency_hz,
                    "amplitude": line.amplitude,
                    "prominence": line.prominence,
                }
                for name, line in self.lines.items()
            },
        }


def analyse_signal(
    x: np.ndarray, sample_rate_hz: float, config: VibrationConfig | None = None
) -> VibrationResult:
    """Features, spectrum, envelope spectrum and defect lines of one channel.

    Defect lines (with a bearing in config): ``bpfo``, ``bpfi``, ``bsf``, ``two_bsf`` (ball
    defects strike both races) and ``ftf``.

    Raises:
        AnalysisError: bad signal, rate, band or bearing.
    """
    cfg = config or VibrationConfig()
    fs = _check_rate(sample_rate_hz)
    y = _as_signal(x)
    features = time_features(y)
    if cfg.band_hz is not None:
        band = (float(cfg.band_hz[0]), float(cfg.band_hz[1]))
    else:
        band = kurtosis_band(
            y, fs, cfg.band_width_hz, cfg.band_min_hz, cfg.band_max_hz, cfg.sk_window_s
        )
    env = envelope_spectrum(y, fs, band)
    defects: DefectFrequencies | None = None
    lines: dict[str, DefectLine] = {}
    if cfg.bearing is not None:
        defects = cfg.bearing.geometry().defect_frequencies(cfg.bearing.shaft_speed_rpm / 60)
        targets = {
            "bpfo": defects.bpfo_hz,
            "bpfi": defects.bpfi_hz,
            "bsf": defects.bsf_hz,
            "two_bsf": 2 * defects.bsf_hz,
            "ftf": defects.ftf_hz,
        }
        top = max(targets.values())
        f = env.frequency_hz
        floor_sel = (f >= 0.5 * top) & (f <= 5 * top)
        floor = float(np.median(env.amplitude[floor_sel])) if floor_sel.any() else 0.0
        for name, target in targets.items():
            lines[name] = strongest_line(env, target, cfg.search_tolerance, floor)
    log.debug("vibration: %d samples at %g Hz, band %s", y.size, fs, band)
    return VibrationResult(
        sample_rate_hz=fs,
        samples=int(y.size),
        features=features,
        band_hz=band,
        spectrum=amplitude_spectrum(y, fs),
        envelope=env,
        defect_frequencies=defects,
        lines=lines,
    )


class VibrationAnalysis:
    """The ``vibration`` plugin: :func:`analyse_signal` on an array or a recording file's
    channel (any format :func:`rigwatch.recordings.readers.read_recording` reads)."""

    name = "vibration"

    def __init__(self, config: VibrationConfig | None = None) -> None:
        self.config = config or VibrationConfig()

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> VibrationAnalysis:
        """Build from a config mapping (see :class:`VibrationConfig`).

        Raises:
            AnalysisError: the config is invalid (the message names the field).
        """
        try:
            return cls(VibrationConfig.model_validate(dict(config)))
        except pydantic.ValidationError as exc:
            raise AnalysisError(f"invalid vibration config: {exc}") from exc

    def analyse(self, source: Source) -> VibrationResult:
        """Analyse an array (needs ``sample_rate_hz`` in config) or a recording file.

        Raises:
            AnalysisError: unreadable file, unknown channel, unknown rate, bad signal.
        """
        if isinstance(source, np.ndarray):
            if self.config.sample_rate_hz is None:
                raise AnalysisError("vibration: an array needs sample_rate_hz in the config")
            return analyse_signal(source, self.config.sample_rate_hz, self.config)
        path = Path(source)
        keys = None if self.config.channel is None else [self.config.channel]
        try:
            rec = read_recording(path, keys=keys, sample_rate_hz=self.config.sample_rate_hz)
        except RecordingError as exc:
            raise AnalysisError(f"vibration: cannot read {path}: {exc}") from exc
        return analyse_signal(rec.data[:, 0], rec.sample_rate_hz, self.config)
