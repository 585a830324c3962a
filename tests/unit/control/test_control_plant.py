"""The emulator's stand model: first-order lags driven by valve states."""

from __future__ import annotations

import math

import pytest

from rigwatch.devices.emulators.stand_plant import LINE_TAU_S, StandPlant


def run(plant: StandPlant, seconds: float, dt: float = 0.001) -> None:
    for _ in range(round(seconds / dt)):
        plant.advance(dt)


def test_control_plant_line_pressure_is_a_first_order_lag() -> None:
    plant = StandPlant()
    plant.set_valves({"GOX1": True})
    run(plant, LINE_TAU_S)
    assert plant.state.ox_line_bar == pytest.approx(40.0 * (1 - math.exp(-1)), rel=1e-6)
    run(plant, 10 * LINE_TAU_S)
    assert plant.state.ox_line_bar == pytest.approx(40.0, rel=1e-3)
    plant.set_valves({})  # closed at both ends: holds
    run(plant, 0.5)
    assert plant.state.ox_line_bar == pytest.approx(40.0, rel=1e-3)
    plant.set_valves({"RELIEF1": True})
    run(plant, 1.0)
    assert plant.state.ox_line_bar < 0.01


def test_control_plant_lights_only_with_both_propellants_and_ignition() -> None:
    plant = StandPlant()
    flowing = {"GOX1": True, "GOX2": True, "FUEL1": True, "FUEL2": True}
    plant.set_valves(flowing)
    run(plant, 1.0)
    assert not plant.state.lit and plant.state.chamber_bar == pytest.approx(2.0, rel=1e-3)
    plant.set_valves({**flowing, "IGNITION": True})
    run(plant, 0.01)
    plant.set_valves(flowing)  # igniter off: stays lit
    run(plant, 1.5)
    out = plant.outputs()
    assert plant.state.lit and out["P3"] == pytest.approx(20.0, rel=1e-3)
    assert out["THRUST"] == pytest.approx(1500.0, rel=1e-2)
    plant.set_valves({"GOX1": True, "GOX2": True})  # fuel off: flame out
    run(plant, 1.5)
    assert not plant.state.lit and plant.outputs()["THRUST"] < 1.0
