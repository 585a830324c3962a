"""``[acoustics]`` config: the array wired to a device, grids, bands, and the errors that name
what does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rigwatch.acoustics.geometry import CylinderGrid, RectGrid
from rigwatch.acoustics.setup import build_bands, build_scene, load_array
from rigwatch.channels import ChannelInfo, StreamInfo
from rigwatch.config import StationConfig
from rigwatch.config.acoustics import AcousticCameraConfig, ArrayConfig, BandConfig
from rigwatch.errors import BandError, GeometryError

ROOT = Path(__file__).resolve().parents[3]


def info(n: int, rate: float = 48_000.0) -> StreamInfo:
    return StreamInfo(
        device="mics",
        driver="replay",
        sample_rate_hz=rate,
        channels=tuple(ChannelInfo(name=f"m{i}", unit="Pa") for i in range(n)),
    )


def camera(**kw: Any) -> AcousticCameraConfig:
    return AcousticCameraConfig.model_validate(
        {"device": "mics", "array": {"builtin": "ball_mill_9"}, **kw}
    )


def test_builtin_array_wired_to_the_first_channels_by_default() -> None:
    scene = build_scene(camera(), info(12))
    assert scene.mics.channels == tuple(range(9))
    assert scene.channel_names == tuple(f"m{i}" for i in range(9))
    assert isinstance(scene.grid, CylinderGrid) and scene.grid.shape == (5, 50)
    assert scene.speed_of_sound_m_s == pytest.approx(343.2, abs=0.1)


def test_explicit_wiring_and_excluded_channels() -> None:
    wired = [f"m{i}" for i in (8, 7, 6, 5, 4, 3, 2, 1, 0)]
    cfg = camera(array={"builtin": "ball_mill_9", "channels": wired, "excluded": ["m2"]})
    scene = build_scene(cfg, info(9))
    assert scene.mics.channels == (8, 7, 6, 5, 4, 3, 2, 1, 0)
    assert scene.mics.excluded == frozenset({6})  # m2 is the 7th microphone


def test_array_larger_than_the_device_is_named() -> None:
    with pytest.raises(GeometryError, match="9 microphones but device has 4"):
        build_scene(camera(), info(4))


def test_unknown_channels_are_named() -> None:
    cfg = camera(array={"builtin": "ball_mill_9", "excluded": ["nope"]})
    with pytest.raises(GeometryError, match=r"\['nope'\] are not channels of device 'mics'"):
        build_scene(cfg, info(9))


def test_grid_through_the_array_is_refused() -> None:
    cfg = camera(grid={"kind": "cylinder", "distance_m": 0.1, "diameter_m": 0.3})
    with pytest.raises(GeometryError, match="through the array"):
        build_scene(cfg, info(9))


def test_plane_grid_and_geometry_files() -> None:
    cfg = camera(
        array={"file": ROOT / "data" / "acoustics" / "array_64.xml"},
        grid={"kind": "plane", "x_min_m": -0.5, "x_max_m": 0.5, "y_min_m": -0.5,
              "y_max_m": 0.5, "z_m": 1.0, "increment_m": 0.1},
    )  # fmt: skip
    scene = build_scene(cfg, info(64))
    assert isinstance(scene.grid, RectGrid) and scene.grid.shape == (11, 11)
    assert scene.mics.n_mics == 64
    with pytest.raises(GeometryError, match=r"not '\.txt'"):
        load_array(ArrayConfig(file=Path("array.txt")))


def test_bands() -> None:
    [third] = build_bands(BandConfig(kind="third_octave", centre_hz=4000), 51_200)
    assert third.f_low_hz == pytest.approx(3548, rel=1e-3)
    assert third.f_high_hz == pytest.approx(4467, rel=1e-3)
    custom = build_bands(BandConfig(kind="custom", ranges_hz=[(1000, 1400), (2000, 2400)]), 48e3)
    assert [(b.f_low_hz, b.f_high_hz) for b in custom] == [(1000, 1400), (2000, 2400)]
    with pytest.raises(BandError, match="Nyquist frequency 8000 Hz"):
        build_bands(BandConfig(kind="octave", centre_hz=8000), 16_000)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"array": {}}, "exactly one of array.builtin and array.file"),
        ({"block_size": 1000}, "power of two"),
        ({"band": {"kind": "range", "low_hz": 5000, "high_hz": 1000}}, "low_hz < high_hz"),
        ({"band": {"kind": "custom"}}, "needs ranges_hz"),
        ({"method": "beamforming"}, "method"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_config_errors_name_the_key(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        camera(**patch)


def test_station_config_checks_the_camera_device() -> None:
    dev = {"name": "s", "driver": "sim", "sample_rate_hz": 100, "channel_count": 2}
    base = {"recorder": {"enabled": False}, "devices": [dev]}
    with pytest.raises(ValidationError, match=r"acoustics\.device 'mics' is not a device"):
        StationConfig.from_dict(
            {**base, "acoustics": {"device": "mics", "array": {"builtin": "ball_mill_9"}}}
        )
