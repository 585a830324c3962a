"""Valves on Raspberry Pi GPIO pins, through gpiozero.

The pin factory is chosen in the config: ``pigpio`` (``PiGPIOFactory(host=...)``: a pigpio
daemon on the Pi, reached over the network, as today's ball mill does; not supported on the
Raspberry Pi 5), ``lgpio`` (local, works on the Pi 5) or ``mock`` (gpiozero's ``MockFactory``:
no hardware). A command sets each output and reads the pin back: the read-back is the
acknowledgement. A write that raises (daemon unreachable) is retried ``retries`` times; then
the valve is ``unknown``. Every output starts de-energised (``initial_value=False``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rigwatch.config.control import GpioValvesConfig
from rigwatch.control.actuators import (
    ActuatorReading,
    ActuatorSpec,
    StateTable,
    Status,
    TransactionWorker,
    Value,
)
from rigwatch.control.backends.specs import binary_spec
from rigwatch.errors import ActuatorFault, DeviceError

log = logging.getLogger(__name__)


def make_pin_factory(config: GpioValvesConfig) -> Any:
    """The gpiozero pin factory named by ``config.factory``.

    Raises:
        DeviceError: its library is missing (``pigpio``, ``lgpio``) or the daemon cannot be
            reached.
    """
    try:
        if config.factory == "mock":
            from gpiozero.pins.mock import MockFactory

            return MockFactory()
        if config.factory == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory(chip=config.chip)
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory(host=config.host, port=config.port)
    except ImportError as exc:
        raise DeviceError(
            f"{config.name}: pin factory {config.factory!r} needs a library that is not "
            f"installed: {exc}"
        ) from exc
    except Exception as exc:  # gpiozero raises its own errors for an unreachable daemon
        raise DeviceError(f"{config.name}: {config.factory} pin factory failed: {exc}") from exc


class GpioValves:
    """Valves on GPIO pins (see the module docstring).

    Args:
        config: the ``gpio`` entry.
        pin_factory: a gpiozero pin factory to use instead of the configured one (tests).
    """

    def __init__(self, config: GpioValvesConfig, pin_factory: Any = None) -> None:
        self.config = config
        self._factory = pin_factory
        self._specs = tuple(binary_spec(v) for v in config.valves)
        self._by_name = {s.name: s for s in self._specs}
        self._cfg = {v.name: v for v in config.valves}
        self._outputs: dict[str, Any] = {}
        self._state = StateTable([s.name for s in self._specs])
        self._worker = TransactionWorker(f"gpio-{config.name}")

    @property
    def name(self) -> str:
        """The configured name."""
        return self.config.name

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """The valves, in configured order."""
        return self._specs

    @property
    def pin_factory(self) -> Any:
        """The gpiozero factory in use (None before :meth:`connect`)."""
        return self._factory

    def connect(self) -> None:
        """Create the pin factory and claim the pins, each de-energised.

        Raises:
            DeviceError: the factory or a pin cannot be set up (message names the pin).
        """
        if self._outputs:
            return
        from gpiozero import DigitalOutputDevice

        if self._factory is None:
            self._factory = make_pin_factory(self.config)
        for spec in self._specs:
            cfg = self._cfg[spec.name]
            try:
                self._outputs[spec.name] = DigitalOutputDevice(
                    cfg.pin,
                    active_high=cfg.active_high,
                    initial_value=False,
                    pin_factory=self._factory,
                )
            except Exception as exc:
                raise DeviceError(f"{self.name}: cannot claim BCM pin {cfg.pin}: {exc}") from exc
            self._state.acknowledged({spec.name: spec.position(False)}, "de-energised at connect")

    def close(self) -> None:
        """Release the pins (gpiozero leaves them as they are); safe to call twice."""
        self._worker.close()
        for out in self._outputs.values():
            try:
                out.close()
            except Exception:
                log.debug("closing a GPIO output failed", exc_info=True)
        self._outputs.clear()

    def stop(self) -> None:
        """Valves do not move on their own: nothing to stop."""

    def read(self) -> dict[str, ActuatorReading]:
        """``{valve: reading}``."""
        return self._state.read()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Set each output of ``changes`` and read it back."""
        desc = f"{self.name}: " + ", ".join(f"{k}={v}" for k, v in changes.items())
        return self._worker.submit(desc, lambda: self._set(dict(changes)))

    def _set(self, changes: dict[str, Value]) -> str:
        self._state.pending(changes)
        for valve, value in changes.items():
            spec = self._by_name[valve]
            out = self._outputs.get(valve)
            if out is None:
                self._state.unknown([valve], "not connected")
                raise ActuatorFault(f"{self.name}: {valve}: GPIO not connected")
            want = spec.energised(value)
            error: Exception | None = None
            for _ in range(self.config.retries + 1):
                try:
                    out.value = want
                    if bool(out.value) == want:
                        error = None
                        break
                    error = RuntimeError(f"pin reads {bool(out.value)} after writing {want}")
                except Exception as exc:
                    error = exc
            if error is not None:
                msg = f"{self.name}: {valve} (BCM {self._cfg[valve].pin}): {error}: state unknown"
                self._state.unknown([valve], msg)
                raise ActuatorFault(msg)
            self._state.acknowledged({valve: value}, "pin read back")
        return "ok"
