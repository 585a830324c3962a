"""From an ``[acoustics]`` config to the objects the camera computes with: the microphone
array wired to the device's channels, the focus grid, the speed of sound and the band(s).

Everything here is checked once, at start or when a parameter changes, so the live loop never
meets a configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass

from rigwatch.acoustics.bands import Band
from rigwatch.acoustics.geometry import (
    CylinderGrid,
    Grid,
    MicArray,
    RectGrid,
    check_grid,
    speed_of_sound_m_s,
)
from rigwatch.channels import StreamInfo
from rigwatch.config.acoustics import (
    AcousticCameraConfig,
    ArrayConfig,
    BandConfig,
    CylinderGridConfig,
    PlaneGridConfig,
)
from rigwatch.errors import BandError, GeometryError


@dataclass(frozen=True)
class Scene:
    """The array as wired to a device, and where it looks.

    Attributes:
        mics: the array; ``channels`` are the device's column indexes, ``excluded`` holds the
            configured bad microphones.
        grid: the focus grid.
        speed_of_sound_m_s: from the configured air temperature.
        channel_names: the device channel of each microphone, in the array's order.
    """

    mics: MicArray
    grid: Grid
    speed_of_sound_m_s: float
    channel_names: tuple[str, ...]


def load_array(cfg: ArrayConfig) -> MicArray:
    """The array geometry of ``cfg`` (builtin, or an XML, CSV or HDF5 file by its suffix).

    Raises:
        GeometryError: an unreadable or inconsistent geometry file, an unknown suffix.
    """
    if cfg.builtin == "ball_mill_9":
        return MicArray.seed_ball_mill()
    assert cfg.file is not None  # the config model requires one of the two
    suffix = cfg.file.suffix.lower()
    if suffix == ".xml":
        return MicArray.from_acoular_xml(cfg.file)
    if suffix == ".csv":
        return MicArray.from_csv(cfg.file)
    if suffix in (".h5", ".hdf5"):
        return MicArray.from_hdf5(cfg.file)
    raise GeometryError(f"{cfg.file}: geometry files are .xml, .csv or .h5, not {suffix!r}")


def build_grid(cfg: PlaneGridConfig | CylinderGridConfig) -> Grid:
    """The focus grid of ``cfg``.

    Raises:
        GeometryError: an empty or inconsistent grid (a pipe through the array plane...).
    """
    if isinstance(cfg, PlaneGridConfig):
        return RectGrid(
            x_min=cfg.x_min_m,
            x_max=cfg.x_max_m,
            y_min=cfg.y_min_m,
            y_max=cfg.y_max_m,
            z=cfg.z_m,
            increment=cfg.increment_m,
        )
    return CylinderGrid(
        length_m=cfg.length_m,
        diameter_m=cfg.diameter_m,
        n_along=cfg.n_along,
        n_around=cfg.n_around,
        distance_m=cfg.distance_m,
        height_m=cfg.height_m,
        axis_x_m=cfg.axis_x_m,
        arc_deg=cfg.arc_deg,
    )


def build_bands(cfg: BandConfig, sample_rate_hz: float) -> list[Band]:
    """The band(s) a map sums over.

    Raises:
        BandError: a band above Nyquist, or a nominal centre frequency that is not one.
    """
    nyquist = sample_rate_hz / 2
    if cfg.kind == "third_octave":
        assert cfg.centre_hz is not None
        bands = [Band.third_octave(cfg.centre_hz)]
    elif cfg.kind == "octave":
        assert cfg.centre_hz is not None
        bands = [Band.octave(cfg.centre_hz)]
    elif cfg.kind == "narrow":
        assert cfg.centre_hz is not None
        bands = [Band.narrow(cfg.centre_hz)]
    elif cfg.kind == "range":
        assert cfg.low_hz is not None and cfg.high_hz is not None
        bands = [Band(cfg.low_hz, cfg.high_hz, f"{cfg.low_hz:g}-{cfg.high_hz:g} Hz")]
    else:
        bands = [Band(lo, hi, f"{lo:g}-{hi:g} Hz") for lo, hi in cfg.ranges_hz]
    high = [b.label or f"{b.f_low_hz:g}-{b.f_high_hz:g} Hz" for b in bands if b.f_high_hz > nyquist]
    if high:
        raise BandError(
            f"band(s) {high} reach above the Nyquist frequency {nyquist:g} Hz of the "
            f"{sample_rate_hz:g} Hz input"
        )
    return bands


def build_scene(cfg: AcousticCameraConfig, info: StreamInfo) -> Scene:
    """Wire the configured array to the device described by ``info`` and build the grid.

    Raises:
        GeometryError: the array has more microphones than the device has channels (or than
            channels are listed), a listed channel the device lacks, a grid behind or through
            the array.
    """
    mics = load_array(cfg.array)
    names = [c.name for c in info.channels]
    wired = cfg.array.channels if cfg.array.channels is not None else names[: mics.n_mics]
    if len(wired) != mics.n_mics:
        raise GeometryError(
            f"the array has {mics.n_mics} microphones but "
            f"{'acoustics.array.channels lists' if cfg.array.channels else 'device has'} "
            f"{len(wired)} channel(s) for them"
        )
    missing = [n for n in [*wired, *cfg.array.excluded] if n not in names]
    if missing:
        raise GeometryError(
            f"channel(s) {missing} are not channels of device {info.device!r} ({names})"
        )
    mics = mics.with_channels([names.index(n) for n in wired])
    excluded = [wired.index(n) for n in cfg.array.excluded if n in wired]
    if excluded:
        mics = mics.excluding(excluded)
    grid = build_grid(cfg.grid)
    check_grid(grid.points_m, mics)
    return Scene(mics, grid, speed_of_sound_m_s(cfg.temperature_c), tuple(wired))
