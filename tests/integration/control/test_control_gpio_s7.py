"""GPIO valves on gpiozero's MockFactory and S7 points on snap7's own server, in-process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import snap7
from gpiozero.pins.mock import MockFactory
from snap7.type import SrvArea

from rigwatch.config.control import GpioValvesConfig, S7Config
from rigwatch.control.backends.gpio_valves import GpioValves
from rigwatch.control.backends.s7 import S7Points, parse_address
from rigwatch.control.commander import Commander
from rigwatch.errors import ActuatorFault, ConfigError, DeviceError

BALL_MILL = GpioValvesConfig(
    type="gpio",
    name="mill",
    factory="mock",
    valves=[
        {"name": "V1", "pin": 22},
        {"name": "V2", "pin": 27},
        {"name": "V3", "pin": 17, "normally": "open"},
    ],
)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def test_control_gpio_valves_reach_their_pins(factory: MockFactory) -> None:
    bank = GpioValves(BALL_MILL, pin_factory=factory)
    bank.connect()
    try:
        assert [factory.pin(p).state for p in (22, 27, 17)] == [False, False, False]
        cmd = Commander([bank])
        cmd.command({"V1": "open", "V3": "closed"}, who="ana", source="api").wait(5)
        assert [factory.pin(p).state for p in (22, 27, 17)] == [True, False, True]
        r = bank.read()
        assert (r["V1"].acknowledged, r["V3"].acknowledged, r["V2"].acknowledged) == (
            "open",
            "closed",
            "closed",
        )
        cmd.command({"V1": 0}, who="ana", source="api").wait(5)  # /disconnect closes all
        assert factory.pin(22).state is False
    finally:
        bank.close()


def test_control_gpio_pin_that_fails_becomes_unknown(factory: MockFactory) -> None:
    bank = GpioValves(BALL_MILL, pin_factory=factory)
    bank.connect()
    try:
        broken: Any = bank._outputs["V2"]

        class Dead:
            @property
            def value(self) -> int:
                raise OSError("pigpio daemon unreachable")

            @value.setter
            def value(self, v: int) -> None:
                raise OSError("pigpio daemon unreachable")

            def close(self) -> None:
                broken.close()

        bank._outputs["V2"] = Dead()
        with pytest.raises(ActuatorFault, match=r"V2 \(BCM 27\): pigpio daemon unreachable"):
            bank.apply({"V2": "open"}).wait(5)
        assert bank.read()["V2"].status == "unknown"
    finally:
        bank.close()


def test_control_pigpio_factory_needs_its_library_or_host() -> None:
    with pytest.raises(ValueError, match="needs host"):
        GpioValvesConfig(type="gpio", name="g", factory="pigpio", valves=[{"name": "V", "pin": 4}])
    cfg = GpioValvesConfig(
        type="gpio", name="g", factory="pigpio", host="127.0.0.1", valves=[{"name": "V", "pin": 4}]
    )
    try:
        import pigpio  # noqa: F401
    except ImportError:
        with pytest.raises(DeviceError, match="pin factory 'pigpio' needs a library"):
            GpioValves(cfg).connect()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def plc() -> Iterator[tuple[Any, dict[str, bytearray], int]]:
    server = snap7.server.Server(log=False)
    areas = {"M": bytearray(8), "Q": bytearray(4), "DB1": bytearray(16)}
    server.register_area(SrvArea.MK, 0, areas["M"])
    server.register_area(SrvArea.PA, 0, areas["Q"])
    server.register_area(SrvArea.DB, 1, areas["DB1"])
    port = free_port()
    server.start(tcp_port=port)
    yield server, areas, port
    server.stop()


def s7_config(port: int, **kw: Any) -> S7Config:
    return S7Config(
        type="s7",
        name="plc",
        host="127.0.0.1",
        tcp_port=port,
        points=[
            {"name": "MARKER", "address": "M0.0"},
            {"name": "LAMP", "address": "Q0.3"},
            {"name": "SETPOINT", "address": "DB1.DBW2", "kind": "word", "min": -100, "max": 1000},
            {"name": "COUNT", "address": "MD4", "kind": "word"},
        ],
        **kw,
    )


def test_control_s7_bits_and_words_reach_the_plc(
    plc: tuple[Any, dict[str, bytearray], int],
) -> None:
    _, areas, port = plc
    areas["Q"][0] = 0b0000_0001  # the PLC program's own bit beside ours
    points = S7Points(s7_config(port, bit_write="read_modify_write"))
    points.connect()
    try:
        cmd = Commander([points])
        assert points.read()["MARKER"].acknowledged == "off"  # read at connect
        cmd.command({"MARKER": "on"}, who="ana", source="api").wait(5)  # today's M0.0
        assert areas["M"][0] & 1 == 1
        cmd.command({"LAMP": True, "SETPOINT": -42, "COUNT": 70000}, who="ana", source="api").wait(
            5
        )
        assert areas["Q"][0] == 0b0000_1001  # bit 3 set, bit 0 kept
        assert areas["DB1"][2:4] == (-42).to_bytes(2, "big", signed=True)
        assert areas["M"][4:8] == (70000).to_bytes(4, "big", signed=True)
        r = points.read()
        assert (r["LAMP"].acknowledged, r["SETPOINT"].acknowledged) == ("on", -42)
    finally:
        points.close()


def test_control_s7_refuses_out_of_range_and_loses_its_plc(
    plc: tuple[Any, dict[str, bytearray], int],
) -> None:
    server, areas, port = plc
    points = S7Points(s7_config(port, retries=0))
    points.connect()
    try:
        cmd = Commander([points])
        with pytest.raises(Exception, match=r"SETPOINT: 5000 is out of range \[-100, 1000\]"):
            cmd.command({"SETPOINT": 5000}, who="ana", source="api")
        assert areas["DB1"] == bytearray(16)
        server.stop()
        with pytest.raises(ActuatorFault, match=r"(writing|reading) M0.0 on PLC 127.0.0.1"):
            cmd.command({"MARKER": "on"}, who="ana", source="api").wait(10)
        assert points.read()["MARKER"].status == "unknown"
    finally:
        points.close()


def test_control_s7_addresses_parse_and_inputs_are_read_only() -> None:
    assert parse_address("M0.0").text == "M0.0"
    assert parse_address("db1.dbx2.7").text == "DB1.DBX2.7"
    assert parse_address("A1.2").area == "Q" and parse_address("MW10").size == 2
    with pytest.raises(ConfigError, match="not an S7 address"):
        parse_address("M0.8")
    with pytest.raises(ValueError, match=r"I0\.0 is an input: it cannot be written"):
        S7Config(type="s7", name="p", host="h", points=[{"name": "X", "address": "I0.0"}])
