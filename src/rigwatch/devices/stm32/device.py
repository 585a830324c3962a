"""Driver of the rocket-engine test stand's STM32F767ZI board: text lines over a serial port.

The line format and its parser are in :mod:`rigwatch.devices.stm32.codec`; this module owns the
port (pyserial), the reader thread, the rows handed to the engine, the reply queue of commands
and the counters of everything rejected. Its simulated twin runs the firmware emulator
(:mod:`rigwatch.devices.emulators.stm32`) on a pseudo-terminal and opens that like the board.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import serial
from pydantic import Field, model_validator

from rigwatch.config.base import ChannelConfig, DeviceConfig, check_unique_channels
from rigwatch.counters import Counters
from rigwatch.devices.protocols import Block, StreamInfo, channel_infos
from rigwatch.devices.registry import Driver, DriverContext
from rigwatch.devices.stm32.codec import (
    MAX_LINE_BYTES,
    LineAssembler,
    Reply,
    SensorLineParser,
    excerpt,
    why_malformed,
)
from rigwatch.devices.stm32.link import reply_answers
from rigwatch.errors import DeviceError, ProtocolError

log = logging.getLogger(__name__)


class Stm32DeviceConfig(DeviceConfig):
    """The test-stand STM32 text protocol (``KEY: VALUE | ...`` lines) over a serial port."""

    driver: Literal["stm32"]
    port: str = Field(description="Serial device (/dev/ttyACM0) or a pyserial URL.")
    baudrate: int = Field(default=230_400, gt=0)
    sample_rate_hz: float = Field(default=100.0, gt=0, description="Expected lines per second.")
    channels: list[ChannelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Stm32DeviceConfig:
        check_unique_channels(self.channels)
        return self


SerialFactory = Callable[..., Any]
"""Opens a port: called as ``factory(url, baudrate=..., timeout=..., write_timeout=...)`` and
returns an object with pyserial's ``read``, ``in_waiting``, ``write``, ``close`` (and optionally
``cancel_read``). Defaults to :func:`serial.serial_for_url`."""


class Stm32Device:
    """The test-stand STM32 board as an acquisition device (see the module docstring).

    A reader thread reads the serial port continuously, cuts the stream into lines, stamps each
    complete line with ``time.time_ns()`` when its last byte arrives and parses it by key name.
    Each sensor line becomes one row; :meth:`read_block` hands out the rows gathered so far.
    Replies (``ACK:``/``NACK:``) go to a reply queue read with :meth:`wait_reply`.

    A sensor line with at least one valid configured field is kept (missing values NaN). Each
    problem increments a counter ``stm32.<device>.<event>`` with a message quoting the offending
    text (truncated to ~80 characters) and the reason:

    - ``malformed_line``: a line with no usable configured field (banner, junk, only unknown
      keys), dropped;
    - ``malformed_field``: one per unusable field of a kept line (``P1: abc``, ``P1 3.2``...);
    - ``unknown_key``: one per key of a kept line that is not configured;
    - ``partial_line``: a kept line lacks some configured keys (their values are NaN);
    - ``oversized_line``: a line longer than :data:`MAX_LINE_BYTES` bytes, dropped;
    - ``overflow``: rows dropped because :meth:`read_block` was not called for too long;
    - ``reconnect``: the port was reopened after an error.
    - ``late_reply``: an ``ACK`` that does not echo the command in flight (:meth:`transact`).

    Args:
        config: the device's configuration; ``channels`` names the keys to extract, in column
            order.
        counters: where problems are counted; a private :class:`Counters` when None.
        serial_factory: opens the port (see :data:`SerialFactory`); for tests.
        max_pending_rows: rows kept while nobody calls :meth:`read_block`; older rows beyond
            this are dropped and counted.
    """

    def __init__(
        self,
        config: Stm32DeviceConfig,
        counters: Counters | None = None,
        serial_factory: SerialFactory | None = None,
        *,
        max_pending_rows: int = 200_000,
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self._factory: SerialFactory = serial_factory or serial.serial_for_url
        self._parser = SensorLineParser([c.name for c in config.channels])
        self._info = StreamInfo(
            device=config.name,
            driver="stm32",
            sample_rate_hz=config.sample_rate_hz,
            channels=channel_infos(config.channels),
            extra={"port": config.port, "baudrate": str(config.baudrate)},
        )
        self._prefix = f"stm32.{config.name}."
        self._cond = threading.Condition()
        self._rows: deque[tuple[int, tuple[float, ...]]] = deque(maxlen=max_pending_rows)
        self._error: DeviceError | None = None
        self._replies: queue.Queue[Reply] = queue.Queue(maxsize=256)
        self._state_lock = threading.Lock()  # start/stop/reopen
        self._write_lock = threading.Lock()
        self._transact_lock = threading.Lock()  # one command in flight (transact)
        self._port: Any = None
        self._reader: threading.Thread | None = None
        self._stop_reader = threading.Event()
        self._started = False
        self._assembler = LineAssembler()
        self._bytes_received = 0
        self._lines_received = 0
        self._reported: dict[str, int] = {}

    # -- AcquisitionDevice -------------------------------------------------------------------

    def describe(self) -> StreamInfo:
        """Device name, driver ``"stm32"``, expected line rate and the configured channels.

        ``extra`` holds ``port`` and ``baudrate``. Values are raw (as on the wire); the engine
        applies each channel's gain and offset.
        """
        return self._info

    def start(self) -> None:
        """Open the serial port and start the reader thread.

        Raises:
            DeviceError: the port cannot be opened (message names the port).
        """
        with self._state_lock:
            if self._started:
                return
            self._open_locked()
            self._started = True

    def stop(self) -> None:
        """Stop the reader thread and close the port; safe to call twice."""
        with self._state_lock:
            self._started = False
            self._close_locked()
        with self._cond:
            self._cond.notify_all()

    def read_block(self, timeout_s: float) -> Block | None:
        """Rows of the sensor lines received since the previous call.

        Waits until ``block_duration_s`` has passed (at most ``timeout_s``) and returns every row
        gathered; when none arrived by then, returns as soon as one arrives, or None after
        ``timeout_s``.

        Returns:
            A :class:`Block` of ``(lines, channels)`` float32 raw values (NaN for keys absent
            from a line) and one int64 ``time.time_ns()`` arrival stamp per line, or None.

        Raises:
            DeviceError: not started, the port failed (message names the port; rows received
                before the failure are returned first), or it could not be reopened. After a
                failure the next call tries to reopen the port.
        """
        if not self._started:
            raise DeviceError(f"{self.config.name}: device is not started")
        if self._port is None:
            self._reopen()
        t_start = time.monotonic()
        block_end = t_start + min(self.config.block_duration_s, timeout_s)
        deadline = t_start + timeout_s
        error: DeviceError | None = None
        with self._cond:
            while True:
                now = time.monotonic()
                if self._rows and (now >= block_end or self._error is not None):
                    break  # rows received before a failure are delivered first
                if self._error is not None:
                    error, self._error = self._error, None
                    break
                if now >= deadline or not self._started:
                    break
                self._cond.wait((block_end if self._rows else deadline) - now)
            pending = list(self._rows)
            self._rows.clear()
        if error is not None:
            with self._state_lock:
                self._close_locked()  # the next call reopens the port
            raise error
        if not pending:
            return None
        stamps, rows = zip(*pending, strict=True)
        with np.errstate(over="ignore"):  # a value beyond float32 range becomes +-inf
            data = np.array(rows, dtype=np.float64).astype(np.float32)
        return Block(data=np.ascontiguousarray(data), timestamps_ns=np.array(stamps, np.int64))

    # -- commands --------------------------------------------------------------------------------

    def send_command(self, text: str) -> None:
        """Send one command line, ``text + "\\n"`` (thread-safe), e.g. ``"Valves:101000011"``.

        The board answers ``ACK: <cmd>`` or ``NACK: <message>``; read it with :meth:`wait_reply`.

        Raises:
            ProtocolError: ``text`` holds a line break or non-ASCII characters.
            DeviceError: the port is not open or the write failed.
        """
        if "\n" in text or "\r" in text:
            raise ProtocolError(f"command must be one line, got {excerpt(text)}")
        if not text.isascii():
            raise ProtocolError(f"command must be ASCII, got {excerpt(text)}")
        data = (text + "\n").encode("ascii")
        with self._write_lock:
            port = self._port
            if port is None:
                raise DeviceError(f"{self.config.name}: {self.config.port} is not open")
            try:
                port.write(data)
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(
                    f"{self.config.name}: writing to {self.config.port} failed: {exc}"
                ) from exc
        log.info("%s: sent command %r", self.config.name, text)

    def wait_reply(self, timeout_s: float) -> Reply | None:
        """The oldest reply not yet taken, waiting up to ``timeout_s`` seconds; None if none.

        Replies are kept in arrival order (the 256 most recent); call :meth:`clear_replies`
        before a command to discard stale ones.
        """
        try:
            return self._replies.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            return None

    def clear_replies(self) -> list[Reply]:
        """Remove and return every reply waiting in the queue."""
        out: list[Reply] = []
        while True:
            try:
                out.append(self._replies.get_nowait())
            except queue.Empty:
                return out

    def transact(self, command: str, timeout_s: float) -> Reply | None:
        """Send ``command`` and return its reply: the port-sharing seam used by controllers
        (:class:`~rigwatch.devices.stm32.link.CommandLink`).

        Serialised with every other :meth:`transact` (one command in flight); replies waiting
        before the command are discarded, and an ``ACK`` echoing another command is skipped
        as a late reply (:func:`~rigwatch.devices.stm32.link.reply_answers`). Sensor lines keep
        flowing to :meth:`read_block` meanwhile.

        Returns:
            The reply, or ``None`` when none came within ``timeout_s`` seconds.

        Raises:
            ProtocolError: ``command`` is not one ASCII line.
            DeviceError: the port is not open or the write failed.
        """
        with self._transact_lock:
            stale = self.clear_replies()
            if stale:
                log.debug("%s: discarded %d stale replies", self.config.name, len(stale))
            self.send_command(command)
            deadline = time.monotonic() + timeout_s
            while True:
                reply = self.wait_reply(deadline - time.monotonic())
                if reply is None:
                    return None
                if reply_answers(command, reply):
                    return reply
                self._count("late_reply", f"reply {excerpt(reply.line)} does not answer {command}")

    @property
    def link_name(self) -> str:
        """``"<device> on <port>"``, for messages."""
        return f"{self.config.name} on {self.config.port}"

    @property
    def is_open(self) -> bool:
        """True while the port is open (between start and stop, except after a failure)."""
        return self._port is not None

    @property
    def bytes_received(self) -> int:
        """Bytes read from the port since construction."""
        return self._bytes_received

    @property
    def lines_received(self) -> int:
        """Complete lines (of any kind, oversized excluded) received since construction."""
        return self._lines_received

    # -- internals -------------------------------------------------------------------------------

    def _open_locked(self) -> None:
        cfg = self.config
        try:
            port = self._factory(cfg.port, baudrate=cfg.baudrate, timeout=0.1, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceError(f"{cfg.name}: cannot open serial port {cfg.port!r}: {exc}") from exc
        self._assembler.reset()
        self._stop_reader = threading.Event()
        self._port = port
        self._reader = threading.Thread(
            target=self._read_loop,
            args=(port, self._stop_reader),
            name=f"stm32-{cfg.name}",
            daemon=True,
        )
        self._reader.start()
        log.info("%s: opened %s at %d baud", cfg.name, cfg.port, cfg.baudrate)

    def _close_locked(self) -> None:
        port, reader = self._port, self._reader
        self._port = None
        self._reader = None
        self._stop_reader.set()
        if port is not None:
            cancel = getattr(port, "cancel_read", None)
            if cancel is not None:
                try:
                    cancel()
                except Exception:  # the port may already be broken
                    log.debug("cancel_read failed", exc_info=True)
        if reader is not None and reader is not threading.current_thread():
            reader.join(2.0)
        if port is not None:
            try:
                port.close()
            except Exception:
                log.debug("closing %s failed", self.config.port, exc_info=True)

    def _reopen(self) -> None:
        with self._state_lock:
            if not self._started or self._port is not None:
                return
            self._open_locked()
        self._count("reconnect", f"reopened {self.config.port} after an error")

    def _read_loop(self, port: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                waiting = port.in_waiting
                chunk = port.read(min(max(waiting, 1), 65536))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial racing with close() during stop()
                if not stop.is_set():
                    self._fail(exc)
                return
            if chunk:
                self._feed(chunk, time.time_ns())

    def _fail(self, exc: BaseException) -> None:
        """Called by the reader thread, which then ends; :meth:`read_block` raises the error,
        closes the port and reopens it on its next call."""
        msg = f"{self.config.name}: serial port {self.config.port} failed: {exc}"
        log.error("%s", msg)
        with self._cond:
            self._error = DeviceError(msg)
            self._cond.notify_all()

    def _feed(self, chunk: bytes, now_ns: int) -> None:
        self._bytes_received += len(chunk)
        lines, oversized = self._assembler.feed(chunk)
        for head in oversized:
            self._count(
                "oversized_line",
                f"line longer than {MAX_LINE_BYTES} bytes dropped: {excerpt(head)}",
            )
        rows: list[tuple[int, tuple[float, ...]]] = []
        for line in lines:
            self._lines_received += 1
            row = self._handle_line(line, now_ns)
            if row is not None:
                rows.append((now_ns, row))
        if rows:
            with self._cond:
                free = (self._rows.maxlen or 0) - len(self._rows)
                if len(rows) > free:
                    self._count(
                        "overflow",
                        f"{len(rows) - free} rows dropped: read_block not called for too long",
                        n=len(rows) - free,
                    )
                self._rows.extend(rows)
                self._cond.notify_all()

    def _handle_line(self, line: bytes, now_ns: int) -> tuple[float, ...] | None:
        parsed = self._parser.parse(line)
        if parsed.kind == "sensor":
            for f in parsed.malformed_fields:
                self._count("malformed_field", f"{f.reason}: {excerpt(f.text)}")
            for key in parsed.unknown_keys:
                self._count("unknown_key", f"key {key!r} is not a configured channel")
            if parsed.missing_keys:
                missing = ", ".join(parsed.missing_keys[:5])
                if len(parsed.missing_keys) > 5:
                    missing += f" (+{len(parsed.missing_keys) - 5} more)"
                self._count("partial_line", f"missing {missing} in {excerpt(parsed.text)}")
            return parsed.values
        if parsed.kind == "reply":
            assert parsed.reply is not None
            reply = Reply(parsed.reply.ok, parsed.reply.text, parsed.reply.line, now_ns)
            log.info("%s: reply %r", self.config.name, reply.line)
            while True:
                try:
                    self._replies.put_nowait(reply)
                    break
                except queue.Full:  # keep the newest replies
                    with contextlib.suppress(queue.Empty):
                        self._replies.get_nowait()
        elif parsed.kind == "malformed":
            self._count("malformed_line", why_malformed(parsed))
        elif parsed.kind == "oversized":  # unreachable: the assembler rejects long lines first
            self._count("oversized_line", f"line longer than {MAX_LINE_BYTES} bytes dropped")
        return None

    def _count(self, event: str, message: str, n: int = 1) -> None:
        name = self._prefix + event
        self.counters.inc(name, n=n, message=message)
        seen = self._reported.get(name, 0) + 1
        self._reported[name] = seen
        if seen <= 5 or seen % 1000 == 0:  # do not flood the log at 1 900 lines/s
            log.warning("%s (#%d): %s", name, seen, message)


class SimulatedStm32Device(Stm32Device):
    """The STM32 device talking to the firmware emulator on a pseudo-terminal: the same driver
    code, the same protocol, lines at ``config.sample_rate_hz`` carrying the configured keys.

    The emulator starts with the device and stops with it; ``describe().extra["port"]`` says
    ``emulator``. Valve commands are answered as the firmware does (``ACK: Valves:...``).

    Args:
        config: the device's configuration (its ``port`` is not opened).
        counters: where problems are counted.
    """

    def __init__(self, config: Stm32DeviceConfig, counters: Counters | None = None) -> None:
        from rigwatch.devices.emulators.stm32 import Stm32Emulator

        self.emulator = Stm32Emulator(
            rate_hz=config.sample_rate_hz, channels=[c.name for c in config.channels]
        )
        super().__init__(
            config.model_copy(update={"port": "emulator"}),
            counters,
            serial_factory=self._open_emulator,
        )
        self._info = replace(self._info, extra={**self._info.extra, "simulated": "true"})

    def _open_emulator(self, _url: str, **kwargs: Any) -> Any:
        return serial.serial_for_url(self.emulator.start(), **kwargs)

    def stop(self) -> None:
        """Stop the device, then the emulator; safe to call twice."""
        super().stop()
        self.emulator.stop()


def _create(config: Stm32DeviceConfig, ctx: DriverContext) -> Stm32Device:
    return Stm32Device(config, counters=ctx.counters)


def _simulate(config: Stm32DeviceConfig, ctx: DriverContext) -> Stm32Device:
    return SimulatedStm32Device(config, counters=ctx.counters)


DRIVER = Driver(
    name="stm32",
    config_model=Stm32DeviceConfig,
    create=_create,
    simulate=_simulate,
    description="the test stand's STM32 board: 'KEY: VALUE | ...' lines over a serial port",
)
