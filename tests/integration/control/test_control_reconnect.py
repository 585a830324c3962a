"""Devices that stop answering become ``unknown`` and are reconnected with backoff: the STM32
board (emulator on a pty, valve bank sharing the stm32 driver's port), the Arduino (emulator
on a pty) and an S7 PLC (snap7's server, stopped and started again on its port)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from rigwatch.config.base import ChannelConfig
from rigwatch.config.control import ArduinoMotorsConfig, S7Config, Stm32ValvesConfig
from rigwatch.control.backends.arduino_motors import ArduinoMotors
from rigwatch.control.backends.s7 import S7Points
from rigwatch.control.backends.stm32_valves import Stm32ValveBank
from rigwatch.counters import Counters
from rigwatch.devices.emulators.arduino import ArduinoEmulator
from rigwatch.devices.emulators.stm32 import Stm32Emulator
from rigwatch.devices.reconnect import Backoff
from rigwatch.devices.s7 import S7SimServer
from rigwatch.devices.stm32.codec import VALVE_BITS
from rigwatch.devices.stm32.device import Stm32Device, Stm32DeviceConfig
from rigwatch.errors import ActuatorFault, DeviceError

FAST = Backoff(initial_s=0.01, factor=2.0, max_s=0.05)


def test_control_reconnect_stm32_board_silent_then_back() -> None:
    counters = Counters()
    with Stm32Emulator(rate_hz=200, channels=["P1", "THRUST"], streaming=False) as board:
        assert board.path is not None
        dev = Stm32Device(
            Stm32DeviceConfig(
                name="stm32",
                driver="stm32",
                port=board.path,
                sample_rate_hz=200,
                channels=[ChannelConfig(name="P1"), ChannelConfig(name="THRUST")],
                block_duration_s=0.01,
                silence_timeout_s=0.3,
                reconnect=FAST,
            ),
            counters,
        )
        dev.start()
        board.start_stream()
        bank = Stm32ValveBank(
            Stm32ValvesConfig(
                type="stm32_valves",
                name="valves",
                outputs=[{"name": n} for n in VALVE_BITS],
                ack_timeout_s=0.2,
                retries=0,
            ),
            dev,
        )
        try:
            bank.apply({"PURGE1": "open"}).wait(5)
            assert bank.read()["PURGE1"].status == "acknowledged"
            # the board hangs: no sensor line, no reply
            board.silent = True
            board.stop_stream()
            with pytest.raises(DeviceError, match=r"no data from .* for 0\.3 s"):
                end = time.monotonic() + 5.0
                while time.monotonic() < end:
                    dev.read_block(0.1)
            assert dev.link_status().state == "unknown"
            with pytest.raises(ActuatorFault):
                bank.apply({"PURGE2": "open"}).wait(5)
            assert bank.read()["PURGE2"].status == "unknown"
            # it comes back: the port is reopened with backoff and the link heard again
            board.silent = False
            board.start_stream()
            status = dev.link.health.wait_status(lambda s: s.state == "connected", 5.0)
            assert status.state == "connected" and status.losses == 1 and status.reconnects >= 1
            assert counters.get("stm32.stm32.link_lost") == 1
            assert counters.get("stm32.stm32.reconnect") >= 1
            bank.apply({"PURGE2": "open"}).wait(5)
            assert board.valves == "001100000"
            assert bank.read()["PURGE2"].status == "acknowledged"
            block = None
            while block is None:
                block = dev.read_block(0.5)
            assert np.isfinite(block.data).all()
        finally:
            bank.close()
            dev.stop()


def test_control_reconnect_arduino_silent_then_back() -> None:
    with ArduinoEmulator() as arduino:
        assert arduino.path is not None
        cfg = ArduinoMotorsConfig(
            type="arduino_motors",
            name="motors",
            port=arduino.path,
            reply_timeout_s=0.2,
            retries=0,
            motors=[{"name": "MOTOR1", "motor_id": 1, "min_deg": 0, "max_deg": 180}],
        )
        motors = ArduinoMotors(cfg, backoff=FAST)
        motors.connect()
        try:
            motors.apply({"MOTOR1": 10.0}).wait(5)
            arduino.silent = True
            with pytest.raises(ActuatorFault, match=r"not acknowledged within 0\.2 s"):
                motors.apply({"MOTOR1": 20.0}).wait(5)
            assert motors.read()["MOTOR1"].status == "unknown"
            # the link is unknown and its port reopened (not heard yet: still unknown)
            status = motors.link.serial.health.wait_status(
                lambda s: s.reconnects >= 1 and s.open, 5.0
            )
            assert (status.state, status.losses, status.reconnects) == ("unknown", 1, 1)
            arduino.silent = False
            motors.apply({"MOTOR1": 30.0}).wait(5)
            assert arduino.angles[1] == 30.0
            assert motors.read()["MOTOR1"].status == "acknowledged"
            assert motors.link_status().state == "connected"
        finally:
            motors.close()
        assert motors.link_status().state == "closed"


@pytest.fixture
def plc() -> Iterator[S7SimServer]:
    server = S7SimServer({("M", 0): 16, ("DB", 1): 16})
    yield server
    server.stop()


def test_control_reconnect_s7_plc_gone_then_back(plc: S7SimServer) -> None:
    cfg = S7Config(
        type="s7",
        name="plc",
        host="127.0.0.1",
        tcp_port=plc.port,
        retries=0,
        points=[
            {"name": "MARKER", "address": "M0.0"},
            {"name": "SETPOINT", "address": "DB1.DBW2", "kind": "word"},
        ],
    )
    points = S7Points(cfg, backoff=FAST)
    points.connect()
    back: S7SimServer | None = None
    try:
        points.apply({"MARKER": "on"}).wait(5)
        plc.stop()
        with pytest.raises(ActuatorFault, match=r"on PLC 127\.0\.0\.1"):
            points.apply({"SETPOINT": 7}).wait(5)
        readings = points.read()
        assert {r.status for r in readings.values()} == {"unknown"}  # every point
        status = points.health.wait_status(lambda s: s.failed_attempts >= 2, 5.0)
        assert status.state == "unknown" and status.failed_attempts >= 2
        back = S7SimServer({("M", 0): 16, ("DB", 1): 16}, port=plc.port)
        back.areas["M"][0] = 0b1  # what the PLC holds after its restart
        status = points.health.wait_status(lambda s: s.state == "connected", 5.0)
        assert (status.state, status.losses, status.reconnects) == ("connected", 1, 1)
        readings = points.read()  # read back after reconnecting
        assert (readings["MARKER"].acknowledged, readings["SETPOINT"].acknowledged) == ("on", 0)
        points.apply({"SETPOINT": 7}).wait(5)
        assert back.areas["DB1"][2:4] == (7).to_bytes(2, "big")
    finally:
        points.close()
        if back is not None:
            back.stop()
