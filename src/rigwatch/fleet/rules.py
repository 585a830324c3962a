"""Declarative status rules: thresholds per metric with hysteresis, delays and staleness.

A rule set is a TOML file (``configs/fleet_rules.toml`` is the default one) validated by
:class:`RuleSet`::

    [machine]
    grey_after_s = 1800          # no fresh data for this long: grey

    [[rules]]
    metric = "temperature"
    unit = "degC"
    condition = "above"          # above | below | outside
    warning = 60.0
    critical = 80.0
    hysteresis = 2.0             # recover at <= 58 / <= 78
    for_s = 0                    # condition must hold this long before it fires

    [[not_accessible_when]]      # today's convention, opt-in
    metric = "speed"
    equals = 0

A threshold fires strictly beyond its value (``temperature > 80`` is critical, as today) and
recovers only at or inside its *recovery threshold*: ``threshold - hysteresis`` for
``above``, ``threshold + hysteresis`` for ``below``, the band narrowed by ``hysteresis`` on
both sides for ``outside``, unless given explicitly (``warning_recovery``,
``critical_recovery``). This is the "recovery threshold" of Grafana's alert rules and the
recovery expression of Zabbix triggers: a signal hovering around its threshold fires once.

The evaluation over time (delays, staleness, colours) is in :mod:`rigwatch.fleet.status`; this
module only holds the models and the pure level functions.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, ValidationError, model_validator

from rigwatch.config.base import Name, Strict
from rigwatch.errors import RulesError

Band = tuple[float, float]
"""A closed interval ``(low, high)`` in the metric's unit, ``low < high``."""


class Condition(StrEnum):
    """Which side of a threshold is bad."""

    ABOVE = "above"
    """bad when ``value > threshold``"""
    BELOW = "below"
    """bad when ``value < threshold``"""
    OUTSIDE = "outside"
    """bad when ``value < low`` or ``value > high`` of a band"""


class Level(IntEnum):
    """The fired level of a rule, ordered: a higher level is worse."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


class MetricStatus(StrEnum):
    """What a metric looks like now: a fired level, or ``unknown`` (no fresh value)."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class Colour(StrEnum):
    """A machine's status colour (today's five colours, kept apart).

    green: every metric ok; yellow: a warning; red: a critical; black: the machine is not
    accessible (its controller or sensor interface does not answer, said by the agent, or an
    opt-in rule such as ``speed == 0``); grey: no fresh data from the agent at all.
    """

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    BLACK = "black"
    GREY = "grey"


LEVEL_STATUS = {
    Level.OK: MetricStatus.OK,
    Level.WARNING: MetricStatus.WARNING,
    Level.CRITICAL: MetricStatus.CRITICAL,
}
LEVEL_COLOUR = {Level.OK: Colour.GREEN, Level.WARNING: Colour.YELLOW, Level.CRITICAL: Colour.RED}

Threshold = float | Band


def _is_band(value: Threshold | None) -> bool:
    return isinstance(value, tuple)


class MetricRule(Strict):
    """Thresholds of one metric.

    Attributes:
        id: the rule's id, unique in the set (alerts are per machine and rule); defaults to
            the metric's name.
        metric: the ``sensor_data`` key the rule reads.
        unit: the metric's unit (documentation and display only).
        condition: ``above``, ``below`` or ``outside`` (a band).
        warning, critical: the thresholds; a number for above/below, ``[low, high]`` for
            outside. At least one of them.
        hysteresis: distance (metric's unit, >= 0) between a threshold and its recovery
            threshold.
        warning_recovery, critical_recovery: explicit recovery thresholds (override
            ``hysteresis``); on the good side of their threshold.
        for_s: the condition must hold this long (s) before the level fires.
        stale_after_s: no value for this long (s) makes the metric ``unknown``; default: the
            machine's ``grey_after_s``.
        description: free text shown with alerts.
    """

    id: Name | None = None
    metric: Name
    unit: str = Field(default="", max_length=32)
    condition: Condition
    warning: Threshold | None = None
    critical: Threshold | None = None
    hysteresis: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    warning_recovery: Threshold | None = None
    critical_recovery: Threshold | None = None
    for_s: float = Field(default=0.0, ge=0.0, le=7 * 86400.0)
    stale_after_s: float | None = Field(default=None, gt=0.0, le=30 * 86400.0)
    description: str = Field(default="", max_length=500)

    @property
    def rule_id(self) -> str:
        """``id`` or, when not given, ``metric``."""
        return self.id or self.metric

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.warning is None and self.critical is None:
            raise ValueError("a rule needs a warning or a critical threshold (or both)")
        want_band = self.condition is Condition.OUTSIDE
        for key in ("warning", "critical", "warning_recovery", "critical_recovery"):
            value = getattr(self, key)
            if value is None:
                continue
            if _is_band(value) != want_band:
                form = "a band [low, high]" if want_band else "a single number"
                raise ValueError(f"{key}: condition {self.condition.value!r} needs {form}")
            if isinstance(value, tuple) and not value[0] < value[1]:
                raise ValueError(f"{key}: band low must be below high (got {list(value)})")
        if self.warning is not None and self.critical is not None:
            self._check_order()
        for level in (Level.WARNING, Level.CRITICAL):
            threshold = self.threshold(level)
            if threshold is not None:
                self._check_recovery(level, threshold, self.recovery(level))
        return self

    def _check_order(self) -> None:
        w, c = self.warning, self.critical
        ok = True
        if isinstance(w, tuple) and isinstance(c, tuple):
            ok = c[0] <= w[0] and w[1] <= c[1]
        elif isinstance(w, float) and isinstance(c, float):
            ok = c >= w if self.condition is Condition.ABOVE else c <= w
        if not ok:
            raise ValueError(
                f"critical ({c}) must be at least as far on the bad side as warning ({w}) "
                f"for condition {self.condition.value!r}"
            )

    def _check_recovery(self, level: Level, threshold: Threshold, recovery: Threshold) -> None:
        name = f"{level.name.lower()}_recovery"
        if isinstance(threshold, tuple) and isinstance(recovery, tuple):
            if not (threshold[0] <= recovery[0] <= recovery[1] <= threshold[1]):
                raise ValueError(
                    f"{name} {list(recovery)} must lie inside the band {list(threshold)} "
                    "(hysteresis too large for the band?)"
                )
        elif isinstance(threshold, float) and isinstance(recovery, float):
            good = (
                recovery <= threshold
                if self.condition is Condition.ABOVE
                else recovery >= threshold
            )
            if not good:
                side = "at or below" if self.condition is Condition.ABOVE else "at or above"
                raise ValueError(f"{name} ({recovery}) must be {side} its threshold ({threshold})")

    def threshold(self, level: Level) -> Threshold | None:
        """The threshold of ``level`` (warning or critical), ``None`` when not set."""
        return self.warning if level == Level.WARNING else self.critical

    def recovery(self, level: Level) -> Threshold:
        """The recovery threshold of ``level``; the level must have a threshold."""
        explicit = self.warning_recovery if level == Level.WARNING else self.critical_recovery
        if explicit is not None:
            return explicit
        threshold = self.threshold(level)
        h = self.hysteresis
        if isinstance(threshold, tuple):
            return (threshold[0] + h, threshold[1] - h)
        if threshold is None:
            raise ValueError(f"rule {self.rule_id!r} has no {level.name.lower()} threshold")
        return threshold - h if self.condition is Condition.ABOVE else threshold + h

    def levels(self) -> LevelRule:
        """This rule's level functions with its thresholds resolved (what the status engine
        evaluates every value with)."""
        fires = tuple(
            (level, *self._bad_outside(threshold))
            for level in (Level.CRITICAL, Level.WARNING)  # the worse one first
            if (threshold := self.threshold(level)) is not None
        )
        return LevelRule(
            rule=self,
            rule_id=self.rule_id,
            fires=fires,
            recoveries={level: self._bad_outside(self.recovery(level)) for level, _, _ in fires},
        )

    def _bad_outside(self, threshold: Threshold) -> tuple[float, float]:
        """``threshold`` as the band ``(low, high)`` outside which a value breaches it (and
        inside which, at the ends included, a value is recovered): one comparison form for
        every condition."""
        if isinstance(threshold, tuple):
            return threshold
        if self.condition is Condition.ABOVE:
            return (-math.inf, threshold)
        return (threshold, math.inf)


@dataclass(frozen=True, slots=True)
class LevelRule:
    """The level functions of a :class:`MetricRule`, its thresholds and recovery thresholds
    resolved once (``MetricRule.levels()``) into bands: a plain object, read for every value.

    A threshold ``above t`` is the band ``(-inf, t)``, ``below t`` is ``(t, inf)``, ``outside
    [low, high]`` is the band itself: a value breaches a level when it is outside the level's
    band, and has recovered from it when it is inside (ends included) its recovery band.

    Attributes:
        rule: the rule.
        rule_id: ``rule.rule_id``.
        fires: ``(level, low, high)`` of each level the rule has, the worse first.
        recoveries: level -> its recovery band ``(low, high)``.
    """

    rule: MetricRule
    rule_id: str
    fires: tuple[tuple[Level, float, float], ...]
    recoveries: Mapping[Level, tuple[float, float]]

    def raw_level(self, value: float) -> Level:
        """The level ``value`` alone would have, without hysteresis or delay."""
        for level, low, high in self.fires:
            if value < low or value > high:
                return level
        return Level.OK

    def recovered(self, value: float, level: Level) -> bool:
        """True when ``value`` is at or inside the recovery threshold of ``level``
        (a level without a threshold counts as recovered)."""
        band = self.recoveries.get(level)
        return band is None or band[0] <= value <= band[1]


class AccessRule(Strict):
    """The machine counts as not accessible (black) when ``metric == equals``.

    Today's server meant ``speed == 0`` this way; here it is an opt-in rule.
    """

    metric: Name
    equals: float = Field(allow_inf_nan=False)
    enabled: bool = True
    description: str = Field(default="", max_length=500)


AlertSeverity = Literal["off", "warning", "critical"]


class MachineSettings(Strict):
    """Machine-level settings.

    Attributes:
        grey_after_s: no fresh (non-backfill) message for this long: grey (default 30 min,
            as today).
        late_after_s: a message whose timestamp is older than its arrival by more than this
            is treated as backfill (delivered late from an outbox).
        no_data_alert: severity of the alert raised when a machine turns grey, or ``off``.
        not_accessible_alert: severity of the alert raised when a machine turns black, or
            ``off``.
        machine_alarms: raise an alert for each ``warning``/``critical`` alarm a machine
            reports, and let them colour the machine.
    """

    grey_after_s: float = Field(default=1800.0, gt=0.0, le=30 * 86400.0)
    late_after_s: float = Field(default=600.0, gt=0.0, le=30 * 86400.0)
    no_data_alert: AlertSeverity = "warning"
    not_accessible_alert: AlertSeverity = "critical"
    machine_alarms: bool = True


class RuleSet(Strict):
    """A whole rule set: machine settings, metric rules and not-accessible rules."""

    machine: MachineSettings = Field(default_factory=MachineSettings)
    rules: Annotated[list[MetricRule], Field(max_length=1000)] = Field(default_factory=list)
    not_accessible_when: Annotated[list[AccessRule], Field(max_length=100)] = Field(
        default_factory=list
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [r.rule_id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(
                f"rule ids must be unique, repeated: {', '.join(dup)} (give each rule an id)"
            )
        reserved = [i for i in ids if i in RESERVED_RULE_IDS or i.startswith("alarm.")]
        if reserved:
            raise ValueError(f"rule ids reserved for machine-level alerts: {', '.join(reserved)}")
        return self


NO_DATA = "no_data"
"""Rule id of the machine-level alert raised when a machine turns grey."""
NOT_ACCESSIBLE = "not_accessible"
"""Rule id of the machine-level alert raised when a machine turns black."""
RESERVED_RULE_IDS = frozenset({NO_DATA, NOT_ACCESSIBLE})

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[3] / "configs" / "fleet_rules.toml"
"""The default rule set shipped in the source tree (today's thresholds)."""


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in ("float", "tuple[float, float]"):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate TOML text as a :class:`RuleSet`.

    Raises:
        RulesError: invalid TOML or an invalid rule; the message names the source, the key
            (``rules[2].warning``) and the reason, one line per problem.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: not valid TOML: {exc}") from None
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            reason = err["msg"]
            if err["type"] == "extra_forbidden":
                reason = "unknown key (not allowed here; check its spelling)"
            lines.append(f"{source}: {_loc(tuple(err['loc']))}: {reason}")
        raise RulesError("\n".join(lines)) from None


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read a rule set from a TOML file (default: :data:`DEFAULT_RULES_PATH`).

    Raises:
        RulesError: the file is missing or unreadable, or invalid (see :func:`parse_rules`).
    """
    p = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}: cannot read the rule set: {exc}") from None
    return parse_rules(text, str(p))
