"""Array geometry loaders, focus grids, the grid checks and the speed of sound."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rigwatch.acoustics.geometry import (
    CylinderGrid,
    MicArray,
    RectGrid,
    check_grid,
    speed_of_sound_m_s,
)
from rigwatch.acoustics.hdf5 import read_acoular_time_data, write_acoular_time_data
from rigwatch.errors import AcousticsError, GeometryError

DATA = Path(__file__).resolve().parents[3] / "data" / "acoustics"


def test_acoular_xml_array_64() -> None:
    mics = MicArray.from_acoular_xml(DATA / "array_64.xml")
    assert mics.n_mics == 64
    assert mics.names[0] == "Point 1" and mics.names[-1] == "Point 64"
    np.testing.assert_allclose(mics.positions_m[0], [0.152, 0.1141, 0.0])
    assert mics.positions_m.dtype == np.float64
    assert np.all(mics.positions_m[:, 2] == 0)
    assert mics.channels == tuple(range(64))


def test_acoular_xml_uma16_pitch() -> None:
    mics = MicArray.from_acoular_xml(DATA / "minidsp_uma-16.xml")
    assert mics.n_mics == 16
    xs = np.unique(np.round(mics.positions_m[:, 0], 6))
    ys = np.unique(np.round(mics.positions_m[:, 1], 6))
    # 4 x 4 grid with 42 mm pitch, centred on the origin
    np.testing.assert_allclose(np.diff(xs), 0.042, atol=1e-9)
    np.testing.assert_allclose(np.diff(ys), 0.042, atol=1e-9)
    np.testing.assert_allclose(mics.centre_m, 0.0, atol=1e-12)


def test_hdf5_benchmark_positions() -> None:
    mics = MicArray.from_hdf5(DATA / "b11aTimeSeries.h5")
    assert mics.n_mics == 8
    np.testing.assert_allclose(np.linalg.norm(mics.positions_m, axis=1), 0.5, atol=1e-6)


def test_csv_with_channels_and_comments(tmp_path: Path) -> None:
    p = tmp_path / "arr.csv"
    p.write_text("# my array\nname, x, y, z, channel\na, 0.1, 0, 0, 3\nb, -0.1, 0, 0, 1\n")
    mics = MicArray.from_csv(p)
    assert mics.names == ("a", "b")
    assert mics.channels == (3, 1)
    data = np.arange(20.0).reshape(5, 4)
    np.testing.assert_array_equal(mics.select(data), data[:, [3, 1]])
    with pytest.raises(GeometryError, match="needs channel index 3"):
        mics.select(data[:, :3])


def test_csv_missing_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("x,y\n0,0\n")
    with pytest.raises(GeometryError, match="missing column"):
        MicArray.from_csv(p)


def test_xml_without_positions(tmp_path: Path) -> None:
    p = tmp_path / "empty.xml"
    p.write_text("<MicArray name='x'></MicArray>")
    with pytest.raises(GeometryError, match="no <pos>"):
        MicArray.from_acoular_xml(p)


def test_seed_ball_mill_array() -> None:
    mics = MicArray.seed_ball_mill()
    assert mics.n_mics == 9
    r = np.linalg.norm(mics.positions_m, axis=1)
    np.testing.assert_allclose(r[:8], 0.05)
    assert r[8] == 0
    assert mics.names[0] == "ai1"


def test_excluding_keeps_mapping() -> None:
    mics = MicArray.seed_ball_mill().excluding([2])
    assert list(mics.active) == [0, 1, 3, 4, 5, 6, 7, 8]
    data = np.tile(np.arange(9.0), (4, 1))
    np.testing.assert_array_equal(mics.select(data)[0], [0, 1, 3, 4, 5, 6, 7, 8])
    with pytest.raises(GeometryError, match="every microphone"):
        MicArray(np.zeros((1, 3)), excluded=frozenset({0}))


def test_rect_grid_matches_acoular_layout() -> None:
    g = RectGrid(x_min=-0.2, x_max=0.2, y_min=-0.1, y_max=0.1, z=0.5, increment=0.05)
    assert g.shape == (9, 5)
    pts = g.points_m
    assert pts.shape == (45, 3)
    # x is the slow index, y the fast one (Acoular's mgrid order)
    np.testing.assert_allclose(pts[1], [-0.2, -0.05, 0.5])
    np.testing.assert_allclose(pts[5], [-0.15, -0.1, 0.5])
    np.testing.assert_allclose(pts[-1], [0.2, 0.1, 0.5])


def test_cylinder_grid_default_is_seed_surface() -> None:
    g = CylinderGrid()
    assert g.shape == (5, 50)
    pts = g.points_m.reshape(5, 50, 3)
    np.testing.assert_allclose(pts[0, :, 0], np.linspace(-1.575, 1.575, 50))
    # every point on the pipe surface: distance to the axis (y=0.46, z=1.5) is the radius
    rad = np.hypot(pts[..., 1] - 0.46, pts[..., 2] - 1.5)
    np.testing.assert_allclose(rad, g.diameter_m / 2)
    # middle row faces the array: the closest point of the circumference to the origin
    mid = pts[2, 0, 1:]
    np.testing.assert_allclose(
        np.linalg.norm(mid), math.hypot(0.46, 1.5) - g.diameter_m / 2, rtol=1e-12
    )
    check_grid(g.points_m, MicArray.seed_ball_mill())


def test_grid_behind_or_through_array() -> None:
    mics = MicArray.from_acoular_xml(DATA / "minidsp_uma-16.xml")
    with pytest.raises(GeometryError, match="behind"):
        check_grid(RectGrid(z=-0.5).points_m, mics)
    with pytest.raises(GeometryError, match="through the array"):
        check_grid(np.array([[0.021, -0.063, 0.0]]), mics)
    with pytest.raises(GeometryError, match="through the array plane"):
        CylinderGrid(distance_m=0.1, diameter_m=0.5)


def test_speed_of_sound() -> None:
    assert speed_of_sound_m_s(0.0) == pytest.approx(331.3)
    assert speed_of_sound_m_s(20.0) == pytest.approx(343.2, abs=0.05)
    with pytest.raises(GeometryError):
        speed_of_sound_m_s(-300.0)


def test_acoular_time_data_roundtrip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    write_acoular_time_data(tmp_path / "t.h5", data, 51200.0)
    back, fs = read_acoular_time_data(tmp_path / "t.h5")
    assert fs == 51200.0
    np.testing.assert_array_equal(back, data)
    with pytest.raises(AcousticsError, match="time_data"):
        read_acoular_time_data(DATA / "b11aTimeSeries.h5")
