"""A small physical model of the test stand's feed lines and chamber, driven by valve states.

Used by the STM32 emulator so that opening a valve moves the pressures and the thrust the way
a stand does: each quantity follows a first-order lag towards the value the valve states call
for, ``x(t + dt) = x + (x_target - x) * (1 - exp(-dt / tau))`` (exact discretisation of
``tau dx/dt = x_target - x`` for a target held constant over ``dt``).

Plumbing assumed (documented in ``docs/scenarios.md``; the firmware never wrote it down):

- oxidiser: tank -> GOX1 (isolation) -> feed line (pressure ``P1``) -> GOX2 (run) -> chamber;
  RELIEF1 vents the oxidiser line, PURGE1 feeds nitrogen into it;
- fuel: tank -> FUEL1 -> feed line (``P2``) -> FUEL2 -> chamber; RELIEF2 vents it, PURGE2
  feeds nitrogen into it;
- the chamber pressure is read by three redundant transducers ``P3``, ``P4``, ``P5``; the
  engine burns while both propellants flow and stays lit once IGNITION has fired with both
  flowing, until either flow stops;
- thrust ``F = C_F * p_c * A_t`` with ``C_F * A_t`` chosen so that 20 bar gives 1 500 N
  (the level today's stand shows).

Pressures are gauge, in bar; thrust in newtons. Constants are plausible for a small GOX
stand, not measured on one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

TANK_BAR = 40.0
"""Oxidiser and fuel supply pressure (regulated), bar gauge."""
PURGE_BAR = 10.0
"""Nitrogen purge supply pressure, bar gauge."""
FLOWING_LINE_FRACTION = 0.75
"""Feed-line pressure while its run valve is open, as a fraction of the supply (line losses)."""
COLD_FLOW_CHAMBER_BAR = 2.0
"""Chamber pressure of a propellant (or purge) flowing unlit."""
BURNING_CHAMBER_BAR = 20.0
"""Chamber pressure of a steady burn."""
THRUST_N_PER_BAR = 75.0
"""``C_F * A_t`` in N/bar: 1 500 N at 20 bar."""
LINE_TAU_S = 0.05
"""Time constant of a feed line's pressure."""
CHAMBER_TAU_S = 0.10
"""Time constant of the chamber pressure (and thrust)."""


@dataclass
class PlantState:
    """The model's outputs: ``P1`` oxidiser line, ``P2`` fuel line, ``P3`` chamber (bar gauge),
    ``THRUST`` (N), and whether the engine is lit."""

    ox_line_bar: float = 0.0
    fuel_line_bar: float = 0.0
    chamber_bar: float = 0.0
    thrust_n: float = 0.0
    lit: bool = False


def _lag(x: float, target: float, dt_s: float, tau_s: float) -> float:
    return x + (target - x) * (1.0 - math.exp(-dt_s / tau_s))


def _line_target(current: float, isolation: bool, run: bool, relief: bool, purge: bool) -> float:
    """Target pressure of one feed line for its four valves."""
    if isolation:
        supply = TANK_BAR
    elif purge:
        supply = PURGE_BAR
    else:
        supply = 0.0
    if supply > 0.0:
        if relief:  # a vent open against the supply: the line drops to a fraction of it
            return 0.2 * supply
        return supply * (FLOWING_LINE_FRACTION if run else 1.0)
    if relief or run:  # nothing feeds it: it empties through whatever is open
        return 0.0
    return current  # closed at both ends: it holds its pressure


class StandPlant:
    """The stand's pressures and thrust as functions of the valve outputs (see module doc).

    Valve states are given by name (``{"GOX1": True, ...}``); names not given are closed.
    Not thread-safe: the emulator calls it under its own lock.
    """

    def __init__(self) -> None:
        self.state = PlantState()
        self._valves: dict[str, bool] = {}
        self.chamber_fault_bar = 0.0
        """Added to the chamber's target while lit: a fault to inject (a nozzle blocking),
        for tests of redlines."""

    def set_valves(self, valves: Mapping[str, bool]) -> None:
        """The outputs from now on (energised = open for every valve; IGNITION fires)."""
        self._valves = dict(valves)

    def _on(self, name: str) -> bool:
        return bool(self._valves.get(name, False))

    def advance(self, dt_s: float) -> PlantState:
        """Move the model ``dt_s`` seconds forward and return its state."""
        if dt_s <= 0:
            return self.state
        s = self.state
        ox_flow = self._on("GOX2") and (self._on("GOX1") or self._on("PURGE1"))
        fuel_flow = self._on("FUEL2") and (self._on("FUEL1") or self._on("PURGE2"))
        ox_prop = ox_flow and self._on("GOX1")
        fuel_prop = fuel_flow and self._on("FUEL1")
        if ox_prop and fuel_prop and self._on("IGNITION"):
            s.lit = True
        if not (ox_prop and fuel_prop):
            s.lit = False
        s.ox_line_bar = _lag(
            s.ox_line_bar,
            _line_target(
                s.ox_line_bar,
                self._on("GOX1"),
                self._on("GOX2"),
                self._on("RELIEF1"),
                self._on("PURGE1"),
            ),
            dt_s,
            LINE_TAU_S,
        )
        s.fuel_line_bar = _lag(
            s.fuel_line_bar,
            _line_target(
                s.fuel_line_bar,
                self._on("FUEL1"),
                self._on("FUEL2"),
                self._on("RELIEF2"),
                self._on("PURGE2"),
            ),
            dt_s,
            LINE_TAU_S,
        )
        if s.lit:
            chamber_target = BURNING_CHAMBER_BAR + self.chamber_fault_bar
        elif ox_flow or fuel_flow:
            chamber_target = COLD_FLOW_CHAMBER_BAR
        else:
            chamber_target = 0.0
        s.chamber_bar = _lag(s.chamber_bar, chamber_target, dt_s, CHAMBER_TAU_S)
        thrust_target = THRUST_N_PER_BAR * s.chamber_bar if s.lit else 0.0
        s.thrust_n = _lag(s.thrust_n, thrust_target, dt_s, CHAMBER_TAU_S)
        return s

    def outputs(self) -> dict[str, float]:
        """``{"P1", "P2", "P3", "P4", "P5", "THRUST"}`` of the current state."""
        s = self.state
        return {
            "P1": s.ox_line_bar,
            "P2": s.fuel_line_bar,
            "P3": s.chamber_bar,
            "P4": s.chamber_bar,
            "P5": s.chamber_bar,
            "THRUST": s.thrust_n,
        }
