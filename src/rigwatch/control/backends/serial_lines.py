"""A serial port carrying command lines out and reply lines back (an Arduino's), with one
command in flight at a time and a reader thread collecting replies."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

SerialFactory = Callable[..., Any]
"""Opens a port like :func:`serial.serial_for_url` (``factory(url, baudrate=..., timeout=...)``)."""


class SerialLineLink:
    """Lines over a serial port (UTF-8, ``\\n``-terminated; ``\\r`` stripped).

    Args:
        port: device path or pyserial URL.
        baudrate: line speed.
        name: for messages.
        serial_factory: opens the port (tests); :func:`serial.serial_for_url` by default.
    """

    def __init__(
        self,
        port: str,
        baudrate: int,
        name: str,
        serial_factory: SerialFactory | None = None,
    ) -> None:
        self.port_name = port
        self.baudrate = baudrate
        self.link_name = f"{name} on {port}"
        self._factory: SerialFactory = serial_factory or serial.serial_for_url
        self._port: Any = None
        self._lines: queue.Queue[str] = queue.Queue(maxsize=1024)
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._transact_lock = threading.Lock()

    def open(self) -> None:
        """Open the port and start reading.

        Raises:
            DeviceError: it cannot be opened (the message names the port).
        """
        if self._port is not None:
            return
        try:
            port = self._factory(self.port_name, baudrate=self.baudrate, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"{self.link_name}: cannot open: {exc}") from exc
        self._port = port
        self._stop = threading.Event()
        self._reader = threading.Thread(
            target=self._read, args=(port, self._stop), name=f"lines-{self.port_name}", daemon=True
        )
        self._reader.start()

    def close(self) -> None:
        """Stop reading and close the port; safe to call twice."""
        port, self._port = self._port, None
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2.0)
            self._reader = None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def transact(self, line: str, timeout_s: float, accept: Callable[[str], bool]) -> list[str]:
        """Send ``line`` and collect reply lines until one satisfies ``accept``.

        Returns:
            The lines received after sending, the accepted one last; when none was accepted
            within ``timeout_s``, every line received (possibly none) and nothing accepted:
            the caller checks ``accept(lines[-1])``.

        Raises:
            DeviceError: the port is not open or the write failed.
        """
        with self._transact_lock:
            while True:  # drop lines that arrived before the command
                try:
                    self._lines.get_nowait()
                except queue.Empty:
                    break
            port = self._port
            if port is None:
                raise DeviceError(f"{self.link_name}: port is not open")
            try:
                port.write((line + "\n").encode("ascii"))
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(f"{self.link_name}: write failed: {exc}") from exc
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

    def _read(self, port: Any, stop: threading.Event) -> None:
        buf = bytearray()
        while not stop.is_set():
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not stop.is_set():
                    log.error("%s: read failed: %s", self.link_name, exc)
                return
            if not chunk:
                continue
            buf += chunk
            *lines, rest = bytes(buf).split(b"\n")
            buf = bytearray(rest[-4096:])
            for raw in lines:
                text = raw.rstrip(b"\r").decode("utf-8", errors="backslashreplace").strip()
                if not text:
                    continue
                with contextlib.suppress(queue.Full):
                    self._lines.put_nowait(text)
