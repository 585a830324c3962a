"""Free-field propagation of point sources: analytic delays and amplitudes, Acoular's convention."""

from __future__ import annotations

import numpy as np
import pytest

from rigwatch.acoustics.scene import (
    distances_m,
    propagate_free_field,
    valid_output_range,
    white_noise,
)
from rigwatch.errors import AcousticsError

FS = 48_000.0
C = 343.0


def _circle_array() -> np.ndarray:
    """8 microphones on a 5 cm circle + 1 at the centre, in the z = 0 plane."""
    phi = 2 * np.pi * np.arange(8) / 8
    ring = np.stack([0.05 * np.cos(phi), 0.05 * np.sin(phi), np.zeros(8)], axis=1)
    return np.vstack([ring, np.zeros((1, 3))])


def test_sinusoid_has_exact_fractional_delays_and_1_over_r_amplitudes() -> None:
    n = 4800
    f0 = 1000.0  # 100 whole cycles in 4800 samples: the periodic interpolation is exact
    t = np.arange(n) / FS
    src = np.array([[0.3, -0.2, 1.1]])
    mics = _circle_array()
    out = propagate_free_field(np.sin(2 * np.pi * f0 * t), src, mics, FS, C)

    start, n_out = valid_output_range(src, mics, n, FS, C)
    r = np.linalg.norm(mics - src, axis=1)
    assert out.shape == (n_out, 9)
    assert out.dtype == np.float64
    t_rx = (start + np.arange(n_out)) / FS
    expected = np.sin(2 * np.pi * f0 * (t_rx[:, None] - r[None, :] / C)) / r[None, :]
    np.testing.assert_allclose(out, expected, atol=1e-10)
    # the delays are not whole samples: a nearest-sample delay would be far off
    assert np.max(np.abs((r * FS / C) % 1.0 - 0.5)) < 0.5


def test_two_sources_superpose() -> None:
    n = 9600
    t = np.arange(n) / FS
    s = np.stack([np.sin(2 * np.pi * 500 * t), 0.5 * np.cos(2 * np.pi * 2500 * t)], axis=1)
    src = np.array([[0.0, 0.0, 1.0], [0.5, 0.1, 2.0]])
    mics = _circle_array()
    both = propagate_free_field(s, src, mics, FS, C)
    start, n_out = valid_output_range(src, mics, n, FS, C)
    r = distances_m(src, mics)
    t_rx = (start + np.arange(n_out))[:, None] / FS
    expected = (
        np.sin(2 * np.pi * 500 * (t_rx - r[0] / C)) / r[0]
        + 0.5 * np.cos(2 * np.pi * 2500 * (t_rx - r[1] / C)) / r[1]
    )
    np.testing.assert_allclose(both, expected, atol=1e-10)


def test_rows_are_trimmed_to_where_every_mic_hears_the_signal() -> None:
    # a step at sample 0: reception row n hears emission index start + n - delay >= 0 only
    # for rows kept; the first kept row is the first one the farthest mic can hear
    src = np.array([[0.0, 0.0, 2.0]])
    mics = _circle_array()
    start, n_out = valid_output_range(src, mics, 1000, FS, C)
    r = np.linalg.norm(mics - src, axis=1)
    assert start == int(np.ceil(np.max(r) * FS / C))
    assert n_out == 1000 - start + int(np.floor(np.min(r) * FS / C))


def test_matches_acoular_point_source_for_whole_sample_delays() -> None:
    ac = pytest.importorskip("acoular")
    fs, c = 34_300.0, 343.0  # c / fs = 1 cm: mics at whole-centimetre distances
    mics = np.array([[1.00, 0, 0], [0, 1.23, 0], [0, 0, 1.57], [-0.80, 0, 0], [0, -2.05, 0]])
    src = np.zeros((1, 3))
    sig = white_noise(4096, seed=3)[:, 0]
    ours = propagate_free_field(sig, src, mics, fs, c)
    start, n_out = valid_output_range(src, mics, sig.size, fs, c)

    ts = ac.TimeSamples(data=sig[:, None], sample_freq=fs)
    ps = ac.PointSource(
        signal=ac.GenericSignalGenerator(source=ts),
        mics=ac.MicGeom(pos_total=mics.T),
        loc=(0.0, 0.0, 0.0),
        env=ac.Environment(c=c),
        prepadding="zeros",
    )
    theirs = np.concatenate([block.copy() for block in ps.result(1024)], axis=0)
    # same amplitude convention (1 / r, no 1 / (4 pi)) and same time origin; Acoular stops at
    # reception row n_samples, the scene runs on while every mic still hears the signal
    common = theirs.shape[0] - start
    assert 0 < common < n_out
    np.testing.assert_allclose(ours[:common], theirs[start:], atol=1e-9)


def test_white_noise_is_reproducible_from_its_seed() -> None:
    a = white_noise(1000, 3, seed=7, rms=2.0)
    b = white_noise(1000, 3, seed=7, rms=2.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1000, 3)
    assert not np.array_equal(a, white_noise(1000, 3, seed=8, rms=2.0))
    assert np.std(a) == pytest.approx(2.0, rel=0.05)
    # independent columns
    assert abs(np.corrcoef(a.T)[0, 1]) < 0.1


@pytest.mark.parametrize(
    ("signals", "sources", "mics", "match"),
    [
        (np.zeros((100, 2)), np.zeros((1, 3)) + 1, _circle_array(), "2 source signal"),
        (np.zeros(100), np.zeros((1, 2)), _circle_array(), r"shape \(n, 3\)"),
        (np.zeros(100), np.zeros((1, 3)), _circle_array(), "distance 0"),
        (np.zeros(10), np.array([[1.0, 0, 0.1]]), _circle_array(), "shorter than the delay"),
        (np.full(100, np.nan), np.array([[0, 0, 1.0]]), _circle_array(), "NaN"),
    ],
)
def test_bad_scenes_are_clear_errors(
    signals: np.ndarray, sources: np.ndarray, mics: np.ndarray, match: str
) -> None:
    with pytest.raises(AcousticsError, match=match):
        propagate_free_field(signals, sources, mics, FS, C)


def test_bad_rate_and_speed_of_sound_are_clear_errors() -> None:
    with pytest.raises(AcousticsError, match="sample_rate_hz"):
        propagate_free_field(np.zeros(100), [0, 0, 1.0], _circle_array(), 0.0, C)
    with pytest.raises(AcousticsError, match="speed_of_sound"):
        propagate_free_field(np.zeros(100), [0, 0, 1.0], _circle_array(), FS, -1.0)
