"""Configuration of a station's control part: its actuators (by backend), its interlocks, where
its audit log is kept and where its scenarios are.

A ``[control]`` table::

    [control]
    audit = "control_audit.sqlite"
    scenarios = ["scenarios"]            # TOML files, or folders of them
    safing_scenario = "emergency"       # whose abort sequence runs when no scenario runs
    operator_timeout_s = 5.0            # the station's watchdogs (StationControlConfig)

    [[control.actuators]]
    type = "stm32_valves"               # shares the port of the stm32 acquisition device
    name = "valves"
    device = "stm32"
    outputs = [{ name = "RELIEF1", safe = "open" }, ...]   # 9, in the firmware's bit order

    [[control.interlocks]]
    name = "ignition-needs-oxidiser"
    when = { IGNITION = "on" }
    require = { GOX1 = "open", GOX2 = "open" }
    reason = "igniting without oxidiser flow floods the chamber with fuel"

Every model forbids unknown keys. Names of actuators are unique across all backends.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from rigwatch.config.base import Name, ResolvedPath, Strict

BinaryWord = Literal["open", "closed", "on", "off"]
"""Positions of binary actuators: valves are ``open``/``closed``, switches ``on``/``off``."""

STM32_OUTPUTS = 9
"""Outputs of the STM32 valve command ``Valves:<9 bits>``."""

S7_ADDRESS_RE = re.compile(
    r"^(?:(?P<area>[MIEQA])(?:(?P<bit_byte>\d+)\.(?P<bit>[0-7])|(?P<size>[BWD])(?P<byte>\d+))"
    r"|DB(?P<db>\d+)\.DB(?:X(?P<db_bit_byte>\d+)\.(?P<db_bit>[0-7])|(?P<db_size>[BWD])"
    r"(?P<db_byte>\d+)))$"
)
"""S7 absolute addresses: ``M0.0`` (marker bit), ``MB1``/``MW2``/``MD4`` (marker byte, word,
double word), ``I``/``E`` (inputs) and ``Q``/``A`` (outputs) likewise, ``DB1.DBX0.0``,
``DB1.DBB2``, ``DB1.DBW2``, ``DB1.DBD4`` (data block). Siemens STEP 7 notation, English and
German mnemonics."""


class BinaryActuatorConfig(Strict):
    """A valve (``open``/``closed``) or a switch (``on``/``off``) driven by one output.

    Attributes:
        name: the actuator's name in scenarios, interlocks and the API.
        kind: ``valve`` or ``switch`` (an igniter, a heater, a PLC marker bit).
        normally: a valve's position when its output is de-energised (``closed`` for a
            normally-closed valve: energising opens it).
        safe: its safe position; defaults to the de-energised one (``normally`` for a valve,
            ``off`` for a switch).
        hot: commanding it away from its safe position needs an armed runner (propellant
            valves, igniters).
    """

    name: Name
    kind: Literal["valve", "switch"] = "valve"
    normally: Literal["closed", "open"] = "closed"
    safe: BinaryWord | None = None
    hot: bool = False

    @model_validator(mode="after")
    def _words(self) -> BinaryActuatorConfig:
        words = ("open", "closed") if self.kind == "valve" else ("on", "off")
        if self.safe is not None and self.safe not in words:
            raise ValueError(
                f"{self.kind} {self.name!r}: safe position must be one of {', '.join(words)}, "
                f"got {self.safe!r}"
            )
        return self


class Stm32ValvesConfig(Strict):
    """The STM32 valve bank: ``Valves:<9 bits>`` on the port of an ``stm32`` acquisition device.

    Attributes:
        device: name of the ``stm32`` ``[[devices]]`` entry whose port is shared.
        outputs: the 9 outputs, in the firmware's bit order (RELIEF1, GOX1, PURGE1, PURGE2,
            FUEL1, RELIEF2, GOX2, FUEL2, IGNITION on today's stand).
        ack_timeout_s: wait for ``ACK:``/``NACK:`` per attempt.
        retries: further attempts after a timeout (a ``NACK`` is not retried).
    """

    type: Literal["stm32_valves"]
    name: Name
    device: Name = "stm32"
    outputs: list[BinaryActuatorConfig] = Field(min_length=STM32_OUTPUTS, max_length=STM32_OUTPUTS)
    ack_timeout_s: float = Field(default=0.5, gt=0, le=10)
    retries: int = Field(default=2, ge=0, le=10)


class MotorConfig(Strict):
    """One step motor: its id on the wire, its travel limits and safe angle (degrees)."""

    name: Name
    motor_id: int = Field(ge=0, le=255)
    min_deg: float
    max_deg: float
    safe_deg: float | None = Field(
        default=None, description="Angle the abort sequence may drive it to; None: stays."
    )
    hot: bool = False

    @model_validator(mode="after")
    def _limits(self) -> MotorConfig:
        if not self.min_deg < self.max_deg:
            raise ValueError(f"motor {self.name!r}: min_deg must be below max_deg")
        if self.safe_deg is not None and not self.min_deg <= self.safe_deg <= self.max_deg:
            raise ValueError(
                f"motor {self.name!r}: safe_deg outside [{self.min_deg}, {self.max_deg}]"
            )
        return self


class ArduinoMotorsConfig(Strict):
    """Step motors behind an Arduino: ``motor_id:angle\\n`` over UART at 115 200 baud."""

    type: Literal["arduino_motors"]
    name: Name
    port: str
    baudrate: int = Field(default=115_200, gt=0)
    motors: list[MotorConfig] = Field(min_length=1)
    reply_timeout_s: float = Field(default=5.0, gt=0, le=120)
    retries: int = Field(default=1, ge=0, le=10)


class GpioValveConfig(BinaryActuatorConfig):
    """A valve (or switch) on a Raspberry Pi GPIO pin (BCM numbering)."""

    pin: int = Field(ge=0, le=27)
    active_high: bool = True


class GpioValvesConfig(Strict):
    """Valves on Raspberry Pi GPIO pins through gpiozero.

    Attributes:
        factory: ``pigpio`` (a remote pigpio daemon at ``host``: today's ball mill), ``lgpio``
            (local, the Raspberry Pi 5) or ``mock`` (gpiozero's MockFactory: no hardware).
    """

    type: Literal["gpio"]
    name: Name
    factory: Literal["pigpio", "lgpio", "mock"] = "pigpio"
    host: str | None = None
    port: int = Field(default=8888, ge=1, le=65535)
    chip: int = Field(default=0, ge=0)
    valves: list[GpioValveConfig] = Field(min_length=1)
    retries: int = Field(default=3, ge=0, le=10)

    @model_validator(mode="after")
    def _pins(self) -> GpioValvesConfig:
        pins = [v.pin for v in self.valves]
        dup = sorted({p for p in pins if pins.count(p) > 1})
        if dup:
            raise ValueError(f"GPIO pins used twice: {dup}")
        if self.factory == "pigpio" and not self.host:
            raise ValueError("factory 'pigpio' needs host (the Pi running pigpiod)")
        return self


class S7PointConfig(Strict):
    """One PLC address driven as an actuator.

    A bit address (``M0.0``, ``Q0.1``, ``DB1.DBX0.0``) is a valve or switch; a byte, word or
    double word (``MB1``, ``MW2``, ``DB1.DBD4``) is a ``word``: a signed integer (INT, DINT;
    a byte is unsigned) within ``min``/``max``. Inputs (``I``/``E``) cannot be written.
    """

    name: Name
    address: str
    kind: Literal["valve", "switch", "word"] = "switch"
    normally: Literal["closed", "open"] = "closed"
    safe: BinaryWord | int | None = None
    min: int | None = None
    max: int | None = None
    hot: bool = False

    @model_validator(mode="after")
    def _address(self) -> S7PointConfig:
        m = S7_ADDRESS_RE.match(self.address.strip().upper())
        if m is None:
            raise ValueError(
                f"{self.name!r}: {self.address!r} is not an S7 address (M0.0, MW2, Q0.1, "
                "DB1.DBX0.0, DB1.DBW2...)"
            )
        is_bit = m["bit"] is not None or m["db_bit"] is not None
        if is_bit and self.kind == "word":
            raise ValueError(f"{self.name!r}: {self.address} is a bit, not a word")
        if not is_bit and self.kind != "word":
            raise ValueError(f"{self.name!r}: {self.address} is a byte/word: kind must be 'word'")
        if m["area"] in ("I", "E"):
            raise ValueError(f"{self.name!r}: {self.address} is an input: it cannot be written")
        return self


class S7Config(Strict):
    """A Siemens S7 PLC through python-snap7 (ISO-on-TCP, port 102).

    Attributes:
        bit_write: ``bit`` writes one bit (atomic in the CPU: the PLC program's other bits of
            the byte are untouched); ``read_modify_write`` reads the byte and writes it back
            (for servers that do not implement bit access).
    """

    type: Literal["s7"]
    name: Name
    host: str
    rack: int = Field(default=0, ge=0, le=7)
    slot: int = Field(default=1, ge=0, le=31)
    tcp_port: int = Field(default=102, ge=1, le=65535)
    bit_write: Literal["bit", "read_modify_write"] = "bit"
    points: list[S7PointConfig] = Field(min_length=1)
    retries: int = Field(default=1, ge=0, le=10)


ActuatorBackendConfig = Annotated[
    Stm32ValvesConfig | ArduinoMotorsConfig | GpioValvesConfig | S7Config,
    Field(discriminator="type"),
]


class InterlockConfig(Strict):
    """A rule refusing a command in a state where it is unsafe.

    A command that sets any actuator of ``when`` to the value given there is refused unless
    every actuator of ``require`` is *acknowledged* in the value given (not merely commanded,
    not unknown), and, when ``states`` is given, the scenario runner is in one of them.

    Attributes:
        reason: why the rule exists, quoted in the refusal.
    """

    name: Name
    when: dict[str, BinaryWord | float]
    require: dict[str, BinaryWord | float] = Field(default_factory=dict)
    states: (
        list[Literal["idle", "armed", "running", "holding", "aborting", "safe", "done"]] | None
    ) = None
    reason: str = Field(min_length=1, max_length=300)

    @model_validator(mode="after")
    def _something(self) -> InterlockConfig:
        if not self.when:
            raise ValueError(f"interlock {self.name!r}: 'when' names no actuator")
        if not self.require and self.states is None:
            raise ValueError(f"interlock {self.name!r}: needs 'require' or 'states'")
        return self


class ControlConfig(Strict):
    """The ``[control]`` table (see the module docstring)."""

    actuators: list[ActuatorBackendConfig] = Field(default_factory=list)
    interlocks: list[InterlockConfig] = Field(default_factory=list)
    audit: ResolvedPath = Field(
        default=Path("control_audit.sqlite"),
        validate_default=True,
        description="SQLite file of the audit log (relative: to the config file's folder).",
    )
    scenarios: list[ResolvedPath] = Field(default_factory=list)
    safing_scenario: Name = "emergency"

    @model_validator(mode="after")
    def _unique(self) -> ControlConfig:
        names: list[str] = []
        for backend in self.actuators:
            names.append(backend.name)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"actuator backend names repeat: {', '.join(dup)}")
        actuators = actuator_names(self)
        dup = sorted({n for n in actuators if actuators.count(n) > 1})
        if dup:
            raise ValueError(f"actuator names repeat: {', '.join(dup)}")
        known = set(actuators)
        for rule in self.interlocks:
            unknown = sorted((set(rule.when) | set(rule.require)) - known)
            if unknown:
                raise ValueError(
                    f"interlock {rule.name!r} names unknown actuators {', '.join(unknown)}; "
                    f"actuators: {', '.join(actuators)}"
                )
        return self


class StationControlConfig(ControlConfig):
    """The ``[control]`` table of a station: the control part's actuators, interlocks, audit
    log and scenarios (:class:`~rigwatch.config.control.ControlConfig`), and the station's
    watchdogs around them.

    Attributes:
        operator_timeout_s: the control authority's lease: the controlling client renews it
            (``POST /api/control/authority`` with ``renew``, or a WebSocket ``heartbeat``) at
            least this often; when it lapses while the stand is armed, running or holding,
            the operator watchdog aborts.
        watchdog_interval_s: how often the staleness, operator and device-loss watchdogs run.
        shutdown_abort_s: on SIGTERM or Ctrl-C during a hot sequence, the longest wait for the
            abort sequence to reach ``safe`` before the process goes on exiting.
    """

    operator_timeout_s: float = Field(default=5.0, ge=0.05, le=600)
    watchdog_interval_s: float = Field(default=0.1, ge=0.005, le=5)
    shutdown_abort_s: float = Field(default=30.0, gt=0, le=600)


def actuator_names(config: ControlConfig) -> list[str]:
    """Every actuator's name, backend by backend, in configured order."""
    out: list[str] = []
    for b in config.actuators:
        if isinstance(b, Stm32ValvesConfig):
            out += [o.name for o in b.outputs]
        elif isinstance(b, ArduinoMotorsConfig):
            out += [m.name for m in b.motors]
        elif isinstance(b, GpioValvesConfig):
            out += [v.name for v in b.valves]
        else:
            out += [p.name for p in b.points]
    return out
