"""Driver of the rocket-engine test stand's STM32F767ZI board over a serial port: text lines
(today's firmware) or binary frames (``framing = "binary"``, ``docs/firmware-protocol.md``).

The line format and its parser are in :mod:`rigwatch.devices.stm32.codec`, the binary frames
in :mod:`rigwatch.devices.stm32.framing`; the port, its reader thread and its reconnection
(``port = "auto"`` scanned again, a port silent for ``silence_timeout_s`` reopened, backoff)
in :mod:`rigwatch.devices.serial_link`. This module owns the rows handed to the engine, the
reply queue of commands and the counters of everything rejected. Its simulated twin runs the
firmware emulator (:mod:`rigwatch.devices.emulators.stm32`) on a pseudo-terminal and opens
that like the board.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import struct
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
from rigwatch.devices.reconnect import Backoff, LinkStatus
from rigwatch.devices.registry import Driver, DriverContext
from rigwatch.devices.serial_link import SupervisedSerial
from rigwatch.devices.serial_ports import STM32_PORTS, PortLister, PortResolver
from rigwatch.devices.stm32.codec import (
    MAX_LINE_BYTES,
    LineAssembler,
    Reply,
    SensorLineParser,
    excerpt,
    why_malformed,
)
from rigwatch.devices.stm32.framing import (
    FRAME_REPLY,
    FRAME_SAMPLE,
    FRAME_TEXT,
    BadFrame,
    FrameDecoder,
)
from rigwatch.devices.stm32.link import reply_answers
from rigwatch.errors import DeviceError, ProtocolError

log = logging.getLogger(__name__)


class Stm32DeviceConfig(DeviceConfig):
    """The test-stand STM32 board over a serial port.

    Attributes:
        port: ``/dev/ttyACM0``, a pyserial URL, or ``auto`` (the port is found by scanning USB
            ids and descriptions: :data:`~rigwatch.devices.serial_ports.STM32_PORTS`; scanned
            again on every reconnection).
        framing: ``text`` (``KEY: VALUE | ...`` lines, today's firmware) or ``binary`` (COBS
            frames with CRC-16, one float32 per channel in the configured order:
            ``docs/firmware-protocol.md``).
        silence_timeout_s: no byte for this long makes the link ``unknown``; the port is closed
            and opened again (searched again when ``auto``), as today's stand does after 5 s.
        reconnect: backoff between reconnection attempts.
    """

    driver: Literal["stm32"]
    port: str = Field(description="Serial device (/dev/ttyACM0), a pyserial URL, or 'auto'.")
    baudrate: int = Field(default=230_400, gt=0)
    sample_rate_hz: float = Field(default=100.0, gt=0, description="Expected lines per second.")
    channels: list[ChannelConfig] = Field(min_length=1)
    framing: Literal["text", "binary"] = "text"
    silence_timeout_s: float | None = Field(default=5.0, gt=0, le=3600)
    reconnect: Backoff = Field(default_factory=Backoff)

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

    A reader thread (:class:`~rigwatch.devices.serial_link.SupervisedSerial`) reads the port
    continuously; with text framing it cuts the stream into lines, stamps each complete line
    with ``time.time_ns()`` when its last byte arrives and parses it by key name; with binary
    framing it cuts it into frames at ``0x00`` and checks each CRC. Each sensor line or sample
    frame becomes one row; :meth:`read_block` hands out the rows gathered so far. Replies
    (``ACK:``/``NACK:``, as lines or reply frames) go to a reply queue read with
    :meth:`wait_reply`.

    A sensor line with at least one valid configured field is kept (missing values NaN). Each
    problem increments a counter ``stm32.<device>.<event>`` with a message quoting the offending
    text (truncated to ~80 characters) and the reason:

    - ``malformed_line``: a line with no usable configured field (banner, junk, only unknown
      keys), dropped;
    - ``malformed_field``: one per unusable field of a kept line (``P1: abc``, ``P1 3.2``...);
    - ``unknown_key``: one per key of a kept line that is not configured;
    - ``partial_line``: a kept line lacks some configured keys (their values are NaN);
    - ``oversized_line``: a line longer than :data:`MAX_LINE_BYTES` bytes, dropped;
    - ``bad_crc``: a binary frame whose CRC does not match, dropped (nothing else is lost);
    - ``broken_frame``: a binary frame that is not valid COBS, too short, of an unknown type,
      or a sample frame whose payload is not 4 bytes per configured channel, dropped;
    - ``lost_frames``: frames missing between two received ones (sequence counter gaps of
      less than 32 768; a dropped bad frame shows here too), counted by their number;
    - ``seq_restart``: the sequence counter went back (the board restarted);
    - ``overflow``: rows dropped because :meth:`read_block` was not called for too long;
    - ``link_lost``: the port failed, vanished or was silent for ``silence_timeout_s``: the
      link is ``unknown`` (:meth:`link_status`) and :meth:`read_block` raises once;
    - ``reconnect``: a port was opened again after a loss; ``reconnect_failed``: an attempt
      could not open one (the next waits longer, capped: ``config.reconnect``);
    - ``late_reply``: an ``ACK`` that does not echo the command in flight (:meth:`transact`).

    Args:
        config: the device's configuration; ``channels`` names the keys to extract (text) or
            the float32 fields of a sample frame (binary), in column order.
        counters: where problems are counted; a private :class:`Counters` when None.
        serial_factory: opens the port (see :data:`SerialFactory`); for tests.
        port_lister: lists serial ports for ``port = "auto"`` (tests); the system's by default.
        max_pending_rows: rows kept while nobody calls :meth:`read_block`; older rows beyond
            this are dropped and counted.
    """

    def __init__(
        self,
        config: Stm32DeviceConfig,
        counters: Counters | None = None,
        serial_factory: SerialFactory | None = None,
        *,
        port_lister: PortLister | None = None,
        max_pending_rows: int = 200_000,
    ) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self._parser = SensorLineParser([c.name for c in config.channels])
        self._n_channels = len(config.channels)
        self._sample_struct = struct.Struct(f"<{self._n_channels}f")
        self._info = StreamInfo(
            device=config.name,
            driver="stm32",
            sample_rate_hz=config.sample_rate_hz,
            channels=channel_infos(config.channels),
            extra={
                "port": config.port,
                "baudrate": str(config.baudrate),
                "framing": config.framing,
            },
        )
        self._prefix = f"stm32.{config.name}."
        self._cond = threading.Condition()
        self._rows: deque[tuple[int, tuple[float, ...]]] = deque(maxlen=max_pending_rows)
        self._error: DeviceError | None = None
        self._replies: queue.Queue[Reply] = queue.Queue(maxsize=256)
        self._state_lock = threading.Lock()  # start/stop
        self._transact_lock = threading.Lock()  # one command in flight (transact)
        self._started = False
        self._assembler = LineAssembler()
        self._frames = FrameDecoder()
        self._next_seq: int | None = None
        self._bytes_received = 0
        self._lines_received = 0
        self._frames_received = 0
        self._reported: dict[str, int] = {}
        self.link = SupervisedSerial(
            f"stm32 {config.name}",
            PortResolver(config.port, STM32_PORTS, port_lister),
            config.baudrate,
            on_data=self._feed,
            on_event=self._link_event,
            serial_factory=serial_factory or serial.serial_for_url,
            silence_timeout_s=config.silence_timeout_s,
            backoff=config.reconnect,
        )

    # -- AcquisitionDevice -------------------------------------------------------------------

    def describe(self) -> StreamInfo:
        """Device name, driver ``"stm32"``, expected line rate and the configured channels.

        ``extra`` holds ``port`` (as configured: a path or ``auto``), ``baudrate`` and
        ``framing``. Values are raw (as on the wire); the engine applies each channel's gain
        and offset.
        """
        return self._info

    def start(self) -> None:
        """Open the serial port (scanning for it when ``auto``) and start the reader thread.

        Raises:
            DeviceError: no port fits ``auto``, or the port cannot be opened (message names
                it). Nothing keeps running: the caller retries ``start``.
        """
        with self._state_lock:
            if self._started:
                return
            self._reset_decoders()
            self.link.open()
            self._started = True

    def stop(self) -> None:
        """Stop the reader thread and close the port; safe to call twice."""
        with self._state_lock:
            self._started = False
            self.link.close()
        with self._cond:
            self._cond.notify_all()

    def read_block(self, timeout_s: float) -> Block | None:
        """Rows of the sensor lines (or sample frames) received since the previous call.

        Waits until ``block_duration_s`` has passed (at most ``timeout_s``) and returns every row
        gathered; when none arrived by then, returns as soon as one arrives, or None after
        ``timeout_s``. While the link is ``unknown`` (reconnecting) it returns None.

        Returns:
            A :class:`Block` of ``(rows, channels)`` float32 raw values (NaN for keys absent
            from a line) and one int64 ``time.time_ns()`` arrival stamp per row, or None.

        Raises:
            DeviceError: not started, or the link was lost (raised once per loss, after the
                rows received before it; the message names the port and the reason). The
                device reconnects by itself meanwhile (:meth:`link_status`).
        """
        if not self._started:
            raise DeviceError(f"{self.config.name}: device is not started")
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

        Commands are text lines with either framing. The board answers ``ACK: <cmd>`` or
        ``NACK: <message>``; read it with :meth:`wait_reply`.

        Raises:
            ProtocolError: ``text`` holds a line break or non-ASCII characters.
            DeviceError: the port is not open (link ``unknown``) or the write failed.
        """
        if "\n" in text or "\r" in text:
            raise ProtocolError(f"command must be one line, got {excerpt(text)}")
        if not text.isascii():
            raise ProtocolError(f"command must be ASCII, got {excerpt(text)}")
        self.link.write((text + "\n").encode("ascii"))
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
        """``"<device> on <port>"`` (the port open now, when found by ``auto``), for messages."""
        return f"{self.config.name} on {self.link.path}"

    def link_status(self) -> LinkStatus:
        """The link's state (``connected``, ``unknown`` while reconnecting, ``closed``), the
        port in use and the loss and reconnection counts."""
        return self.link.status()

    @property
    def is_open(self) -> bool:
        """True while the port is open (between start and stop, except while reconnecting)."""
        return self.link.is_open

    @property
    def bytes_received(self) -> int:
        """Bytes read from the port since construction."""
        return self._bytes_received

    @property
    def lines_received(self) -> int:
        """Complete lines (of any kind, oversized excluded) received since construction."""
        return self._lines_received

    @property
    def frames_received(self) -> int:
        """Binary frames that passed their CRC since construction."""
        return self._frames_received

    # -- internals -------------------------------------------------------------------------------

    def _reset_decoders(self) -> None:
        self._assembler.reset()
        self._frames.reset()
        self._next_seq = None

    def _link_event(self, event: str, message: str) -> None:
        if event == "lost":
            self._count("link_lost", message)
            self._reset_decoders()
            with self._cond:
                self._error = DeviceError(message)
                self._cond.notify_all()
        elif event == "reopened":
            self._reset_decoders()
            self._count("reconnect", message)
        elif event == "reconnect_failed":
            self._count("reconnect_failed", message)

    def _feed(self, chunk: bytes, now_ns: int) -> None:
        self._bytes_received += len(chunk)
        if self.config.framing == "binary":
            rows = self._feed_frames(chunk, now_ns)
        else:
            rows = self._feed_lines(chunk, now_ns)
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

    def _feed_lines(self, chunk: bytes, now_ns: int) -> list[tuple[int, tuple[float, ...]]]:
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
        return rows

    def _feed_frames(self, chunk: bytes, now_ns: int) -> list[tuple[int, tuple[float, ...]]]:
        rows: list[tuple[int, tuple[float, ...]]] = []
        for frame in self._frames.feed(chunk):
            if isinstance(frame, BadFrame):
                self._count(frame.kind, f"{frame.size}-byte frame dropped: {frame.reason}")
                continue
            self._frames_received += 1
            expected = self._next_seq
            if expected is not None and frame.seq != expected:
                gap = (frame.seq - expected) & 0xFFFF
                if gap < 0x8000:
                    self._count(
                        "lost_frames",
                        f"sequence jumped from {expected} to {frame.seq}: {gap} frames lost",
                        n=gap,
                    )
                else:  # a counter going back: the board restarted (nothing to count as lost)
                    self._count("seq_restart", f"sequence went back from {expected} to {frame.seq}")
            self._next_seq = (frame.seq + 1) & 0xFFFF
            if frame.type == FRAME_SAMPLE:
                if len(frame.payload) != self._sample_struct.size:
                    self._count(
                        "broken_frame",
                        f"sample frame of {len(frame.payload)} payload bytes, expected "
                        f"{self._sample_struct.size} ({self._n_channels} float32 channels)",
                    )
                    continue
                rows.append((now_ns, self._sample_struct.unpack(frame.payload)))
            elif frame.type == FRAME_REPLY:
                self._handle_line(frame.payload, now_ns)
            elif frame.type == FRAME_TEXT:
                log.info("%s: board says %s", self.config.name, excerpt(frame.payload))
            else:
                self._count("broken_frame", f"unknown frame type 0x{frame.type:02X}")
        return rows

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
    code, the same protocol, lines (or binary frames, after ``config.framing``) at
    ``config.sample_rate_hz`` carrying the configured keys.

    The emulator starts with the device and stops with it; ``describe().extra["port"]`` says
    ``emulator``. Valve commands are answered as the firmware does (``ACK: Valves:...``).

    Args:
        config: the device's configuration (its ``port`` is not opened).
        counters: where problems are counted.
    """

    def __init__(self, config: Stm32DeviceConfig, counters: Counters | None = None) -> None:
        from rigwatch.devices.emulators.stm32 import Stm32Emulator

        self.emulator = Stm32Emulator(
            rate_hz=config.sample_rate_hz,
            channels=[c.name for c in config.channels],
            framing=config.framing,
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
    description="the test stand's STM32 board: 'KEY: VALUE | ...' lines or COBS/CRC-16 binary "
    "frames over a serial port",
)
