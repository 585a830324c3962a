"""Scenario files: the shipped ones load and check; bad ones are refused with precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigwatch.config.control import ControlConfig
from rigwatch.control.actuators import ActuatorSpec
from rigwatch.control.scenarios import load_scenario, load_scenarios
from rigwatch.devices.emulators.stm32 import FIRMWARE_KEYS
from rigwatch.devices.stm32.codec import SCENARIO_WORDS
from rigwatch.errors import ConfigError
from support.control_stand import rocket_control_config

ROOT = Path(__file__).resolve().parents[3]
SPECS = {
    "RELIEF1": ActuatorSpec("RELIEF1", "valve", "open"),
    "RELIEF2": ActuatorSpec("RELIEF2", "valve", "open"),
    "PURGE1": ActuatorSpec("PURGE1", "valve", "closed"),
    "PURGE2": ActuatorSpec("PURGE2", "valve", "closed"),
    **{n: ActuatorSpec(n, "valve", "closed", hot=True) for n in ("GOX1", "GOX2", "FUEL1", "FUEL2")},
    "IGNITION": ActuatorSpec("IGNITION", "switch", "off", hot=True),
}
GOOD_ABORT = """
[abort]
steps = [{ set = { GOX1 = "closed" } }, { set = { RELIEF1 = "open" } }]
"""


def write(tmp_path: Path, body: str, abort: str = GOOD_ABORT) -> Path:
    p = tmp_path / "s.toml"
    p.write_text('name = "t"\n' + body + abort, encoding="utf-8")
    return p


def load(p: Path) -> object:
    return load_scenario(p, SPECS, FIRMWARE_KEYS, SCENARIO_WORDS)


def test_control_shipped_scenarios_and_control_config_load() -> None:
    cfg = rocket_control_config()
    assert [b.type for b in cfg.actuators] == ["stm32_valves", "arduino_motors"]
    scenarios = load_scenarios(
        [ROOT / "configs" / "scenarios"], SPECS, FIRMWARE_KEYS, SCENARIO_WORDS
    )
    assert sorted(scenarios) == sorted(SCENARIO_WORDS)
    burning = scenarios["burning"]
    assert burning.safe_state()["GOX1"] == "closed" and burning.safe_state()["RELIEF1"] == "open"
    emergency = scenarios["emergency"].steps[0]
    assert (emergency.firmware, emergency.delay_s, emergency.timeout_s) == ("emergency", 0.2, 2.0)


def test_control_wait_until_without_timeout_can_never_finish(tmp_path: Path) -> None:
    p = write(tmp_path, '[[steps]]\nname = "w"\nwait_until = { channel = "P1", above = 3 }\n')
    with pytest.raises(
        ConfigError,
        match=r"steps\[0\].*'w' waits until P1 > 3 without timeout_s: it could never finish",
    ):
        load(p)


def test_control_missing_abort_sequence_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path, '[[steps]]\nset = { GOX1 = "open" }\n', abort="")
    with pytest.raises(ConfigError, match="scenario 't' has no \\[abort\\] sequence"):
        load(p)


def test_control_unknown_channel_and_actuator_are_named(tmp_path: Path) -> None:
    body = (
        '[[steps]]\nname = "open"\nset = { GOX3 = "open" }\n'
        '[[steps]]\nwait_until = { channel = "P99", above = 1 }\ntimeout_s = 1\n'
        '[[redlines]]\nname = "r"\nchannels = ["Q1"]\nmax = 1\n'
    )
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, body))
    msg = str(info.value)
    assert "step 1 'open': unknown actuator 'GOX3'" in msg
    assert "step 2 (wait_until): unknown channel 'P99'" in msg
    assert "redline 'r': unknown channel(s) Q1" in msg
    assert str(tmp_path / "s.toml") in msg


def test_control_bad_value_hot_without_arming_and_unsafed_actuator(tmp_path: Path) -> None:
    body = (
        "requires_arming = false\n"
        '[[steps]]\nset = { GOX1 = "open", IGNITION = "open", PURGE1 = "open" }\n'
    )
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, body))
    msg = str(info.value)
    assert "moves hot actuator GOX1 to open but requires_arming is false" in msg
    assert "switch IGNITION: 'open' is not a position; use 'on' or 'off'" in msg
    assert "abort sequence leaves IGNITION, PURGE1 as they are" in msg


@pytest.mark.parametrize(
    ("body", "abort", "match"),
    [
        ('[[steps]]\nwait_s = 1\nhold = "x"\n', GOOD_ABORT, "exactly one of"),
        ("[[steps]]\nwait_s = 1\ntimeout_s = 2\n", GOOD_ABORT, "timeout_s applies to"),
        ('[[steps]]\nwait_s = 1\nredlines = ["nope"]\n', GOOD_ABORT, "unknown redlines nope"),
        (
            "[[steps]]\nwait_s = 1\n",
            '[abort]\nsteps = [{ hold = "x" }]\n',
            "cannot wait for an operator",
        ),
        (
            '[[steps]]\nfirmware = "selfdestruct"\n',
            GOOD_ABORT,
            "firmware word 'selfdestruct' unknown",
        ),
        ('[[steps]]\nwait_s = 1\ncolour = "red"\n', GOOD_ABORT, "unknown key"),
    ],
)
def test_control_structural_errors(tmp_path: Path, body: str, abort: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load(write(tmp_path, body, abort))


def test_control_config_rejects_unknown_interlock_actuator() -> None:
    with pytest.raises(ValueError, match="interlock 'x' names unknown actuators GOX9"):
        ControlConfig.model_validate(
            {
                "actuators": [
                    {
                        "type": "gpio",
                        "name": "g",
                        "factory": "mock",
                        "valves": [{"name": "V1", "pin": 22}],
                    }
                ],
                "interlocks": [
                    {
                        "name": "x",
                        "when": {"V1": "open"},
                        "require": {"GOX9": "open"},
                        "reason": "r",
                    }
                ],
            }
        )
