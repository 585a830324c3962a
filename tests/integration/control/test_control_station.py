"""The station's control part on the simulated rocket stand (STM32 emulator on a pty carrying
sensor lines and the valve bank, Arduino emulator): redlines fed from acquisition, and each
abort path of the stand: redline trip, staleness, operator watchdog, device loss (sensor board,
actuator board), a station stopping during a hot sequence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rigwatch.control.states import RunnerState as S
from rigwatch.devices.emulators.arduino import ArduinoEmulator
from rigwatch.errors import ActuatorFault
from rigwatch.station import Station
from support.control_station import emulator, rocket_station, wait_acquiring

SAFE_STATE = {  # burning's abort sequence leaves every valve here
    "IGNITION": "off",
    "FUEL1": "closed",
    "FUEL2": "closed",
    "GOX1": "closed",
    "GOX2": "closed",
    "RELIEF1": "open",
    "RELIEF2": "open",
    "PURGE1": "closed",
    "PURGE2": "closed",
}


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    st = rocket_station(tmp_path, operator_timeout_s=30.0)
    st.start()
    wait_acquiring(st)
    yield st
    st.stop()


def run_until_step(station: Station, scenario: str, step_name: str) -> None:
    r = station.control.runner
    steps = r.scenarios[scenario].steps
    index = next(i for i, s in enumerate(steps) if s.name == step_name)
    while r.status().step_index < index:
        assert r.wait_state({S.SAFE, S.DONE}, 0.05) is S.RUNNING, r.status()


def start(station: Station, scenario: str) -> None:
    c = station.control
    c.authority.request("ana")
    c.runner.arm("ana")
    c.runner.start(scenario, "ana")


def acknowledged(station: Station) -> dict[str, object]:
    return {n: r.acknowledged for n, r in station.control.commander.read().items()}


def test_control_station_redline_trip_from_acquired_blocks(station: Station) -> None:
    start(station, "burning")
    run_until_step(station, "burning", "steady burn")
    assert station.control.monitor.active == ["chamber-over", "flameout", "thrust-surge"]
    emulator(station).plant.chamber_fault_bar = 15.0  # nozzle blocked: the chamber over 25 bar
    r = station.control.runner
    assert r.wait_state(S.SAFE, 10) is S.SAFE
    st = r.status()
    assert (st.redline, st.abort_by, st.safing_failures) == (
        "chamber-over",
        "redline:chamber-over",
        (),
    )
    assert {n: acknowledged(station)[n] for n in SAFE_STATE} == SAFE_STATE
    abort = station.control.audit.query(action="abort")[-1]  # type: ignore[union-attr]
    assert abort.redline == "chamber-over" and "median(P3, P4, P5) > 25" in abort.reason


def test_control_station_staleness_watchdog_aborts(station: Station) -> None:
    start(station, "burning")
    r = station.control.runner
    r.wait_state(S.RUNNING, 5)
    emulator(station).stop_stream()  # the board is alive (it answers) but sends no sensor line
    assert r.wait_state(S.SAFE, 10) is S.SAFE
    st = r.status()
    assert st.abort_by == "redline:chamber-over" and "is stale" in st.abort_reason
    assert "no value of P3, P4, P5" in st.abort_reason
    assert st.safing_failures == ()  # the valves still answer: the safe state is reached
    assert {n: acknowledged(station)[n] for n in SAFE_STATE} == SAFE_STATE


def test_control_station_operator_watchdog_aborts_when_the_heartbeat_stops(
    tmp_path: Path,
) -> None:
    station = rocket_station(tmp_path, operator_timeout_s=0.4)
    station.start()
    wait_acquiring(station)
    try:
        c = station.control
        lease = c.authority.request("ana")
        c.runner.arm("ana")
        assert c.runner.wait_state(S.SAFE, 0.2) is S.ARMED
        c.authority.renew(lease.token)  # a heartbeat (REST renew); then none
        assert c.runner.wait_state(S.SAFE, 10) is S.SAFE
        st = c.runner.status()
        assert st.abort_by == "watchdog:operator"
        assert "no heartbeat from 'ana' for 0.4 s" in st.abort_reason
        assert c.authority.holder == ""
        expired = c.audit.query(action="authority", result="expired")  # type: ignore[union-attr]
        assert [e.who for e in expired] == ["ana"]
    finally:
        station.stop()


def test_control_station_sensor_board_loss_aborts(station: Station) -> None:
    c = station.control
    c.authority.request("ana")
    c.runner.arm("ana")
    emulator(station).stop()  # the board's port vanishes: read errors (the twin comes back
    # when the driver reopens it; the abort does not wait for that)
    assert c.runner.wait_state(S.SAFE, 10) is S.SAFE
    st = c.runner.status()
    assert st.abort_by == "watchdog:device" and "device loss: device 'stm32'" in st.abort_reason
    abort = c.audit.query(action="abort")[-1]  # type: ignore[union-attr]
    assert abort.who == "watchdog:device" and "device loss" in abort.reason


def test_control_station_actuator_board_loss_aborts(tmp_path: Path) -> None:
    station = rocket_station(tmp_path, operator_timeout_s=30.0, motor_timeout_s=0.2)
    station.start()
    wait_acquiring(station)
    try:
        c = station.control
        arduino = next(t for t in c.twins if isinstance(t, ArduinoEmulator))
        c.commander.command({"MOTOR1": 10}, who="ana", source="api").wait(5)
        c.authority.request("ana")
        c.runner.arm("ana")
        arduino.silent = True
        with pytest.raises(ActuatorFault, match="position unknown"):
            c.commander.command({"MOTOR1": 20}, who="ana", source="api").wait(5)
        assert c.runner.wait_state(S.SAFE, 10) is S.SAFE
        st = c.runner.status()
        assert st.abort_by == "watchdog:device"
        assert "actuator MOTOR1 is unknown" in st.abort_reason
    finally:
        station.stop()


def test_control_station_stopping_during_a_hot_sequence_runs_the_abort_sequence(
    tmp_path: Path,
) -> None:
    station = rocket_station(tmp_path, operator_timeout_s=30.0)
    station.start()
    wait_acquiring(station)
    try:
        start(station, "burning")
        run_until_step(station, "burning", "oxidiser lead")
    finally:
        station.stop()
    r = station.control.runner
    assert r.state is S.SAFE and r.status().abort_by == "station"
    assert "stopping during a hot sequence" in r.status().abort_reason
    assert {n: acknowledged(station)[n] for n in SAFE_STATE} == SAFE_STATE
    assert emulator(station).valves == "100001000"  # vents open, everything else closed
