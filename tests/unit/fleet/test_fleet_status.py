"""The status engine over time: hysteresis, delays, grey on the timer, black, backfill."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rigwatch.fleet.alerts import AlertManager, AlertQuery, AlertState, InMemoryAlertStore
from rigwatch.fleet.monitor import Monitor
from rigwatch.fleet.rules import (
    NO_DATA,
    NOT_ACCESSIBLE,
    AccessRule,
    Colour,
    MachineSettings,
    MetricRule,
    MetricStatus,
    RuleSet,
    load_rules,
)
from rigwatch.fleet.signals import Severity
from rigwatch.fleet.status import StatusEngine
from support.fleet_clock import at, message


def temperature_rules(hysteresis: float = 0.0, for_s: float = 0.0) -> RuleSet:
    return RuleSet(
        rules=[
            MetricRule(
                metric="temperature",
                condition="above",
                warning=60.0,
                critical=80.0,
                hysteresis=hysteresis,
                for_s=for_s,
            )
        ]
    )


def noisy_temperatures(n: int = 600, seed: int = 20240501) -> np.ndarray:
    """A slow drift through 60 degC with +-1 degC noise: hovering around the threshold."""
    rng = np.random.default_rng(seed)
    drift = 59.5 + 1.0 * np.sin(np.linspace(0, 3 * np.pi, n))
    return drift + rng.uniform(-1.0, 1.0, n)


def count_transitions(rules: RuleSet, values: np.ndarray) -> tuple[int, int]:
    monitor = Monitor(StatusEngine(rules), AlertManager(InMemoryAlertStore()))
    colours = []
    opened = 0
    for i, v in enumerate(values):
        out = monitor.on_message(message(i * 30, sensor_data={"temperature": float(v)}), at(i * 30))
        colours.append(out.evaluation.colour)
        opened += sum(1 for c in out.changes if c.kind.value == "opened")
    transitions = sum(1 for a, b in itertools.pairwise(colours) if a is not b)
    return transitions, opened


def test_fleet_hysteresis_prevents_flapping_on_a_noisy_signal() -> None:
    values = noisy_temperatures()
    crossings = int(np.sum(np.diff(values > 60.0) != 0))
    assert crossings > 50, "the test signal must cross the threshold often"
    flapping, opened_without = count_transitions(temperature_rules(hysteresis=0.0), values)
    steady, opened_with = count_transitions(temperature_rules(hysteresis=2.5), values)
    assert flapping == crossings  # without hysteresis every crossing changes the colour
    assert opened_without > 25
    # with a recovery threshold 2.5 degC below, the noise no longer toggles the colour: the
    # warning fires once and holds while the signal hovers around 60
    assert steady <= 4
    assert opened_with <= 2
    assert steady > 0


def test_fleet_duration_before_firing() -> None:
    engine = StatusEngine(temperature_rules(for_s=120.0))
    hot = {"temperature": 70.0}
    assert engine.on_message(message(0, sensor_data=hot), at(0)).colour is Colour.GREEN
    assert engine.on_message(message(60, sensor_data=hot), at(60)).colour is Colour.GREEN
    ev = engine.on_message(message(120, sensor_data=hot), at(120))
    assert ev.colour is Colour.YELLOW
    assert [s.severity for s in ev.signals] == [Severity.WARNING]
    # a reading back below breaks the run: the delay starts again
    engine.on_message(message(150, sensor_data={"temperature": 50.0}), at(150))
    assert engine.on_message(message(180, sensor_data=hot), at(180)).colour is Colour.GREEN
    assert engine.on_message(message(240, sensor_data=hot), at(240)).colour is Colour.GREEN


def test_fleet_duration_fires_on_the_timer_without_a_new_message() -> None:
    engine = StatusEngine(temperature_rules(for_s=120.0))
    engine.on_message(message(0, sensor_data={"temperature": 85.0}), at(0))
    assert engine.evaluate(at(60)) == []
    (ev,) = engine.evaluate(at(121))
    assert ev.colour is Colour.RED and ev.previous_colour is Colour.GREEN
    assert [s.severity for s in ev.signals] == [Severity.CRITICAL]


def test_fleet_silence_turns_grey_on_the_timer_with_no_message() -> None:
    rules = load_rules()
    monitor = Monitor(StatusEngine(rules), AlertManager(InMemoryAlertStore()))
    monitor.on_message(message(0), at(0))
    assert monitor.tick(at(1799)) == []
    assert monitor.engine.view("m1", at(1800)).colour is Colour.GREEN  # type: ignore[union-attr]
    (out,) = monitor.tick(at(1801))
    assert out.evaluation.colour is Colour.GREY
    assert "no fresh data" in out.evaluation.reason
    assert all(s is MetricStatus.UNKNOWN for s in out.evaluation.metrics.values())
    (change,) = out.changes
    assert change.alert.rule_id == NO_DATA and change.notify
    assert monitor.tick(at(3600)) == []  # grey once, not per tick
    back = monitor.on_message(message(3700), at(3700))
    assert back.evaluation.colour is Colour.GREEN
    assert [(c.kind.value, c.alert.rule_id) for c in back.changes] == [("cleared", NO_DATA)]


def test_fleet_never_heard_machine_is_grey_without_alert() -> None:
    engine = StatusEngine(load_rules())
    engine.add_machine("new")
    assert engine.view("new", at(0)).colour is Colour.GREY  # type: ignore[union-attr]
    assert engine.evaluate(at(10_000)) == []


def test_fleet_black_from_explicit_flag_kept_apart_from_grey() -> None:
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    out = monitor.on_message(
        message(0, sensor_data={}, accessible=False, access_error="COM1: no answer"), at(0)
    )
    assert out.evaluation.colour is Colour.BLACK
    assert out.evaluation.reason == "COM1: no answer"
    assert [(c.alert.rule_id, c.alert.severity) for c in out.changes] == [
        (NOT_ACCESSIBLE, Severity.CRITICAL)
    ]
    # an agent that keeps talking stays black on the timer, never grey
    monitor.on_message(message(1500, sensor_data={}, accessible=False), at(1500))
    assert monitor.tick(at(2000)) == []
    assert monitor.engine.view("m1", at(2000)).colour is Colour.BLACK  # type: ignore[union-attr]
    # silence turns it grey: grey means no data, black means "the agent says not accessible"
    (out,) = monitor.tick(at(1500 + 1801))
    assert out.evaluation.colour is Colour.GREY and out.evaluation.previous_colour is Colour.BLACK
    back = monitor.on_message(message(4000, accessible=True), at(4000))
    assert back.evaluation.colour is Colour.GREEN
    cleared = {c.alert.rule_id for c in back.changes if c.kind.value == "cleared"}
    assert cleared == {NOT_ACCESSIBLE, NO_DATA}


def test_fleet_black_from_opt_in_speed_zero_rule() -> None:
    rules = load_rules()
    normal = {"temperature": 40.0, "pressure": 2.0, "speed": 0.0, "disk_volume": 50.0}
    off = StatusEngine(rules)
    assert off.on_message(message(0, sensor_data=normal), at(0)).colour is Colour.RED
    opted = rules.model_copy(
        update={"not_accessible_when": [AccessRule(metric="speed", equals=0.0)]}
    )
    engine = StatusEngine(opted)
    ev = engine.on_message(message(0, sensor_data=normal), at(0))
    assert ev.colour is Colour.BLACK
    # black suspends threshold alerts on values that mean nothing: no speed alert
    assert {s.rule_id for s in ev.signals} == {NOT_ACCESSIBLE}
    ev = engine.on_message(message(30, sensor_data={**normal, "speed": 1450.0}), at(30))
    assert ev.colour is Colour.GREEN


def test_fleet_backfill_is_stored_but_opens_and_clears_nothing() -> None:
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    store = monitor.alerts.store
    monitor.on_message(message(1000, sensor_data={"temperature": 90.0}), at(1000))
    assert monitor.engine.view("m1", at(1000)).colour is Colour.RED  # type: ignore[union-attr]
    # older than the newest seen: normal values would clear the alert if they counted
    old = monitor.on_message(message(500, sensor_data={"temperature": 20.0}), at(1010))
    assert old.store and old.backfill and old.changes == ()
    assert "not newer" in old.evaluation.reason
    # flagged by the agent, even if newer, with a value that would open a pressure alert
    flagged = monitor.on_message(
        message(1020, sensor_data={"pressure": 9.0}, backfill=True), at(1020)
    )
    assert flagged.store and flagged.backfill and flagged.changes == ()
    # arriving long after its timestamp (an outbox drained after an outage)
    late = monitor.on_message(message(1100, sensor_data={"temperature": 20.0}), at(2000))
    assert late.store and late.backfill and late.changes == ()
    assert monitor.engine.view("m1", at(2000)).colour is Colour.RED  # type: ignore[union-attr]
    (alert,) = store.query(AlertQuery())
    assert alert.rule_id == "temperature" and alert.state is AlertState.ACTIVE
    assert alert.count == 1  # backfill is not a repeat either


def test_fleet_failed_read_is_unknown_never_a_value() -> None:
    engine = StatusEngine(load_rules())
    ev = engine.on_message(
        message(
            0,
            sensor_data={"temperature": None, "pressure": 2.0, "speed": 1450.0},
            sensor_errors={"temperature": "no answer to TEMP?"},
        ),
        at(0),
    )
    assert ev.metrics["temperature"] is MetricStatus.UNKNOWN
    assert ev.metrics["pressure"] is MetricStatus.OK
    assert ev.colour is Colour.GREEN
    view = engine.view("m1", at(0))
    assert view is not None and view.errors == {"temperature": "no answer to TEMP?"}


def test_fleet_metric_goes_unknown_when_stale() -> None:
    rules = RuleSet(
        rules=[MetricRule(metric="temperature", condition="above", critical=80.0, stale_after_s=60)]
    )
    engine = StatusEngine(rules)
    engine.on_message(message(0, sensor_data={"temperature": 90.0}), at(0))
    engine.on_message(message(30, sensor_data={"pressure": 1.0}), at(30))
    assert engine.view("m1", at(60)).colour is Colour.RED  # type: ignore[union-attr]
    (ev,) = engine.evaluate(at(61))
    assert ev.metrics["temperature"] is MetricStatus.UNKNOWN and ev.colour is Colour.GREEN


def test_fleet_machine_alarms_become_alerts_and_colour() -> None:
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    out = monitor.on_message(
        message(
            0,
            alarms=[
                {"code": "E104", "message": "ladle", "severity": "critical"},
                {"code": "I1", "severity": "info"},
            ],
        ),
        at(0),
    )
    assert out.evaluation.colour is Colour.RED
    assert [c.alert.rule_id for c in out.changes] == ["alarm.E104"]
    out = monitor.on_message(message(30), at(30))
    assert out.evaluation.colour is Colour.GREEN
    assert [(c.kind.value, c.alert.rule_id) for c in out.changes] == [("cleared", "alarm.E104")]


@pytest.mark.parametrize("setting", ["off"])
def test_fleet_machine_level_alerts_can_be_switched_off(setting: str) -> None:
    rules = RuleSet(
        machine=MachineSettings(no_data_alert=setting, not_accessible_alert=setting)  # type: ignore[arg-type]
    )
    engine = StatusEngine(rules)
    ev = engine.on_message(message(0, sensor_data={}, accessible=False), at(0))
    assert ev.colour is Colour.BLACK and ev.signals == ()
    (ev,) = engine.evaluate(at(5000))
    assert ev.colour is Colour.GREY and ev.signals == ()
