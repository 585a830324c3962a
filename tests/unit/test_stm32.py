"""STM32 test-stand driver: the line parser, and the device against the emulated board on a pty."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import serial

from rigwatch.config.base import ChannelConfig
from rigwatch.counters import Counters
from rigwatch.devices.emulators.stm32 import FIRMWARE_KEYS, Stm32Emulator
from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.devices.reconnect import Backoff
from rigwatch.devices.stm32 import (
    MAX_LINE_BYTES,
    LineAssembler,
    SensorLineParser,
    Stm32Device,
    Stm32DeviceConfig,
    parse_sensor_line,
)
from rigwatch.errors import DeviceError, ProtocolError

KEYS = list(FIRMWARE_KEYS)
SENTINEL = -999.0  # P1 value of the last line a test writes: once it arrives, all before did


def firmware_line(values: dict[str, float], end: str = "\n") -> str:
    return " | ".join(f"{k}: {v!r}" for k, v in values.items()) + end


# -- parser -------------------------------------------------------------------------------------


def test_full_firmware_line_is_parsed_by_key_name_not_position() -> None:
    # A distinct value per key: any shift (the old parser's off-by-one) would be visible.
    values = {k: 1.25 * i + 0.5 for i, k in enumerate(KEYS)}
    wanted = ["VELOCITY", "P1", "Tbogaz2", "THRUST", "T6", "IMPULSE"]

    parsed = parse_sensor_line(firmware_line(values), wanted)

    assert parsed.kind == "sensor"
    assert parsed.values == tuple(values[k] for k in wanted)
    assert parsed.valid_count == len(wanted)
    assert parsed.missing_keys == ()
    assert parsed.malformed_fields == ()
    assert parsed.unknown_keys == tuple(k for k in KEYS if k not in wanted)


def test_bytes_with_crlf_and_odd_spacing() -> None:
    parsed = parse_sensor_line(b"P1:1.5|  P2 :  -2e-3 |T1: +.5\r\n", ["P1", "P2", "T1"])
    assert parsed.kind == "sensor"
    assert parsed.values == (1.5, -0.002, 0.5)


def test_keys_are_case_sensitive() -> None:
    parsed = parse_sensor_line("p1: 1 | P1: 2 | THRUST: 3", ["P1", "Thrust"])
    assert parsed.values[0] == 2.0
    assert math.isnan(parsed.values[1])
    assert parsed.unknown_keys == ("p1", "THRUST")
    assert parsed.missing_keys == ("Thrust",)


def test_missing_keys_are_nan_and_listed() -> None:
    parsed = parse_sensor_line("P2: 7 | T1: 8", ["P1", "P2", "T1", "THRUST"])
    assert parsed.kind == "sensor"
    assert parsed.values[1:3] == (7.0, 8.0)
    assert math.isnan(parsed.values[0]) and math.isnan(parsed.values[3])
    assert parsed.missing_keys == ("P1", "THRUST")


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("P1: abc", "not a number"),
        ("P1 3.2", "no ':' separator"),
        (": 3.2", "empty key"),
        ("P1:", "empty value"),
        ("P1: 1.2.3", "not a number"),
        ("P1: 1_000", "not a number"),
        ("P1: 0x10", "not a number"),
    ],
)
def test_malformed_field_is_reported_and_the_others_kept(field: str, reason: str) -> None:
    parsed = parse_sensor_line(f"P2: 4.5 | {field} | T1: 6", ["P1", "P2", "T1"])
    assert parsed.kind == "sensor"
    assert math.isnan(parsed.values[0])
    assert parsed.values[1:] == (4.5, 6.0)
    assert [(f.text, f.reason) for f in parsed.malformed_fields] == [(field, reason)]


def test_duplicate_key_keeps_the_first_value() -> None:
    parsed = parse_sensor_line("P1: 1 | P1: 2", ["P1"])
    assert parsed.values == (1.0,)
    assert [f.reason for f in parsed.malformed_fields] == ["duplicate key"]


@pytest.mark.parametrize("text", ["1e3", "-0.5", "+7", ".25", "3.", "nan", "-inf"])
def test_number_forms_printf_can_produce(text: str) -> None:
    parsed = parse_sensor_line(f"P1: {text}", ["P1"])
    assert parsed.kind == "sensor"
    expected = float(text)
    assert parsed.values[0] == expected or (math.isnan(expected) and math.isnan(parsed.values[0]))


def test_ack_and_nack_are_replies_not_sensor_lines() -> None:
    ack = parse_sensor_line("ACK: Valves:101000011\r\n", ["P1"])
    nack = parse_sensor_line(b"NACK: unknown command FOO", ["P1"])
    assert ack.kind == "reply" and ack.reply is not None
    assert (ack.reply.ok, ack.reply.text) == (True, "Valves:101000011")
    assert nack.kind == "reply" and nack.reply is not None
    assert (nack.reply.ok, nack.reply.text) == (False, "unknown command FOO")


@pytest.mark.parametrize(
    "line",
    ["STM32F767ZI test stand firmware v2.1 booting", "P1 = 3", "ZZ: 1 | YY: 2", "P1: abc"],
)
def test_line_without_any_usable_configured_field_is_malformed(line: str) -> None:
    parsed = parse_sensor_line(line, ["P1", "P2"])
    assert parsed.kind == "malformed"
    assert all(math.isnan(v) for v in parsed.values)


def test_blank_line_is_empty() -> None:
    assert parse_sensor_line(" \r\n", ["P1"]).kind == "empty"


def test_non_utf8_line_is_malformed() -> None:
    parsed = parse_sensor_line(b"\xff\xfe\x80\x81 junk", ["P1"])
    assert parsed.kind == "malformed"
    assert parsed.malformed_fields[0].reason == "non-UTF-8 bytes"
    assert "\\xff" in parsed.text  # printable, never raw surrogates


def test_non_utf8_byte_only_spoils_its_own_field() -> None:
    parsed = parse_sensor_line(
        b"P1: 1.0 | P2: 2\xff.0 | T\xfe1: 3 | T2: 4", ["P1", "P2", "T1", "T2"]
    )
    assert parsed.kind == "sensor"
    assert parsed.values[0] == 1.0 and parsed.values[3] == 4.0
    assert math.isnan(parsed.values[1]) and math.isnan(parsed.values[2])
    assert [f.reason for f in parsed.malformed_fields] == [
        "non-UTF-8 bytes in value",
        "non-UTF-8 bytes in key",
    ]


def test_line_length_limit() -> None:
    pad = "X" * (MAX_LINE_BYTES - len("P1: 1 | X: "))
    at_limit = f"P1: 1 | X: {pad}"
    assert len(at_limit) == MAX_LINE_BYTES
    assert parse_sensor_line(at_limit + "\r\n", ["P1"]).kind == "sensor"
    assert parse_sensor_line((at_limit + "9").encode(), ["P1"]).kind == "oversized"
    assert parse_sensor_line(at_limit + "9", ["P1"]).kind == "oversized"


def test_parser_rejects_bad_channel_lists() -> None:
    with pytest.raises(ValueError):
        SensorLineParser([])
    with pytest.raises(ValueError):
        SensorLineParser(["P1", "P1"])


# -- line assembly -------------------------------------------------------------------------------


def test_assembler_joins_fragments_fed_byte_by_byte() -> None:
    stream = b"P1: 1\r\nP1: 2 | P2: 3\n\nACK: x\n"
    asm = LineAssembler()
    lines: list[bytes] = []
    for i in range(len(stream)):
        got, oversized = asm.feed(stream[i : i + 1])
        assert oversized == []
        lines += got
    assert lines == [b"P1: 1\r", b"P1: 2 | P2: 3", b"", b"ACK: x"]
    assert asm.pending_bytes == 0


@pytest.mark.parametrize("chunk", [1, 100, 4097, 100_000])
def test_assembler_rejects_an_oversized_line_once_and_keeps_the_next(chunk: int) -> None:
    stream = b"P1: 1\n" + b"P1: 2 | " * 1000 + b"\nP1: 3\n"
    asm = LineAssembler(max_line_bytes=4096)
    lines: list[bytes] = []
    oversized: list[bytes] = []
    for i in range(0, len(stream), chunk):
        got, bad = asm.feed(stream[i : i + chunk])
        lines += got
        oversized += bad
    assert lines == [b"P1: 1", b"P1: 3"]
    assert len(oversized) == 1 and oversized[0].startswith(b"P1: 2 | P1: 2")
    assert asm.pending_bytes == 0


# -- device against the emulated board -----------------------------------------------------------


def make_config(
    port: str, channels: Sequence[str] = KEYS, name: str = "stand"
) -> Stm32DeviceConfig:
    return Stm32DeviceConfig(
        name=name,
        driver="stm32",
        port=port,
        channels=[ChannelConfig(name=k, unit="bar" if k.startswith("P") else "") for k in channels],
        block_duration_s=0.02,
    )


@pytest.fixture
def emulator() -> Iterator[Stm32Emulator]:
    emu = Stm32Emulator(rate_hz=0)  # writes only what the test asks for
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def device(emulator: Stm32Emulator, counters: Counters) -> Iterator[Stm32Device]:
    assert emulator.path is not None
    dev = Stm32Device(make_config(emulator.path), counters)
    dev.start()
    yield dev
    dev.stop()


def read_until_sentinel(
    device: Stm32Device, deadline_s: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Read blocks until a row whose first column is SENTINEL; return the rows before it."""
    datas: list[np.ndarray] = []
    stamps: list[np.ndarray] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        block = device.read_block(0.2)
        if block is None:
            continue
        assert block.data.dtype == np.float32 and block.data.flags.c_contiguous
        assert block.data.shape[1] == len(device.describe().channels)
        datas.append(block.data)
        stamps.append(block.timestamps_ns)
        hits = np.flatnonzero(block.data[:, 0] == SENTINEL)
        if hits.size:
            data, ts = np.concatenate(datas), np.concatenate(stamps)
            first = len(data) - len(block.data) + int(hits[0])
            assert first == len(data) - 1, "rows arrived after the sentinel"
            return data[:first], ts[:first]
    raise AssertionError(f"sentinel not received within {deadline_s} s")


def sentinel(emulator: Stm32Emulator, device: Stm32Device) -> None:
    """Write the end marker: every configured key set to SENTINEL (a complete line)."""
    emulator.emit_lines([dict.fromkeys(device.describe().channel_names, SENTINEL)])


def rows_of(values: list[dict[str, float]], channels: Sequence[str] = KEYS) -> np.ndarray:
    return np.array([[r.get(k, np.nan) for k in channels] for r in values], dtype=np.float32)


def stm32_counts(counters: Counters, device: str = "stand") -> dict[str, int]:
    prefix = f"stm32.{device}."
    return {k[len(prefix) :]: v for k, v in counters.snapshot().items() if k.startswith(prefix)}


def test_device_satisfies_the_acquisition_protocol(device: Stm32Device) -> None:
    assert isinstance(device, AcquisitionDevice)
    info = device.describe()
    assert info.driver == "stm32"
    assert info.channel_names == KEYS
    assert info.channels[0].unit == "bar"


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_good_lines_arrive_in_order_with_exact_values(line_ending: str) -> None:
    counters = Counters()
    with Stm32Emulator(rate_hz=0, line_ending=line_ending) as emu:
        assert emu.path is not None
        dev = Stm32Device(make_config(emu.path), counters)
        dev.start()
        try:
            rows = [{k: i + j / 8 for j, k in enumerate(KEYS)} for i in range(300)]
            t_before = time.time_ns()
            emu.emit_lines(rows[:100])  # many lines per write: several lines per read
            for row in rows[100:]:
                emu.emit_lines([row])  # one write per line
            sentinel(emu, dev)
            data, ts = read_until_sentinel(dev)
            t_after = time.time_ns()
        finally:
            dev.stop()
    np.testing.assert_array_equal(data, rows_of(rows))
    assert ts.dtype == np.int64
    assert np.all(np.diff(ts) >= 0)
    assert t_before <= ts[0] and ts[-1] <= t_after
    assert stm32_counts(counters) == {}


BAD_AND_GOOD: list[tuple[bytes, dict[str, float] | None]] = [
    # (bytes written, row expected from them or None)
    (b"P1: 1.0 | P2: 1.5\n", {"P1": 1.0, "P2": 1.5}),
    (b"STM32F767ZI stand firmware v2.1 ready\r\n", None),
    (b"P1: 2.0 | P2: 2.5\n", {"P1": 2.0, "P2": 2.5}),
    (b"P1: abc | P2: 3.5\n", {"P2": 3.5}),
    (b"\xff\xfe\x80 garbage \x81\n", None),
    (b"P1: 4.0 | P2: 4.5\n", {"P1": 4.0, "P2": 4.5}),
    (b"P1: 9 | " * 700 + b"P2: 9\n", None),
    (b"P1: 5.0 | P2: 5.5\n", {"P1": 5.0, "P2": 5.5}),
    (b"P1: 6.0 | ZZ: 3 | P2: 6.5\n", {"P1": 6.0, "P2": 6.5}),
    (b"\n", None),
    (b"ACK: Valves:000000000\n", None),
    (b"P1: 7.0\n", {"P1": 7.0}),
]


@pytest.mark.parametrize("write_size", [None, 7, 1000], ids=["one-write", "7-bytes", "1000-bytes"])
def test_bad_lines_are_counted_and_good_lines_around_them_all_arrive(
    emulator: Stm32Emulator, counters: Counters, write_size: int | None
) -> None:
    assert emulator.path is not None
    dev = Stm32Device(make_config(emulator.path, ["P1", "P2"]), counters)
    dev.start()
    try:
        stream = b"".join(chunk for chunk, _ in BAD_AND_GOOD)
        step = write_size or len(stream)
        for i in range(0, len(stream), step):
            emulator.inject(stream[i : i + step])
        sentinel(emulator, dev)
        data, _ = read_until_sentinel(dev)
        reply = dev.wait_reply(1.0)
    finally:
        dev.stop()

    expected = [row for _, row in BAD_AND_GOOD if row is not None]
    np.testing.assert_array_equal(data, rows_of(expected, ["P1", "P2"]))
    assert stm32_counts(counters) == {
        "malformed_line": 2,  # the banner, the non-UTF-8 junk
        "malformed_field": 1,  # P1: abc (P1 is present, malformed: not a partial line)
        "oversized_line": 1,
        "unknown_key": 1,  # ZZ
        "partial_line": 1,  # "P1: 7.0" lacks P2
    }
    assert reply is not None and reply.ok and reply.text == "Valves:000000000"
    messages = counters.last_messages()
    assert "not a number" in messages["stm32.stand.malformed_field"]
    assert "P1: abc" in messages["stm32.stand.malformed_field"]
    assert str(MAX_LINE_BYTES) in messages["stm32.stand.oversized_line"]
    assert "\\xff\\xfe\\x80 garbage" in messages["stm32.stand.malformed_line"]
    assert "'ZZ'" in messages["stm32.stand.unknown_key"]
    assert "missing P2" in messages["stm32.stand.partial_line"]


def test_fragments_split_across_reads_are_joined(
    emulator: Stm32Emulator, counters: Counters
) -> None:
    assert emulator.path is not None
    dev = Stm32Device(make_config(emulator.path, ["P1", "P2"]), counters)
    dev.start()
    try:
        sent = 0
        early: list[np.ndarray] = []
        for fragment in (b"P1: 1.2", b"5 | P2: 3", b".5\r", b"\nP1: 2", b".0 | P2: 4.0\n"):
            emulator.inject(fragment)
            sent += len(fragment)
            # the device must have read this fragment before the next is written
            end = time.monotonic() + 5.0
            while dev.bytes_received < sent:
                assert time.monotonic() < end, "fragment not read"
                block = dev.read_block(0.01)
                if block is not None:
                    early.append(block.data)
            if sent <= len(b"P1: 1.25 | P2: 3.5\r"):  # no line complete yet
                assert early == [], "a row arrived before its line ended"
        sentinel(emulator, dev)
        data, _ = read_until_sentinel(dev)
        data = np.concatenate([*early, data])
    finally:
        dev.stop()
    np.testing.assert_array_equal(data, np.array([[1.25, 3.5], [2.0, 4.0]], dtype=np.float32))
    assert stm32_counts(counters) == {}


def test_valve_command_gets_its_ack(emulator: Stm32Emulator, device: Stm32Device) -> None:
    device.send_command("Valves:101000011")
    reply = device.wait_reply(2.0)
    assert reply is not None
    assert reply.ok and reply.text == "Valves:101000011"
    assert reply.received_ns > 0
    assert emulator.commands.get(timeout=2.0) == "Valves:101000011"
    assert emulator.valves == "101000011"


@pytest.mark.parametrize("command", ["Valves:10", "OPEN ALL", "valves:101000011"])
def test_unknown_command_gets_nack(
    emulator: Stm32Emulator, device: Stm32Device, command: str
) -> None:
    device.send_command(command)
    reply = device.wait_reply(2.0)
    assert reply is not None
    assert not reply.ok
    assert reply.text == f"unknown command {command}"
    assert emulator.valves == "000000000"


def test_replies_between_sensor_lines_are_not_rows(
    emulator: Stm32Emulator, device: Stm32Device, counters: Counters
) -> None:
    device.send_command("Valves:111111111")
    emulator.emit_lines([dict.fromkeys(KEYS, 1.0)])
    sentinel(emulator, device)
    data, _ = read_until_sentinel(device)
    assert data.shape == (1, len(KEYS))
    assert device.wait_reply(2.0) is not None
    assert "stm32.stand.malformed_line" not in counters.snapshot()


def test_clear_replies_discards_stale_ones(emulator: Stm32Emulator, device: Stm32Device) -> None:
    emulator.inject(b"NACK: stale\n")
    sentinel(emulator, device)
    read_until_sentinel(device)
    assert [r.text for r in device.clear_replies()] == ["stale"]
    assert device.wait_reply(0.0) is None


def test_commands_must_be_single_ascii_lines(device: Stm32Device) -> None:
    with pytest.raises(ProtocolError):
        device.send_command("Valves:101000011\nValves:111111111")
    with pytest.raises(ProtocolError):
        device.send_command("Vanne:é")


def test_send_command_before_start_raises(emulator: Stm32Emulator) -> None:
    assert emulator.path is not None
    dev = Stm32Device(make_config(emulator.path))
    with pytest.raises(DeviceError, match=emulator.path):
        dev.send_command("Valves:000000000")
    with pytest.raises(DeviceError, match="not started"):
        dev.read_block(0.01)


def test_streamed_emulator_lines_parse_cleanly(counters: Counters) -> None:
    with Stm32Emulator(rate_hz=2000, streaming=False) as emu:
        assert emu.path is not None
        dev = Stm32Device(make_config(emu.path), counters)
        dev.start()
        try:
            emu.start_stream()  # after the device opened the port (opening flushes input)
            blocks = []
            end = time.monotonic() + 5.0
            while sum(len(b) for b in blocks) < 100:
                assert time.monotonic() < end, "streamed lines did not arrive"
                block = dev.read_block(0.2)
                if block is not None:
                    blocks.append(block.data)
        finally:
            dev.stop()
            emu.stop_stream()
        data = np.concatenate(blocks)
        expected = rows_of([emu.sample(i) for i in range(len(data))])
    np.testing.assert_array_equal(data, expected)
    assert stm32_counts(counters) == {}


def test_vanished_port_raises_device_error_naming_it(
    emulator: Stm32Emulator, counters: Counters
) -> None:
    path = emulator.path
    assert path is not None
    cfg = make_config(path).model_copy(update={"reconnect": Backoff(initial_s=0.01, max_s=0.05)})
    device = Stm32Device(cfg, counters)
    device.start()
    try:
        sentinel(emulator, device)
        read_until_sentinel(device)
        emulator.stop()
        end = time.monotonic() + 5.0
        with pytest.raises(DeviceError, match=path):
            while time.monotonic() < end:
                assert device.read_block(0.2) is None
        # the loss is raised once; then the device keeps trying to reopen the vanished port
        assert device.link_status().state == "unknown"
        while counters.get("stm32.stand.reconnect_failed") < 2:
            assert time.monotonic() < end, "no reconnection attempts"
            assert device.read_block(0.05) is None
        status = device.link_status()
        assert status.state == "unknown" and path in status.reason
        assert status.losses == 1 and status.failed_attempts >= 2
    finally:
        device.stop()
    assert device.link_status().state == "closed"


def test_missing_port_raises_device_error_naming_it() -> None:
    dev = Stm32Device(make_config("/dev/rigwatch-no-such-tty"))
    with pytest.raises(DeviceError, match="/dev/rigwatch-no-such-tty"):
        dev.start()
    dev.stop()  # harmless


def test_stop_is_idempotent_and_unblocks(device: Stm32Device) -> None:
    device.stop()
    device.stop()
    with pytest.raises(DeviceError):
        device.read_block(0.01)


def test_emulator_command_line_serves_a_board() -> None:
    command = [sys.executable, "-m", "rigwatch.devices.emulators.stm32", "--rate", "500", "--crlf"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            path = proc.stdout.readline().strip()
            assert path.startswith("/dev/")
            dev = Stm32Device(make_config(path))
            dev.start()
            try:
                rows = 0
                end = time.monotonic() + 5.0
                while rows < 10:
                    assert time.monotonic() < end, "no lines from the emulator process"
                    block = dev.read_block(0.2)
                    rows += 0 if block is None else block.rows
                dev.send_command("Valves:000000001")
                reply = dev.wait_reply(2.0)
                assert reply is not None and reply.ok
            finally:
                dev.stop()
        finally:
            proc.terminate()
            proc.wait(5.0)


class BrokenPort:
    """A port whose reads fail, like a USB serial adapter pulled out."""

    in_waiting = 0

    def read(self, size: int = 1) -> bytes:
        raise serial.SerialException("read failed: [Errno 5] Input/output error")

    def write(self, data: bytes) -> int:
        raise serial.SerialException("write failed: [Errno 5] Input/output error")

    def close(self) -> None:
        pass


def test_port_is_reopened_after_a_failure() -> None:
    opened: list[object] = []

    def factory(url: str, **kwargs: object) -> object:
        # first a port that fails, then pyserial's loopback: what is written is read back
        port = BrokenPort() if not opened else serial.serial_for_url("loop://", **kwargs)
        opened.append(port)
        return port

    counters = Counters()
    cfg = make_config("/dev/ttyACM0", ["P1", "P2"]).model_copy(
        update={"reconnect": Backoff(initial_s=0.01)}
    )
    dev = Stm32Device(cfg, counters, serial_factory=factory)
    dev.start()
    try:
        with pytest.raises(DeviceError, match="/dev/ttyACM0"):
            dev.read_block(2.0)
        # reopened by the reader thread; "unknown" until the board is heard
        assert dev.link_status().state == "unknown"  # until the board is heard again
        end = time.monotonic() + 5.0
        while not dev.is_open:
            assert time.monotonic() < end, "not reopened"
            assert dev.read_block(0.02) is None
        assert counters.get("stm32.stand.reconnect") == 1
        dev.send_command("P1: 1.5 | P2: 2.5")  # looped back as a sensor line
        dev.send_command(f"P1: {SENTINEL} | P2: {SENTINEL}")
        data, _ = read_until_sentinel(dev)
        assert dev.link_status().state == "connected"  # heard again
        assert dev.link_status().reconnects == 1
    finally:
        dev.stop()
    assert len(opened) == 2
    np.testing.assert_array_equal(data, np.array([[1.5, 2.5]], dtype=np.float32))
