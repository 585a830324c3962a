"""Request and response bodies of the control API (:mod:`rigwatch.web.routers.control`).

Today's endpoints keep their bodies and replies: ``POST /api/valves`` ``{"valves": [9 ints]}``
-> ``{"success", "valves"}``; ``POST /api/step_motor`` ``{"motor_id", "angle"}`` ->
``{"success", "motor_id", "angle", "response"}``; ``POST /api/scenario/{name}`` ->
``{"status", "message"}`` (and ``feedback`` for ``emergency``); the ball mill's ``/connect
{piIp}``, ``/valve {valveIndex, state}``, ``/disconnect``; the PLC's ``/plc-io {value}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from rigwatch.config.control import STM32_OUTPUTS
from rigwatch.control.audit import AuditEntry


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ValvesIn(_In):
    """``POST /api/valves``: one bit per output of the valve bank, in the firmware's order
    (RELIEF1, GOX1, PURGE1, PURGE2, FUEL1, RELIEF2, GOX2, FUEL2, IGNITION); 1 energises the
    output (opens a normally-closed valve). Exactly 9: a list of another length is refused,
    not padded or cut."""

    valves: list[Literal[0, 1]] = Field(min_length=STM32_OUTPUTS, max_length=STM32_OUTPUTS)


class ValvesOut(BaseModel):
    """The valve word the board acknowledged."""

    success: bool
    valves: list[int]


class StepMotorIn(_In):
    """``POST /api/step_motor``: move motor ``motor_id`` to ``angle`` degrees."""

    motor_id: int
    angle: float = Field(allow_inf_nan=False)


class StepMotorOut(BaseModel):
    """The Arduino's reply line (``response``) to the move."""

    success: bool
    motor_id: int
    angle: float
    response: str


class ScenarioOut(BaseModel):
    """``POST /api/scenario/{name}``: today's ``{"status", "message"}``; ``feedback`` is the
    board's first ``ACK:``/``NACK:`` line to ``emergency``; ``state`` the runner's state."""

    status: Literal["ok", "error"]
    message: str
    feedback: str | None = None
    state: str


class AbortIn(_In):
    """Optional body of ``POST /api/control/abort``."""

    reason: str = Field(default="operator abort", max_length=300)


class AuthorityIn(_In):
    """``POST /api/control/authority``.

    ``request``: take authority under the name ``client`` (a holder sending its ``lease``
    renews it); ``renew``: the heartbeat, extends the lease; ``release``: give it up.
    """

    action: Literal["request", "renew", "release"]
    client: str = Field(default="", max_length=80, pattern=r"^[A-Za-z0-9_.@:\- ]*$")
    lease: str | None = Field(default=None, max_length=200)


class AuthorityOut(BaseModel):
    """Who controls the station. ``lease`` is given only to the client that was granted it;
    send it as the ``X-Control-Lease`` header with each command."""

    holder: str = Field(description="The controlling client ('' when nobody controls).")
    lease: str | None = None
    lease_s: float = Field(description="How long a lease lasts without renewal.")
    expires_in_s: float | None = None


class RunnerOut(BaseModel):
    """The scenario runner (the station's system mode)."""

    state: str
    since: str
    scenario: str
    step_index: int
    step: str
    armed_by: str
    hold_message: str
    abort_reason: str
    abort_by: str
    redline: str
    safing_failures: list[str]
    allowed: list[str] = Field(description="Actions a client may request now.")


class ActuatorOut(BaseModel):
    """One actuator: what was commanded, what the device acknowledged."""

    name: str
    backend: str
    kind: str
    safe: str | float | None
    hot: bool
    commanded: str | float | None
    acknowledged: str | float | None
    status: Literal["acknowledged", "pending", "refused", "unknown"]
    since: str
    message: str


class TripOut(BaseModel):
    """A redline that tripped."""

    redline: str
    message: str
    time: str
    value: float | None


class RedlinesOut(BaseModel):
    """Redlines watched now and the trips so far."""

    active: list[str]
    trips: list[TripOut]


class ControlOut(BaseModel):
    """``GET /api/control``: the runner, the authority, every actuator, the redlines."""

    runner: RunnerOut
    authority: AuthorityOut
    actuators: list[ActuatorOut]
    redlines: RedlinesOut
    scenarios: list[str]


@pydantic_dataclass(frozen=True)
class AuditEntryOut(AuditEntry):
    """One row of the audit log."""


class AuditOut(BaseModel):
    """``GET /api/control/audit``: matching rows, oldest first."""

    entries: list[AuditEntryOut]


class AuditFilter(_In):
    """Filters of ``GET /api/control/audit`` (each optional; all given must match)."""

    since: datetime | None = Field(default=None, description="ISO 8601, inclusive.")
    until: datetime | None = Field(default=None, description="ISO 8601, exclusive.")
    who: str | None = None
    source: str | None = Field(default=None, description="api, ws, scenario, abort, watchdog...")
    result: str | None = Field(default=None, description="ok, refused, failed, expired...")
    action: str | None = None
    scenario: str | None = None
    limit: int = Field(default=1000, ge=1, le=100_000)
    format: Literal["json", "csv"] = "json"


class PiConnectIn(_In):
    """The ball mill's ``POST /connect``: the Pi running the pigpio daemon."""

    piIp: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\-]+$")


class PiValveIn(_In):
    """The ball mill's ``POST /valve``: valve ``valveIndex`` (0-based) open (true) or closed."""

    valveIndex: int = Field(ge=0)
    state: bool


class PiOut(BaseModel):
    """The ball mill's valve endpoints' reply: the Pi connection and each valve (true: open,
    null: unknown)."""

    success: bool
    message: str
    connected: bool
    pi_ip: str | None
    valve_states: list[bool | None]


class PlcIn(_In):
    """``POST /plc-io``: the marker bit M0.0 on (true / 1) or off."""

    value: bool


class PlcOut(BaseModel):
    """The bit as read back from the PLC."""

    success: bool
    value: bool
