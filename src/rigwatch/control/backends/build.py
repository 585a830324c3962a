"""Backends from their configuration entries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rigwatch.config.control import (
    ActuatorBackendConfig,
    ArduinoMotorsConfig,
    GpioValvesConfig,
    S7Config,
    Stm32ValvesConfig,
)
from rigwatch.control.actuators import ActuatorBackend
from rigwatch.control.backends.arduino_motors import ArduinoMotors
from rigwatch.control.backends.gpio_valves import GpioValves
from rigwatch.control.backends.s7 import S7Points
from rigwatch.control.backends.stm32_valves import Stm32ValveBank
from rigwatch.devices.stm32.link import CommandLink
from rigwatch.errors import ConfigError


def build_backend(
    config: ActuatorBackendConfig,
    links: Mapping[str, CommandLink],
    *,
    serial_factory: Any = None,
    pin_factory: Any = None,
) -> ActuatorBackend:
    """The backend of one ``[[control.actuators]]`` entry (nothing opened yet).

    Args:
        links: the station's devices that carry commands, by device name (an
            ``stm32_valves`` bank needs its ``device`` among them).
        serial_factory: opens serial ports (an emulator's pty; tests).
        pin_factory: gpiozero pin factory to use instead of the configured one.

    Raises:
        ConfigError: an ``stm32_valves`` entry names a device that is not a command link.
    """
    if isinstance(config, Stm32ValvesConfig):
        link = links.get(config.device)
        if link is None:
            raise ConfigError(
                f"control.actuators {config.name!r}: device {config.device!r} is not an stm32 "
                f"device of this station (devices with a command port: {sorted(links)})"
            )
        return Stm32ValveBank(config, link)
    if isinstance(config, ArduinoMotorsConfig):
        return ArduinoMotors(config, serial_factory)
    if isinstance(config, GpioValvesConfig):
        return GpioValves(config, pin_factory)
    if isinstance(config, S7Config):
        return S7Points(config)
    raise ConfigError(f"unknown actuator backend {type(config).__name__}")
