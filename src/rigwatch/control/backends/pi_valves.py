"""The ball mill's GPIO valves as one backend whose Raspberry Pi is chosen at run time (its
``/connect {piIp}`` and ``/disconnect`` endpoints), over :class:`~.gpio_valves.GpioValves`."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from rigwatch.config.control import GpioValvesConfig
from rigwatch.control.actuators import ActuatorReading, ActuatorSpec, Status, Value
from rigwatch.control.backends.gpio_valves import GpioValves
from rigwatch.errors import DeviceError


class PiValves:
    """The ball mill's GPIO valves as one backend whose Pi can be changed at run time:
    ``/connect {piIp}`` connects to the pigpio daemon of that Pi (``connect_to``),
    ``/disconnect`` releases the pins (``disconnect``). A connection is tried ``retries + 1``
    times, as today. Under ``--simulate`` every connection goes to gpiozero's ``MockFactory``.

    Args:
        config: the ``gpio`` entry.
        simulate: use ``MockFactory`` whatever ``factory`` says.
    """

    def __init__(self, config: GpioValvesConfig, simulate: bool = False) -> None:
        self.config = config
        self.simulated = simulate
        self.host: str | None = config.host
        self._lock = threading.Lock()
        self._inner = GpioValves(self._config_for(config.host))
        self.connected = False

    def _config_for(self, host: str | None) -> GpioValvesConfig:
        if self.simulated:
            return self.config.model_copy(update={"factory": "mock", "host": host})
        return self.config.model_copy(update={"host": host})

    @property
    def name(self) -> str:
        """The configured name."""
        return self.config.name

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """The valves, in configured order."""
        return self._inner.specs

    def connect(self) -> None:
        """Connect to the configured Pi (nothing when the entry names none and it is not
        simulated: wait for ``/connect``).

        Raises:
            DeviceError: the pin factory or a pin cannot be set up.
        """
        if self.config.factory == "pigpio" and not self.host and not self.simulated:
            return
        self.connect_to(self.host)

    def connect_to(self, host: str | None) -> None:
        """(Re)connect to the pigpio daemon at ``host``: the pins of the previous Pi are
        released, the new ones claimed de-energised.

        Raises:
            DeviceError: no connection after ``retries + 1`` attempts (the message names the
                host and the last reason).
        """
        with self._lock:
            last: DeviceError | None = None
            for _ in range(self.config.retries + 1):
                fresh = GpioValves(self._config_for(host))
                try:
                    fresh.connect()
                except DeviceError as exc:
                    fresh.close()
                    last = exc
                    continue
                old, self._inner = self._inner, fresh
                old.close()
                self.host = host
                self.connected = True
                return
            assert last is not None
            raise DeviceError(f"{self.name}: cannot connect to the Pi at {host}: {last}")

    def disconnect(self) -> None:
        """Release the pins (the valves' positions are then unknown)."""
        with self._lock:
            old, self._inner = self._inner, GpioValves(self._config_for(self.host))
            old.close()
            self.connected = False

    def close(self) -> None:
        """Release the pins; safe to call twice."""
        self._inner.close()

    def stop(self) -> None:
        """Valves do not move on their own: nothing to stop."""

    def read(self) -> dict[str, ActuatorReading]:
        """``{valve: reading}``."""
        return self._inner.read()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Set each valve of ``changes`` (see :class:`GpioValves`)."""
        return self._inner.apply(changes)
