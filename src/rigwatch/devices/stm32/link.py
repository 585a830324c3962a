"""The command side of a serial port shared with a sensor stream.

The test stand's STM32 board sends sensor lines and command replies on one UART. One reader
thread (the acquisition driver's, :class:`~rigwatch.devices.stm32.device.Stm32Device`) reads
the port; it hands sensor lines to the acquisition stream and ``ACK:``/``NACK:`` lines to a
reply queue. Everything written goes through one lock. A controller does not open the port a
second time: it is given the device as a :class:`CommandLink` and calls
:meth:`CommandLink.transact`, which keeps one command in flight at a time and pairs it with its
reply (:func:`reply_answers`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rigwatch.devices.stm32.codec import Reply

__all__ = ["CommandLink", "reply_answers"]


@runtime_checkable
class CommandLink(Protocol):
    """A line-oriented command channel to a board, one command in flight at a time."""

    @property
    def link_name(self) -> str:
        """Names the board and its port in messages (``"stm32 on /dev/ttyACM0"``)."""
        ...

    def transact(self, command: str, timeout_s: float) -> Reply | None:
        """Send ``command`` (one ASCII line, no terminator) and return its reply.

        Stale replies waiting before the command are discarded; an ``ACK:`` that does not
        echo this command is discarded as a late reply to an earlier one (see
        :func:`reply_answers`).

        Returns:
            The reply, or ``None`` when none came within ``timeout_s`` seconds.

        Raises:
            ProtocolError: ``command`` is not one ASCII line.
            DeviceError: the port is not open or the write failed.
        """
        ...


def reply_answers(command: str, reply: Reply) -> bool:
    """True when ``reply`` can be the board's answer to ``command``.

    The firmware echoes an accepted command after ``ACK:`` (``ACK: Valves:101000011``), so an
    ``ACK`` whose text differs is a late reply to an earlier command. A ``NACK`` carries a
    message that need not quote the command, so every ``NACK`` is taken as the answer to the
    command in flight.
    """
    if not reply.ok:
        return True
    return reply.text == command.strip()
