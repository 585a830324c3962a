"""The ``s7`` acquisition driver against python-snap7's own server, in-process on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from rigwatch.config.drivers import register_driver, unregister_driver
from rigwatch.counters import Counters
from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.devices.reconnect import Backoff
from rigwatch.devices.registry import build_device
from rigwatch.devices.s7 import (
    DRIVER,
    S7ChannelConfig,
    S7Device,
    S7DeviceConfig,
    S7SimServer,
    SimulatedS7Device,
    plan_reads,
)
from rigwatch.errors import DeviceError

CHANNELS: list[dict[str, Any]] = [
    {"name": "marker", "area": "M", "byte": 0, "bit": 0, "type": "bool"},  # the seed's M0.0
    {
        "name": "pressure",
        "area": "DB",
        "db": 1,
        "byte": 4,
        "type": "real",
        "unit": "bar",
        "gain": 2.0,
        "offset": -1.0,
    },
    {"name": "count", "area": "DB", "db": 1, "byte": 0, "type": "int32"},
    {"name": "speed", "area": "I", "byte": 2, "type": "int16"},
    {"name": "lamp", "area": "Q", "byte": 1, "bit": 7, "type": "bool"},
]


def config(port: int, **kw: Any) -> S7DeviceConfig:
    fields: dict[str, Any] = {
        "name": "plc",
        "driver": "s7",
        "host": "127.0.0.1",
        "tcp_port": port,
        "poll_interval_s": 0.01,
        "block_duration_s": 0.01,
        "channels": CHANNELS,
    }
    return S7DeviceConfig(**(fields | kw))


@pytest.fixture
def plc() -> Iterator[S7SimServer]:
    server = S7SimServer.for_channels([S7ChannelConfig(**c) for c in CHANNELS])
    yield server
    server.stop()


def set_values(plc: S7SimServer, cfg: S7DeviceConfig, values: list[float]) -> None:
    for ch, v in zip(cfg.channels, values, strict=True):
        plc.set(ch, v)


def read_until(dev: S7Device, predicate: Any, timeout_s: float = 5.0) -> np.ndarray:
    """Read blocks until a row satisfies ``predicate``; return that row."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        block = dev.read_block(0.2)
        if block is None:
            continue
        assert block.data.dtype == np.float32 and block.timestamps_ns.dtype == np.int64
        assert np.all(np.diff(block.timestamps_ns) > 0)
        for row in block.data:
            if predicate(row):
                return row
    raise AssertionError("no such row within the timeout")


def test_s7_config_checks_areas_bits_and_types() -> None:
    ok = S7ChannelConfig(name="x", area="DB", db=3, byte=8, type="int16")
    assert ok.address == "DB3.DBW8" and ok.size == 2
    assert S7ChannelConfig(name="m", area="M", byte=0, bit=0, type="bool").address == "M0.0"
    with pytest.raises(ValueError, match="area DB needs db >= 1"):
        S7ChannelConfig(name="x", area="DB", byte=0)
    with pytest.raises(ValueError, match="a bool needs bit"):
        S7ChannelConfig(name="x", area="M", byte=0, type="bool")
    with pytest.raises(ValueError, match="a real has no bit"):
        S7ChannelConfig(name="x", area="M", byte=0, bit=1)
    with pytest.raises(ValueError, match="db is only for area DB"):
        S7ChannelConfig(name="x", area="M", db=1, byte=0)
    with pytest.raises(ValueError, match="repeated: a"):
        S7DeviceConfig(
            name="p",
            driver="s7",
            host="h",
            channels=[{"name": "a", "area": "M", "byte": 0}, {"name": "a", "area": "M", "byte": 4}],
        )
    cfg = S7DeviceConfig(name="p", driver="s7", host="h", channels=[CHANNELS[0]])
    assert (cfg.rack, cfg.slot, cfg.tcp_port) == (0, 1, 102)  # the ball mill's rack and slot


def test_s7_reads_are_grouped_per_area_and_split_to_fit_a_pdu() -> None:
    chans = [S7ChannelConfig(**c) for c in CHANNELS]
    spans = {(s.area, s.db): s for s in plan_reads(chans)}
    assert (spans["DB", 1].start, spans["DB", 1].size) == (0, 8)  # DINT at 0 and REAL at 4
    assert [col for col, _ in spans["DB", 1].channels] == [2, 1]
    far = [S7ChannelConfig(name=f"r{i}", area="M", byte=150 * i) for i in range(3)]
    split = plan_reads(far, max_bytes=200)
    assert [(s.start, s.size) for s in split] == [(0, 154), (300, 4)]


def test_s7_device_polls_the_plc_values_as_rows(plc: S7SimServer) -> None:
    cfg = config(plc.port)
    set_values(plc, cfg, [1, 3.25, -70000, -1234, 1])
    dev = S7Device(cfg)
    assert isinstance(dev, AcquisitionDevice)
    info = dev.describe()
    assert info.driver == "s7" and info.sample_rate_hz == pytest.approx(100.0)
    assert info.channel_names == [c["name"] for c in CHANNELS]
    assert (info.channels[1].gain, info.channels[1].offset, info.channels[1].unit) == (
        2.0,
        -1.0,
        "bar",
    )  # raw values out; the engine calibrates
    assert info.extra["addresses"] == "M0.0,DB1.DBD4,DB1.DBD0,IW2,Q1.7"
    dev.start()
    try:
        # one poll reads the areas one after another, as from a real PLC: a poll running while
        # the values change may mix old and new areas, the next one has them all
        first = np.array([1, 3.25, -70000, -1234, 1], np.float32)
        read_until(dev, lambda r: np.array_equal(r, first))
        values = [0, -0.5, 2**31 - 1, 32767, 0]
        set_values(plc, cfg, values)  # the process moves
        moved = np.array(values, np.float32)
        read_until(dev, lambda r: np.array_equal(r, moved))
        plc.areas["Q"][1] |= 0b0111_1111  # other bits of the byte do not leak into Q1.7
        assert read_until(dev, lambda r: True)[4] == 0.0
        assert dev.link_status().state == "connected"
    finally:
        dev.stop()
    with pytest.raises(DeviceError, match="not started"):
        dev.read_block(0.01)


def test_s7_unreachable_plc_fails_start_naming_it() -> None:
    from rigwatch.devices.s7 import free_tcp_port

    port = free_tcp_port()
    dev = S7Device(config(port))
    with pytest.raises(
        DeviceError, match=rf"cannot connect to PLC 127\.0\.0\.1:{port} rack 0 slot 1"
    ):
        dev.start()
    dev.stop()


def test_s7_missing_area_fails_start_naming_the_read() -> None:
    server = S7SimServer({("M", 0): 16})  # no DB1, no I, no Q
    try:
        dev = S7Device(config(server.port))
        with pytest.raises(DeviceError, match="first read failed: reading"):
            dev.start()
        dev.stop()
    finally:
        server.stop()


def test_s7_plc_that_stops_answering_is_unknown_then_reconnected(plc: S7SimServer) -> None:
    cfg = config(plc.port, reconnect=Backoff(initial_s=0.01, max_s=0.05))
    set_values(plc, cfg, [1, 1.5, 1, 1, 1])
    counters = Counters()
    dev = S7Device(cfg, counters)
    dev.start()
    try:
        read_until(dev, lambda r: r[1] == np.float32(1.5))
        plc.stop()  # the PLC goes away
        end = time.monotonic() + 5.0
        with pytest.raises(DeviceError, match=f"PLC 127.0.0.1:{plc.port}"):
            while time.monotonic() < end:
                dev.read_block(0.1)
        assert dev.link_status().state == "unknown"
        while counters.get("s7.plc.reconnect_failed") < 2:  # backoff attempts, counted
            assert time.monotonic() < end
            assert dev.read_block(0.05) is None
        back = S7SimServer.for_channels(cfg.channels, port=plc.port)  # and comes back
        try:
            set_values(back, cfg, [0, 9.75, 2, 2, 0])
            read_until(dev, lambda r: r[1] == np.float32(9.75))
            status = dev.link_status()
            assert (status.state, status.losses, status.reconnects) == ("connected", 1, 1)
            assert status.failed_attempts >= 2
            assert counters.get("s7.plc.link_lost") == 1
            assert counters.get("s7.plc.reconnect") == 1
        finally:
            dev.stop()
            back.stop()
    finally:
        dev.stop()


def test_s7_driver_and_its_simulated_twin() -> None:
    register_driver(DRIVER)
    try:
        cfg = config(102, host="plc.invalid")
        dev = build_device(cfg, simulate=True)
        assert isinstance(dev, SimulatedS7Device)
        dev.start()
        try:
            assert dev.describe().extra["simulated"] == "true"
            row = read_until(dev, lambda r: True)
            assert 3.0 <= row[1] <= 7.0  # the simulated pressure, raw
            assert row[0] in (0.0, 1.0)
        finally:
            dev.stop()
        assert isinstance(build_device(cfg), S7Device)
    finally:
        unregister_driver("s7")
