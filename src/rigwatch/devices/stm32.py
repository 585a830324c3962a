"""Driver of the rocket-engine test stand's STM32F767ZI board: text lines over a serial port.

Protocol facts (from the firmware the test stand runs today, see the project brief):

- UART at 230 400 baud, 8N1: at most ~23 kB/s, i.e. ~1 900 short lines per second;
- one sensor line per sample: fields ``KEY: VALUE`` joined by ``" | "``, terminated by ``\\n``
  (possibly ``\\r\\n``), for instance
  ``P1: 12.3 | P2: 4.5 | ... | T1: 21.0 | ... | THRUST: 1500.2 | IMPULSE: 3.4 | VELOCITY: 0.1``;
- replies to commands: ``ACK: <cmd>`` or ``NACK: <message>``; the valve command is
  ``Valves:<9 bits>\\n``;
- the board may print other text (boot banners) on the same line.

The previous software extracted values by regex group index and was off by one, silently dropping
good lines; this driver parses **by key name** (case-sensitive, as the firmware sends them), so a
reordered, missing or extra field never shifts the others. Nothing is dropped silently: every
rejected line or field increments a named counter (see :class:`Stm32Device`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import serial

from rigwatch.config.station import Stm32DeviceConfig
from rigwatch.counters import Counters
from rigwatch.devices.protocols import Block, StreamInfo, channel_infos
from rigwatch.errors import DeviceError, ProtocolError

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 4096
"""Longest accepted line, in bytes, without its ``\\r\\n`` terminator; longer lines are rejected."""

MESSAGE_TEXT_CHARS = 80
"""Offending text quoted in counter messages is truncated to this many characters."""

REPLY_PREFIXES = ("ACK:", "NACK:")

LineKind = Literal["sensor", "reply", "malformed", "oversized", "empty"]

_NUMBER_RE = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE
)


def _excerpt(text: str | bytes, limit: int = MESSAGE_TEXT_CHARS) -> str:
    """``text`` in double quotes, truncated to ``limit`` characters, for a counter message.

    Bytes that are not UTF-8 show as ``\\xNN`` and control characters as escapes, so a message
    never carries raw junk into logs or the status page.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    else:
        text = _printable(text)
    short = text if len(text) <= limit else text[:limit] + "..."
    if not short.isprintable():
        short = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in short)
    return f'"{short}"'


def _has_undecodable(text: str) -> bool:
    """True when ``text`` holds bytes that were not UTF-8 (surrogate-escaped on decoding)."""
    return not text.isascii() and any("\udc80" <= ch <= "\udcff" for ch in text)


@dataclass(frozen=True, slots=True)
class MalformedField:
    """A field of a line that could not be used.

    Attributes:
        text: the field as received (stripped), non-UTF-8 bytes escaped as ``\\xNN``.
        reason: why it was rejected (``"no ':' separator"``, ``"empty key"``, ``"not a number"``,
            ``"non-UTF-8 bytes"``, ``"duplicate key"``...).
    """

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply of the board to a command: ``ACK: <cmd>`` or ``NACK: <message>``.

    Attributes:
        ok: True for ``ACK``, False for ``NACK``.
        text: what follows ``ACK:`` / ``NACK:``, stripped (``"Valves:101000011"``).
        line: the whole line, stripped.
        received_ns: arrival time, ns since the Unix epoch (0 when parsed outside a device).
    """

    ok: bool
    text: str
    line: str
    received_ns: int = 0


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The result of parsing one line.

    Attributes:
        kind: ``"sensor"`` (at least one configured key with a valid number), ``"reply"``
            (``ACK:``/``NACK:``), ``"malformed"`` (nothing usable: banner, junk, only unknown keys),
            ``"oversized"`` (longer than :data:`MAX_LINE_BYTES`) or ``"empty"`` (blank line).
        values: one float per configured channel, in configured order; NaN where the key is
            absent or its value malformed. All NaN unless ``kind == "sensor"``.
        valid_count: number of configured channels that received a valid value.
        missing_keys: configured keys absent from the line (not merely malformed).
        unknown_keys: keys present in the line but not configured, in line order.
        malformed_fields: fields that could not be used, in line order.
        reply: the reply when ``kind == "reply"``.
        text: the line, stripped, non-UTF-8 bytes shown as ``\\xNN``; empty when oversized.
    """

    kind: LineKind
    values: tuple[float, ...]
    valid_count: int = 0
    missing_keys: tuple[str, ...] = ()
    unknown_keys: tuple[str, ...] = ()
    malformed_fields: tuple[MalformedField, ...] = ()
    reply: Reply | None = None
    text: str = ""


class SensorLineParser:
    """Parses lines of the STM32 text protocol for a fixed list of configured keys.

    Args:
        channels: the keys to extract, in the column order wanted (``["P1", "T1", "THRUST"]``).
            Keys are matched exactly (case-sensitive), as the firmware sends them.

    Raises:
        ValueError: ``channels`` is empty or repeats a key.
    """

    def __init__(self, channels: Sequence[str]) -> None:
        keys = list(channels)
        if not keys:
            raise ValueError("at least one channel key is needed")
        if len(set(keys)) != len(keys):
            raise ValueError(f"channel keys repeat: {keys}")
        self.channels: tuple[str, ...] = tuple(keys)
        self._index = {k: i for i, k in enumerate(keys)}
        self._nan_row = (math.nan,) * len(keys)

    def parse(self, line: str | bytes) -> ParsedLine:
        """Parse one line (with or without its ``\\n`` / ``\\r\\n`` terminator).

        Fields are split on ``|``, each field on its first ``:``; key and value are stripped.
        A value must be a decimal number (sign, fraction and exponent allowed; ``nan``/``inf``
        as printed by C's ``printf`` accepted). Lines starting with ``ACK:`` or ``NACK:`` are
        replies. Bytes that are not UTF-8 make the field holding them malformed. A line longer
        than :data:`MAX_LINE_BYTES` bytes (terminator excluded) is rejected as ``"oversized"``.

        Never raises on bad input: every problem is reported in the returned :class:`ParsedLine`.
        """
        if isinstance(line, bytes | bytearray):
            raw = bytes(line).rstrip(b"\r\n")
            if len(raw) > MAX_LINE_BYTES:
                return ParsedLine(kind="oversized", values=self._nan_row)
            text = raw.decode("utf-8", errors="surrogateescape")
        else:
            text = line.rstrip("\r\n")
            if len(text) > MAX_LINE_BYTES // 4 and (
                len(text.encode("utf-8", errors="surrogatepass")) > MAX_LINE_BYTES
            ):
                return ParsedLine(kind="oversized", values=self._nan_row)
        text = text.strip()
        if not text:
            return ParsedLine(kind="empty", values=self._nan_row)
        if text.startswith(REPLY_PREFIXES):
            ok = text.startswith("ACK:")
            body = text[4:] if ok else text[5:]
            return ParsedLine(
                kind="reply",
                values=self._nan_row,
                reply=Reply(ok=ok, text=_printable(body.strip()), line=_printable(text)),
                text=_printable(text),
            )

        values = list(self._nan_row)
        valid = 0
        seen: set[str] = set()
        unknown: list[str] = []
        malformed: list[MalformedField] = []
        for part in text.split("|"):
            field = part.strip()
            key, sep, value = field.partition(":")
            key = key.strip()
            value = value.strip()
            if not sep:
                reason = "non-UTF-8 bytes" if _has_undecodable(field) else "no ':' separator"
                malformed.append(MalformedField(_printable(field), reason))
                continue
            if not key:
                malformed.append(MalformedField(_printable(field), "empty key"))
                continue
            if _has_undecodable(key):
                malformed.append(MalformedField(_printable(field), "non-UTF-8 bytes in key"))
                continue
            idx = self._index.get(key)
            if idx is None:
                unknown.append(key)
                continue
            if key in seen:
                malformed.append(MalformedField(_printable(field), "duplicate key"))
                continue
            seen.add(key)
            if not value:
                malformed.append(MalformedField(_printable(field), "empty value"))
                continue
            if _NUMBER_RE.fullmatch(value) is None:
                reason = "non-UTF-8 bytes in value" if _has_undecodable(value) else "not a number"
                malformed.append(MalformedField(_printable(field), reason))
                continue
            values[idx] = float(value)
            valid += 1
        missing = tuple(k for k in self.channels if k not in seen)
        kind: LineKind = "sensor" if valid > 0 else "malformed"
        return ParsedLine(
            kind=kind,
            values=tuple(values) if kind == "sensor" else self._nan_row,
            valid_count=valid,
            missing_keys=missing,
            unknown_keys=tuple(unknown),
            malformed_fields=tuple(malformed),
            text=_printable(text),
        )


def _printable(text: str) -> str:
    """``text`` with surrogate-escaped (non-UTF-8) bytes shown as ``\\xNN``."""
    if text.isascii():
        return text
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", "backslashreplace")


def parse_sensor_line(line: str | bytes, channels: Sequence[str]) -> ParsedLine:
    """Parse one STM32 line for the keys ``channels`` (see :meth:`SensorLineParser.parse`).

    For many lines, build one :class:`SensorLineParser` and call its ``parse`` instead.
    """
    return SensorLineParser(channels).parse(line)


class LineAssembler:
    """Cuts a byte stream into ``\\n``-terminated lines, joining fragments split across reads.

    A line longer than ``max_line_bytes`` (``\\r\\n`` excluded) is not buffered whole: once the
    pending fragment exceeds the limit it is reported as oversized and the rest of that line is
    skipped up to its ``\\n``. Memory use is therefore bounded by one read plus the limit.

    Args:
        max_line_bytes: longest accepted line, terminator excluded.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._buf = bytearray()
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete line waiting for their ``\\n``."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> tuple[list[bytes], list[bytes]]:
        """Add received bytes.

        Returns:
            ``(lines, oversized)``: the complete lines now available, in order, without their
            ``\\n`` (a trailing ``\\r`` is kept); and, for each line rejected as too long, its
            first bytes (for the error message).
        """
        lines: list[bytes] = []
        oversized: list[bytes] = []
        parts = chunk.split(b"\n")
        tail = parts.pop()
        for i, part in enumerate(parts):
            if i == 0:
                if self._discarding:  # end of a line already reported as oversized
                    self._discarding = False
                    continue
                if self._buf:
                    self._buf += part
                    part = bytes(self._buf)
                    self._buf.clear()
            if len(part) - part.endswith(b"\r") > self.max_line_bytes:
                oversized.append(part[: 4 * MESSAGE_TEXT_CHARS])
            else:
                lines.append(part)
        if self._discarding:
            return lines, oversized
        self._buf += tail
        if len(self._buf) > self.max_line_bytes + 1:  # +1: room for a '\r' before the '\n'
            oversized.append(bytes(self._buf[: 4 * MESSAGE_TEXT_CHARS]))
            self._buf.clear()
            self._discarding = True
        return lines, oversized

    def reset(self) -> None:
        """Forget any pending fragment (after the port was reopened)."""
        self._buf.clear()
        self._discarding = False


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
            raise ProtocolError(f"command must be one line, got {_excerpt(text)}")
        if not text.isascii():
            raise ProtocolError(f"command must be ASCII, got {_excerpt(text)}")
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
                f"line longer than {MAX_LINE_BYTES} bytes dropped: {_excerpt(head)}",
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
                self._count("malformed_field", f"{f.reason}: {_excerpt(f.text)}")
            for key in parsed.unknown_keys:
                self._count("unknown_key", f"key {key!r} is not a configured channel")
            if parsed.missing_keys:
                missing = ", ".join(parsed.missing_keys[:5])
                if len(parsed.missing_keys) > 5:
                    missing += f" (+{len(parsed.missing_keys) - 5} more)"
                self._count("partial_line", f"missing {missing} in {_excerpt(parsed.text)}")
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
            self._count("malformed_line", _why_malformed(parsed))
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


def _why_malformed(parsed: ParsedLine) -> str:
    """Message for a line with no usable configured field."""
    quoted = _excerpt(parsed.text)
    if parsed.malformed_fields:
        first = parsed.malformed_fields[0]
        return f"no usable field ({first.reason}: {_excerpt(first.text, 40)}) in {quoted}"
    if parsed.unknown_keys:
        keys = ", ".join(parsed.unknown_keys[:5])
        return f"only unknown keys ({keys}) in {quoted}"
    return f"no usable field in {quoted}"
