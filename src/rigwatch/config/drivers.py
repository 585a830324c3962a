"""Discovery of device drivers: the ``rigwatch.drivers`` entry-point group.

A driver is a module plus its configuration model. A package adds one by declaring, in its
``pyproject.toml``::

    [project.entry-points."rigwatch.drivers"]
    mydaq = "mypackage.mydaq:DRIVER"

where ``DRIVER`` is a :class:`rigwatch.devices.registry.Driver` whose ``name`` is ``"mydaq"``
and whose ``config_model`` subclasses :class:`~rigwatch.config.base.DeviceConfig` with
``driver: Literal["mydaq"]``. After ``pip install``, ``driver = "mydaq"`` is valid in a
station config. rigwatch's own drivers are registered the same way.

This module only loads the entry points and reads each driver's name and configuration model,
so configuration can be validated without starting anything; building devices is
:mod:`rigwatch.devices.registry`'s job.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from rigwatch.config.base import DeviceConfig
from rigwatch.errors import ConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rigwatch.drivers"


@runtime_checkable
class DriverPlugin(Protocol):
    """What configuration needs of a driver: its name and its configuration model."""

    @property
    def name(self) -> str: ...

    @property
    def config_model(self) -> type[DeviceConfig]: ...


_lock = threading.Lock()
_loaded: dict[str, Any] | None = None
_extra: dict[str, Any] = {}


def _check(plugin: object, where: str) -> DriverPlugin:
    if not isinstance(plugin, DriverPlugin):
        raise ConfigError(f"driver {where} is not a driver (it needs name and config_model)")
    model = plugin.config_model
    if not (isinstance(model, type) and issubclass(model, DeviceConfig)):
        raise ConfigError(f"driver {where}: config_model must subclass DeviceConfig")
    return plugin


def load_drivers() -> dict[str, Any]:
    """Every driver: those of the ``rigwatch.drivers`` entry points, then those added with
    :func:`register_driver`, by name. Entry points are loaded once per process.

    Returns:
        ``{name: driver}``; each driver has ``name`` and ``config_model``.

    Raises:
        ConfigError: an entry point cannot be imported, is not a driver, or its name differs
            from the driver's own ``name``.
    """
    global _loaded
    with _lock:
        if _loaded is None:
            found: dict[str, Any] = {}
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    plugin = ep.load()
                except Exception as exc:
                    raise ConfigError(
                        f"driver {ep.name!r} ({ep.value}) cannot be loaded: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                checked = _check(plugin, f"{ep.name!r} ({ep.value})")
                if checked.name != ep.name:
                    raise ConfigError(
                        f"entry point {ep.name!r} ({ep.value}) names a driver called "
                        f"{checked.name!r}"
                    )
                found[ep.name] = plugin
            _loaded = found
        return {**_loaded, **_extra}


def register_driver(plugin: object) -> None:
    """Add a driver in this process (code that embeds rigwatch; tests). It shadows an
    entry point of the same name.

    Raises:
        ConfigError: ``plugin`` is not a driver.
    """
    checked = _check(plugin, repr(getattr(plugin, "name", plugin)))
    with _lock:
        _extra[checked.name] = plugin


def unregister_driver(name: str) -> None:
    """Remove a driver added with :func:`register_driver` (no-op when absent)."""
    with _lock:
        _extra.pop(name, None)


def driver_names() -> frozenset[str]:
    """Names of every known driver."""
    return frozenset(load_drivers())
