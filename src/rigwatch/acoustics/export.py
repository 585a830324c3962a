"""Exporting acoustic maps: PNG (colour scale in dB), NumPy ``.npy``/``.npz`` and CSV.

A map is a 2-D float array ``values`` of shape ``(n0, n1)`` over focus points ``points_m``
``(n0 * n1, 3)`` in metres, point ``i`` being map cell ``numpy.unravel_index(i, (n0, n1))``
(C order, the grids' convention), plus a unit label (``"dB re 20 µPa"``, ``"MUSIC
pseudo-spectrum"``...).

Files:

- ``.npy``: ``values`` alone, float64.
- ``.npz``: ``values`` (n0, n1) float64, ``points_m`` (n0 * n1, 3) float64, ``axis0_m`` (n0,),
  ``axis1_m`` (n1,) (see :func:`map_axes`), ``axis_labels`` (2,) str and ``unit`` () str.
- ``.csv``: header ``x_m,y_m,z_m,value [<unit>]``, one row per point in point order, numbers
  written with 17 significant digits (they read back bit-exact).
- ``.png``: the map in colour, axes in metres, colour bar in dB over ``dynamic_range_db`` below
  the peak (:func:`display_levels_db`); drawn with Matplotlib's Agg canvas (no display needed).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rigwatch.errors import AcousticsError

log = logging.getLogger(__name__)

__all__ = [
    "AcousticMap",
    "Scale",
    "display_levels_db",
    "export_map",
    "map_axes",
    "read_map_csv",
    "read_map_npz",
]

Scale = Literal["db", "linear"]
_COORDS = ("x", "y", "z")


@dataclass(frozen=True)
class AcousticMap:
    """A map read back from a file.

    Attributes:
        values: (n0, n1) float64.
        points_m: (n0 * n1, 3) float64 metres.
        unit: the unit label.
    """

    values: NDArray[np.float64]
    points_m: NDArray[np.float64]
    unit: str


def _check(
    values: ArrayLike, points_m: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.size == 0:
        raise AcousticsError(f"map values must be a non-empty 2-D array, got shape {v.shape}")
    p = np.asarray(points_m, dtype=np.float64)
    if p.shape != (v.size, 3):
        raise AcousticsError(
            f"points_m must have shape ({v.size}, 3) for a {v.shape} map, got {p.shape}"
        )
    if not np.all(np.isfinite(p)):
        raise AcousticsError("points_m holds NaN or infinite coordinates")
    return v, p


def map_axes(
    points_m: ArrayLike, shape: tuple[int, int]
) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[str, str]]:
    """Coordinates in metres along each map axis, for plotting.

    An axis along which only one Cartesian coordinate varies (a rectangular grid) is labelled
    by that coordinate and uses its values; any other axis (around a pipe) uses the distance
    travelled along the first row or column of points from its first point (arc length).

    Returns:
        ``(axis0_m (n0,), axis1_m (n1,), (label0, label1))``, labels such as ``"x (m)"`` or
        ``"along axis 0 (m)"``.
    """
    pts = np.asarray(points_m, dtype=np.float64).reshape(shape[0], shape[1], 3)
    axes: list[NDArray[np.float64]] = []
    labels: list[str] = []
    for axis, line in ((0, pts[:, 0, :]), (1, pts[0, :, :])):
        span = np.ptp(line, axis=0) if line.shape[0] > 1 else np.zeros(3)
        varying = np.flatnonzero(span > 1e-12 * max(1.0, float(np.max(np.abs(line)))))
        if varying.size == 1:
            k = int(varying[0])
            axes.append(line[:, k].copy())
            labels.append(f"{_COORDS[k]} (m)")
        else:
            steps = np.linalg.norm(np.diff(line, axis=0), axis=1)
            axes.append(np.concatenate([[0.0], np.cumsum(steps)]))
            labels.append(f"along axis {axis} (m)")
    return axes[0], axes[1], (labels[0], labels[1])


def display_levels_db(
    values: ArrayLike, *, scale: Scale = "db", dynamic_range_db: float = 20.0
) -> tuple[NDArray[np.float64], float, float]:
    """Levels shown in colour: dB, limited to ``dynamic_range_db`` below the peak.

    Args:
        values: (n0, n1) map.
        scale: ``"db"``: values are levels in dB already; ``"linear"``: values are power-like
            (>= 0; a pseudo-spectrum, a normalised map) and shown as ``10 log10(v / max v)``.
        dynamic_range_db: range of the colour scale below the peak, > 0.

    Returns:
        ``(levels, vmin, vmax)``: levels in dB with everything below ``vmin = vmax -
        dynamic_range_db`` set to ``vmin``; NaN stays NaN (drawn blank).

    Raises:
        AcousticsError: a non-positive dynamic range, an unknown scale, negative linear values,
            or a map with no finite value.
    """
    if not (math.isfinite(dynamic_range_db) and dynamic_range_db > 0):
        raise AcousticsError(f"dynamic_range_db must be > 0, got {dynamic_range_db}")
    v = np.asarray(values, dtype=np.float64)
    if not np.any(np.isfinite(v)):
        raise AcousticsError("the map holds no finite value")
    if scale == "db":
        levels = v.copy()
    elif scale == "linear":
        if np.nanmin(v) < 0:
            raise AcousticsError("a linear (power-like) map cannot hold negative values")
        peak = float(np.nanmax(v))
        with np.errstate(divide="ignore"):
            levels = 10.0 * np.log10(v / peak) if peak > 0 else np.zeros_like(v)
    else:
        raise AcousticsError(f"unknown scale {scale!r}: use 'db' or 'linear'")
    vmax = float(np.nanmax(levels[np.isfinite(levels)]))
    vmin = vmax - dynamic_range_db
    levels = np.where(np.isnan(levels), np.nan, np.maximum(levels, vmin))
    return levels, vmin, vmax


def _write_png(
    path: Path,
    v: NDArray[np.float64],
    p: NDArray[np.float64],
    unit: str,
    scale: Scale,
    dynamic_range_db: float,
    title: str | None,
) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    levels, vmin, vmax = display_levels_db(v, scale=scale, dynamic_range_db=dynamic_range_db)
    a0, a1, (l0, l1) = map_axes(p, v.shape)
    # x to the right when it is one of the axes, otherwise axis 1 (along a pipe) to the right
    if l0.startswith("x "):
        image, horiz, vert, lh, lv = levels.T, a0, a1, l0, l1
    else:
        image, horiz, vert, lh, lv = levels, a1, a0, l1, l0

    def edges(c: NDArray[np.float64]) -> tuple[float, float]:
        if c.size == 1:
            return float(c[0]) - 0.5, float(c[0]) + 0.5
        step = (c[-1] - c[0]) / (c.size - 1)
        return float(c[0] - step / 2), float(c[-1] + step / 2)

    fig = Figure(figsize=(7.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    img = ax.imshow(
        image,
        origin="lower",
        extent=(*edges(horiz), *edges(vert)),
        aspect="equal" if lh[:2] in ("x ", "y ", "z ") and lv[:2] in ("x ", "y ", "z ") else "auto",
        cmap="inferno",
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.set_xlabel(lh)
    ax.set_ylabel(lv)
    if title:
        ax.set_title(title)
    bar = fig.colorbar(img, ax=ax)
    bar.set_label(unit if scale == "db" else f"dB re max ({unit})")
    fig.savefig(path, format="png")


def export_map(
    path: str | Path,
    values: ArrayLike,
    points_m: ArrayLike,
    unit: str,
    *,
    scale: Scale = "db",
    dynamic_range_db: float = 20.0,
    title: str | None = None,
) -> Path:
    """Write a map to ``path``, the format chosen by its suffix (module docstring).

    Args:
        path: ``.png``, ``.npy``, ``.npz`` or ``.csv``; parent directories must exist.
        values: (n0, n1) map values.
        points_m: (n0 * n1, 3) focus points in metres, in C order over the map.
        unit: unit label of the values (``"dB re 20 µPa"``, ``"MUSIC pseudo-spectrum"``).
        scale: PNG only: ``"db"`` values are dB; ``"linear"`` values are power-like.
        dynamic_range_db: PNG only: colour range below the peak, dB.
        title: PNG only: title above the map.

    Returns:
        The path written.

    Raises:
        AcousticsError: bad shapes, an unknown suffix, bad PNG scale settings, or the file
            cannot be written (the message names it).
    """
    out = Path(path)
    v, p = _check(values, points_m)
    suffix = out.suffix.lower()
    try:
        if suffix == ".npy":
            np.save(out, v)
        elif suffix == ".npz":
            a0, a1, labels = map_axes(p, v.shape)
            np.savez(
                out,
                values=v,
                points_m=p,
                axis0_m=a0,
                axis1_m=a1,
                axis_labels=np.array(labels),
                unit=np.array(unit),
            )
        elif suffix == ".csv":
            with out.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["x_m", "y_m", "z_m", f"value [{unit}]"])
                for (x, y, z), val in zip(p, v.ravel(), strict=True):
                    writer.writerow([f"{x:.17g}", f"{y:.17g}", f"{z:.17g}", f"{val:.17g}"])
        elif suffix == ".png":
            _write_png(out, v, p, unit, scale, dynamic_range_db, title)
        else:
            raise AcousticsError(
                f"cannot export a map as {out.name!r}: use a .png, .npy, .npz or .csv suffix"
            )
    except OSError as exc:
        raise AcousticsError(f"cannot write map to {out}: {exc}") from exc
    log.info("map %s exported to %s", v.shape, out)
    return out


def read_map_npz(path: str | Path) -> AcousticMap:
    """Read a map written by :func:`export_map` as ``.npz``.

    Raises:
        AcousticsError: the file is missing, unreadable or lacks a field.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            return AcousticMap(
                np.asarray(data["values"], dtype=np.float64),
                np.asarray(data["points_m"], dtype=np.float64),
                str(data["unit"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise AcousticsError(f"cannot read map {path}: {exc}") from exc


def read_map_csv(path: str | Path, shape: tuple[int, int]) -> AcousticMap:
    """Read a map written by :func:`export_map` as ``.csv``, reshaped to ``shape``.

    Raises:
        AcousticsError: the file is missing, its header is not the export's, or its row count
            does not match ``shape``.
    """
    try:
        with Path(path).open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise AcousticsError(f"cannot read map {path}: {exc}") from exc
    header = rows[0] if rows else []
    if (
        header[:3] != ["x_m", "y_m", "z_m"]
        or len(header) != 4
        or not header[3].startswith("value [")
    ):
        raise AcousticsError(f"{path} is not a map CSV: header {header}")
    table = np.array(rows[1:], dtype=np.float64).reshape(-1, 4)
    if table.shape[0] != shape[0] * shape[1]:
        raise AcousticsError(f"{path} holds {table.shape[0]} points, not a {shape} map")
    return AcousticMap(table[:, 3].reshape(shape), table[:, :3], header[3][len("value [") : -1])
