"""Exporting maps as PNG, .npy, .npz and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rigwatch.acoustics.export import (
    display_levels_db,
    export_map,
    map_axes,
    read_map_csv,
    read_map_npz,
)
from rigwatch.errors import AcousticsError

UNIT = "dB re 20 µPa"


def rect_map() -> tuple[np.ndarray, np.ndarray]:
    """A 7 x 5 plane at z = 1 m, x along axis 0, with a peak of 80 dB at (0.2, -0.1)."""
    x = np.linspace(-0.6, 0.6, 7)
    y = np.linspace(-0.4, 0.4, 5)
    gx, gy = np.meshgrid(x, y, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 1.0)], axis=1)
    values = 80.0 - 40.0 * ((gx - 0.2) ** 2 + (gy + 0.1) ** 2) + np.pi * 1e-9
    return values, pts


def pipe_map() -> tuple[np.ndarray, np.ndarray]:
    """5 points around x 50 along a pipe (radius 0.15 m, half circumference), values >= 0."""
    along = np.linspace(-1.575, 1.575, 50)
    th = np.linspace(-np.pi / 2, np.pi / 2, 5)
    pts = np.empty((5, 50, 3))
    pts[:, :, 0] = along[None, :]
    pts[:, :, 1] = 0.46 + 0.15 * np.sin(th)[:, None]
    pts[:, :, 2] = 1.5 - 0.15 * np.cos(th)[:, None]
    values = np.random.default_rng(1).uniform(0.0, 1.0, (5, 50))
    return values, pts.reshape(-1, 3)


def test_npy_reads_back_equal(tmp_path: Path) -> None:
    values, pts = rect_map()
    out = export_map(tmp_path / "map.npy", values, pts, UNIT)
    np.testing.assert_array_equal(np.load(out), values)


def test_npz_reads_back_equal_with_grid_and_unit(tmp_path: Path) -> None:
    values, pts = rect_map()
    out = export_map(tmp_path / "map.npz", values, pts, UNIT)
    back = read_map_npz(out)
    np.testing.assert_array_equal(back.values, values)
    np.testing.assert_array_equal(back.points_m, pts)
    assert back.unit == UNIT
    with np.load(out) as raw:
        np.testing.assert_array_equal(raw["axis0_m"], np.linspace(-0.6, 0.6, 7))
        np.testing.assert_array_equal(raw["axis1_m"], np.linspace(-0.4, 0.4, 5))
        assert raw["axis_labels"].tolist() == ["x (m)", "y (m)"]


def test_csv_reads_back_bit_exact_one_row_per_point(tmp_path: Path) -> None:
    values, pts = pipe_map()
    out = export_map(tmp_path / "map.csv", values, pts, "MUSIC pseudo-spectrum")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "x_m,y_m,z_m,value [MUSIC pseudo-spectrum]"
    assert len(lines) == 1 + 250
    back = read_map_csv(out, (5, 50))
    np.testing.assert_array_equal(back.values, values)
    np.testing.assert_array_equal(back.points_m, pts)
    assert back.unit == "MUSIC pseudo-spectrum"
    # point i is map cell unravel(i): row 1 of the file is point 0, row 51 is cell (1, 0)
    assert [float(v) for v in lines[51].split(",")] == [*pts[50].tolist(), values[1, 0]]
    with pytest.raises(AcousticsError, match="not a"):
        read_map_csv(out, (5, 49))


@pytest.mark.parametrize("kind", ["rect", "pipe"])
def test_png_is_a_readable_image_with_the_map_in_colour(tmp_path: Path, kind: str) -> None:
    values, pts = rect_map() if kind == "rect" else pipe_map()
    scale = "db" if kind == "rect" else "linear"
    out = export_map(
        tmp_path / "map.png", values, pts, UNIT, scale=scale, dynamic_range_db=15, title=kind
    )
    with Image.open(out) as img:
        assert img.format == "PNG"
        assert img.size == (700, 500)
        rgb = np.asarray(img.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20  # a colour map, not a blank


def test_dynamic_range_clips_below_the_peak() -> None:
    levels, vmin, vmax = display_levels_db(
        np.array([[60.0, 75.0], [80.0, np.nan]]), dynamic_range_db=10.0
    )
    assert (vmin, vmax) == (70.0, 80.0)
    np.testing.assert_array_equal(levels[0], [70.0, 75.0])
    assert levels[1, 0] == 80.0 and np.isnan(levels[1, 1])
    lin, vmin, vmax = display_levels_db(
        np.array([[1.0, 0.1], [0.001, 0.0]]), scale="linear", dynamic_range_db=25.0
    )
    assert (vmin, vmax) == (-25.0, 0.0)
    np.testing.assert_allclose(lin, [[0.0, -10.0], [-25.0, -25.0]])


def test_axes_are_coordinates_on_a_plane_and_arc_length_around_a_pipe() -> None:
    _, pts = pipe_map()
    around, along, labels = map_axes(pts, (5, 50))
    assert labels == ("along axis 0 (m)", "x (m)")
    np.testing.assert_allclose(along, np.linspace(-1.575, 1.575, 50))
    # 4 chords of 45 degrees on a 0.15 m radius
    np.testing.assert_allclose(around[-1], 4 * 2 * 0.15 * np.sin(np.pi / 8))


def test_bad_exports_are_clear_errors(tmp_path: Path) -> None:
    values, pts = rect_map()
    with pytest.raises(AcousticsError, match="suffix"):
        export_map(tmp_path / "map.jpg", values, pts, UNIT)
    with pytest.raises(AcousticsError, match=r"points_m must have shape \(35, 3\)"):
        export_map(tmp_path / "map.npy", values, pts[:-1], UNIT)
    with pytest.raises(AcousticsError, match="cannot write"):
        export_map(tmp_path / "missing" / "map.csv", values, pts, UNIT)
    with pytest.raises(AcousticsError, match="dynamic_range_db"):
        export_map(tmp_path / "map.png", values, pts, UNIT, dynamic_range_db=0)
    with pytest.raises(AcousticsError, match="negative"):
        export_map(tmp_path / "map.png", values - 100, pts, UNIT, scale="linear")
