"""The one path of every actuator command: names and values checked, interlocks applied,
the command dispatched to its backends in one transaction each, the outcome audited.

A refused command raises :class:`~rigwatch.errors.CommandRefused` before anything is sent:
nothing moves. A command naming no actuator, an unknown one or a value it cannot take raises
its subclass :class:`~rigwatch.errors.InvalidCommand`; an interlock or the arming
rule raises :class:`~rigwatch.errors.CommandRefused` itself. Either is audited (one row) and
counted once, here: callers neither check a command first nor record its refusal again.

An accepted command returns a :class:`~rigwatch.control.actuators.Status` that completes when
every backend involved acknowledged; its outcome (``ok`` or ``failed`` with the device's
reason) is audited then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rigwatch.control.actuators import (
    ActuatorBackend,
    ActuatorReading,
    ActuatorSpec,
    Status,
    Value,
    all_of,
)
from rigwatch.control.audit import AuditLog, describe_changes, record_refusal
from rigwatch.control.interlocks import Interlocks
from rigwatch.control.states import RunnerState
from rigwatch.counters import Counters
from rigwatch.errors import CommandRefused, ConfigError, InvalidCommand

log = logging.getLogger(__name__)


class Commander:
    """Routes commands to backends (see the module docstring).

    Args:
        backends: every actuator backend of the station.
        interlocks: the rules; None: only the built-in arming rule.
        audit: where commands are recorded; None records nothing (tests of parts).
        state: returns the runner's state (``idle`` when there is no runner).
        counters: refused commands are counted as ``control.refused``.

    Raises:
        ConfigError: two backends name the same actuator.
    """

    def __init__(
        self,
        backends: Sequence[ActuatorBackend],
        interlocks: Interlocks | None = None,
        audit: AuditLog | None = None,
        state: Callable[[], RunnerState] | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.backends = tuple(backends)
        self._owner: dict[str, ActuatorBackend] = {}
        self.specs: dict[str, ActuatorSpec] = {}
        for b in self.backends:
            for spec in b.specs:
                if spec.name in self.specs:
                    raise ConfigError(f"actuator {spec.name!r} is defined twice")
                self._owner[spec.name] = b
                self.specs[spec.name] = spec
        self.interlocks = interlocks if interlocks is not None else Interlocks([], self.specs)
        self.audit = audit
        self.state = state or (lambda: RunnerState.IDLE)
        self.counters = counters if counters is not None else Counters()

    def read(self) -> dict[str, ActuatorReading]:
        """Every actuator's reading, backend by backend."""
        out: dict[str, ActuatorReading] = {}
        for b in self.backends:
            out.update(b.read())
        return out

    def normalise(self, changes: Mapping[str, Any]) -> dict[str, Value]:
        """``changes`` with canonical values.

        Raises:
            InvalidCommand: empty, an unknown actuator or a value it cannot take.
        """
        if not changes:
            raise InvalidCommand("the command names no actuator")
        unknown = [n for n in changes if n not in self.specs]
        if unknown:
            raise InvalidCommand(
                f"unknown actuator(s) {', '.join(map(repr, unknown))}; actuators: "
                f"{', '.join(self.specs)}"
            )
        return {n: self.specs[n].normalise(v) for n, v in changes.items()}

    def command(
        self,
        changes: Mapping[str, Any],
        *,
        who: str,
        source: str,
        scenario: str = "",
        redline: str = "",
        safing: bool = False,
        reason: str = "",
    ) -> Status:
        """Check and send ``{actuator: value}``.

        Args:
            who: the operator or ``scenario:<name>``.
            source: ``api``, ``ws``, ``scenario``, ``abort``...
            safing: part of an abort sequence: interlocks do not apply.
            reason: why (audited with the outcome).

        Returns:
            A status completing when every backend involved acknowledged.

        Raises:
            InvalidCommand: no actuator, an unknown one or a value it cannot take (audited,
                counted; nothing sent).
            CommandRefused: refused by an interlock or the arming rule (audited, counted;
                nothing sent).
        """
        try:
            values = self.normalise(changes)
        except InvalidCommand as exc:
            self._refused(changes, str(exc), who, source, scenario, "")
            raise
        if not safing:
            refusal = self.interlocks.check(values, self.read(), self.state())
            if refusal is not None:
                self._refused(values, refusal.message, who, source, scenario, refusal.interlock)
                raise CommandRefused(refusal.message)
        per_backend: dict[str, dict[str, Value]] = {}
        for n, v in values.items():
            per_backend.setdefault(self._owner[n].name, {})[n] = v
        by_name = {b.name: b for b in self.backends}
        statuses = [by_name[b].apply(sub) for b, sub in per_backend.items()]
        status = statuses[0] if len(statuses) == 1 else all_of(statuses, describe_changes(values))

        def audited(st: Status) -> None:
            exc = st.exception()
            if self.audit is not None:
                self.audit.record(
                    who=who,
                    source=source,
                    action="set",
                    target=describe_changes(values),
                    value=values,
                    result="ok" if exc is None else "failed",
                    reason=str(exc) if exc is not None else (reason or st.reply),
                    redline=redline,
                    scenario=scenario,
                )
            if exc is not None:
                self.counters.inc("control.failed", message=str(exc))

        status.add_callback(audited)
        return status

    def _refused(
        self,
        changes: Mapping[str, Any],
        message: str,
        who: str,
        source: str,
        scenario: str,
        interlock: str,
    ) -> None:
        log.warning("command refused (%s): %s", who, message)
        record_refusal(
            self.audit,
            self.counters,
            who=who,
            source=source,
            action="set",
            target=describe_changes(changes),
            value=dict(changes),
            reason=message,
            interlock=interlock,
            scenario=scenario,
        )
