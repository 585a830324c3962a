"""Step motors behind the test stand's Arduino Uno: ``motor_id:angle\\n`` at 115 200 baud.

The Arduino answers a move with a line; the move is acknowledged by a line containing
``Yeni Pozisyon`` ("new position") or ``Motor dönüş tamamlandı`` ("motor rotation complete"),
as today's stand checks. Angles outside a motor's configured limits are refused before
anything is sent. A move not acknowledged within ``reply_timeout_s`` is sent again
(``retries``: an absolute angle is idempotent); then the motor's position is ``unknown``, and
when the board said nothing at all its link is ``unknown`` too: the port is reopened (scanned
again when ``port = "auto"``) with capped exponential backoff (see
:class:`~rigwatch.control.backends.serial_lines.SerialLineLink`). Moves sent while the port is
being reopened fail at once (position ``unknown``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from rigwatch.config.control import ArduinoMotorsConfig
from rigwatch.control.actuators import (
    ActuatorReading,
    ActuatorSpec,
    StateTable,
    Status,
    TransactionWorker,
    Value,
    all_of,
)
from rigwatch.control.backends.serial_lines import SerialFactory, SerialLineLink
from rigwatch.control.backends.specs import motor_spec
from rigwatch.devices.reconnect import Backoff, LinkStatus
from rigwatch.devices.serial_ports import PortLister
from rigwatch.errors import ActuatorFault, DeviceError

log = logging.getLogger(__name__)

DONE_MARKERS = ("Yeni Pozisyon", "Motor dönüş tamamlandı")
"""Reply fragments that acknowledge a move (today's Arduino firmware, Turkish)."""


def move_acknowledged(line: str) -> bool:
    """True when the Arduino's reply ``line`` acknowledges a move."""
    return any(m in line for m in DONE_MARKERS)


def format_move(motor_id: int, angle_deg: float) -> str:
    """The command line (without ``\\n``): ``"<id>:<angle>"``, the angle with at most three
    decimals and no trailing zeros (``2:45.5``, ``1:90``)."""
    text = f"{angle_deg:.3f}".rstrip("0").rstrip(".")
    return f"{motor_id}:{'0' if text in ('-0', '') else text}"


class ArduinoMotors:
    """The motors of one Arduino (see the module docstring).

    Args:
        config: the ``arduino_motors`` entry.
        serial_factory: opens the port (tests); pyserial by default.
        port_lister: lists serial ports for ``port = "auto"`` (tests).
        backoff: reconnection schedule of the port.
    """

    def __init__(
        self,
        config: ArduinoMotorsConfig,
        serial_factory: SerialFactory | None = None,
        *,
        port_lister: PortLister | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.link = SerialLineLink(
            config.port,
            config.baudrate,
            config.name,
            serial_factory,
            port_lister=port_lister,
            backoff=backoff,
        )
        self._specs = tuple(motor_spec(m) for m in config.motors)
        self._ids = {m.name: m.motor_id for m in config.motors}
        self._state = StateTable([s.name for s in self._specs])
        self._worker = TransactionWorker(f"motors-{config.name}")

    @property
    def name(self) -> str:
        """The configured name."""
        return self.config.name

    @property
    def specs(self) -> Sequence[ActuatorSpec]:
        """The motors, in configured order."""
        return self._specs

    def connect(self) -> None:
        """Open the serial port (DeviceError naming it when it cannot)."""
        self.link.open()

    def link_status(self) -> LinkStatus:
        """The serial link's state (``connected``, ``unknown`` while reconnecting, ``closed``)
        and its loss and reconnection counts."""
        return self.link.status()

    def close(self) -> None:
        """Finish queued moves and close the port."""
        self._worker.close()
        self.link.close()

    def stop(self) -> None:
        """The firmware has no stop command: a move runs to its end."""
        log.info("%s: motors cannot be stopped mid-move by this firmware", self.name)

    def read(self) -> dict[str, ActuatorReading]:
        """``{motor: reading}`` (angles in degrees)."""
        return self._state.read()

    def apply(self, changes: Mapping[str, Value]) -> Status:
        """Move each motor of ``changes`` (one line each, in order)."""
        statuses = []
        for motor, angle in changes.items():
            command = format_move(self._ids[motor], float(angle))
            statuses.append(
                self._worker.submit(
                    f"{self.link.link_name}: {command}", self._mover(motor, float(angle), command)
                )
            )
        return statuses[0] if len(statuses) == 1 else all_of(statuses, f"{self.name} moves")

    def _mover(self, motor: str, angle: float, command: str) -> Callable[[], str]:
        return lambda: self._move(motor, angle, command)

    def _move(self, motor: str, angle: float, command: str) -> str:
        self._state.pending({motor: angle})
        attempts = self.config.retries + 1
        heard: list[str] = []
        for _ in range(attempts):
            try:
                lines = self.link.transact(command, self.config.reply_timeout_s, move_acknowledged)
            except DeviceError as exc:
                self._state.unknown([motor], str(exc))
                raise ActuatorFault(f"{self.link.link_name}: {command}: {exc}") from exc
            heard += lines
            if lines and move_acknowledged(lines[-1]):
                self._state.acknowledged({motor: angle}, lines[-1])
                return lines[-1]
        last = f"; it said {heard[-1]!r}" if heard else ""
        message = (
            f"{self.link.link_name}: move {command} not acknowledged within "
            f"{self.config.reply_timeout_s:g} s ({attempts} attempts){last}: position unknown"
        )
        self._state.unknown([motor], message)
        if not heard:  # not a word: the board is hung or gone; reopen its port
            self.link.mark_lost(f"no reply to {command} ({attempts} attempts)")
        raise ActuatorFault(message)
