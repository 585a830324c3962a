"""Build device drivers from their configuration; each driver is imported only when used."""

from __future__ import annotations

from rigwatch.config.station import (
    DeviceConfig,
    NidaqDeviceConfig,
    ReplayDeviceConfig,
    SimDeviceConfig,
    Stm32DeviceConfig,
)
from rigwatch.counters import Counters
from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.errors import DeviceError


def build_device(config: DeviceConfig, counters: Counters) -> AcquisitionDevice:
    """The driver instance for one ``[[devices]]`` entry.

    Raises:
        DeviceError: the driver cannot be built (for example a replay file that does not load).
    """
    if isinstance(config, ReplayDeviceConfig):
        from rigwatch.devices.replay import ReplayDevice

        return ReplayDevice(config)
    if isinstance(config, SimDeviceConfig):
        from rigwatch.devices.sim import SimDevice

        return SimDevice(config)
    if isinstance(config, Stm32DeviceConfig):
        from rigwatch.devices.stm32 import Stm32Device

        return Stm32Device(config, counters=counters)
    if isinstance(config, NidaqDeviceConfig):
        from rigwatch.devices.nidaq import NidaqDevice

        return NidaqDevice(config, counters=counters)
    raise DeviceError(f"no driver for {type(config).__name__}")
