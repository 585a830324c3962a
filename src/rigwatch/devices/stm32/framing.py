"""The STM32 board's binary framing: COBS-delimited frames with a CRC-16, as pure functions.

Why: 230 400 baud 8N1 carries 23 040 bytes/s; a text line of the 22 firmware keys is ~250
bytes (~90 lines/s) and even a one-field line ~12 bytes (~1 900 lines/s), so the stand's "10
kHz" cannot travel as text. A binary row of ``n`` float32 values is ``4 n + 7`` bytes on the
wire. The protocol is specified in ``docs/firmware-protocol.md``; in short, a frame is::

    COBS( type:u8 | seq:u16 LE | payload | crc:u16 LE ) 0x00

- COBS: Consistent Overhead Byte Stuffing (S. Cheshire, M. Baker, "Consistent Overhead Byte
  Stuffing", IEEE/ACM Transactions on Networking 7(2), 1999): the encoded frame holds no zero
  byte, so ``0x00`` delimits frames and a receiver resynchronises at the next one after any
  corruption; overhead at most 1 byte per 254 plus one;
- ``type``: :data:`FRAME_SAMPLE` (payload: one float32 little-endian per configured channel,
  in the configured order), :data:`FRAME_REPLY` (payload: an ASCII ``ACK: ...``/``NACK: ...``
  line without terminator), :data:`FRAME_TEXT` (ASCII text: banners, logs);
- ``seq``: a counter the board increments by one for every frame it sends (mod 65 536), so a
  receiver counts frames lost to corruption;
- ``crc``: CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, not reflected, no
  final XOR; check value ``0x29B1`` for ASCII ``123456789``, per the CRC RevEng catalogue)
  over ``type | seq | payload``; computed with :func:`binascii.crc_hqx` (the same polynomial,
  non-reflected, with the initial value given).

Commands from the host to the board stay text lines (``Valves:101000011\\n``).
Nothing here does I/O; :class:`FrameDecoder` never raises on bad input.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FRAME_SAMPLE = 0x01
"""A sensor row: ``n`` float32 little-endian values."""
FRAME_REPLY = 0x02
"""A command reply: ASCII ``ACK: <cmd>`` or ``NACK: <message>``."""
FRAME_TEXT = 0x03
"""Free text from the board (boot banner, log line)."""
FRAME_TYPES = frozenset({FRAME_SAMPLE, FRAME_REPLY, FRAME_TEXT})

HEADER = struct.Struct("<BH")
"""``type:u8, seq:u16`` little-endian."""
CRC = struct.Struct("<H")
CRC_INIT = 0xFFFF
CRC_CHECK = 0x29B1
"""CRC-16/CCITT-FALSE of ``b"123456789"`` (the catalogue's check value)."""
MIN_FRAME = HEADER.size + CRC.size
"""Shortest decoded frame: header and CRC, empty payload."""
MAX_ENCODED_BYTES = 2048
"""Longest encoded frame accepted (delimiter excluded); longer runs without a ``0x00`` are
dropped as broken up to the next delimiter."""


class CobsError(ValueError):
    """Bytes that are not a valid COBS encoding."""


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (see the module docstring), 0..65535."""
    return binascii.crc_hqx(data, CRC_INIT)


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data`` (Cheshire & Baker 1999): the result has no zero byte and is at
    most ``len(data) + len(data) // 254 + 1`` bytes long. The ``0x00`` delimiter is not
    appended."""
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        zero = data.find(b"\x00", start, min(start + 254, n))
        if zero < 0:
            end = min(start + 254, n)
            out.append(end - start + 1)
            out += data[start:end]
            if end == n:
                return bytes(out)
            start = end  # a full 254-byte block (code 0xFF): no zero follows it
            continue
        out.append(zero - start + 1)
        out += data[start:zero]
        start = zero + 1
        if start == n:  # data ends with a zero: one more (empty) block encodes it
            out.append(1)
            return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS block sequence (without its ``0x00`` delimiter).

    Raises:
        CobsError: a zero byte inside, or a code byte pointing past the end.
    """
    out = bytearray()
    i = 0
    n = len(encoded)
    while i < n:
        code = encoded[i]
        if code == 0:
            raise CobsError(f"zero byte at offset {i} inside a COBS frame")
        end = i + code
        if end > n:
            raise CobsError(f"code byte {code} at offset {i} points past the frame end ({n})")
        block = encoded[i + 1 : end]
        if b"\x00" in block:
            raise CobsError(f"zero byte inside the block at offset {i}")
        out += block
        i = end
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(frame_type: int, seq: int, payload: bytes) -> bytes:
    """One frame on the wire: ``COBS(type | seq | payload | crc) + b"\\x00"``.

    Raises:
        ValueError: ``frame_type`` outside 0..255.
    """
    body = HEADER.pack(frame_type, seq & 0xFFFF) + payload
    return cobs_encode(body + CRC.pack(crc16_ccitt_false(body))) + b"\x00"


def encode_sample(seq: int, values: Sequence[float]) -> bytes:
    """A :data:`FRAME_SAMPLE` frame of ``values`` as float32 little-endian (values beyond the
    float32 range become +-inf, as a C cast does)."""
    import numpy as np

    with np.errstate(over="ignore"):
        payload = np.asarray(values, dtype=np.float64).astype("<f4").tobytes()
    return encode_frame(FRAME_SAMPLE, seq, payload)


def encode_text(frame_type: int, seq: int, text: str) -> bytes:
    """A :data:`FRAME_REPLY` or :data:`FRAME_TEXT` frame of ASCII ``text``."""
    return encode_frame(frame_type, seq, text.encode("ascii", errors="replace"))


def bytes_per_sample(channels: int) -> int:
    """Bytes on the wire of one sample frame of ``channels`` float32 values, delimiter
    included: ``len(cobs(5 + 4 n)) + 1``, the COBS overhead taken at its maximum for this
    length (``1 + (5 + 4 n) // 254``)."""
    body = MIN_FRAME + 4 * channels
    return body + 1 + body // 254 + 1


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed COBS decoding and its CRC.

    Attributes:
        type: the type byte.
        seq: the board's counter.
        payload: the bytes between the header and the CRC.
    """

    type: int
    seq: int
    payload: bytes


ProblemKind = Literal["bad_crc", "broken_frame"]


@dataclass(frozen=True, slots=True)
class BadFrame:
    """A frame that was dropped.

    Attributes:
        kind: ``bad_crc`` (decoded, but its CRC does not match) or ``broken_frame`` (not
            valid COBS, too short, or too long without a delimiter).
        reason: what was wrong, for the counter's message.
        size: its encoded length in bytes.
    """

    kind: ProblemKind
    reason: str
    size: int


class FrameDecoder:
    """Cuts a byte stream into frames at ``0x00`` and checks each one.

    The bytes before the first delimiter after :meth:`reset` (the port was opened mid-frame)
    are decoded if they happen to form a whole frame and dropped silently otherwise:
    :attr:`resync_dropped` counts them. Memory is bounded by :data:`MAX_ENCODED_BYTES`.
    """

    def __init__(self, max_encoded_bytes: int = MAX_ENCODED_BYTES) -> None:
        self.max_encoded_bytes = max_encoded_bytes
        self._buf = bytearray()
        self._synced = False
        self._discarding = False
        self.resync_dropped = 0

    def reset(self) -> None:
        """Forget pending bytes; the next fragment may be the tail of a frame."""
        self._buf.clear()
        self._synced = False
        self._discarding = False

    def feed(self, chunk: bytes) -> list[Frame | BadFrame]:
        """Add received bytes; returns the frames completed by them, in order."""
        out: list[Frame | BadFrame] = []
        parts = chunk.split(b"\x00")
        tail = parts.pop()
        for i, part in enumerate(parts):
            if i == 0:
                if self._discarding:
                    self._discarding = False
                    self._synced = True
                    continue
                if self._buf:
                    self._buf += part
                    part = bytes(self._buf)
                    self._buf.clear()
            first = not self._synced
            self._synced = True
            if not part:
                continue  # two delimiters in a row (a leading 0x00 is allowed)
            result = self._check(part)
            if first and isinstance(result, BadFrame):
                self.resync_dropped += 1
                continue
            out.append(result)
        if self._discarding:
            return out
        self._buf += tail
        if len(self._buf) > self.max_encoded_bytes:
            if self._synced:
                out.append(
                    BadFrame(
                        "broken_frame",
                        f"no frame delimiter within {self.max_encoded_bytes} bytes",
                        len(self._buf),
                    )
                )
            self._buf.clear()
            self._discarding = True
        return out

    @staticmethod
    def _check(encoded: bytes) -> Frame | BadFrame:
        try:
            body = cobs_decode(encoded)
        except CobsError as exc:
            return BadFrame("broken_frame", f"not COBS: {exc}", len(encoded))
        if len(body) < MIN_FRAME:
            return BadFrame(
                "broken_frame", f"{len(body)} bytes, shorter than a header and CRC", len(encoded)
            )
        (crc,) = CRC.unpack_from(body, len(body) - CRC.size)
        content = body[: -CRC.size]
        if crc16_ccitt_false(content) != crc:
            return BadFrame(
                "bad_crc",
                f"CRC 0x{crc:04X} != 0x{crc16_ccitt_false(content):04X} "
                f"(type 0x{content[0]:02X}, {len(content) - HEADER.size} payload bytes)",
                len(encoded),
            )
        frame_type, seq = HEADER.unpack_from(content)
        return Frame(frame_type, seq, content[HEADER.size :])
