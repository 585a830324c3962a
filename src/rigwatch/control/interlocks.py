"""Interlocks: rules that refuse a command in a state where it is unsafe.

Each rule (:class:`~rigwatch.config.control.InterlockConfig`) names the commands it guards
(``when``: an actuator set to a value), what must already be true (``require``: actuators
*acknowledged* in given positions; an unknown or merely commanded position does not count) and
optionally the runner states in which the command is allowed. A built-in rule guards hot
actuators: moving one away from its safe position needs the runner armed, running or holding.

The abort (safing) sequence is never refused by an interlock: it moves towards the safe state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rigwatch.config.control import InterlockConfig
from rigwatch.control.actuators import ActuatorReading, ActuatorSpec, Value
from rigwatch.control.states import HOT_STATES, RunnerState

ARMING_RULE = "arming"
"""Name of the built-in rule: hot actuators move away from safe only when armed."""


@dataclass(frozen=True)
class Refusal:
    """Why a command was refused.

    Attributes:
        interlock: the rule's name (:data:`ARMING_RULE` for the built-in one).
        message: what was refused and why, naming the actuators and their states.
    """

    interlock: str
    message: str


def _same(a: Value | None, b: Value | str | float) -> bool:
    if a is None:
        return False
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return float(a) == float(b)


class Interlocks:
    """The rules of a station.

    Args:
        rules: the configured rules.
        specs: every actuator's spec by name (for the arming rule).
    """

    def __init__(self, rules: Sequence[InterlockConfig], specs: Mapping[str, ActuatorSpec]) -> None:
        self.rules = tuple(rules)
        self.specs = dict(specs)

    def check(
        self,
        changes: Mapping[str, Value],
        readings: Mapping[str, ActuatorReading],
        state: RunnerState,
    ) -> Refusal | None:
        """The first rule refusing ``changes`` (normalised values), or None when allowed.

        Args:
            readings: every actuator's current reading.
            state: the runner's state.
        """
        if state not in HOT_STATES:
            hot = [
                f"{n} -> {v}"
                for n, v in changes.items()
                if self.specs[n].hot and not _same(v, self.specs[n].safe or "")
            ]
            if hot:
                return Refusal(
                    ARMING_RULE,
                    f"{', '.join(hot)}: hot actuator(s) leave their safe position only when the "
                    f"runner is armed (it is {state.value}); arm first",
                )
        for rule in self.rules:
            guarded = [n for n, v in rule.when.items() if n in changes and _same(changes[n], v)]
            if not guarded:
                continue
            what = ", ".join(f"{n} -> {changes[n]}" for n in guarded)
            if rule.states is not None and state.value not in rule.states:
                return Refusal(
                    rule.name,
                    f"{what} refused by interlock {rule.name!r}: allowed only while "
                    f"{' or '.join(rule.states)} (runner is {state.value}): {rule.reason}",
                )
            unmet = []
            for n, want in rule.require.items():
                r = readings.get(n)
                if r is None or not _same(r.acknowledged, want):
                    have = "unknown" if r is None or r.acknowledged is None else r.acknowledged
                    unmet.append(f"{n} is {have} (needs {want})")
            if unmet:
                return Refusal(
                    rule.name,
                    f"{what} refused by interlock {rule.name!r}: {'; '.join(unmet)}: {rule.reason}",
                )
        return None
