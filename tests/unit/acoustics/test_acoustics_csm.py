"""Welch cross-spectral matrix: scaling, bin selection, incremental input, bad input, bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rigwatch.acoustics.bands import Band, bins_of, seed_bands, union_bins
from rigwatch.acoustics.csm import CsmAccumulator, cross_spectral_matrix, window_function
from rigwatch.acoustics.hdf5 import read_benchmark_csm, read_benchmark_time_series
from rigwatch.errors import BandError, DeadMicrophoneError, SignalError

DATA = Path(__file__).resolve().parents[3] / "data" / "acoustics"
FS = 51200.0


def _noise(n: int = 8192, m: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, m))


def _welch_reference(x: np.ndarray, bs: int, hop: int, win: np.ndarray) -> np.ndarray:
    """Plain Welch loop with Acoular's scaling: 2 / (bs * sum(w^2) * n_blocks)."""
    acc = np.zeros((bs // 2 + 1, x.shape[1], x.shape[1]), complex)
    n = 0
    for start in range(0, x.shape[0] - bs + 1, hop):
        spec = np.fft.rfft(x[start : start + bs] * win[:, None], axis=0)
        acc += spec[:, :, None] * spec[:, None, :].conj()
        n += 1
    return acc * 2.0 / (bs * (win @ win) * n)


def test_matches_plain_welch_full_and_selected_bins() -> None:
    x = _noise()
    ref = _welch_reference(x, 512, 256, np.hanning(512))
    full = cross_spectral_matrix(x, FS, block_size=512, window="Hanning", overlap=0.5)
    np.testing.assert_allclose(full, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    bins = np.array([3, 40, 41, 42, 200])  # direct-DFT path
    part = cross_spectral_matrix(x, FS, bins, block_size=512, window="Hanning", overlap=0.5)
    np.testing.assert_allclose(part, ref[bins], rtol=0, atol=1e-12 * np.abs(ref).max())
    single = cross_spectral_matrix(
        x, FS, bins, block_size=512, window="Hanning", overlap=0.5, precision="complex64"
    )
    np.testing.assert_allclose(single, ref[bins], rtol=0, atol=1e-5 * np.abs(ref).max())


def test_incremental_equals_one_shot() -> None:
    x = _noise(5000)
    bins = np.arange(10, 30)
    acc = CsmAccumulator(6, FS, bins, block_size=256, overlap=0.75)
    rng = np.random.default_rng(1)
    pos = 0
    while pos < x.shape[0]:
        n = int(rng.integers(1, 700))
        acc.add(x[pos : pos + n])
        pos += n
    one = cross_spectral_matrix(x, FS, bins, block_size=256, overlap=0.75)
    assert acc.n_blocks == (5000 - 256) // 64 + 1
    np.testing.assert_allclose(acc.csm(), one, rtol=1e-12, atol=1e-15)


def test_nan_and_clipped_channels_refused_without_side_effect() -> None:
    x = _noise(2048)
    acc = CsmAccumulator(6, FS, [5], block_size=256, full_scale=10.0)
    acc.add(x[:1024])
    before = acc.csm().copy()
    bad = x[1024:].copy()
    bad[7, 4] = np.nan
    with pytest.raises(SignalError, match=r"channel\(s\) \[4\] hold NaN"):
        acc.add(bad)
    clipped = x[1024:].copy()
    clipped[100:110, 2] = 10.0
    with pytest.raises(SignalError, match=r"channel\(s\) \[2\] are clipped"):
        acc.add(clipped)
    np.testing.assert_array_equal(acc.csm(), before)
    with pytest.raises(SignalError, match="shape"):
        acc.add(x[:, :5])


def test_dead_microphone_detected_and_excluded_without_restart() -> None:
    x = _noise(4096)
    x[:, 3] = 0.25  # stuck at a constant: no signal in any band
    bins = np.arange(20, 40)
    acc = CsmAccumulator(6, FS, bins, block_size=512)
    acc.add(x)
    assert acc.dead_channels == (3,)
    with pytest.raises(DeadMicrophoneError) as info:
        acc.check_alive()
    assert info.value.channels == (3,)
    kept = acc.csm(exclude=acc.dead_channels)
    alone = cross_spectral_matrix(np.delete(x, 3, axis=1), FS, bins, block_size=512)
    np.testing.assert_allclose(kept, alone, rtol=1e-12, atol=1e-15)
    # a weak (-80 dB) channel is dead too; a healthy one is not
    y = _noise(4096)
    y[:, 1] *= 1e-4
    acc2 = CsmAccumulator(6, FS, bins, block_size=512)
    acc2.add(y)
    assert acc2.dead_channels == (1,)


def test_csm_needs_a_block_and_valid_overlap() -> None:
    acc = CsmAccumulator(2, FS, [1], block_size=256)
    acc.add(np.zeros((100, 2)))
    with pytest.raises(SignalError, match="no complete block"):
        acc.csm()
    with pytest.raises(SignalError, match="overlap"):
        CsmAccumulator(2, FS, [1], block_size=256, overlap=0.3)
    with pytest.raises(SignalError, match="unknown window"):
        window_function("no-such-window", 64)


def test_b11a_csm_from_time_series_matches_stored() -> None:
    """CSM of ``b11aTimeSeries.h5`` against ``b11aCsmEss.h5`` (128-sample symmetric Hann
    blocks, 64 overlap, the parameters stored in the file's ``CsmBuild`` group).

    480 samples hold 6 whole blocks; the stored CSM is averaged with Acoular's nominal block
    count ``overlap * n / bs - overlap + 1 = 6.5`` (the benchmark file was made with Acoular).
    After rescaling by 6 / 6.5 the matrices agree to a relative 1e-6 of the largest entry:
    the stored values are float32 (about 6e-8 relative rounding) and the time series is
    float32 too; 1e-6 leaves margin for the sum over blocks and would still catch any
    error of scaling, window, sign convention or bin order (all are orders of magnitude larger).
    """
    ts = read_benchmark_time_series(DATA / "b11aTimeSeries.h5")
    stored = read_benchmark_csm(DATA / "b11aCsmEss.h5")
    np.testing.assert_allclose(ts.positions_m, stored.positions_m)
    c = cross_spectral_matrix(ts.data, ts.sample_rate_hz, block_size=128, overlap=0.5)
    np.testing.assert_allclose(stored.frequencies_hz, np.fft.rfftfreq(128, 1 / 48000.0))
    ours = c * (6 / 6.5)
    scale = np.abs(stored.csm).max()
    np.testing.assert_allclose(ours, stored.csm, rtol=0, atol=1e-6 * scale)


def test_iec_third_octave_band_at_4k() -> None:
    b = Band.third_octave(4000)
    fm = 1000 * 10 ** (0.6)
    assert np.sqrt(b.f_low_hz * b.f_high_hz) == pytest.approx(fm)
    assert b.f_high_hz / b.f_low_hz == pytest.approx(10**0.1)
    assert Band.octave(1000).f_low_hz == pytest.approx(1000 / 10**0.15)
    bins = bins_of(b, 1024, FS)
    freqs = bins * FS / 1024
    assert freqs[0] >= b.f_low_hz and freqs[-1] < b.f_high_hz
    assert (freqs[0] - 50) < b.f_low_hz and (freqs[-1] + 50) >= b.f_high_hz


def test_seed_bands_and_union() -> None:
    bands = seed_bands()
    assert len(bands) == 15
    assert bands[0].f_low_hz == 1000 and bands[-1].f_high_hz == 7000
    bins = union_bins(bands, 1024, 48000.0)
    f = bins * 48000.0 / 1024
    assert f.min() >= 1000 and f.max() < 7000 and len(np.unique(bins)) == len(bins)


def test_bad_bands() -> None:
    with pytest.raises(BandError, match="Nyquist"):
        bins_of(Band(20000, 30000), 1024, FS)
    with pytest.raises(BandError, match="narrower than one FFT bin"):
        bins_of(Band(1010, 1040), 1024, FS)
    with pytest.raises(BandError):
        Band(500, 100)
    assert list(bins_of(Band.narrow(1000), 1024, FS)) == [20]
