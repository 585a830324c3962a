"""Today's serial sensor interface (TEMP?/PRESSURE?/SPEED?, CR LF) read through pyserial from
an emulator behind a pseudo-terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from rigwatch.agent.config import SerialSensorConfig
from rigwatch.agent.sensors import SerialSensors

if sys.platform == "win32":
    pytest.skip("the emulator needs a pseudo-terminal (POSIX only)", allow_module_level=True)

from support.agent_serial_emulator import SensorInterfaceEmulator

TIMEOUT_S = 0.2  # shorter than the interface's 1 s to keep the tests quick


@pytest.fixture
def emulator() -> Iterator[SensorInterfaceEmulator]:
    with SensorInterfaceEmulator() as emu:
        yield emu


def _plugin(path: str) -> SerialSensors:
    return SerialSensors(SerialSensorConfig(kind="serial", port=path, timeout_s=TIMEOUT_S))


def test_agent_serial_reads_every_metric_with_crlf_queries(
    emulator: SensorInterfaceEmulator,
) -> None:
    assert emulator.path is not None
    plugin = _plugin(emulator.path)
    try:
        result = plugin.read()
    finally:
        plugin.close()
    assert result.accessible
    assert {m: r.value for m, r in result.readings.items()} == {
        "temperature": 42.5,
        "pressure": 2.1,
        "speed": 1450.0,
    }
    assert [emulator.queries.get(timeout=1) for _ in range(3)] == ["TEMP?", "PRESSURE?", "SPEED?"]


def test_agent_serial_timeout_is_missing_with_error_not_zero(
    emulator: SensorInterfaceEmulator,
) -> None:
    assert emulator.path is not None
    emulator.answers["PRESSURE?"] = None  # the pressure sensor does not answer
    emulator.answers["SPEED?"] = "n/a"
    plugin = _plugin(emulator.path)
    try:
        result = plugin.read()
    finally:
        plugin.close()
    assert result.accessible  # the interface answered other queries
    assert result.readings["temperature"].value == 42.5
    pressure = result.readings["pressure"]
    assert pressure.value is None and pressure.error is not None
    assert "no answer to PRESSURE?" in pressure.error
    speed = result.readings["speed"]
    assert speed.value is None and speed.error is not None and "not a number" in speed.error


def test_agent_serial_late_answer_is_not_taken_for_the_next_metric(
    emulator: SensorInterfaceEmulator,
) -> None:
    assert emulator.path is not None
    emulator.answers["TEMP?"] = "99.0"
    emulator.delays_s["TEMP?"] = TIMEOUT_S * 1.5  # arrives while PRESSURE? is being asked
    emulator.delays_s["PRESSURE?"] = TIMEOUT_S * 0.8
    plugin = _plugin(emulator.path)
    try:
        result = plugin.read()
    finally:
        plugin.close()
    assert result.readings["temperature"].value is None
    # the right answer, never the late 99.0 of TEMP?
    assert result.readings["pressure"].value == 2.1
    assert result.readings["speed"].value == 1450.0


def test_agent_serial_silent_interface_is_not_accessible(
    emulator: SensorInterfaceEmulator,
) -> None:
    assert emulator.path is not None
    emulator.answers.clear()
    plugin = _plugin(emulator.path)
    try:
        result = plugin.read()
    finally:
        plugin.close()
    assert not result.accessible
    assert result.access_error is not None and "does not answer" in result.access_error
    assert all(r.value is None for r in result.readings.values())


def test_agent_serial_missing_port_is_not_accessible() -> None:
    plugin = _plugin("/dev/does-not-exist-rigwatch")
    result = plugin.read()
    assert not result.accessible
    assert result.access_error is not None and "cannot open serial port" in result.access_error
    assert all(r.value is None and r.error for r in result.readings.values())
