"""rigwatch against Acoular (test-only dependency) on the same time data, grid, CSM parameters
and steering formulation: conventional maps within 0.1 dB at every point above -20 dB of the
peak, CLEAN-SC source positions identical, Acoular reads rigwatch's HDF5 time data."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rigwatch.acoustics.bands import Band, union_bins
from rigwatch.acoustics.beamform import conventional_map, sound_pressure_level_db
from rigwatch.acoustics.clean_sc import clean_sc_bins
from rigwatch.acoustics.csm import cross_spectral_matrix
from rigwatch.acoustics.geometry import MicArray, RectGrid
from rigwatch.acoustics.hdf5 import write_acoular_time_data
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.acoustics.steering import STEER_TYPES, Steering

DATA = Path(__file__).resolve().parents[3] / "data" / "acoustics"
FS = 51200.0
C = 343.0
BS = 1024
GRID = RectGrid(-0.3, 0.3, -0.3, 0.3, 0.6, 0.03)
BAND = Band.third_octave(4000)


@pytest.fixture(scope="module")
def scene() -> dict[str, Any]:
    """One scene and Acoular's objects for it, shared by the module's tests."""
    ac = pytest.importorskip("acoular")
    mics = MicArray.from_acoular_xml(DATA / "array_64.xml")
    sig = white_noise(16384 + 800, 2, seed=11) * [1.0, 0.6]
    src = GRID.points_m[[6 * 21 + 4, 13 * 21 + 15]]
    p = propagate_free_field(sig, src, mics.positions_m, FS, C)[:16384]
    p += 0.02 * np.random.default_rng(3).standard_normal(p.shape)
    x = p.astype(np.float32)
    ts = ac.TimeSamples(data=x, sample_freq=FS)
    ps = ac.PowerSpectra(source=ts, block_size=BS, window="Hanning", overlap="50%", cached=False)
    grid = ac.RectGrid(
        x_min=GRID.x_min, x_max=GRID.x_max, y_min=GRID.y_min, y_max=GRID.y_max,
        z=GRID.z, increment=GRID.increment,
    )  # fmt: skip
    env = ac.Environment(c=C)
    geom = ac.MicGeom(pos_total=mics.positions_m.T)
    return {"ac": ac, "x": x, "mics": mics, "ps": ps, "grid": grid, "env": env, "geom": geom}


def _acoular(scene: dict[str, Any], cls: str, steer_type: str, r_diag: bool) -> np.ndarray:
    ac = scene["ac"]
    sv = ac.SteeringVector(
        grid=scene["grid"], mics=scene["geom"], env=scene["env"], steer_type=steer_type
    )
    bf = getattr(ac, cls)(freq_data=scene["ps"], steer=sv, r_diag=r_diag, cached=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(bf.synthetic(4000, [BAND.f_low_hz, BAND.f_high_hz]), np.float64)


@pytest.mark.parametrize("r_diag", [True, False])
@pytest.mark.parametrize("steer_type", STEER_TYPES)
def test_conventional_map_within_0_1_db(
    scene: dict[str, Any], steer_type: str, r_diag: bool
) -> None:
    ref = _acoular(scene, "BeamformerBase", steer_type, r_diag)
    for precision in ("complex64", "complex128"):
        ours = conventional_map(
            scene["x"], FS, scene["mics"], GRID, BAND, C,
            steer_type=steer_type, block_size=BS, window="Hanning", overlap=0.5,  # type: ignore[arg-type]
            remove_diagonal=r_diag, precision=precision,  # type: ignore[arg-type]
        )  # fmt: skip
        l_ref = sound_pressure_level_db(ref)
        l_ours = ours.spl_db()
        sel = l_ref > l_ref.max() - 20
        assert sel.sum() > 10
        assert np.abs(l_ours - l_ref)[sel].max() < 0.1
        # in fact far closer: float rounding only
        assert np.abs(l_ours - l_ref)[sel].max() < 1e-3


def test_clean_sc_positions_agree(scene: dict[str, Any]) -> None:
    ref = _acoular(scene, "BeamformerCleansc", "true level", True).ravel()
    bins = union_bins([BAND], BS, FS)
    csm = cross_spectral_matrix(scene["x"], FS, bins, block_size=BS)
    steering = Steering(scene["mics"], GRID.points_m, C)
    ours = clean_sc_bins(csm, bins * FS / BS, steering, sum_bins=True)
    assert set(np.flatnonzero(ours > 0)) == set(np.flatnonzero(ref > 0))
    np.testing.assert_array_equal(np.argsort(ours)[-5:], np.argsort(ref)[-5:])
    strong = ref > ref.max() * 1e-2
    np.testing.assert_allclose(ours[strong], ref[strong], rtol=1e-4)


def test_acoular_reads_rigwatch_hdf5(scene: dict[str, Any], tmp_path: Path) -> None:
    ac = scene["ac"]
    path = tmp_path / "scene.h5"
    write_acoular_time_data(path, scene["x"][:4096], FS)
    ts = ac.TimeSamples(file=str(path))
    assert ts.sample_freq == FS
    assert ts.num_channels == 64 and ts.num_samples == 4096
    got = np.concatenate(list(ts.result(1024)))
    ts._h5f.close()  # Acoular keeps its file open
    np.testing.assert_array_equal(got, scene["x"][:4096])
