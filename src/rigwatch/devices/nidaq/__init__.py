"""NI-DAQmx analog input: our task interface (:mod:`.task`), its stand-ins (:mod:`.simulated`)
and the acquisition device (:mod:`.device`)."""

from rigwatch.devices.nidaq.device import NidaqDevice, NidaqDeviceConfig, NidaqSimulationConfig
from rigwatch.devices.nidaq.simulated import FakeAnalogInputTask, SimulatedAnalogInputTask
from rigwatch.devices.nidaq.task import (
    INSTALL_HINT,
    AnalogInputTask,
    NidaqmxTask,
    count_physical_channels,
)

__all__ = [
    "INSTALL_HINT",
    "AnalogInputTask",
    "FakeAnalogInputTask",
    "NidaqDevice",
    "NidaqDeviceConfig",
    "NidaqSimulationConfig",
    "NidaqmxTask",
    "SimulatedAnalogInputTask",
    "count_physical_channels",
]
