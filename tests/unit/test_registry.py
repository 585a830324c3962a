"""Drivers as plug-ins: the entry-point registry, third-party drivers, simulated twins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from rigwatch.config import load_config
from rigwatch.config.base import ChannelConfig, DeviceConfig
from rigwatch.config.drivers import register_driver, unregister_driver
from rigwatch.config.station import StationConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.nidaq import NidaqDevice, NidaqDeviceConfig
from rigwatch.devices.registry import Driver, DriverContext, build_device, drivers, get_driver
from rigwatch.devices.stm32 import SimulatedStm32Device
from rigwatch.errors import ConfigError, DeviceError
from rigwatch.recordings.readers import read_recording

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_drivers_come_from_entry_points() -> None:
    found = drivers()
    assert set(found) >= {"replay", "sim", "stm32", "nidaq"}
    for name, d in found.items():
        assert d.name == name
        assert issubclass(d.config_model, DeviceConfig)
    assert found["stm32"].needs_hardware and found["nidaq"].needs_hardware
    assert not found["replay"].needs_hardware and not found["sim"].needs_hardware


def test_unknown_driver_in_a_config_lists_the_known_ones(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('[[devices]]\nname = "x"\ndriver = "labjack"\n')
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "devices[0]" in msg and "'labjack'" in msg
    assert "'nidaq'" in msg and "'stm32'" in msg
    with pytest.raises(DeviceError, match="no driver 'labjack'; drivers: nidaq, replay"):
        get_driver("labjack")


class EchoConfig(DeviceConfig):
    driver: Literal["echo"]
    channels: list[ChannelConfig]


def _echo(cfg: EchoConfig, ctx: DriverContext) -> ListDevice:
    from rigwatch.channels import channel_infos

    dev = ListDevice(cfg.name, list(channel_infos(cfg.channels)))
    dev.blocks.put(ramp_block(0, 10, len(cfg.channels)))
    return dev


def test_a_registered_driver_is_valid_in_configs_and_builds() -> None:
    register_driver(Driver(name="echo", config_model=EchoConfig, create=_echo))
    try:
        cfg = StationConfig.from_dict(
            {"devices": [{"name": "e", "driver": "echo", "channels": [{"name": "a"}]}]}
        )
        dev_cfg = cfg.devices[0]
        assert isinstance(dev_cfg, EchoConfig)
        dev = build_device(dev_cfg)
        block = dev.read_block(1.0)
        assert block is not None and block.data.shape == (10, 1)
        with pytest.raises(Exception, match="bogus"):
            StationConfig.from_dict(
                {"devices": [{"name": "e", "driver": "echo", "channels": [], "bogus": 1}]}
            )
    finally:
        unregister_driver("echo")
    with pytest.raises(Exception, match="echo"):
        StationConfig.from_dict({"devices": [{"name": "e", "driver": "echo", "channels": []}]})


def test_a_pip_installed_package_adds_a_driver(tmp_path: Path) -> None:
    """A package on the path with a ``rigwatch.drivers`` entry point (what ``pip install``
    leaves behind) is found by ``rigwatch drivers`` and accepted by ``config check``."""
    pkg = tmp_path / "rwdemo_driver"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from typing import Literal
            from rigwatch.config.base import DeviceConfig
            from rigwatch.devices.mock import ListDevice
            from rigwatch.devices.registry import Driver

            class ToyConfig(DeviceConfig):
                driver: Literal["toy"]
                gain_db: float = 0.0

            DRIVER = Driver(name="toy", config_model=ToyConfig,
                            create=lambda cfg, ctx: ListDevice(cfg.name),
                            description="a toy driver from another package")
            """
        )
    )
    dist = tmp_path / "rwdemo_driver-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rwdemo-driver\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rigwatch.drivers]\ntoy = rwdemo_driver:DRIVER\n")
    cfg = tmp_path / "toy.toml"
    cfg.write_text('[[devices]]\nname = "t"\ndriver = "toy"\ngain_db = 3\n')
    env = {"PYTHONPATH": str(tmp_path), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rigwatch", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )

    listed = run("drivers")
    assert listed.returncode == 0, listed.stderr
    assert "toy" in listed.stdout and "a toy driver from another package" in listed.stdout
    checked = run("config", "check", str(cfg))
    assert checked.returncode == 0, checked.stderr
    assert "device 't' (toy)" in checked.stdout
    cfg.write_text('[[devices]]\nname = "t"\ndriver = "toy"\ngain_db = "loud"\n')
    bad = run("config", "check", str(cfg))
    assert bad.returncode == 2 and "devices[0].gain_db" in bad.stderr


def test_simulate_builds_the_twin_of_each_hardware_driver() -> None:
    cfg = load_config(ROOT / "configs" / "rocket_stand.toml")
    dev = build_device(cfg.devices[0], DriverContext(Counters()), simulate=True)
    assert isinstance(dev, SimulatedStm32Device)
    real = build_device(cfg.devices[0], DriverContext(Counters()))
    assert type(real).__name__ == "Stm32Device"


def test_simulated_nidaq_produces_configured_volts_calibrated_by_the_engine() -> None:
    cfg = load_config(ROOT / "configs" / "ball_mill.toml")
    pressure_cfg = next(d for d in cfg.devices if d.name == "pressure")
    dev = build_device(pressure_cfg, simulate=True)
    assert isinstance(dev, NidaqDevice)
    info = dev.describe()
    assert info.extra["simulated"] == "true"
    assert (info.channels[0].gain, info.channels[0].offset) == (46.18, -25.7)
    dev.start()
    try:
        block = dev.read_block(2.0)  # 0.5 s blocks at 2 Hz: one sample
    finally:
        dev.stop()
    assert block is not None and block.data.shape == (1, 1)
    volts = float(block.data[0, 0])
    assert abs(volts - 0.7) <= 0.02 + 1e-6  # the configured 0.7 V +- 0.02 V sine
    # pressure = 46.18 x V - 25.7, as the engine applies it
    bar = 46.18 * volts - 25.7
    assert 5.6 < bar < 7.6
    mic_cfg = next(d for d in cfg.devices if d.name == "microphones")
    assert isinstance(mic_cfg, NidaqDeviceConfig)
    mic = build_device(mic_cfg, simulate=True)
    mic.start()
    try:
        b = mic.read_block(2.0)
    finally:
        mic.stop()
    rows = round(mic_cfg.block_duration_s * mic_cfg.sample_rate_hz)
    assert b is not None and b.data.shape == (rows, 9)
    # the microphones play the acoustic demo recording (Pa) through their 20 Pa/V calibration
    scene = read_recording(ROOT / "data" / "acoustics" / "ball_mill_scene.h5")
    np.testing.assert_allclose(b.data * 20.0, scene.data[:rows], rtol=1e-5, atol=1e-6)
