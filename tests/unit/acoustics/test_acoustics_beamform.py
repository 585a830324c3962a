"""Conventional beamforming and CLEAN-SC on synthetic free-field scenes with known sources.

Scenes: a white-noise or the real drone recording (``measurement_drone.wav``) placed on a grid
point and propagated by :func:`rigwatch.acoustics.scene.propagate_free_field` to the array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile

from rigwatch.acoustics.bands import Band, seed_bands, union_bins
from rigwatch.acoustics.beamform import (
    BandMap,
    beamform_bins,
    conventional_map,
    sound_pressure_level_db,
)
from rigwatch.acoustics.clean_sc import clean_sc_bins
from rigwatch.acoustics.csm import cross_spectral_matrix
from rigwatch.acoustics.geometry import CylinderGrid, Grid, MicArray, RectGrid
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.acoustics.steering import STEER_TYPES, Steering
from rigwatch.errors import AcousticsError, BandError, GeometryError

DATA = Path(__file__).resolve().parents[3] / "data" / "acoustics"
FS = 51200.0
C = 343.0
N = 8192


def _drone(n: int) -> np.ndarray:
    fs, x = scipy.io.wavfile.read(DATA / "measurement_drone.wav")
    assert fs == FS
    return x[20000 : 20000 + n].astype(np.float64) / 32768.0


CASES = {
    # array, grid, true source index on the grid, band(s), steering
    "array_64": (
        lambda: MicArray.from_acoular_xml(DATA / "array_64.xml"),
        RectGrid(-0.3, 0.3, -0.3, 0.3, 0.6, 0.03),
        7 * 21 + 15,
        Band.third_octave(4000),
    ),
    "uma16": (
        lambda: MicArray.from_acoular_xml(DATA / "minidsp_uma-16.xml"),
        RectGrid(-0.5, 0.5, -0.5, 0.5, 0.5, 0.05),
        14 * 21 + 6,
        Band.octave(4000),
    ),
    "seed9": (
        MicArray.seed_ball_mill,
        CylinderGrid(),
        2 * 50 + 31,
        seed_bands(),
    ),
}


def _cell_distance(grid: Grid, a: int, b: int) -> int:
    ia = np.unravel_index(a, grid.shape)
    ib = np.unravel_index(b, grid.shape)
    return int(max(abs(int(i) - int(j)) for i, j in zip(ia, ib, strict=True)))


@pytest.mark.parametrize("signal", ["white", "drone"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_peak_within_one_cell_of_source(case: str, signal: str) -> None:
    make, grid, true_idx, bands = CASES[case]
    mics = make()
    src = grid.points_m[true_idx]
    sig = white_noise(N + 600, seed=4)[:, 0] if signal == "white" else _drone(N + 600)
    p = propagate_free_field(sig, src, mics.positions_m, FS, C)
    assert p.shape[1] == mics.n_mics
    steer = "true location" if case == "seed9" else "true level"
    m = conventional_map(p, FS, mics, grid, bands, C, steer_type=steer, block_size=512)
    assert m.quantity == "Pa^2" and m.shape == grid.shape
    peak = int(np.argmax(m.values))
    assert _cell_distance(grid, peak, true_idx) <= 1, (case, signal, peak, true_idx)
    db = m.spl_db()
    assert db.max() > 40  # 1 Pa-rms-ish source: a real level, not a normalised shape


def test_true_level_gives_source_level_at_reference() -> None:
    """'true level' steering at the source gives the source's level at the reference point
    (here the origin): the band power of s / r0, within 0.1 dB."""
    mics = MicArray.from_acoular_xml(DATA / "array_64.xml")
    grid = RectGrid(0.06, 0.06, -0.09, -0.09, 0.6, 0.03)  # the source point only
    src = grid.points_m[0]
    sig = white_noise(N + 600, seed=5)[:, 0]
    p = propagate_free_field(sig, src, mics.positions_m, FS, C)
    band = Band.third_octave(2000)
    r0 = float(np.linalg.norm(src))
    bins = union_bins([band], 512, FS)
    # the source signal as heard at the origin (delay does not change its power spectrum)
    ref = cross_spectral_matrix(sig[:, None] / r0, FS, bins, block_size=512)[:, 0, 0].real.sum()
    for rd in (False, True):
        m = conventional_map(p, FS, mics, grid, band, C, block_size=512, remove_diagonal=rd)
        got = sound_pressure_level_db(m.values)[0, 0]
        assert got == pytest.approx(sound_pressure_level_db(np.array(ref)), abs=0.1)


def test_steering_formulas() -> None:
    mics = MicArray.from_acoular_xml(DATA / "minidsp_uma-16.xml")
    pts = np.array([[0.1, 0.0, 0.4], [-0.2, 0.1, 0.7]])
    rm = np.linalg.norm(pts[:, None, :] - mics.positions_m[None], axis=2)
    r0 = np.linalg.norm(pts, axis=1)[:, None]
    n = 16
    k = 2 * np.pi * 3000 / C
    e = np.exp(-1j * k * (rm - r0))
    inv2 = (1 / rm**2).sum(1, keepdims=True)
    expected = {
        "classic": e / n,
        "inverse": e * rm / (n * r0),
        "true level": e / (r0 * rm * inv2),
        "true location": e / (rm * np.sqrt(n * inv2)),
    }
    for st in STEER_TYPES:
        h = Steering(mics, pts, C, st).vectors(3000.0)  # type: ignore[arg-type]
        np.testing.assert_allclose(h, expected[st], rtol=1e-12)
    # scalar reference distance
    h = Steering(mics, pts, C, "true level", ref=1.0).vectors(3000.0)
    np.testing.assert_allclose(np.abs(h), 1 / (rm * inv2), rtol=1e-12)
    with pytest.raises(AcousticsError, match="steer_type"):
        Steering(mics, pts, C, "bogus")  # type: ignore[arg-type]


def test_bad_input_errors() -> None:
    mics = MicArray.from_acoular_xml(DATA / "minidsp_uma-16.xml")
    x = white_noise(4096, 16, seed=1)
    grid = RectGrid(-0.1, 0.1, -0.1, 0.1, 0.5, 0.05)
    with pytest.raises(GeometryError, match="16-microphone geometry"):
        conventional_map(x[:, :12], FS, mics, grid, Band.octave(2000), C)
    with pytest.raises(GeometryError, match="behind"):
        conventional_map(x, FS, mics, RectGrid(z=-1.0), Band.octave(2000), C)
    with pytest.raises(BandError, match="Nyquist"):
        conventional_map(x, FS, mics, grid, Band(20000, 30000), C, block_size=256)
    with pytest.raises(BandError, match="narrower than one FFT bin"):
        conventional_map(x, FS, mics, grid, Band(1010, 1040), C)
    bad = x.copy()
    bad[5, 3] = np.inf
    with pytest.raises(AcousticsError, match=r"\[3\] hold NaN or inf"):
        conventional_map(bad, FS, mics, grid, Band.octave(2000), C)
    steering = Steering(mics, grid.points_m, C)
    with pytest.raises(GeometryError, match="does not fit 16"):
        beamform_bins(np.zeros((1, 8, 8), complex), np.array([1000.0]), steering)
    pseudo = BandMap(np.ones((2, 2)), "pseudo-spectrum", "x")
    with pytest.raises(ValueError, match="no sound pressure level"):
        pseudo.spl_db()


def test_clean_sc_finds_two_sources() -> None:
    mics = MicArray.from_acoular_xml(DATA / "array_64.xml")
    grid = RectGrid(-0.3, 0.3, -0.3, 0.3, 0.6, 0.03)
    idx = [5 * 21 + 5, 14 * 21 + 13]
    sig = white_noise(N + 600, 2, seed=7) * [1.0, 0.7]
    p = propagate_free_field(sig, grid.points_m[idx], mics.positions_m, FS, C)
    band = Band.third_octave(4000)
    bins = union_bins([band], 512, FS)
    csm = cross_spectral_matrix(p, FS, bins, block_size=512)
    steering = Steering(mics, grid.points_m, C)
    clean = clean_sc_bins(csm, bins * FS / 512, steering, sum_bins=True)
    top = np.argsort(clean)[::-1]
    first = int(top[0])
    second = next(int(i) for i in top if _cell_distance(grid, int(i), first) > 2)
    found = sorted([first, second])
    for f, t in zip(found, sorted(idx), strict=True):
        assert _cell_distance(grid, f, t) <= 1
    # the clean map concentrates the power: the two sources' cells hold > 90 %
    near = [i for i in range(clean.size) if min(_cell_distance(grid, i, t) for t in idx) <= 1]
    assert clean[near].sum() > 0.9 * clean.sum()
    # levels: the stronger source ~3 dB above the weaker one (0.7 amplitude)
    near0 = [i for i in near if _cell_distance(grid, i, idx[0]) <= 1]
    near1 = [i for i in near if _cell_distance(grid, i, idx[1]) <= 1]
    r = np.linalg.norm(grid.points_m[idx], axis=1)
    expected = 10 * np.log10((1 / r[0] ** 2) / (0.49 / r[1] ** 2))
    got = 10 * np.log10(clean[near0].sum() / clean[near1].sum())
    assert got == pytest.approx(expected, abs=1.0)
