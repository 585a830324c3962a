"""Serial ports given as ``auto``: scoring of the ports a fake ``list_ports`` reports, the stm32
driver and the Arduino backend finding their emulators on ptys, a silent port searched again,
and the reconnection schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rigwatch.config.base import ChannelConfig
from rigwatch.config.control import ArduinoMotorsConfig
from rigwatch.control.backends.arduino_motors import ArduinoMotors
from rigwatch.counters import Counters
from rigwatch.devices.emulators.arduino import ArduinoEmulator
from rigwatch.devices.emulators.stm32 import Stm32Emulator
from rigwatch.devices.reconnect import Backoff, LinkHealth
from rigwatch.devices.serial_ports import (
    ARDUINO_PORTS,
    STM32_PORTS,
    PortResolver,
    find_port,
)
from rigwatch.devices.stm32.device import Stm32Device, Stm32DeviceConfig
from rigwatch.errors import DeviceError


def port(
    device: str,
    vid: int | None = None,
    pid: int | None = None,
    desc: str = "n/a",
    manufacturer: str | None = None,
) -> Any:
    """What ``serial.tools.list_ports.comports()`` yields for one port."""
    return SimpleNamespace(
        device=device,
        vid=vid,
        pid=pid,
        description=desc,
        manufacturer=manufacturer,
        product=None,
        hwid="n/a",
    )


RASPBERRY_PI = [
    port("/dev/ttyAMA0", desc="ttyAMA0"),  # the Pi's own UART: nobody's board
    port("/dev/ttyUSB0", 0x1A86, 0x7523, "USB2.0-Serial"),  # CH340 Arduino clone
    port("/dev/ttyACM0", 0x0483, 0x374B, "STM32 STLink", "STMicroelectronics"),
]


class FakePorts:
    """A ``list_ports`` whose answer the test changes (a board re-enumerates elsewhere)."""

    def __init__(self, ports: list[Any]) -> None:
        self.ports = ports
        self.scans = 0

    def __call__(self) -> list[Any]:
        self.scans += 1
        return list(self.ports)


def test_serial_ports_today_stand_is_found_by_usb_ids() -> None:
    lister = FakePorts(RASPBERRY_PI)
    assert find_port(STM32_PORTS, lister=lister) == "/dev/ttyACM0"
    assert find_port(ARDUINO_PORTS, lister=lister) == "/dev/ttyUSB0"


def test_serial_ports_ids_beat_descriptions_beat_device_names() -> None:
    ports = [
        port("/dev/ttyACM0", desc="unknown thing"),  # name fallback only
        port("/dev/ttyACM1", desc="STM32 Virtual ComPort"),  # description
        port("/dev/ttyACM2", 0x0483, 0x5740, "USB CDC"),  # vendor id
    ]
    assert find_port(STM32_PORTS, lister=FakePorts(ports)) == "/dev/ttyACM2"
    assert find_port(STM32_PORTS, lister=FakePorts(ports[:2])) == "/dev/ttyACM1"
    assert find_port(STM32_PORTS, lister=FakePorts(ports[:1])) == "/dev/ttyACM0"
    # ties go to the lowest name; excluded ports are skipped
    two = [port("/dev/ttyUSB1", 0x1A86, 0x7523), port("/dev/ttyUSB0", 0x1A86, 0x7523)]
    assert find_port(ARDUINO_PORTS, lister=FakePorts(two)) == "/dev/ttyUSB0"
    assert find_port(ARDUINO_PORTS, lister=FakePorts(two), exclude=["/dev/ttyUSB0"]) == (
        "/dev/ttyUSB1"
    )
    assert (
        find_port(ARDUINO_PORTS, lister=FakePorts([port("COM3", desc="USB-SERIAL CH340 (COM3)")]))
        == "COM3"
    )


def test_serial_ports_name_fallback_never_takes_another_boards_port() -> None:
    genuine_uno = port("/dev/ttyACM0", 0x2341, 0x0043, "Arduino Uno")  # also a ttyACM
    with pytest.raises(DeviceError, match=r"no serial port looks like the STM32 .*2341:0043"):
        find_port(STM32_PORTS, lister=FakePorts([genuine_uno]))
    assert find_port(ARDUINO_PORTS, lister=FakePorts([genuine_uno])) == "/dev/ttyACM0"


def test_serial_ports_nothing_found_lists_what_was_seen() -> None:
    with pytest.raises(DeviceError, match=r"like the Arduino \(ports seen: /dev/ttyAMA0"):
        find_port(ARDUINO_PORTS, lister=FakePorts(RASPBERRY_PI[:1]))
    with pytest.raises(DeviceError, match=r"ports seen: none"):
        find_port(ARDUINO_PORTS, lister=FakePorts([]))


def test_serial_ports_resolver_scans_only_for_auto() -> None:
    lister = FakePorts(RASPBERRY_PI)
    assert PortResolver("/dev/ttyS3", STM32_PORTS, lister).resolve() == "/dev/ttyS3"
    assert lister.scans == 0
    assert PortResolver("AUTO", STM32_PORTS, lister).resolve() == "/dev/ttyACM0"
    assert lister.scans == 1


def test_serial_ports_backoff_doubles_up_to_its_cap_and_restarts_once_heard() -> None:
    now = [100.0]
    health = LinkHealth(Backoff(initial_s=0.5, factor=2.0, max_s=3.0), clock=lambda: now[0])
    assert health.state == "closed" and not health.lost("nothing open")  # not started
    health.opened("/dev/ttyACM0", first=True)
    assert health.lost("no data for 5 s")
    waits = []
    for _ in range(5):
        assert not health.due()
        waits.append(health.seconds_to_attempt())
        now[0] += waits[-1]
        assert health.due()
        health.attempt_failed("cannot open")
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    now[0] += 3.0
    health.opened("/dev/ttyACM1", first=False)  # reopened, but not heard: still unknown
    assert health.state == "unknown" and not health.due()
    assert not health.lost("still silent")  # a reopened port still silent: not a new loss
    assert health.seconds_to_attempt() == 3.0
    now[0] += 3.0
    health.opened("/dev/ttyACM1", first=False)
    assert health.heard() and health.state == "connected"
    status = health.status()
    assert (status.losses, status.reconnects, status.failed_attempts) == (1, 2, 5)
    assert status.endpoint == "/dev/ttyACM1"
    health.lost("again")
    assert health.seconds_to_attempt() == 0.5  # heard in between: the backoff restarted


# -- the drivers on ptys ---------------------------------------------------------------------


@pytest.fixture
def board() -> Iterator[Stm32Emulator]:
    emu = Stm32Emulator(rate_hz=0, channels=["P1", "P2"])
    emu.start()
    yield emu
    emu.stop()


def stm32_config(**kw: Any) -> Stm32DeviceConfig:
    fields: dict[str, Any] = {
        "name": "stand",
        "driver": "stm32",
        "port": "auto",
        "channels": [ChannelConfig(name="P1"), ChannelConfig(name="P2")],
        "block_duration_s": 0.01,
    }
    return Stm32DeviceConfig(**(fields | kw))


def read_value(dev: Stm32Device, p1: float, timeout_s: float = 5.0) -> None:
    """Read until a row with ``P1 == p1`` arrives."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            block = dev.read_block(0.05)
        except DeviceError:
            continue  # a loss reported on the way
        if block is not None and np.any(block.data[:, 0] == p1):
            return
    raise AssertionError(f"no row with P1 = {p1}")


def test_serial_ports_stm32_auto_opens_the_board_found(board: Stm32Emulator) -> None:
    assert board.path is not None
    lister = FakePorts([RASPBERRY_PI[0], port(board.path, 0x0483, 0x374B, "STM32 STLink")])
    dev = Stm32Device(stm32_config(), port_lister=lister)
    dev.start()
    try:
        assert dev.describe().extra["port"] == "auto"
        assert dev.link_name == f"stand on {board.path}"
        board.emit_lines([{"P1": 1.5, "P2": 2.5}])
        read_value(dev, 1.5)
        assert dev.link_status().state == "connected"
    finally:
        dev.stop()
    with pytest.raises(DeviceError, match="no serial port looks like the STM32"):
        Stm32Device(stm32_config(), port_lister=FakePorts(RASPBERRY_PI[:2])).start()


def test_serial_ports_silent_port_is_searched_again(board: Stm32Emulator) -> None:
    """The board goes silent on one port and re-enumerates on another: after the silence
    timeout the port is closed, the scan runs again and the new port is opened."""
    assert board.path is not None
    lister = FakePorts([port(board.path, 0x0483, 0x374B, "STM32 STLink")])
    counters = Counters()
    cfg = stm32_config(silence_timeout_s=0.2, reconnect=Backoff(initial_s=0.01, max_s=0.05))
    dev = Stm32Device(cfg, counters, port_lister=lister)
    dev.start()
    moved = Stm32Emulator(rate_hz=0, channels=["P1", "P2"])
    try:
        board.emit_lines([{"P1": 1.0, "P2": 1.0}])
        read_value(dev, 1.0)
        new_path = moved.start()
        lister.ports = [port(new_path, 0x0483, 0x374B, "STM32 STLink")]  # the old one is silent
        status = dev.link.health.wait_status(lambda s: s.open and s.endpoint == new_path, 5.0)
        assert status.endpoint == new_path and status.state == "unknown"  # not heard yet
        moved.emit_lines([{"P1": 2.0, "P2": 2.0}])
        read_value(dev, 2.0)
        status = dev.link_status()
        assert (status.state, status.losses) == ("connected", 1)
        assert status.reconnects >= 1
        assert counters.get("stm32.stand.link_lost") == 1
        message = counters.last_messages()["stm32.stand.link_lost"]
        assert f"no data from {board.path} for 0.2 s" in message
        assert dev.link_name == f"stand on {new_path}"
    finally:
        dev.stop()
        moved.stop()


def test_serial_ports_arduino_auto_finds_the_ch340(board: Stm32Emulator) -> None:
    with ArduinoEmulator() as arduino:
        assert arduino.path is not None and board.path is not None
        lister = FakePorts(
            [port(board.path, 0x0483, 0x374B, "STM32 STLink"), port(arduino.path, 0x1A86, 0x7523)]
        )
        cfg = ArduinoMotorsConfig(
            type="arduino_motors",
            name="motors",
            port="auto",
            motors=[{"name": "MOTOR1", "motor_id": 1, "min_deg": 0, "max_deg": 180}],
        )
        motors = ArduinoMotors(cfg, port_lister=lister)
        motors.connect()
        try:
            assert motors.link.link_name == f"motors on {arduino.path}"
            motors.apply({"MOTOR1": 30.0}).wait(5)
            assert arduino.angles == {1: 30.0}
            assert motors.link_status().state == "connected"
        finally:
            motors.close()
