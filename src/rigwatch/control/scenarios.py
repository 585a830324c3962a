"""Scenarios as data: TOML sequences of steps, each scenario with its abort (safing) sequence.

A scenario file::

    name = "burning"
    description = "steady burn"
    requires_arming = true            # needed by any scenario moving a hot actuator

    [[redlines]]                      # see rigwatch.control.redlines
    name = "chamber-over"
    channels = ["P3"]
    max = 25.0
    always = true                     # active in every step; else in steps listing it

    [[steps]]
    name = "open oxidiser"
    set = { GOX1 = "open", GOX2 = "open" }     # one transaction per backend

    [[steps]]
    name = "oxidiser line up"
    wait_until = { channel = "P1", above = 25.0 }
    timeout_s = 2.0                   # required: a wait_until must be able to finish
    redlines = ["ox-line-over"]       # active while this step runs

    [[steps]]
    wait_s = 0.5

    [[steps]]
    hold = "check the flame"          # waits for the operator's resume

    [[steps]]
    firmware = "emergency"            # sends the word, waits for its ACK:/NACK:
    delay_s = 0.2
    timeout_s = 2.0

    [abort]                           # required: the safing sequence, run in order on abort
    steps = [
      { set = { IGNITION = "off", GOX1 = "closed", GOX2 = "closed" } },
      { set = { FUEL1 = "closed", FUEL2 = "closed" } },
      { set = { RELIEF1 = "open", RELIEF2 = "open" } },
    ]

:class:`Scenario` checks the file's structure (pydantic, ``extra="forbid"``);
:func:`check_scenario` checks it against a station (actuators, channels, firmware words).
Both raise :class:`~rigwatch.errors.ConfigError` with one line per problem naming the file, the
step and the reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from pydantic import Field, model_validator

from rigwatch.config.base import Name, Strict
from rigwatch.config.loader import load_config
from rigwatch.control.actuators import ActuatorSpec, Value
from rigwatch.control.redlines import RedlineConfig
from rigwatch.errors import CommandRefused, ConfigError

ACTIONS = ("set", "wait_s", "wait_until", "hold", "firmware")


class Condition(Strict):
    """``channel`` above or below a value (calibrated units)."""

    channel: str
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"condition on {self.channel!r}: give exactly one of above, below")
        return self

    def holds(self, value: float) -> bool:
        """True when ``value`` satisfies it (NaN never does)."""
        if self.above is not None:
            return value > self.above
        assert self.below is not None
        return value < self.below

    def describe(self) -> str:
        """``"P1 > 25"``."""
        return (
            f"{self.channel} > {self.above:g}"
            if self.above is not None
            else (f"{self.channel} < {self.below:g}")
        )


class Step(Strict):
    """One step: exactly one of ``set``, ``wait_s``, ``wait_until``, ``hold``, ``firmware``.

    Attributes:
        name: shown in the runner's status and the audit log.
        set: ``{actuator: value}`` sent as one command (one transaction per backend); the step
            ends when every backend acknowledged.
        wait_s: wait this long.
        wait_until: wait until the condition holds; ``timeout_s`` required.
        hold: a hold point: the runner waits in ``holding`` for the operator's resume (the text
            tells the operator what to check); ``timeout_s`` optional (then: abort).
        firmware: a scenario word for the board's own sequence: wait ``delay_s``, send it,
            wait up to ``timeout_s`` (default 2 s) for its ``ACK:`` (``NACK:`` or none: abort).
        redlines: names of the scenario's redlines active during this step.
    """

    name: str = Field(default="", max_length=120)
    set: dict[str, str | float | bool] | None = None
    wait_s: float | None = Field(default=None, gt=0, le=3600)
    wait_until: Condition | None = None
    hold: str | None = Field(default=None, min_length=1, max_length=300)
    firmware: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]+$")
    delay_s: float = Field(default=0.0, ge=0, le=60)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    redlines: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        label = f" {self.name!r}" if self.name else ""
        if len(given) != 1:
            raise ValueError(
                f"step{label} must have exactly one of {', '.join(ACTIONS)} "
                f"(has {', '.join(given) or 'none'})"
            )
        action = given[0]
        if action == "wait_until" and self.timeout_s is None:
            assert self.wait_until is not None
            raise ValueError(
                f"step{label} waits until {self.wait_until.describe()} without timeout_s: it "
                "could never finish"
            )
        if self.timeout_s is not None and action not in ("wait_until", "hold", "firmware"):
            raise ValueError(f"step{label}: timeout_s applies to wait_until, hold or firmware")
        if self.delay_s and action != "firmware":
            raise ValueError(f"step{label}: delay_s applies to firmware steps")
        if action == "set" and not self.set:
            raise ValueError(f"step{label}: set names no actuator")
        return self

    @property
    def action(self) -> str:
        """Which of :data:`ACTIONS` this step does."""
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    def label(self, index: int) -> str:
        """``"steps[2] 'open oxidiser'"`` for messages."""
        return f"step {index + 1}" + (f" {self.name!r}" if self.name else f" ({self.action})")


class AbortSequence(Strict):
    """The safing sequence: steps run in order on abort, never refused by interlocks; a step
    that fails is recorded and the sequence goes on."""

    steps: list[Step] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_hold(self) -> AbortSequence:
        for i, st in enumerate(self.steps):
            if st.hold is not None:
                raise ValueError(
                    f"abort {st.label(i)}: an abort sequence cannot wait for an operator"
                )
            if st.redlines:
                raise ValueError(f"abort {st.label(i)}: redlines do not apply while aborting")
        return self


class Scenario(Strict):
    """A scenario file (see the module docstring)."""

    name: Name
    description: str = Field(default="", max_length=2000)
    requires_arming: bool = True
    redlines: list[RedlineConfig] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    abort: AbortSequence | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.abort is None:
            raise ValueError(
                f"scenario {self.name!r} has no [abort] sequence: every scenario names its "
                "safing steps (close propellant valves, open vents, purge)"
            )
        names = [r.name for r in self.redlines]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"redline names repeat: {', '.join(dup)}")
        for i, st in enumerate(self.steps):
            unknown = [r for r in st.redlines if r not in names]
            if unknown:
                raise ValueError(
                    f"{st.label(i)} names unknown redlines {', '.join(unknown)} "
                    f"(redlines: {', '.join(names) or 'none'})"
                )
        return self

    @property
    def abort_steps(self) -> list[Step]:
        """The abort sequence's steps."""
        assert self.abort is not None
        return self.abort.steps

    def safe_state(self) -> dict[str, str | float | bool]:
        """Where the abort sequence leaves each actuator it sets (last value wins), in the
        order they are first set."""
        out: dict[str, str | float | bool] = {}
        for st in self.abort_steps:
            if st.set:
                out.update(st.set)
        return out

    def actuators_used(self) -> list[str]:
        """Actuators its steps set, in first-use order."""
        out: dict[str, None] = {}
        for st in self.steps:
            for n in st.set or {}:
                out[n] = None
        return list(out)

    def redlines_for(self, index: int) -> list[RedlineConfig]:
        """Redlines active during step ``index``: the ``always`` ones and the step's own."""
        named = set(self.steps[index].redlines)
        return [r for r in self.redlines if r.always or r.name in named]


def check_scenario(
    scenario: Scenario,
    actuators: Mapping[str, ActuatorSpec],
    channels: Collection[str],
    firmware_words: Collection[str] | None = None,
    source: str = "",
) -> None:
    """Check ``scenario`` against a station.

    Problems found (all reported at once): an unknown actuator or a value it cannot take; an
    unknown channel in a condition or a redline; a firmware word the station cannot send; a hot
    actuator moved by a scenario that does not require arming; an actuator the steps set that
    the abort sequence leaves unset.

    Raises:
        ConfigError: one line per problem, ``source: scenario 'x': step 3 'name': reason``.
    """
    problems: list[str] = []
    known_ch = set(channels)

    def check_steps(steps: Iterable[Step], where: str) -> None:
        for i, st in enumerate(steps):
            lab = f"{where}{st.label(i)}"
            for n, v in (st.set or {}).items():
                spec = actuators.get(n)
                if spec is None:
                    problems.append(
                        f"{lab}: unknown actuator {n!r} (actuators: {', '.join(actuators)})"
                    )
                    continue
                try:
                    value: Value = spec.normalise(v)
                except CommandRefused as exc:
                    problems.append(f"{lab}: {exc}")
                    continue
                if where == "" and spec.hot and value != spec.safe and not scenario.requires_arming:
                    problems.append(
                        f"{lab}: moves hot actuator {n} to {value} but requires_arming is false"
                    )
            if st.wait_until is not None and st.wait_until.channel not in known_ch:
                problems.append(
                    f"{lab}: unknown channel {st.wait_until.channel!r} in wait_until "
                    f"(channels: {', '.join(sorted(known_ch))})"
                )
            if st.firmware is not None and (
                firmware_words is None or st.firmware not in firmware_words
            ):
                have = ", ".join(firmware_words) if firmware_words else "none: no board link"
                problems.append(f"{lab}: firmware word {st.firmware!r} unknown (words: {have})")

    check_steps(scenario.steps, "")
    check_steps(scenario.abort_steps, "abort ")
    for r in scenario.redlines:
        unknown = [c for c in r.channels if c not in known_ch]
        if unknown:
            problems.append(
                f"redline {r.name!r}: unknown channel(s) {', '.join(unknown)} "
                f"(channels: {', '.join(sorted(known_ch))})"
            )
    safe = scenario.safe_state()
    unsafed = [n for n in scenario.actuators_used() if n not in safe and n in actuators]
    if unsafed:
        problems.append(
            f"abort sequence leaves {', '.join(unsafed)} as they are, though the steps set "
            "them: the abort sequence must put every actuator the scenario moves in a safe state"
        )
    if problems:
        head = f"{source}: " if source else ""
        raise ConfigError("\n".join(f"{head}scenario {scenario.name!r}: {p}" for p in problems))


def load_scenario(
    path: str | Path,
    actuators: Mapping[str, ActuatorSpec],
    channels: Collection[str],
    firmware_words: Collection[str] | None = None,
) -> Scenario:
    """Read, validate and check one scenario file.

    Raises:
        ConfigError: unreadable, invalid TOML, a structural problem (file, key, reason) or a
            problem found by :func:`check_scenario`.
    """
    scenario = load_config(path, Scenario)
    check_scenario(scenario, actuators, channels, firmware_words, source=str(path))
    return scenario


def load_scenarios(
    paths: Iterable[str | Path],
    actuators: Mapping[str, ActuatorSpec],
    channels: Collection[str],
    firmware_words: Collection[str] | None = None,
) -> dict[str, Scenario]:
    """Every scenario of ``paths`` (files, or folders whose ``*.toml`` are read), by name.

    Raises:
        ConfigError: any file's problems (all files are checked before raising), or two
            scenarios of one name.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.toml")) if p.is_dir() else [p]
    out: dict[str, Scenario] = {}
    errors: list[str] = []
    for f in files:
        try:
            sc = load_scenario(f, actuators, channels, firmware_words)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        if sc.name in out:
            errors.append(f"{f}: scenario name {sc.name!r} is used by another file too")
        out[sc.name] = sc
    if errors:
        raise ConfigError("\n".join(errors))
    return out
