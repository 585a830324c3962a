"""A serial port that keeps itself connected: one reader thread that reads, notices a port that
failed or went silent, and reopens it (scanning again when the port is ``auto``) with capped
exponential backoff.

Shared by the ``stm32`` acquisition driver and the Arduino motor backend. The owner gives
callbacks: ``on_data(chunk, received_ns)`` for every chunk read, and ``on_event(event,
message)`` for ``"lost"`` (the port failed, vanished, went silent, or :meth:`SupervisedSerial.
mark_lost` was called: the link is ``unknown`` and closed), ``"reopened"`` (a reconnection
attempt opened a port; the link stays ``unknown`` until the device is heard),
``"reconnected"`` (the device answered again after a loss) and ``"reconnect_failed"`` (an
attempt could not open a port, or the port it reopened failed or stayed silent). Link state
and counts are in :attr:`SupervisedSerial.health`
(:class:`~rigwatch.devices.reconnect.LinkHealth`).

Only the reader thread closes a port it read from; other threads ask it to
(:meth:`SupervisedSerial.mark_lost`), so a port is never closed under a read in progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import serial

from rigwatch.devices.reconnect import Backoff, LinkHealth, LinkStatus
from rigwatch.devices.serial_ports import PortResolver
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

SerialFactory = Callable[..., Any]
"""Opens a port: ``factory(path, baudrate=..., timeout=..., write_timeout=...)`` returning an
object with pyserial's ``read``, ``in_waiting``, ``write``, ``close`` (``cancel_read``
optional). Defaults to :func:`serial.serial_for_url`."""

_PORT_ERRORS = (serial.SerialException, OSError, TypeError, AttributeError, ValueError)
"""What pyserial raises when a port fails or is closed under it (TypeError/AttributeError:
pyserial racing with ``close``)."""


class SupervisedSerial:
    """A self-reconnecting serial port (see the module docstring).

    Args:
        name: for messages and the thread's name (``"stm32 stand"``).
        resolver: the configured port, scanned again on every reconnection when ``auto``.
        baudrate: line speed.
        on_data: called from the reader thread with each chunk and its arrival time
            (``time.time_ns()``).
        on_event: called from the reader thread (or :meth:`write`'s caller) with an event name
            and a message (see the module docstring).
        serial_factory: opens a port (tests); :func:`serial.serial_for_url` by default.
        silence_timeout_s: no byte for this long makes the link ``unknown`` and the port is
            reopened (today's stand: 5 s); None for devices that only speak when spoken to.
        backoff: reconnection schedule.
        read_timeout_s: longest single read (bounds how late a stop or a loss is noticed).
    """

    def __init__(
        self,
        name: str,
        resolver: PortResolver,
        baudrate: int,
        *,
        on_data: Callable[[bytes, int], None],
        on_event: Callable[[str, str], None] | None = None,
        serial_factory: SerialFactory | None = None,
        silence_timeout_s: float | None = None,
        backoff: Backoff | None = None,
        read_timeout_s: float = 0.1,
    ) -> None:
        self.name = name
        self.resolver = resolver
        self.baudrate = baudrate
        self.silence_timeout_s = silence_timeout_s
        self.read_timeout_s = read_timeout_s
        self.health = LinkHealth(backoff)
        self._on_data = on_data
        self._on_event = on_event
        self._factory: SerialFactory = serial_factory or serial.serial_for_url
        self._port: Any = None
        self._path = resolver.configured
        self._write_lock = threading.Lock()
        self._lose_request: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The port opened last (the configured one, ``auto``, before the first open)."""
        return self._path

    @property
    def is_open(self) -> bool:
        """True while a port is open."""
        return self._port is not None

    def status(self) -> LinkStatus:
        """The link's state and counts."""
        return self.health.status()

    def open(self) -> None:
        """Resolve the port, open it and start the reader thread (no-op when running).

        Raises:
            DeviceError: no port fits ``auto``, or it cannot be opened (message names it).
        """
        if self._thread is not None:
            return
        port, path = self._open_port()
        self._stop = threading.Event()
        self._lose_request = None
        self._port, self._path = port, path
        self.health.opened(path, first=True)
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name=f"serial-{self.name}", daemon=True
        )
        self._thread.start()
        log.info("%s: opened %s at %d baud", self.name, path, self.baudrate)

    def close(self) -> None:
        """Stop the reader thread and close the port; safe to call twice."""
        self._stop.set()
        port = self._port
        if port is not None:
            cancel = getattr(port, "cancel_read", None)
            if cancel is not None:
                try:
                    cancel()
                except Exception:  # the port may already be broken
                    log.debug("cancel_read failed", exc_info=True)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        self._close_port()
        self.health.closed()

    def write(self, data: bytes) -> None:
        """Write ``data`` (thread-safe).

        Raises:
            DeviceError: the port is not open (the link is ``unknown`` or stopped) or the
                write failed (the link is then lost and will be reopened).
        """
        with self._write_lock:
            port = self._port
            if port is None:
                state = self.health.state
                why = (
                    f" (link {state}: {self.health.status().reason})" if state == "unknown" else ""
                )
                raise DeviceError(f"{self.name}: {self._path} is not open{why}")
            try:
                port.write(data)
            except _PORT_ERRORS as exc:
                self.mark_lost(f"writing to {self._path} failed: {exc}")
                raise DeviceError(f"{self.name}: writing to {self._path} failed: {exc}") from exc

    def mark_lost(self, reason: str) -> None:
        """The device stopped answering (no reply to a command...): the reader thread closes
        the port within one read timeout and reconnects with backoff."""
        if self._thread is None:
            return
        self._lose_request = reason

    # -- internals ---------------------------------------------------------------------------

    def _open_port(self) -> tuple[Any, str]:
        path = self.resolver.resolve()
        try:
            port = self._factory(
                path, baudrate=self.baudrate, timeout=self.read_timeout_s, write_timeout=1.0
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"{self.name}: cannot open serial port {path!r}: {exc}") from exc
        return port, path

    def _close_port(self) -> None:
        with self._write_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:
                log.debug("%s: closing %s failed", self.name, self._path, exc_info=True)

    def _event(self, event: str, message: str) -> None:
        if self._on_event is not None:
            try:
                self._on_event(event, message)
            except Exception:
                log.exception("%s: handler of %s failed", self.name, event)

    def _lose(self, reason: str) -> None:
        self._close_port()
        new = self.health.lost(reason)
        log.warning("%s: link %s: %s", self.name, "lost" if new else "still unknown", reason)
        # a reopened port that fails or stays silent is one more failed attempt, not a new loss
        self._event("lost" if new else "reconnect_failed", f"{self.name}: {reason}")

    def _reopen(self) -> str:
        port, path = self._open_port()
        with self._write_lock:
            self._port, self._path = port, path
        self._lose_request = None
        return path

    def _run(self, stop: threading.Event) -> None:
        last_rx = time.monotonic()
        while not stop.is_set():
            port = self._port
            if port is None:
                try:
                    reopened = self.health.reconnect_when_due(stop, self._reopen)
                except DeviceError as exc:
                    log.info(
                        "%s: reconnection failed (next in %.2f s): %s",
                        self.name,
                        self.health.status().next_attempt_s or 0.0,
                        exc,
                    )
                    self._event("reconnect_failed", str(exc))
                    continue
                if reopened:
                    log.info("%s: reopened %s", self.name, self._path)
                    self._event("reopened", f"{self.name}: reopened {self._path}")
                    last_rx = time.monotonic()
                continue
            request = self._lose_request
            if request is not None:
                self._lose_request = None
                self._lose(request)
                continue
            try:
                waiting = port.in_waiting
                chunk = port.read(min(max(waiting, 1), 65536))
            except _PORT_ERRORS as exc:
                if stop.is_set():
                    return
                self._lose(f"serial port {self._path} failed: {exc}")
                continue
            now = time.monotonic()
            if chunk:
                last_rx = now
                if self.health.heard():
                    log.info("%s: %s answers again", self.name, self._path)
                    self._event("reconnected", f"{self.name}: {self._path} answers again")
                self._on_data(chunk, time.time_ns())
            elif self.silence_timeout_s is not None and now - last_rx >= self.silence_timeout_s:
                self._lose(f"no data from {self._path} for {self.silence_timeout_s:g} s")
