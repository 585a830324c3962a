"""The STM32 binary framing (COBS + CRC-16/CCITT-FALSE): the codec, and the stm32 driver
reading the emulated board's frames on a pty; bad frames are counted and skipped."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rigwatch.config.base import ChannelConfig
from rigwatch.counters import Counters
from rigwatch.devices.emulators.stm32 import FIRMWARE_KEYS, Stm32Emulator
from rigwatch.devices.registry import build_device
from rigwatch.devices.stm32.device import SimulatedStm32Device, Stm32Device, Stm32DeviceConfig
from rigwatch.devices.stm32.framing import (
    FRAME_SAMPLE,
    FRAME_TEXT,
    BadFrame,
    Frame,
    FrameDecoder,
    bytes_per_sample,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    encode_frame,
    encode_sample,
)

KEYS = ["P1", "P2", "THRUST"]
SENTINEL = -999.0


# -- codec -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [  # examples of Cheshire & Baker's encoding (as tabulated in the literature)
        (b"", b"\x01"),
        (b"\x00", b"\x01\x01"),
        (b"\x00\x00", b"\x01\x01\x01"),
        (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
        (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
        (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
        (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
        (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
        (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    ],
)
def test_stm32_binary_cobs_reference_vectors(raw: bytes, encoded: bytes) -> None:
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@given(st.binary(max_size=1200))
def test_stm32_binary_cobs_round_trips_without_zeros(raw: bytes) -> None:
    encoded = cobs_encode(raw)
    assert b"\x00" not in encoded
    assert len(encoded) <= len(raw) + len(raw) // 254 + 1
    assert cobs_decode(encoded) == raw


def test_stm32_binary_crc_is_ccitt_false_and_the_frame_layout_is_as_documented() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue's check value
    frame = encode_sample(0x0102, [1.0, -2.5])
    assert frame.endswith(b"\x00") and b"\x00" not in frame[:-1]
    body = cobs_decode(frame[:-1])
    assert body[:3] == bytes([FRAME_SAMPLE, 0x02, 0x01])  # type, seq little-endian
    assert struct.unpack("<2f", body[3:11]) == (1.0, -2.5)
    assert struct.unpack("<H", body[11:]) == (crc16_ccitt_false(body[:11]),)
    assert len(frame) == bytes_per_sample(2) == 2 * 4 + 7
    assert bytes_per_sample(len(FIRMWARE_KEYS)) == 95  # the 22 keys of a firmware line


def test_stm32_binary_decoder_skips_bad_frames_and_keeps_the_others() -> None:
    good = [encode_sample(i, [float(i)]) for i in range(4)]
    bad_crc = flip_payload_bit(good[1])
    junk = b"\x05\x01\x02\x00"  # a code byte pointing past the frame end
    stream = good[0] + bytes(bad_crc) + junk + good[2] + good[3]
    decoder = FrameDecoder()
    out = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    assert [type(f).__name__ for f in out] == ["Frame", "BadFrame", "BadFrame", "Frame", "Frame"]
    frames = [f for f in out if isinstance(f, Frame)]
    assert [f.seq for f in frames] == [0, 2, 3]
    bad = [f for f in out if isinstance(f, BadFrame)]
    assert bad[0].kind == "bad_crc" and "CRC 0x" in bad[0].reason
    assert bad[1].kind == "broken_frame" and "past the frame end" in bad[1].reason


def test_stm32_binary_decoder_resyncs_after_a_partial_frame_and_runaway_bytes() -> None:
    frame = encode_sample(7, [1.0, 2.0])
    decoder = FrameDecoder(max_encoded_bytes=64)
    # opened mid-frame: the tail of a frame is dropped silently, the next frame kept
    assert decoder.feed(frame[5:] + frame) == [Frame(FRAME_SAMPLE, 7, frame_payload(frame))]
    assert decoder.resync_dropped == 1
    out = decoder.feed(b"\x07" * 100)  # no delimiter for too long
    assert len(out) == 1 and out[0].kind == "broken_frame"  # type: ignore[union-attr]
    assert decoder.feed(b"\x07" * 10 + b"\x00" + frame) == [
        Frame(FRAME_SAMPLE, 7, frame_payload(frame))
    ]


def flip_payload_bit(frame: bytes) -> bytes:
    """``frame`` with one payload bit flipped on the wire (its CRC left as sent)."""
    body = bytearray(cobs_decode(frame[:-1]))
    body[4] ^= 0x40
    return cobs_encode(bytes(body)) + b"\x00"


def frame_payload(frame: bytes) -> bytes:
    return cobs_decode(frame[:-1])[3:-2]


# -- the driver on a pty ---------------------------------------------------------------------


@pytest.fixture
def board() -> Iterator[Stm32Emulator]:
    emu = Stm32Emulator(rate_hz=0, channels=KEYS, framing="binary")
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def device(board: Stm32Emulator, counters: Counters) -> Iterator[Stm32Device]:
    assert board.path is not None
    dev = Stm32Device(
        Stm32DeviceConfig(
            name="stand",
            driver="stm32",
            port=board.path,
            framing="binary",
            channels=[ChannelConfig(name=k) for k in KEYS],
            block_duration_s=0.01,
        ),
        counters,
    )
    dev.start()
    yield dev
    dev.stop()


def rows_until_sentinel(device: Stm32Device, timeout_s: float = 5.0) -> np.ndarray:
    rows: list[np.ndarray] = []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        block = device.read_block(0.2)
        if block is None:
            continue
        rows.append(block.data)
        data = np.concatenate(rows)
        hits = np.flatnonzero(data[:, 0] == SENTINEL)
        if hits.size:
            assert hits[0] == len(data) - 1
            return data[: hits[0]]
    raise AssertionError("sentinel not received")


def counts(counters: Counters) -> dict[str, int]:
    p = "stm32.stand."
    return {k[len(p) :]: v for k, v in counters.snapshot().items() if k.startswith(p)}


def test_stm32_binary_rows_arrive_exactly_as_float32(
    board: Stm32Emulator, device: Stm32Device, counters: Counters
) -> None:
    rows = [{"P1": 1.5, "P2": -2.25, "THRUST": 1500.125}, {"P1": 1e-7, "THRUST": 3.3}]
    board.emit_lines(rows)
    board.emit_lines([dict.fromkeys(KEYS, SENTINEL)])
    data = rows_until_sentinel(device)
    expected = np.array([[1.5, -2.25, 1500.125], [1e-7, np.nan, 3.3]], dtype=np.float32)
    np.testing.assert_array_equal(data, expected)
    assert device.describe().extra["framing"] == "binary"
    assert counts(counters) == {}
    assert device.frames_received == 3


def test_stm32_binary_bad_crc_and_broken_frames_are_counted_and_skipped(
    board: Stm32Emulator, device: Stm32Device, counters: Counters
) -> None:
    def row(i: int) -> bytes:
        return board.encode_row({"P1": float(i), "P2": 0.0, "THRUST": 0.0})

    wire = [row(0), row(1), flip_payload_bit(row(2)), row(3)]  # sequence numbers in wire order
    wire.append(b"\x02\x07\x09\x00")  # junk between frames (no sequence number)
    wire.append(row(4))
    wire.append(encode_frame(FRAME_SAMPLE, board.take_seq(), struct.pack("<2f", 1.0, 2.0)))
    wire.append(encode_frame(FRAME_TEXT, board.take_seq(), b"STM32 test stand fw 1.0"))
    wire.append(row(5))
    board.inject(b"".join(wire))
    board.emit_lines([dict.fromkeys(KEYS, SENTINEL)])
    data = rows_until_sentinel(device)
    assert data[:, 0].tolist() == [0.0, 1.0, 3.0, 4.0, 5.0]  # nothing else lost
    c = counts(counters)
    assert c["bad_crc"] == 1
    # the junk frame (not COBS-valid as a frame) and the sample frame with 2 of 3 fields
    assert c["broken_frame"] == 2
    assert c["lost_frames"] == 1  # the corrupted frame's sequence number is missing
    assert "seq_restart" not in c
    messages = counters.last_messages()
    assert (
        "8 payload bytes, expected 12 (3 float32 channels)" in messages["stm32.stand.broken_frame"]
    )


def test_stm32_binary_commands_stay_text_and_replies_come_framed(
    board: Stm32Emulator, device: Stm32Device, counters: Counters
) -> None:
    reply = device.transact("Valves:001100000", 2.0)
    assert reply is not None and reply.ok and reply.line == "ACK: Valves:001100000"
    assert board.valves == "001100000"
    reply = device.transact("bogus", 2.0)
    assert reply is not None and not reply.ok and "unknown command bogus" in reply.text
    board.emit_lines([dict.fromkeys(KEYS, SENTINEL)])
    assert rows_until_sentinel(device).shape == (0, 3)  # replies are not rows
    assert counts(counters) == {}


def test_stm32_binary_streamed_emulator_frames_parse_cleanly(counters: Counters) -> None:
    cfg = Stm32DeviceConfig(
        name="stand",
        driver="stm32",
        port="unused",
        framing="binary",
        sample_rate_hz=500,
        channels=[ChannelConfig(name=k) for k in FIRMWARE_KEYS],
        block_duration_s=0.02,
    )
    dev = build_device(cfg, simulate=True)
    assert isinstance(dev, SimulatedStm32Device)
    dev.start()
    try:
        blocks = []
        end = time.monotonic() + 5.0
        while sum(len(b) for b in blocks) < 50:
            assert time.monotonic() < end, "no frames from the emulator"
            block = dev.read_block(0.2)
            if block is not None:
                blocks.append(block.data)
        data = np.concatenate(blocks)
        assert data.shape[1] == len(FIRMWARE_KEYS) and np.isfinite(data).all()
        reply = dev.transact("Valves:100001000", 2.0)
        assert reply is not None and reply.ok
    finally:
        dev.stop()
    c = counts(counters)
    assert set(c) <= {"lost_frames"} and c.get("lost_frames", 0) == 0, c


def test_stm32_binary_sequence_restart_is_not_counted_as_lost_frames(
    board: Stm32Emulator, device: Stm32Device, counters: Counters
) -> None:
    board.emit_lines([{"P1": 1.0}, {"P1": 2.0}])
    board._seq = 0  # the board rebooted: its counter starts again
    board.emit_lines([{"P1": 3.0}, dict.fromkeys(KEYS, SENTINEL)])
    assert rows_until_sentinel(device)[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert counts(counters) == {"seq_restart": 1}
