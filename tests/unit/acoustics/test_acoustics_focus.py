"""Listening to a point: streaming delay-and-sum focused on selected points."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import scipy.signal

from rigwatch.acoustics.focus import (
    FRACTIONAL_DELAY_TAPS,
    BandFilter,
    FocusedBeam,
    array_gain_db,
)
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.acoustics.soundcard import SoundCardSink
from rigwatch.errors import AcousticsError, BandError, GeometryError, SignalError

DATA = Path(__file__).resolve().parents[3] / "data" / "acoustics"
FS = 48_000.0
C = 343.0
BAND = BandFilter("bandpass", low_hz=1000.0, high_hz=7000.0, order=4)


def seed_array() -> np.ndarray:
    """The ball mill's array: 8 microphones on a 5 cm circle + 1 at the centre."""
    phi = 2 * np.pi * np.arange(8) / 8
    ring = np.stack([0.05 * np.cos(phi), 0.05 * np.sin(phi), np.zeros(8)], axis=1)
    return np.vstack([ring, np.zeros((1, 3))])


def array_64() -> np.ndarray:
    """``array_64.xml`` (Acoular's format: ``<pos Name x y z/>``, values padded with tabs)."""
    root = ET.parse(DATA / "array_64.xml").getroot()
    pos = [[float(p.attrib[k].strip()) for k in ("x", "y", "z")] for p in root.iter("pos")]
    return np.array(pos)


def _power(x: np.ndarray, skip: int) -> np.ndarray:
    return np.mean(x[skip:].astype(np.float64) ** 2, axis=0)


@pytest.mark.parametrize(
    ("name", "mics", "point"),
    [
        ("seed 9 mics", seed_array(), np.array([0.4, -0.2, 1.5])),
        ("array_64", None, np.array([0.3, 0.2, 1.5])),
    ],
)
def test_focused_snr_beats_every_microphone_by_the_array_gain(
    name: str, mics: np.ndarray | None, point: np.ndarray
) -> None:
    mics = array_64() if mics is None else mics
    n_mics = mics.shape[0]
    signal = propagate_free_field(white_noise(24_000, seed=11), point, mics, FS, C)
    noise = white_noise(signal.shape[0], n_mics, seed=12, rms=0.5)
    # expected gain over the nearest (best) microphone for independent equal noise: M in the
    # far field, 1 / sum_m w_m^2 (r_m / r_ref)^2 exactly with uniform weights w_m = 1 / M:
    # 10 log10 M = 9.54 dB for 9 mics, 18.06 dB for 64; at these points 9.47 and 17.85 dB
    expected_db = array_gain_db(mics, point)
    assert expected_db == pytest.approx(10 * np.log10(n_mics), abs=0.3)

    # the beam is linear: focus the source's and the noise's contributions separately
    def focus(x: np.ndarray) -> np.ndarray:
        beam = FocusedBeam(mics, point, FS, C, band=BAND)
        return beam.process(x.astype(np.float32))[:, 0]

    skip = 2000  # filter and delay start-up
    out_snr = _power(focus(signal), skip) / _power(focus(noise), skip)
    sos = BAND.design(FS)
    assert sos is not None
    # the noise has the same power on every microphone: its mean over the microphones is the
    # estimate with the least scatter (the max over per-mic estimates would be biased upwards)
    mic_noise = np.mean(_power(scipy.signal.sosfilt(sos, noise, axis=0), skip))
    mic_snr = _power(scipy.signal.sosfilt(sos, signal, axis=0), skip) / mic_noise
    gain_db = 10 * np.log10(out_snr / np.max(mic_snr))
    assert gain_db > 0, name
    # 0.3 dB: about 3 standard deviations of a power estimated over 0.5 s of a 6 kHz band
    assert gain_db == pytest.approx(expected_db, abs=0.3), name


def test_blocks_give_the_same_output_as_the_whole_signal() -> None:
    mics = array_64()
    points = np.array([[0.0, 0.0, 1.0], [0.4, -0.3, 1.2], [-0.6, 0.5, 0.8]])
    x = (white_noise(20_000, 64, seed=5) * 0.1).astype(np.float32)
    whole = FocusedBeam(mics, points, FS, C, band=BAND).process(x)
    streaming = FocusedBeam(mics, points, FS, C, band=BAND)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, x.shape[0]), size=40, replace=False))
    blocks = [streaming.process(part) for part in np.split(x, cuts)]
    joined = np.concatenate(blocks)
    assert whole.shape == joined.shape == (20_000, 3)
    assert whole.dtype == np.float32
    np.testing.assert_allclose(joined, whole, atol=2e-6 * np.max(np.abs(whole)))
    # and one sample at a time over a stretch (history shorter than the filter)
    tail = np.concatenate([streaming.process(x[i : i + 1]) for i in range(200)])
    ref = FocusedBeam(mics, points, FS, C, band=BAND).process(np.concatenate([x, x[:200]]))
    np.testing.assert_allclose(tail, ref[-200:], atol=2e-6 * np.max(np.abs(whole)))


def test_focus_on_the_source_gives_the_nearest_microphone_delayed_by_the_latency() -> None:
    mics = seed_array()
    point = np.array([0.5, 0.3, 1.2])
    # band-limited source (below 60 % of Nyquist) where the fractional delays are exact to 1e-4
    s = scipy.signal.sosfiltfilt(
        scipy.signal.butter(8, 14_000, fs=FS, output="sos"), white_noise(12_000, seed=2)[:, 0]
    )
    p = propagate_free_field(s, point, mics, FS, C).astype(np.float32)
    beam = FocusedBeam(mics, point, FS, C)  # no filter: latency is the delays alone
    y = beam.process(p)[:, 0]
    lag = beam.delay_spread_samples + FRACTIONAL_DELAY_TAPS // 2
    assert beam.latency_s == pytest.approx(lag / FS)
    assert beam.filter_group_delay_s == 0.0
    nearest = int(np.argmin(np.linalg.norm(mics - point, axis=1)))
    ref = p[: p.shape[0] - lag, nearest]
    err = y[lag + 100 :] - ref[100:]
    assert np.max(np.abs(err)) < 2e-3 * np.max(np.abs(ref))


def test_latency_includes_the_filter_group_delay_and_stays_small() -> None:
    mics = array_64()
    beam = FocusedBeam(mics, [[0.5, 0.5, 1.0]], 51_200.0, C, band=BAND)
    sos = BAND.design(51_200.0)
    assert sos is not None
    _, gd = scipy.signal.group_delay(scipy.signal.sos2tf(sos), w=[np.sqrt(7e6)], fs=51_200.0)
    expected = (beam.delay_spread_samples + FRACTIONAL_DELAY_TAPS // 2 + gd[0]) / 51_200.0
    assert beam.filter_group_delay_s > 0
    assert beam.latency_s == pytest.approx(expected, rel=1e-6)
    # an aperture of under 2 m: well under the 250 ms acquisition-to-sound budget
    assert beam.latency_s < 0.02


def test_several_selections_equal_one_beam_each_and_separate_two_sources() -> None:
    mics = array_64()
    a, b = np.array([[-0.4, 0.1, 1.0]]), np.array([[0.5, -0.2, 1.0]])
    # a 2 kHz tone at a, a 5 kHz tone at b
    t = np.arange(24_000) / FS
    sig = np.stack([np.sin(2 * np.pi * 2000 * t), np.sin(2 * np.pi * 5000 * t)], axis=1)
    p = propagate_free_field(sig, np.vstack([a, b]), mics, FS, C).astype(np.float32)
    both = FocusedBeam(mics, np.vstack([a, b]), FS, C, band=BAND).process(p)
    only_a = FocusedBeam(mics, a, FS, C, band=BAND).process(p)[:, 0]
    only_b = FocusedBeam(mics, b, FS, C, band=BAND).process(p)[:, 0]
    scale = np.max(np.abs(both))
    np.testing.assert_allclose(both[:, 0], only_a, atol=1e-6 * scale)
    np.testing.assert_allclose(both[:, 1], only_b, atol=1e-6 * scale)

    def tone_power(y: np.ndarray, f: float) -> float:
        spec = np.abs(np.fft.rfft(y[4000:] * np.hanning(y.size - 4000))) ** 2
        k = round(f * (y.size - 4000) / FS)
        return float(spec[k - 3 : k + 4].sum())

    # each selection hears its own source louder than the other one
    assert tone_power(both[:, 0], 2000) > 10 * tone_power(both[:, 0], 5000)
    assert tone_power(both[:, 1], 5000) > 10 * tone_power(both[:, 1], 2000)


def test_changing_selections_keeps_an_unchanged_one_seamless() -> None:
    mics = seed_array()
    a, b, c = [0.2, 0.0, 1.0], [-0.3, 0.2, 1.4], [0.0, 0.5, 0.9]
    x = (white_noise(9600, 9, seed=8)).astype(np.float32)
    whole = FocusedBeam(mics, [a, b], FS, C, band=BAND).process(x)
    beam = FocusedBeam(mics, [a, b], FS, C, band=BAND)
    first = beam.process(x[:4800])
    beam.set_points([a, c])
    second = beam.process(x[4800:])
    assert beam.n_selections == 2
    np.testing.assert_allclose(np.concatenate([first[:, 0], second[:, 0]]), whole[:, 0], atol=1e-5)
    beam.set_points(np.zeros((0, 3)))
    assert beam.process(x[:100]).shape == (100, 0)


def test_zero_weight_excludes_a_dead_microphone() -> None:
    mics = seed_array()
    point = [0.3, 0.3, 1.0]
    p = propagate_free_field(white_noise(4800, seed=1), point, mics, FS, C).astype(np.float32)
    weights = np.ones(9)
    weights[3] = 0.0
    clean = FocusedBeam(mics, point, FS, C, weights=weights).process(p)
    broken = p.copy()
    broken[:, 3] = 1e6  # a dead channel railing
    dead = FocusedBeam(mics, point, FS, C, weights=weights).process(broken)
    np.testing.assert_array_equal(dead, clean)
    with pytest.raises(AcousticsError, match="sum to 0"):
        FocusedBeam(mics, point, FS, C, weights=np.zeros(9))


def test_nan_samples_are_zeroed_and_counted_without_poisoning_the_state() -> None:
    mics = seed_array()
    beam = FocusedBeam(mics, [0.0, 0.0, 1.0], FS, C, band=BAND)
    x = white_noise(2000, 9, seed=4).astype(np.float32)
    x[10:15, 2] = np.nan
    y = beam.process(x)
    assert np.all(np.isfinite(y))
    assert beam.nonfinite_samples.tolist() == [0, 0, 5, 0, 0, 0, 0, 0, 0]
    assert np.all(np.isfinite(beam.process(x)))


@pytest.mark.parametrize(
    ("band", "match"),
    [
        (BandFilter("lowpass", high_hz=30_000.0), "at or above the Nyquist frequency 24000"),
        (BandFilter("bandpass", low_hz=1000.0, high_hz=24_000.0), "high_hz = 24000"),
        (BandFilter("bandpass", low_hz=5000.0, high_hz=1000.0), "low_hz < high_hz"),
        (BandFilter("highpass"), "needs low_hz > 0"),
        (BandFilter("lowpass", high_hz=1000.0, order=0), "order"),
        (BandFilter("notch", low_hz=1.0, high_hz=2.0), "unknown filter kind"),  # type: ignore[arg-type]
    ],
)
def test_filter_design_errors_are_clear(band: BandFilter, match: str) -> None:
    with pytest.raises(BandError, match=match):
        FocusedBeam(seed_array(), [0.0, 0.0, 1.0], FS, C, band=band)


def test_bad_geometry_and_blocks_are_clear_errors() -> None:
    mics = seed_array()
    with pytest.raises(GeometryError, match="lies on a microphone"):
        FocusedBeam(mics, [0.05, 0.0, 0.0], FS, C)
    with pytest.raises(AcousticsError, match=r"\(n_selections, 3\)"):
        FocusedBeam(mics, [[0.0, 1.0]], FS, C)
    beam = FocusedBeam(mics, [0.0, 0.0, 1.0], FS, C)
    with pytest.raises(SignalError, match=r"\(n_samples, 9\)"):
        beam.process(np.zeros((100, 8), dtype=np.float32))
    with pytest.raises(AcousticsError, match="weights must have shape"):
        FocusedBeam(mics, [0.0, 0.0, 1.0], FS, C, weights=np.ones(8))


def test_sound_card_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes the import fail
    with pytest.raises(AcousticsError, match=r"rigwatch\[audio\]"):
        SoundCardSink(48_000.0)
