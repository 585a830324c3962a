"""The test stand's STM32 valve bank: ``Valves:<9 bits>`` over the port of the ``stm32``
acquisition driver.

The bank does not open the port: it is given the running
:class:`~rigwatch.devices.stm32.device.Stm32Device` as a
:class:`~rigwatch.devices.stm32.link.CommandLink`, whose reader thread routes ``ACK:``/``NACK:``
replies to it while sensor lines keep flowing to acquisition. A transaction sends the whole
9-bit word (every output, the changed ones and the others as last commanded), then:

- ``ACK: Valves:<bits>`` -> every output acknowledged in that position;
- ``NACK: <message>`` -> refused: nothing moved (:class:`~rigwatch.errors.ActuatorFault`,
  outputs ``refused``); not retried;
- no reply within ``ack_timeout_s`` -> sent again, ``retries`` times; then every output is
  ``unknown`` and the status fails.

Bit ``i`` of the word is output ``i`` of the configured ``outputs`` (the firmware's order);
``1`` energises it (see :meth:`ActuatorSpec.energised`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from rigwatch.config.control import Stm32ValvesConfig
from rigwatch.control.actuators import (
    ActuatorReading,
    ActuatorSpec,
    StateTable,
    Status,
    TransactionWorker,
    Value,
)
from rigwatch.control.backends.specs import binary_spec
from rigwatch.devices.stm32.codec import valve_command
from rigwatch.devices.stm32.link import CommandLink
from rigwatch.errors import ActuatorFault, DeviceError, ProtocolError

log = logging.getLogger(__name__)


class Stm32ValveBank:
    """The valve bank (see the module docstring).

    Args:
        config: the ``stm32_valves`` entry.
        link: the ``stm32`` device whose port is shared (started by acquisition).
    """

    def __init__(self, config: Stm32ValvesConfig, link: CommandLink) -> None:
        self.config = config
        self.link = link
        self._specs = tuple(binary_spec(o) for o in config.outputs)
        self._by_name = {s.name: s for s in self._specs}
        self._state = StateTable([s.name for s in self._specs])
        # the word the next command starts from: every output de-energised at power-up
        self._word = {s.name: s.position(False) for s in self._specs}
        self._worker = TransactionWorker(f"valves-{config.name}")

    @property
    def name(self) -> str:
        """The configured name."""
        return self.config.name

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """The 9 outputs, in bit order."""
        return self._specs

    def connect(self) -> None:
        """Nothing to open: the port belongs to the acquisition device."""

    def close(self) -> None:
        """Finish queued transactions."""
        self._worker.close()

    def stop(self) -> None:
        """Valves do not move on their own: nothing to stop."""

    def read(self) -> dict[str, ActuatorReading]:
        """``{output: reading}`` in bit order."""
        return self._state.read()

    def bits(self, values: Mapping[str, Value]) -> str:
        """The 9-bit word for positions ``values`` (every output given)."""
        return "".join(
            "1" if self._by_name[s.name].energised(values[s.name]) else "0" for s in self._specs
        )

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Send the word with ``changes`` applied to the last commanded word; the status
        completes on the ``ACK``."""
        word = dict(self._word)
        word.update(changes)
        self._word = word  # later commands build on this one, in order
        command = valve_command(self.bits(word))
        return self._worker.submit(command, lambda: self._transact(command, word))

    def _transact(self, command: str, word: Mapping[str, Value]) -> str:
        names = [s.name for s in self._specs]
        self._state.pending(word)
        attempts = self.config.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                reply = self.link.transact(command, self.config.ack_timeout_s)
            except (DeviceError, ProtocolError) as exc:
                self._state.unknown(names, str(exc))
                raise ActuatorFault(f"{self.link.link_name}: {command}: {exc}") from exc
            if reply is None:
                log.warning(
                    "%s: no reply to %s (attempt %d of %d)",
                    self.link.link_name,
                    command,
                    attempt,
                    attempts,
                )
                continue
            if reply.ok:
                self._state.acknowledged(word, reply.line)
                return reply.line
            self._state.refused(names, reply.line)
            raise ActuatorFault(f"{self.link.link_name} refused {command}: {reply.line}")
        message = (
            f"{self.link.link_name}: no reply to {command} within "
            f"{self.config.ack_timeout_s:g} s ({attempts} attempts): valve states unknown"
        )
        self._state.unknown(names, message)
        raise ActuatorFault(message)
