"""The control part against the STM32 firmware emulator on a pty (valve bank sharing the stm32
driver's port) and the Arduino emulator: acknowledgements, refusals, a device going silent,
a redline trip during `burning`, the board's emergency word."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rigwatch.control.states import RunnerState as S
from rigwatch.errors import ActuatorFault, CommandRefused
from support.control_stand import Stand, make_stand


@pytest.fixture
def stand(tmp_path: Path) -> Iterator[Stand]:
    s = make_stand(tmp_path)
    yield s
    if s.runner.state in (S.RUNNING, S.HOLDING):
        s.runner.abort("end of test", "test")
    s.runner.wait_state({S.SAFE, S.DONE, S.IDLE, S.ARMED}, 10)
    s.close()


def drain(q: object) -> list[str]:
    out = []
    while not q.empty():  # type: ignore[attr-defined]
        out.append(q.get_nowait())  # type: ignore[attr-defined]
    return out


def test_control_valve_command_is_acknowledged_while_sensors_stream(stand: Stand) -> None:
    rows_before = stand.rows_fed[0]
    st = stand.commander.command({"PURGE1": "open", "PURGE2": 1}, who="ana", source="api")
    st.wait(5)
    assert st.reply == "ACK: Valves:001100000"
    assert stand.emulator.valves == "001100000"
    r = stand.commander.read()
    assert (r["PURGE1"].acknowledged, r["PURGE1"].status) == ("open", "acknowledged")
    assert r["GOX1"].acknowledged == "closed"  # the whole word was acknowledged
    # the sensor stream kept flowing through the same port
    stand.values.wait_change(stand.values.version, 2.0)
    assert stand.rows_fed[0] > rows_before
    row = stand.audit.query(action="set")[-1]
    assert (row.who, row.result, row.target) == ("ana", "ok", "PURGE1, PURGE2")


def test_control_refused_command_changes_nothing(stand: Stand) -> None:
    stand.runner.arm("ana")
    drain(stand.emulator.commands)
    before = stand.commander.read()
    with pytest.raises(CommandRefused, match=r"interlock 'ignition-needs-oxidiser'.*GOX1 is "):
        stand.commander.command({"IGNITION": "on"}, who="ana", source="api")
    with pytest.raises(CommandRefused, match="unknown actuator"):
        stand.commander.command({"GOX3": "open"}, who="ana", source="api")
    stand.runner.disarm("ana")
    with pytest.raises(CommandRefused, match="arm first"):
        stand.commander.command({"FUEL1": "open"}, who="ana", source="api")
    assert stand.commander.read() == before  # no state changed, not even to "pending"
    # a probe command proves the board is answering, and that nothing was sent before it
    stand.commander.command({"PURGE1": "closed"}, who="probe", source="api").wait(5)
    assert drain(stand.emulator.commands) == ["Valves:000000000"]
    refused = stand.audit.query(result="refused")
    assert [r.interlock for r in refused] == ["ignition-needs-oxidiser", "", "arming"]


def test_control_board_refusal_and_silence(stand: Stand) -> None:
    bank = stand.commander.backends[0]
    stand.emulator.refusing = "safe mode"
    st = stand.commander.command({"PURGE1": "open"}, who="ana", source="api")
    with pytest.raises(ActuatorFault, match="refused Valves:001000000: NACK: safe mode"):
        st.wait(5)
    assert bank.read()["PURGE1"].status == "refused"
    stand.emulator.refusing = None
    stand.emulator.silent = True
    drain(stand.emulator.commands)
    st = stand.commander.command({"PURGE2": "open"}, who="ana", source="api")
    with pytest.raises(ActuatorFault, match=r"no reply .* \(3 attempts\): valve states unknown"):
        st.wait(10)
    assert drain(stand.emulator.commands) == ["Valves:001100000"] * 3  # 2 retries
    readings = stand.commander.read()
    assert all(
        readings[n].status == "unknown" and readings[n].acknowledged is None
        for n in ("RELIEF1", "GOX1", "IGNITION")
    )
    assert stand.audit.query(action="set")[-1].result == "failed"


def test_control_redline_trip_during_burning_puts_the_stand_in_its_safe_state(
    stand: Stand,
) -> None:
    r = stand.runner
    r.arm("ana")
    r.start("burning", "ana")
    steady = r.scenarios["burning"].steps.index(
        next(s for s in r.scenarios["burning"].steps if s.name == "steady burn")
    )
    while r.status().step_index < steady:  # ignition done, steady burn under redlines
        assert r.wait_state({S.SAFE, S.DONE}, 0.05) is S.RUNNING, r.status()
    log_at_steady = len(stand.emulator.valve_log)
    stand.emulator.plant.chamber_fault_bar = 15.0  # the nozzle blocks: 35 bar
    assert r.wait_state(S.SAFE, 10) is S.SAFE
    status = r.status()
    assert status.redline == "chamber-over" and status.safing_failures == ()
    # the abort sequence's words, in the scenario's order
    expected = [
        "010000100",  # fuel and igniter off
        "000000000",  # oxidiser off
        "100001000",  # vents open
        "101101000",  # purge
        "100001000",  # purge off
    ]
    assert stand.emulator.valve_log[log_at_steady:] == expected
    safe = r.scenarios["burning"].safe_state()
    readings = stand.commander.read()
    assert {n: readings[n].acknowledged for n in safe} == safe
    aborts = stand.audit.query(action="abort")
    assert aborts[-1].redline == "chamber-over" and "median(P3, P4, P5) > 25" in aborts[-1].reason
    first_safing = [e for e in stand.audit.query(action="set") if e.redline == "chamber-over"]
    assert first_safing[0].target == "IGNITION, FUEL1, FUEL2"
    assert "tripped" in first_safing[0].reason


def test_control_emergency_word_keeps_todays_timing(stand: Stand) -> None:
    drain(stand.emulator.commands)
    stand.runner.start("emergency", "ana")
    assert stand.runner.wait_state({S.DONE, S.SAFE}, 10) is S.DONE
    assert drain(stand.emulator.commands)[0] == "emergency"
    fw = stand.audit.query(action="firmware")[-1]
    assert (fw.target, fw.result, fw.reason) == ("emergency", "ok", "ACK: emergency")
    readings = stand.commander.read()
    assert readings["GOX1"].acknowledged == "closed" and readings["RELIEF1"].acknowledged == "open"


def test_control_step_motor_move_limits_and_silence(stand: Stand) -> None:
    st = stand.commander.command({"MOTOR1": 45.5}, who="ana", source="api")
    st.wait(5)
    assert "Yeni Pozisyon" in st.reply and stand.arduino.angles == {1: 45.5}
    assert stand.arduino.commands.get(timeout=1) == "1:45.5"
    with pytest.raises(CommandRefused, match=r"MOTOR1: 200 deg is out of range \[0, 180\]"):
        stand.commander.command({"MOTOR1": 200}, who="ana", source="api")
    assert stand.arduino.commands.empty()
    motors = stand.commander.backends[1]
    motors.config = motors.config.model_copy(update={"reply_timeout_s": 0.2, "retries": 0})
    stand.arduino.silent = True
    with pytest.raises(ActuatorFault, match=r"not acknowledged within 0\.2 s .*position unknown"):
        stand.commander.command({"MOTOR1": 90}, who="ana", source="api").wait(5)
    assert stand.commander.read()["MOTOR1"].status == "unknown"
