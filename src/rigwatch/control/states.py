"""The states of the scenario runner (the table of transitions is in
:mod:`rigwatch.control.runner`)."""

from __future__ import annotations

from enum import StrEnum


class RunnerState(StrEnum):
    """Where the scenario runner is.

    - ``idle``: nothing selected, nothing hot allowed;
    - ``armed``: an operator armed the stand: hot commands and hot scenarios may start;
    - ``running``: a scenario's steps are executing;
    - ``holding``: a scenario waits for the operator (a hold point or a hold request);
    - ``aborting``: the abort (safing) sequence is executing;
    - ``safe``: the abort sequence finished; the stand is in the scenario's safe state;
    - ``done``: a scenario completed all its steps.
    """

    IDLE = "idle"
    ARMED = "armed"
    RUNNING = "running"
    HOLDING = "holding"
    ABORTING = "aborting"
    SAFE = "safe"
    DONE = "done"


HOT_STATES = frozenset({RunnerState.ARMED, RunnerState.RUNNING, RunnerState.HOLDING})
"""States in which a hot actuator may be moved away from its safe position."""
