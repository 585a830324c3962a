"""A serial port carrying command lines out and reply lines back (an Arduino's), with one
command in flight at a time.

The port is a :class:`~rigwatch.devices.serial_link.SupervisedSerial`: it may be ``auto``
(found by scanning, :data:`~rigwatch.devices.serial_ports.ARDUINO_PORTS` by default); a port
that fails or vanishes, or a board that stops answering (:meth:`SerialLineLink.mark_lost`),
makes the link ``unknown`` and it is reopened (scanned again when ``auto``) with capped
exponential backoff; it is ``connected`` again once the board answers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from rigwatch.devices.reconnect import Backoff, LinkStatus
from rigwatch.devices.serial_link import SerialFactory, SupervisedSerial
from rigwatch.devices.serial_ports import ARDUINO_PORTS, PortLister, PortMatch, PortResolver
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

__all__ = ["SerialFactory", "SerialLineLink"]


class SerialLineLink:
    """Lines over a serial port (UTF-8, ``\\n``-terminated; ``\\r`` stripped).

    Args:
        port: device path, pyserial URL or ``auto``.
        baudrate: line speed.
        name: for messages.
        serial_factory: opens the port (tests); :func:`serial.serial_for_url` by default.
        port_match: what an ``auto`` port looks like.
        port_lister: lists serial ports for ``auto`` (tests).
        backoff: reconnection schedule.
    """

    def __init__(
        self,
        port: str,
        baudrate: int,
        name: str,
        serial_factory: SerialFactory | None = None,
        *,
        port_match: PortMatch = ARDUINO_PORTS,
        port_lister: PortLister | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.port_name = port
        self.baudrate = baudrate
        self.name = name
        self._lines: queue.Queue[str] = queue.Queue(maxsize=1024)
        self._buf = bytearray()
        self._transact_lock = threading.Lock()
        self.serial = SupervisedSerial(
            name,
            PortResolver(port, port_match, port_lister),
            baudrate,
            on_data=self._on_data,
            on_event=self._on_event,
            serial_factory=serial_factory,
            backoff=backoff,
        )

    @property
    def link_name(self) -> str:
        """``"<name> on <port>"`` (the port open now when found by ``auto``)."""
        return f"{self.name} on {self.serial.path}"

    def status(self) -> LinkStatus:
        """The link's state (``connected``, ``unknown``, ``closed``) and counts."""
        return self.serial.status()

    def open(self) -> None:
        """Open the port (scanning when ``auto``) and start reading.

        Raises:
            DeviceError: no port fits, or it cannot be opened (the message names it).
        """
        self.serial.open()

    def close(self) -> None:
        """Stop reading and close the port; safe to call twice."""
        self.serial.close()

    def mark_lost(self, reason: str) -> None:
        """The board stopped answering: reopen the port with backoff."""
        self.serial.mark_lost(reason)

    def transact(self, line: str, timeout_s: float, accept: Callable[[str], bool]) -> list[str]:
        """Send ``line`` and collect reply lines until one satisfies ``accept``.

        Returns:
            The lines received after sending, the accepted one last; when none was accepted
            within ``timeout_s``, every line received (possibly none) and nothing accepted:
            the caller checks ``accept(lines[-1])``.

        Raises:
            DeviceError: the port is not open (link ``unknown``: reconnecting) or the write
                failed.
        """
        with self._transact_lock:
            while True:  # drop lines that arrived before the command
                try:
                    self._lines.get_nowait()
                except queue.Empty:
                    break
            try:
                self.serial.write((line + "\n").encode("ascii"))
            except DeviceError as exc:
                raise DeviceError(f"{self.link_name}: {exc}") from exc
            got: list[str] = []
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                try:
                    reply = self._lines.get(timeout=left)
                except queue.Empty:
                    break
                got.append(reply)
                if accept(reply):
                    break
            return got

    def _on_event(self, event: str, message: str) -> None:
        if event in ("lost", "reopened"):
            self._buf.clear()

    def _on_data(self, chunk: bytes, _now_ns: int) -> None:
        self._buf += chunk
        *lines, rest = bytes(self._buf).split(b"\n")
        self._buf = bytearray(rest[-4096:])
        for raw in lines:
            text = raw.rstrip(b"\r").decode("utf-8", errors="backslashreplace").strip()
            if not text:
                continue
            with contextlib.suppress(queue.Full):
                self._lines.put_nowait(text)
