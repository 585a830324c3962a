"""Rule sets: TOML loading and validation, levels with hysteresis, today's colours."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigwatch.errors import RulesError
from rigwatch.fleet.rules import (
    DEFAULT_RULES_PATH,
    Colour,
    Level,
    MetricRule,
    RuleSet,
    load_rules,
    parse_rules,
)
from rigwatch.fleet.status import StatusEngine
from support.fleet_clock import at, message

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_fleet_default_rule_set_loads_with_todays_thresholds() -> None:
    assert DEFAULT_RULES_PATH == CONFIGS / "fleet_rules.toml"
    rules = load_rules()
    by_id = {r.rule_id: r for r in rules.rules}
    assert set(by_id) == {"temperature", "pressure", "disk_volume", "speed"}
    assert (by_id["temperature"].warning, by_id["temperature"].critical) == (60.0, 80.0)
    assert (by_id["pressure"].warning, by_id["pressure"].critical) == (3.0, 5.0)
    assert (by_id["disk_volume"].warning, by_id["disk_volume"].critical) == (85.0, 95.0)
    assert by_id["speed"].warning == (500.0, 2000.0)
    assert by_id["speed"].critical == (200.0, 2500.0)
    assert rules.machine.grey_after_s == 1800.0
    assert [a.enabled for a in rules.not_accessible_when] == [False]


def todays_status(sensor: dict[str, float]) -> str:
    """The if/else of today's server, in its order (seed 004)."""
    temperature = sensor.get("temperature", 0)
    pressure = sensor.get("pressure", 0)
    speed = sensor.get("speed", 0)
    if temperature > 80 or pressure > 5.0:
        return "red"
    if temperature > 60 or pressure > 3.0 or speed < 500:
        return "yellow"
    if speed == 0:  # unreachable
        return "black"
    return "green"


NORMAL = {"temperature": 42.5, "pressure": 2.1, "speed": 1450.0, "disk_volume": 78.5}
EXAMPLES = [
    ({}, "green"),
    ({"temperature": 60.0}, "green"),
    ({"temperature": 60.5}, "yellow"),
    ({"temperature": 80.0}, "yellow"),
    ({"temperature": 80.5}, "red"),
    ({"pressure": 3.0}, "green"),
    ({"pressure": 3.1}, "yellow"),
    ({"pressure": 5.01}, "red"),
    ({"speed": 499.0}, "yellow"),
    ({"speed": 500.0}, "green"),
    ({"temperature": 85.0, "speed": 300.0}, "red"),
    ({"pressure": 4.0, "temperature": 70.0}, "yellow"),
]


@pytest.mark.parametrize(("change", "expected"), EXAMPLES)
def test_fleet_default_rules_reproduce_todays_colours(
    change: dict[str, float], expected: str
) -> None:
    sensors = {**NORMAL, **change}
    assert todays_status(sensors) == expected  # the examples are today's behaviour
    engine = StatusEngine(load_rules())
    ev = engine.on_message(message(0, sensor_data=sensors), at(0))
    assert ev.colour.value == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # where today's rules had no opinion (disk, speed above 2000, speed band critical)
        ({"disk_volume": 85.5}, Colour.YELLOW),
        ({"disk_volume": 95.5}, Colour.RED),
        ({"speed": 2100.0}, Colour.YELLOW),
        ({"speed": 2600.0}, Colour.RED),
        ({"speed": 150.0}, Colour.RED),
        ({"speed": 0.0}, Colour.RED),  # standing still is not "not accessible" by default
    ],
)
def test_fleet_default_rules_cover_what_today_did_not(
    change: dict[str, float], expected: Colour
) -> None:
    engine = StatusEngine(load_rules())
    assert engine.on_message(message(0, sensor_data={**NORMAL, **change}), at(0)).colour is expected


def test_fleet_default_rules_reach_black_todays_unreachable_colour() -> None:
    engine = StatusEngine(load_rules())
    ev = engine.on_message(message(0, sensor_data={}, accessible=False), at(0))
    assert ev.colour is Colour.BLACK
    # and with today's speed == 0 convention switched on (one key in the file)
    text = DEFAULT_RULES_PATH.read_text().replace("enabled = false", "enabled = true")
    engine = StatusEngine(parse_rules(text))
    ev = engine.on_message(message(0, sensor_data={**NORMAL, "speed": 0.0}), at(0))
    assert ev.colour is Colour.BLACK
    assert "speed == 0" in ev.reason


def test_fleet_hysteresis_levels_of_an_above_rule() -> None:
    rule = MetricRule(metric="t", condition="above", warning=60, critical=80, hysteresis=2).levels()
    assert rule.raw_level(60.0) == Level.OK and rule.raw_level(60.1) == Level.WARNING
    assert rule.raw_level(80.1) == Level.CRITICAL
    assert rule.recovered(58.0, Level.WARNING) and not rule.recovered(58.1, Level.WARNING)
    assert rule.recovered(78.0, Level.CRITICAL) and not rule.recovered(79.0, Level.CRITICAL)


def test_fleet_band_and_below_rules() -> None:
    band_rule = MetricRule(metric="s", condition="outside", warning=[500, 2000], hysteresis=25)
    band = band_rule.levels()
    assert band.raw_level(499.0) == Level.WARNING and band.raw_level(2001.0) == Level.WARNING
    assert band_rule.recovery(Level.WARNING) == (525.0, 1975.0)
    assert band.recovered(525.0, Level.WARNING) and not band.recovered(524.9, Level.WARNING)
    below = MetricRule(
        metric="p", condition="below", critical=1.0, warning_recovery=None, critical_recovery=1.5
    ).levels()
    assert below.raw_level(0.9) == Level.CRITICAL and below.raw_level(1.0) == Level.OK
    assert not below.recovered(1.4, Level.CRITICAL) and below.recovered(1.5, Level.CRITICAL)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[[rules]]\nmetric="t"\ncondition="above"\n', "rules[0]"),
        ('[[rules]]\nmetric="t"\ncondition="above"\nwarning=[1.0,2.0]\n', "rules[0]"),
        ('[[rules]]\nmetric="t"\ncondition="outside"\nwarning=5.0\n', "rules[0]"),
        ('[[rules]]\nmetric="t"\ncondition="outside"\nwarning=[5.0,1.0]\n', "rules[0]"),
        ('[[rules]]\nmetric="t"\ncondition="above"\nwarning=80.0\ncritical=60.0\n', "rules[0]"),
        (
            '[[rules]]\nmetric="t"\ncondition="above"\nwarning=60.0\nwarning_recovery=61.0\n',
            "rules[0]",
        ),
        (
            '[[rules]]\nmetric="s"\ncondition="outside"\nwarning=[500.0,520.0]\nhysteresis=20.0\n',
            "rules[0]",
        ),
        (
            '[[rules]]\nmetric="t"\ncondition="above"\nwarning=1.0\nhysteresis=-1.0\n',
            "rules[0].hysteresis",
        ),
        ('[[rules]]\nmetric="t"\ncondition="over"\nwarning=1.0\n', "rules[0].condition"),
        ('[[rules]]\nmetric="t"\ncondition="above"\nwarnign=1.0\n', "rules[0].warnign"),
        ("[machine]\ngrey_after=5\n", "machine.grey_after"),
        (
            '[[rules]]\nmetric="t"\ncondition="above"\nwarning=1.0\n'
            '[[rules]]\nmetric="t"\ncondition="above"\ncritical=2.0\n',
            "(top level)",
        ),
        ('[[rules]]\nid="no_data"\nmetric="t"\ncondition="above"\nwarning=1.0\n', "(top level)"),
        ("rules = [", "not valid TOML"),
    ],
)
def test_fleet_bad_rule_sets_refused_naming_the_key(toml: str, key: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(toml, "x.toml")
    assert f"x.toml: {key}" in str(info.value) or key in str(info.value)


def test_fleet_missing_rules_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nothere\.toml"):
        load_rules(tmp_path / "nothere.toml")


def test_fleet_empty_rule_set_is_valid() -> None:
    assert RuleSet().rules == []
