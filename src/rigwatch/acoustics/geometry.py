"""Microphone array geometry, focus grids and the speed of sound.

Coordinates are metres in a right-handed frame whose origin is the array centre; a planar array
lies in the x-y plane and looks along +z (the convention of Acoular and of the array-benchmark
HDF5 format). Every position array is float64 with shape ``(n, 3)``.

* :class:`MicArray` holds microphone positions, names, the station channel each microphone is
  wired to, and the microphones excluded from processing (invalid or found dead).
* :class:`RectGrid` is a plane of focus points at a distance ``z``; :class:`CylinderGrid` is the
  surface of a pipe (the ball mill), unrolled into a 2-D map.
* :func:`speed_of_sound_m_s` gives the speed of sound in dry air from its temperature.
"""

from __future__ import annotations

import csv
import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from rigwatch.errors import GeometryError

log = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

#: Smallest distance (m) allowed between a focus point and a microphone.
MIN_FOCUS_DISTANCE_M = 1e-3


def speed_of_sound_m_s(temperature_c: float) -> float:
    """Speed of sound in dry air (m/s) at ``temperature_c`` (degrees Celsius).

    ``c = 331.3 * sqrt(1 + temperature_c / 273.15)``: the ideal-gas law for air with
    c = 331.3 m/s at 0 degC (Kinsler, Frey, Coppens, Sanders, *Fundamentals of Acoustics*,
    4th ed., Wiley 2000, section 5.6). Gives 343.2 m/s at 20 degC. Humidity (< 0.5 % effect
    in the audio range) is neglected.

    Raises:
        GeometryError: the temperature is below absolute zero or not finite.
    """
    if not math.isfinite(temperature_c) or temperature_c <= -273.15:
        raise GeometryError(f"air temperature {temperature_c} degC is not a physical value")
    return 331.3 * math.sqrt(1.0 + temperature_c / 273.15)


def _as_positions(positions_m: object) -> FloatArray:
    pos = np.array(positions_m, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise GeometryError(f"microphone positions must have shape (n_mics, 3), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise GeometryError("microphone positions hold NaN or inf")
    return pos


@dataclass(frozen=True)
class MicArray:
    """A microphone array.

    Attributes:
        positions_m: float64 ``(n_mics, 3)`` microphone positions in metres.
        names: one name per microphone.
        channels: for each microphone, the index of the station (data) channel it is wired to;
            defaults to ``0..n_mics-1``.
        excluded: indices (into the microphones) not used for processing: invalid channels or
            microphones found dead. Use :meth:`excluding` to add some without rebuilding.
    """

    positions_m: FloatArray
    names: tuple[str, ...] = ()
    channels: tuple[int, ...] = ()
    excluded: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        pos = _as_positions(self.positions_m)
        pos.setflags(write=False)
        object.__setattr__(self, "positions_m", pos)
        n = pos.shape[0]
        names = tuple(self.names) or tuple(f"mic{i + 1}" for i in range(n))
        channels = tuple(int(c) for c in self.channels) or tuple(range(n))
        if len(names) != n:
            raise GeometryError(f"{len(names)} microphone names for {n} positions")
        if len(channels) != n:
            raise GeometryError(f"{len(channels)} channel numbers for {n} microphones")
        if min(channels) < 0 or len(set(channels)) != n:
            raise GeometryError(f"channel mapping {channels} has negative or repeated entries")
        bad = [i for i in self.excluded if not 0 <= i < n]
        if bad:
            raise GeometryError(f"excluded microphones {sorted(bad)} outside 0..{n - 1}")
        if len(self.excluded) >= n:
            raise GeometryError("every microphone of the array is excluded")
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "excluded", frozenset(int(i) for i in self.excluded))

    # ------------------------------------------------------------------ properties
    @property
    def n_mics(self) -> int:
        """Number of microphones, excluded ones included."""
        return int(self.positions_m.shape[0])

    @property
    def active(self) -> NDArray[np.intp]:
        """Indices of the microphones used for processing (not excluded), ascending."""
        return np.array([i for i in range(self.n_mics) if i not in self.excluded], dtype=np.intp)

    @property
    def active_positions_m(self) -> FloatArray:
        """float64 ``(n_active, 3)`` positions of the microphones used for processing."""
        return np.ascontiguousarray(self.positions_m[self.active])

    @property
    def active_channels(self) -> NDArray[np.intp]:
        """Station channel index of each active microphone, shape ``(n_active,)``."""
        return np.array(self.channels, dtype=np.intp)[self.active]

    @property
    def centre_m(self) -> FloatArray:
        """Mean position of all microphones, shape ``(3,)`` (Acoular's ``MicGeom.center``)."""
        return np.asarray(self.positions_m.mean(axis=0), dtype=np.float64)

    @property
    def aperture_m(self) -> float:
        """Largest distance between two microphones (m)."""
        d = self.positions_m[:, None, :] - self.positions_m[None, :, :]
        return float(np.sqrt((d**2).sum(-1)).max())

    # ------------------------------------------------------------------ derived arrays
    def excluding(self, mics: Iterable[int]) -> MicArray:
        """The same array with microphones ``mics`` (indices) excluded as well."""
        return MicArray(self.positions_m, self.names, self.channels, self.excluded | set(mics))

    def with_channels(self, channels: Sequence[int]) -> MicArray:
        """The same array wired to other station channels (one per microphone)."""
        return MicArray(self.positions_m, self.names, tuple(channels), self.excluded)

    def check_channel_count(self, n_channels: int) -> None:
        """Raise :class:`GeometryError` if data with ``n_channels`` cannot feed this array."""
        need = max(self.channels) + 1
        if n_channels < need:
            raise GeometryError(
                f"data has {n_channels} channels but the {self.n_mics}-microphone geometry "
                f"needs channel index {need - 1} (channel mapping {self.channels})"
            )

    def select(self, data: NDArray[np.floating]) -> NDArray[np.floating]:
        """The columns of ``data`` (``(n_samples, n_channels)``) of the active microphones.

        Raises:
            GeometryError: ``data`` is not 2-D or has too few channels for the mapping.
        """
        if data.ndim != 2:
            raise GeometryError(
                f"microphone data must be (n_samples, n_channels), got {data.shape}"
            )
        self.check_channel_count(data.shape[1])
        idx = self.active_channels
        if data.shape[1] == self.n_mics and np.array_equal(idx, np.arange(self.n_mics)):
            return data
        return data[:, idx]

    # ------------------------------------------------------------------ loaders
    @classmethod
    def from_acoular_xml(cls, path: str | Path) -> MicArray:
        """Load an Acoular XML geometry: ``<pos Name="..." x="..." y="..." z="..."/>`` elements.

        Whitespace (tabs) around names and numbers is ignored, as Acoular does.

        Raises:
            GeometryError: unreadable file, no ``pos`` element, or a non-numeric coordinate.
        """
        p = Path(path)
        try:
            root = ET.parse(p).getroot()
        except (OSError, ET.ParseError) as exc:
            raise GeometryError(f"cannot read microphone geometry {p}: {exc}") from exc
        names: list[str] = []
        rows: list[list[float]] = []
        for el in root.iter("pos"):
            try:
                rows.append([float(el.attrib[k].strip()) for k in ("x", "y", "z")])
            except (KeyError, ValueError) as exc:
                raise GeometryError(f"{p}: bad <pos> element {el.attrib}: {exc}") from exc
            names.append(" ".join(el.attrib.get("Name", f"mic{len(names) + 1}").split()))
        if not rows:
            raise GeometryError(f"{p} holds no <pos> element")
        return cls(np.array(rows), tuple(names))

    @classmethod
    def from_csv(cls, path: str | Path) -> MicArray:
        """Load a CSV geometry with a header naming columns ``x, y, z`` (metres).

        Optional columns: ``name`` and ``channel`` (station channel index). Lines starting
        with ``#`` are comments.

        Raises:
            GeometryError: unreadable file, missing column, or a non-numeric value.
        """
        p = Path(path)
        try:
            with p.open(newline="") as fh:
                lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise GeometryError(f"cannot read microphone geometry {p}: {exc}") from exc
        reader = csv.DictReader(lines, skipinitialspace=True)
        fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
        missing = [k for k in ("x", "y", "z") if k not in fields]
        if missing:
            raise GeometryError(f"{p}: missing column(s) {missing}; header is {reader.fieldnames}")
        rows: list[list[float]] = []
        names: list[str] = []
        channels: list[int] = []
        for i, rec in enumerate(reader):
            try:
                rows.append([float(rec[fields[k]]) for k in ("x", "y", "z")])
                if "channel" in fields:
                    channels.append(int(rec[fields["channel"]]))
            except (TypeError, ValueError) as exc:
                raise GeometryError(f"{p}: bad value on data row {i + 1}: {exc}") from exc
            names.append(rec[fields["name"]].strip() if "name" in fields else f"mic{i + 1}")
        if not rows:
            raise GeometryError(f"{p} holds no microphone")
        return cls(np.array(rows), tuple(names), tuple(channels))

    @classmethod
    def from_hdf5(cls, path: str | Path) -> MicArray:
        """Load the geometry of an array-benchmark HDF5 file.

        Reads ``MetaData/ArrayAttributes/microphonePositionsM`` (``(n_mics, 3)``, metres).

        Raises:
            GeometryError: the file cannot be read or has no such dataset.
        """
        from rigwatch.acoustics.hdf5 import read_benchmark_positions

        return cls(read_benchmark_positions(path))

    @classmethod
    def seed_ball_mill(cls, radius_m: float = 0.05) -> MicArray:
        """The ball mill's array: 8 microphones on a circle of ``radius_m`` plus one at the centre.

        Microphones 1-8 sit at angles 0, 45, ..., 315 degrees from +x (counter-clockwise seen
        from the source side, z = 0), microphone 9 at the centre. They are wired to the NI-DAQ
        channels ``ai1`` .. ``ai9`` in that order (station channels 0..8).
        """
        ang = np.arange(8) * (2 * np.pi / 8)
        ring = np.stack([radius_m * np.cos(ang), radius_m * np.sin(ang), np.zeros(8)], axis=1)
        pos = np.vstack([ring, np.zeros((1, 3))])
        return cls(pos, tuple(f"ai{i + 1}" for i in range(9)))


class Grid(Protocol):
    """A set of focus points shown as a 2-D map."""

    @property
    def points_m(self) -> FloatArray:
        """float64 ``(n_points, 3)`` focus points; point ``i`` is map cell ``unravel(i, shape)``."""
        ...

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the 2-D map (C order over :attr:`points_m`)."""
        ...


@dataclass(frozen=True)
class RectGrid:
    """A rectangular plane of focus points at distance ``z`` in front of the array.

    Points and their order follow Acoular's ``RectGrid``: ``nx = round((|x_max-x_min| + inc) /
    inc)`` points evenly from ``x_min`` to ``x_max`` (likewise y); point index ``ix * ny + iy``,
    so the map has shape ``(nx, ny)`` with x along the first axis.
    """

    x_min: float = -1.0
    x_max: float = 1.0
    y_min: float = -1.0
    y_max: float = 1.0
    z: float = 1.0
    increment: float = 0.1

    def __post_init__(self) -> None:
        if not self.increment > 0:
            raise GeometryError(f"grid increment must be > 0, got {self.increment}")
        if self.x_max < self.x_min or self.y_max < self.y_min:
            raise GeometryError("grid extents must have x_min <= x_max and y_min <= y_max")

    @property
    def shape(self) -> tuple[int, int]:
        """``(nx, ny)``."""
        inc = self.increment
        nx = round((abs(self.x_max - self.x_min) + inc) / inc)
        ny = round((abs(self.y_max - self.y_min) + inc) / inc)
        return int(nx), int(ny)

    @property
    def x_m(self) -> FloatArray:
        """x coordinates of the map rows, shape ``(nx,)``."""
        return np.linspace(self.x_min, self.x_max, self.shape[0])

    @property
    def y_m(self) -> FloatArray:
        """y coordinates of the map columns, shape ``(ny,)``."""
        return np.linspace(self.y_min, self.y_max, self.shape[1])

    @property
    def points_m(self) -> FloatArray:
        """float64 ``(nx * ny, 3)``."""
        gx, gy = np.meshgrid(self.x_m, self.y_m, indexing="ij")
        z = np.full(gx.size, self.z)
        return np.stack([gx.ravel(), gy.ravel(), z], axis=1)


#: Default outer diameter (m) of the ball mill pipe. Not given by the seed system; 0.30 m is a
#: placeholder to be set from the plant drawing (``CylinderGrid(diameter_m=...)``).
DEFAULT_PIPE_DIAMETER_M = 0.30


@dataclass(frozen=True)
class CylinderGrid:
    """Focus points on the surface of a pipe (the ball mill), unrolled into a 2-D map.

    The pipe axis runs parallel to x, centred at ``x = axis_x_m``, at height ``y = height_m``
    and distance ``z = distance_m`` in front of the array. ``n_along`` points span ``length_m``
    along the axis; ``n_around`` points span an arc of ``arc_deg`` degrees of the
    circumference, centred on the side facing the array (the visible face; 180 degrees covers
    the half seen from the array). Map shape ``(n_around, n_along)``: row = position around,
    column = position along; point index ``i_around * n_along + i_along``.

    Defaults are the seed system's grid: 50 x 5 points, 3.15 m long, axis 1.5 m in front of
    and 0.46 m above the array, diameter :data:`DEFAULT_PIPE_DIAMETER_M`.
    """

    length_m: float = 3.15
    diameter_m: float = DEFAULT_PIPE_DIAMETER_M
    n_along: int = 50
    n_around: int = 5
    distance_m: float = 1.5
    height_m: float = 0.46
    axis_x_m: float = 0.0
    arc_deg: float = 180.0

    def __post_init__(self) -> None:
        if self.n_along < 1 or self.n_around < 1:
            raise GeometryError("cylinder grid needs at least one point along and around")
        if not (self.length_m >= 0 and self.diameter_m > 0 and 0 <= self.arc_deg <= 360):
            raise GeometryError(
                f"cylinder grid: length {self.length_m} m, diameter {self.diameter_m} m, "
                f"arc {self.arc_deg} deg are not valid"
            )
        if self.distance_m - self.diameter_m / 2 <= 0:
            raise GeometryError(
                f"pipe (axis at z={self.distance_m} m, diameter {self.diameter_m} m) reaches "
                "through the array plane"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_around, n_along)``."""
        return self.n_around, self.n_along

    @property
    def along_m(self) -> FloatArray:
        """x coordinates of the map columns, shape ``(n_along,)``."""
        half = self.length_m / 2
        return np.linspace(self.axis_x_m - half, self.axis_x_m + half, self.n_along)

    @property
    def angles_rad(self) -> FloatArray:
        """Angle of each map row from the direction axis -> array, shape ``(n_around,)``."""
        half = math.radians(self.arc_deg) / 2
        if self.n_around == 1:
            return np.zeros(1)
        return np.linspace(-half, half, self.n_around)

    @property
    def points_m(self) -> FloatArray:
        """float64 ``(n_around * n_along, 3)``."""
        axis_yz = np.array([self.height_m, self.distance_m])
        u = -axis_yz / np.linalg.norm(axis_yz)  # unit vector from the axis toward the array
        v = np.array([-u[1], u[0]])  # perpendicular to u in the y-z plane
        r = self.diameter_m / 2
        th = self.angles_rad
        yz = axis_yz[None, :] + r * (np.cos(th)[:, None] * u + np.sin(th)[:, None] * v)
        na, nl = self.shape
        pts = np.empty((na, nl, 3))
        pts[:, :, 0] = self.along_m[None, :]
        pts[:, :, 1] = yz[:, 0][:, None]
        pts[:, :, 2] = yz[:, 1][:, None]
        return pts.reshape(-1, 3)


def check_grid(points_m: FloatArray, mics: MicArray, dist_m: FloatArray | None = None) -> None:
    """Raise :class:`GeometryError` if focus points lie behind or through the array.

    ``dist_m`` (``(n_points, n_active_mics)``), if given, are the point-microphone distances.

    A point closer than :data:`MIN_FOCUS_DISTANCE_M` to a microphone is "through" the array.
    For a planar array (all microphones within 1 mm of a plane) every point must lie strictly
    in front of it: on the +z side of the plane (for an array plane containing the z axis, on
    the side of the plane's normal with positive components first).
    """
    pts = np.asarray(points_m, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] == 0:
        raise GeometryError(f"grid points must have shape (n_points, 3), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise GeometryError("grid points hold NaN or inf")
    mic = mics.active_positions_m
    if dist_m is None:
        dist_m = np.sqrt(((pts[:, None, :] - mic[None, :, :]) ** 2).sum(-1))
    close = np.flatnonzero(dist_m.min(axis=1) < MIN_FOCUS_DISTANCE_M)
    if close.size:
        raise GeometryError(
            f"{close.size} grid point(s) lie through the array (closer than "
            f"{MIN_FOCUS_DISTANCE_M} m to a microphone), first {pts[close[0]].tolist()}"
        )
    centre = mic.mean(axis=0)
    if mic.shape[0] >= 3:
        _, s, vt = np.linalg.svd(mic - centre)
        if s[-1] / math.sqrt(mic.shape[0]) < 1e-3:  # planar array
            normal = vt[-1]
            nz = np.flatnonzero(np.abs(normal) > 1e-9)
            if normal[2] < -1e-9 or (abs(normal[2]) <= 1e-9 and normal[nz[-1]] < 0):
                normal = -normal
            side = (pts - centre) @ normal
            behind = np.flatnonzero(side <= MIN_FOCUS_DISTANCE_M)
            if behind.size:
                raise GeometryError(
                    f"{behind.size} grid point(s) lie behind or in the plane of the array, "
                    f"first {pts[behind[0]].tolist()}; focus points must be in front (+z)"
                )
