"""The STM32 test-stand text protocol, as pure functions: bytes in, lines and fields out.

Protocol facts (from the firmware the test stand runs today):

- UART at 230 400 baud, 8N1: at most ~23 kB/s, i.e. ~1 900 short lines per second;
- one sensor line per sample: fields ``KEY: VALUE`` joined by ``" | "``, terminated by ``\\n``
  (possibly ``\\r\\n``), for instance
  ``P1: 12.3 | P2: 4.5 | ... | T1: 21.0 | ... | THRUST: 1500.2 | IMPULSE: 3.4 | VELOCITY: 0.1``;
- replies to commands: ``ACK: <cmd>`` or ``NACK: <message>``; the valve command is
  ``Valves:<9 bits>\\n``;
- the board may print other text (boot banners) on the same line.

The previous software extracted values by regex group index and was off by one, silently
dropping good lines; this codec parses **by key name** (case-sensitive, as the firmware sends
them), so a reordered, missing or extra field never shifts the others. It never raises on bad
input: every problem is reported in the returned :class:`ParsedLine`, for the device to count.
Nothing here does I/O (the serial device is :mod:`rigwatch.devices.stm32.device`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MAX_LINE_BYTES = 4096
"""Longest accepted line, in bytes, without its ``\\r\\n`` terminator; longer lines are rejected."""

MESSAGE_TEXT_CHARS = 80
"""Offending text quoted in counter messages is truncated to this many characters."""

REPLY_PREFIXES = ("ACK:", "NACK:")

VALVE_BITS: tuple[str, ...] = (
    "RELIEF1",
    "GOX1",
    "PURGE1",
    "PURGE2",
    "FUEL1",
    "RELIEF2",
    "GOX2",
    "FUEL2",
    "IGNITION",
)
"""The outputs of the valve command ``Valves:<9 bits>``, first bit first (bit 1 energises the
output). The order is the firmware's."""

SCENARIO_WORDS: tuple[str, ...] = (
    "o2cleaning",
    "fuelcleaning",
    "preburning",
    "burningstart",
    "burning",
    "emergency",
)
"""The scenario words the firmware accepts as bare command lines; each is acknowledged
``ACK: <word>`` before the board runs the sequence behind it."""


def valve_command(bits: Sequence[bool] | str) -> str:
    """The command line (without ``\n``) setting the 9 outputs of :data:`VALVE_BITS`.

    Args:
        bits: 9 booleans or a string of 9 ``0``/``1``, in :data:`VALVE_BITS` order.

    Raises:
        ValueError: not exactly 9 bits (a short list is refused, never padded).
    """
    text = bits if isinstance(bits, str) else "".join("1" if b else "0" for b in bits)
    if len(text) != len(VALVE_BITS) or set(text) - {"0", "1"}:
        raise ValueError(f"a valve command needs {len(VALVE_BITS)} bits 0/1, got {text!r}")
    return f"Valves:{text}"


LineKind = Literal["sensor", "reply", "malformed", "oversized", "empty"]

_NUMBER_RE = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE
)


def excerpt(text: str | bytes, limit: int = MESSAGE_TEXT_CHARS) -> str:
    """``text`` in double quotes, truncated to ``limit`` characters, for a counter message.

    Bytes that are not UTF-8 show as ``\\xNN`` and control characters as escapes, so a message
    never carries raw junk into logs or the status page.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="backslashreplace")
    else:
        text = printable(text)
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
                reply=Reply(ok=ok, text=printable(body.strip()), line=printable(text)),
                text=printable(text),
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
                malformed.append(MalformedField(printable(field), reason))
                continue
            if not key:
                malformed.append(MalformedField(printable(field), "empty key"))
                continue
            if _has_undecodable(key):
                malformed.append(MalformedField(printable(field), "non-UTF-8 bytes in key"))
                continue
            idx = self._index.get(key)
            if idx is None:
                unknown.append(key)
                continue
            if key in seen:
                malformed.append(MalformedField(printable(field), "duplicate key"))
                continue
            seen.add(key)
            if not value:
                malformed.append(MalformedField(printable(field), "empty value"))
                continue
            if _NUMBER_RE.fullmatch(value) is None:
                reason = "non-UTF-8 bytes in value" if _has_undecodable(value) else "not a number"
                malformed.append(MalformedField(printable(field), reason))
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
            text=printable(text),
        )


def printable(text: str) -> str:
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


def why_malformed(parsed: ParsedLine) -> str:
    """Message for a line with no usable configured field."""
    quoted = excerpt(parsed.text)
    if parsed.malformed_fields:
        first = parsed.malformed_fields[0]
        return f"no usable field ({first.reason}: {excerpt(first.text, 40)}) in {quoted}"
    if parsed.unknown_keys:
        keys = ", ".join(parsed.unknown_keys[:5])
        return f"only unknown keys ({keys}) in {quoted}"
    return f"no usable field in {quoted}"
