"""The driver registry: one :class:`Driver` per driver module, found through the
``rigwatch.drivers`` entry points (see :mod:`rigwatch.config.drivers`).

A driver is its module plus its configuration model. :func:`build_device` turns a validated
``[[devices]]`` entry into a device; with ``simulate=True`` a hardware driver's simulated
twin is built instead, so every example configuration runs without its hardware::

    DRIVER = Driver(
        name="mydaq",
        config_model=MyDaqConfig,          # subclass of rigwatch.config.base.DeviceConfig
        create=lambda cfg, ctx: MyDaq(cfg, counters=ctx.counters),
        simulate=lambda cfg, ctx: MyDaq(cfg, task=SimulatedTask(cfg)),
    )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rigwatch.config.base import DeviceConfig
from rigwatch.config.drivers import load_drivers
from rigwatch.counters import Counters
from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.errors import DeviceError

C = TypeVar("C", bound=DeviceConfig)


@dataclass(frozen=True)
class DriverContext:
    """What a driver may use when it builds a device.

    Attributes:
        counters: where the device counts bad input (malformed lines, restarts...).
    """

    counters: Counters = field(default_factory=Counters)


DeviceFactory = Callable[[Any, DriverContext], AcquisitionDevice]
"""Builds a device from its validated configuration: ``factory(config, context)``."""


@dataclass(frozen=True)
class Driver(Generic[C]):
    """A device driver.

    Attributes:
        name: the ``driver`` value of a ``[[devices]]`` entry (``"sim"``, ``"nidaq"``...).
        config_model: the pydantic model of its entries; subclasses
            :class:`~rigwatch.config.base.DeviceConfig` with ``driver: Literal[name]``.
        create: builds the real device (opening nothing until ``start``).
        simulate: builds the simulated twin of a hardware device (a simulated NI-DAQ task,
            the STM32 firmware emulator on a pty...); ``None`` for drivers that need no
            hardware (replay, sim), which then run as they are under ``--simulate``.
        description: one line for listings.
    """

    name: str
    config_model: type[C]
    create: Callable[[C, DriverContext], AcquisitionDevice]
    simulate: Callable[[C, DriverContext], AcquisitionDevice] | None = None
    description: str = ""

    @property
    def needs_hardware(self) -> bool:
        """True when the driver talks to hardware (it then has a simulated twin)."""
        return self.simulate is not None


def drivers() -> dict[str, Driver[Any]]:
    """Every registered driver by name.

    Raises:
        ConfigError: a driver's entry point cannot be loaded.
    """
    return {name: d for name, d in load_drivers().items() if isinstance(d, Driver)}


def get_driver(name: str) -> Driver[Any]:
    """The driver called ``name``.

    Raises:
        DeviceError: no such driver (the message lists the known ones).
    """
    found = drivers()
    driver = found.get(name)
    if driver is None:
        raise DeviceError(f"no driver {name!r}; drivers: {', '.join(sorted(found))}")
    return driver


def build_device(
    config: DeviceConfig, context: DriverContext | None = None, *, simulate: bool = False
) -> AcquisitionDevice:
    """The device for one validated ``[[devices]]`` entry.

    Args:
        config: the entry, an instance of its driver's ``config_model``.
        context: counters and other services for the driver.
        simulate: build the simulated twin of a hardware device.

    Raises:
        DeviceError: unknown driver, a config of another model, or the driver cannot build
            the device (a replay file that does not load...).
    """
    driver = get_driver(config.driver)
    if not isinstance(config, driver.config_model):
        raise DeviceError(
            f"device {config.name!r}: config is a {type(config).__name__}, driver "
            f"{driver.name!r} expects {driver.config_model.__name__}"
        )
    ctx = context or DriverContext()
    factory = driver.simulate if simulate and driver.simulate is not None else driver.create
    return factory(config, ctx)
