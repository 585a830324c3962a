"""Control: today's valve, motor, scenario, ball-mill and PLC endpoints with their bodies, and
the typed runner, authority, status and audit endpoints.

Every command needs, in this order: the operator token when the station listens beyond
localhost (:data:`~rigwatch.web.deps.Writer`: 401/403), then the control authority's lease in
``X-Control-Lease`` (:data:`~rigwatch.web.deps.Operator`: 403 when nobody holds authority, 409
when another client does; audited). Aborts (``POST /api/control/abort``, the safing scenario,
``system_mode`` ``safe``) need no authority: any client allowed to write may abort. Reads are
open.

Status codes of a refused command (problem details, audited): 404 no such actuator bank,
scenario or motor on this station; 409 a refusal by an interlock, the arming rule or the
runner's transition table (the message says which and why); 422 a body that does not validate
or a value an actuator cannot take; 502 the device refused or failed (``NACK``, connection
lost); 504 no acknowledgement in time. Nothing moved in any of these cases except 502/504,
where the actuators' states say what is known.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from rigwatch.config.control import ArduinoMotorsConfig, S7Config
from rigwatch.control.actuators import Status
from rigwatch.control.audit import AuditLog, record_refusal
from rigwatch.control.backends.pi_valves import PiValves
from rigwatch.control.states import HOT_STATES, RunnerState
from rigwatch.errors import (
    ActuatorFault,
    AuthorityRefused,
    CommandRefused,
    ControlError,
    InvalidCommand,
    TransitionRefused,
)
from rigwatch.station import Station
from rigwatch.web.control_schemas import (
    AbortIn,
    AuditEntryOut,
    AuditFilter,
    AuditOut,
    AuthorityIn,
    AuthorityOut,
    ControlOut,
    PiConnectIn,
    PiOut,
    PiValveIn,
    PlcIn,
    PlcOut,
    RunnerOut,
    ScenarioOut,
    StepMotorIn,
    StepMotorOut,
    ValvesIn,
    ValvesOut,
)
from rigwatch.web.control_views import authority_out, control_out, runner_out, valve_bits
from rigwatch.web.deps import (
    LEASE_HEADER,
    Context,
    ControlWriter,
    Operator,
    StationDep,
    abort_caller,
    check_authority,
    client_label,
)
from rigwatch.web.problems import problem_responses

router = APIRouter(tags=["control"])

COMMAND_ERRORS = problem_responses(401, 403, 404, 409, 422, 502, 504)
RUNNER_ERRORS = problem_responses(401, 403, 409)


# -- helpers shared with the WebSocket ----------------------------------------------------------


def send_command(station: Station, changes: dict[str, Any], who: str, source: str) -> Status:
    """Send ``changes`` through the station's commander, which checks them once and audits
    and counts a refusal.

    Raises:
        HTTPException: 422 for no or an unknown actuator or a value it cannot take
            (:class:`~rigwatch.errors.InvalidCommand`), 409 for an interlock or the
            arming rule.
    """
    try:
        return station.control.commander.command(changes, who=who, source=source)
    except InvalidCommand as exc:
        raise HTTPException(422, str(exc)) from None
    except CommandRefused as exc:
        raise HTTPException(409, str(exc)) from None


async def wait_done_async(station: Station, status: Status) -> Status:
    """:func:`wait_done` without a thread: the status's completion wakes the event loop (its
    earlier callbacks, the audit row among them, have run by then).

    Raises:
        HTTPException: as :func:`wait_done`.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def resolve() -> None:
        if not done.done():
            done.set_result(None)

    def wake(_st: Status) -> None:
        loop.call_soon_threadsafe(resolve)

    status.add_callback(wake)
    try:
        await asyncio.wait_for(done, station.control.runner.command_timeout_s)
    except TimeoutError:
        raise HTTPException(504, f"{status.description}: no acknowledgement in time") from None
    exc = status.exception()
    if isinstance(exc, ActuatorFault | ControlError):
        raise HTTPException(502, str(exc))
    return status


def wait_done(station: Station, status: Status) -> Status:
    """Wait for ``status``.

    Raises:
        HTTPException: 502 when the device refused or failed, 504 when it did not answer in
            time.
    """
    try:
        status.wait(station.control.runner.command_timeout_s)
    except TimeoutError as exc:
        raise HTTPException(504, str(exc)) from None
    except (ActuatorFault, ControlError) as exc:
        raise HTTPException(502, str(exc)) from None
    return status


def valve_bank_specs(station: Station) -> list[str]:
    """Names of the 9 outputs of the station's valve bank.

    Raises:
        HTTPException: 404 when it has none.
    """
    for b in station.control.commander.backends:
        specs = list(b.specs)
        if len(specs) == 9 and all(s.binary for s in specs):
            return [s.name for s in specs]
    raise HTTPException(404, "this station has no valve bank of 9 outputs ([control.actuators])")


def motor_name(station: Station, motor_id: int) -> str | None:
    """The actuator name of step motor ``motor_id``, or None."""
    cfg = station.config.control
    for b in cfg.actuators if cfg is not None else []:
        if isinstance(b, ArduinoMotorsConfig):
            for m in b.motors:
                if m.motor_id == motor_id:
                    return m.name
    return None


def motor_ids(station: Station) -> list[str]:
    """``"1 (MOTOR1)"`` for each configured motor."""
    cfg = station.config.control
    return [
        f"{m.motor_id} ({m.name})"
        for b in (cfg.actuators if cfg is not None else [])
        if isinstance(b, ArduinoMotorsConfig)
        for m in b.motors
    ]


# -- today's test-stand endpoints ---------------------------------------------------------------


def _refused(station: Station, who: str, target: str, status: int, reason: str) -> HTTPException:
    """Audit and count a refused API request (:func:`record_refusal`); returns the error to
    raise (``status``, ``reason``)."""
    record_refusal(
        station.control.audit, station.counters, who=who, source="api", target=target, reason=reason
    )
    return HTTPException(status, reason)


@router.post("/api/valves", dependencies=[ControlWriter], responses=COMMAND_ERRORS)
async def valves(body: ValvesIn, station: StationDep, who: Operator) -> ValvesOut:
    """Set the 9 outputs of the valve bank at once (``Valves:<9 bits>``); the reply is the word
    the board acknowledged."""
    names = valve_bank_specs(station)
    specs = station.control.commander.specs
    changes: dict[str, Any] = {
        n: specs[n].position(bool(bit)) for n, bit in zip(names, body.valves, strict=True)
    }
    await wait_done_async(station, send_command(station, changes, who, "api"))
    return ValvesOut(success=True, valves=valve_bits(station)[0])


@router.post("/api/step_motor", dependencies=[ControlWriter], responses=COMMAND_ERRORS)
async def step_motor(body: StepMotorIn, station: StationDep, who: Operator) -> StepMotorOut:
    """Move a step motor to an absolute angle; ``response`` is the Arduino's reply line."""
    name = motor_name(station, body.motor_id)
    if name is None:
        reason = (
            f"unknown motor_id {body.motor_id}; motors: {', '.join(motor_ids(station)) or 'none'}"
        )
        raise _refused(station, who, f"motor {body.motor_id}", 422, reason)
    st = await wait_done_async(station, send_command(station, {name: body.angle}, who, "api"))
    return StepMotorOut(success=True, motor_id=body.motor_id, angle=body.angle, response=st.reply)


@router.post(
    "/api/scenario/{name}",
    dependencies=[ControlWriter],
    responses=problem_responses(401, 403, 404, 409),
)
def scenario(name: str, request: Request, ctx: Context) -> ScenarioOut:
    """Start scenario ``name`` (``armed`` first for a hot one). The safing scenario
    (``emergency``) needs no authority: when the runner is idle or armed it runs (the board's
    word with today's timing; its first ``ACK:``/``NACK:`` comes back as ``feedback``),
    otherwise the current abort sequence runs."""
    station = ctx.station
    runner = station.control.runner
    safing = name == runner.safing_scenario
    who = abort_caller(request, station) if safing else check_authority(request, ctx)
    if safing and runner.state not in (RunnerState.IDLE, RunnerState.ARMED):
        try:
            runner.abort(f"{name} requested by {who}", who, source="api")
        except TransitionRefused as exc:
            raise HTTPException(409, str(exc)) from None
        return ScenarioOut(
            status="ok",
            message=f"{name}: the abort sequence of {runner.status().scenario!r} runs",
            state=runner.state.value,
        )
    if name not in runner.scenarios:
        reason = f"no scenario {name!r}; scenarios: {', '.join(sorted(runner.scenarios)) or 'none'}"
        raise _refused(station, who, f"scenario {name}", 404, reason)
    t0 = time.time_ns()
    try:
        runner.start(name, who)
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    feedback = None
    if safing:
        runner.wait_state({RunnerState.DONE, RunnerState.SAFE}, 10.0)
        audit = station.control.audit
        rows = [] if audit is None else audit.query(action="firmware", scenario=name, since_ns=t0)
        feedback = rows[0].reason if rows else None
    return ScenarioOut(
        status="ok", message=f"scenario {name} started", feedback=feedback, state=runner.state.value
    )


# -- runner and authority -----------------------------------------------------------------------


def _transition(station: Station, action: str, who: str) -> RunnerOut:
    runner = station.control.runner
    try:
        getattr(runner, action)(who)
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return runner_out(runner)


@router.post("/api/control/arm", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def arm(station: StationDep, who: Operator) -> RunnerOut:
    """``idle -> armed``: hot actuators may leave their safe positions, hot scenarios start."""
    return _transition(station, "arm", who)


@router.post("/api/control/disarm", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def disarm(station: StationDep, who: Operator) -> RunnerOut:
    """``armed -> idle``."""
    return _transition(station, "disarm", who)


@router.post("/api/control/hold", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def hold(station: StationDep, who: Operator) -> RunnerOut:
    """``running -> holding`` after the step in progress."""
    return _transition(station, "hold", who)


@router.post("/api/control/resume", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def resume(station: StationDep, who: Operator) -> RunnerOut:
    """``holding -> running``."""
    return _transition(station, "resume", who)


@router.post("/api/control/reset", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def reset(station: StationDep, who: Operator) -> RunnerOut:
    """``safe``/``done`` -> ``idle``: the operator acknowledges the outcome."""
    return _transition(station, "reset", who)


@router.post("/api/control/abort", dependencies=[ControlWriter], responses=RUNNER_ERRORS)
def abort(request: Request, station: StationDep, body: AbortIn | None = None) -> RunnerOut:
    """Run the abort sequence (of the running scenario, else of the safing scenario) and end
    in ``safe``. Needs no control authority."""
    who = abort_caller(request, station)
    runner = station.control.runner
    reason = (body or AbortIn()).reason
    try:
        runner.abort(f"{reason} ({who})", who, source="api")
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return runner_out(runner)


def change_authority(
    station: Station, body: AuthorityIn, token: str | None, who: str, source: str
) -> AuthorityOut:
    """Apply an authority request, renewal or release; audited.

    Raises:
        AuthorityRefused: another client holds it, or ``token`` is not the current lease.
        TransitionRefused: a release while the stand is armed, running or holding.
        ValueError: a request without a client name.
    """
    control = station.control
    auth = control.authority
    lease_token = body.lease or token
    audit = control.audit
    try:
        if body.action == "request":
            if not body.client.strip():
                raise ValueError("request: give the client's name in 'client'")
            lease = auth.request(body.client.strip(), lease_token)
            result: AuthorityOut = authority_out(station, lease.token)
            who = lease.holder
        elif body.action == "renew":
            lease = auth.renew(lease_token)
            result = authority_out(station, lease.token)
            who = lease.holder
        else:
            state = control.runner.state
            if state in HOT_STATES:
                raise TransitionRefused(
                    f"cannot release control while {state.value}: disarm or abort first (the "
                    "stand would be left without an operator)"
                )
            who = auth.release(lease_token).holder
            result = authority_out(station)
    except (AuthorityRefused, TransitionRefused) as exc:
        claimed = body.client.strip() if body.action == "request" else ""
        record_refusal(
            audit,
            station.counters,
            who=claimed or who,
            source=source,
            target=f"authority {body.action}",
            reason=str(exc),
            counter="control.no_authority",
        )
        raise
    if audit is not None and body.action != "renew":
        audit.record(who=who, source=source, action="authority", target=body.action, result="ok")
    control.notify("authority")
    return result


@router.post(
    "/api/control/authority",
    dependencies=[ControlWriter],
    responses=problem_responses(401, 403, 409, 422),
)
def authority(body: AuthorityIn, request: Request, station: StationDep) -> AuthorityOut:
    """Request, renew (the operator's heartbeat) or release control authority. One client
    controls the station at a time; others watch. A lease not renewed within
    ``operator_timeout_s`` lapses; if the stand is armed, running or holding then, it
    aborts."""
    try:
        return change_authority(
            station, body, request.headers.get(LEASE_HEADER), client_label(request), "api"
        )
    except AuthorityRefused as exc:
        raise HTTPException(409 if exc.holder else 403, str(exc)) from None
    except TransitionRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/api/control")
def control_status(station: StationDep) -> ControlOut:
    """The runner, the authority, each actuator's commanded and acknowledged state, the
    redlines watched and tripped, the scenarios. A live client gets the same after every
    change as ``control_state`` frames (WebSocket ``subscribe_control``)."""
    return control_out(station)


def _ns(when: datetime) -> int:
    """ns since the Unix epoch; a time without a zone is taken as UTC (the log's zone)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000_000)


def audit_filters(f: AuditFilter) -> dict[str, Any]:
    """``f`` as the keyword arguments of :meth:`AuditLog.query` and :meth:`AuditLog.to_csv`."""
    return {
        "since_ns": None if f.since is None else _ns(f.since),
        "until_ns": None if f.until is None else _ns(f.until),
        "who": f.who,
        "source": f.source,
        "result": f.result,
        "action": f.action,
        "scenario": f.scenario,
        "limit": f.limit,
    }


def query_audit(audit: AuditLog, f: AuditFilter) -> list[AuditEntryOut]:
    """Rows of ``audit`` matching every filter of ``f``, oldest first, at most ``f.limit``."""
    return [AuditEntryOut(**asdict(e)) for e in audit.query(**audit_filters(f))]


@router.get(
    "/api/control/audit",
    response_model=AuditOut,
    responses={
        **problem_responses(404, 422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
def control_audit(station: StationDep, f: Annotated[AuditFilter, Query()]) -> AuditOut | Response:
    """The audit log: every command from REST, WebSocket, a scenario, an abort or a watchdog,
    who gave it, when, what came of it, the interlock or redline involved. Filter by time
    (``since``/``until``, ISO 8601), ``who``, ``source``, ``result``, ``action``,
    ``scenario``; ``format=csv`` exports the same rows as CSV (:meth:`AuditLog.to_csv`)."""
    audit = station.control.audit
    if audit is None:
        raise HTTPException(404, "this station has no control part ([control]): no audit log")
    if f.format == "json":
        return AuditOut(entries=query_audit(audit, f))
    return Response(
        audit.to_csv(**audit_filters(f)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="control_audit.csv"'},
    )


# -- the ball mill's valves and PLC -------------------------------------------------------------


def pi_valves(station: Station) -> PiValves | None:
    """The station's Raspberry Pi GPIO valve bank, or None."""
    return next((b for b in station.control.commander.backends if isinstance(b, PiValves)), None)


def pi_state(station: Station) -> tuple[bool, str | None, list[bool | None]]:
    """``(connected, pi_ip, valve_states)`` of the GPIO bank (``(False, None, [])`` without
    one); a valve state is true when open, None when unknown."""
    pi = pi_valves(station)
    if pi is None:
        return False, None, []
    readings = pi.read()
    states = [
        None if readings[s.name].acknowledged is None else readings[s.name].acknowledged == "open"
        for s in pi.specs
    ]
    return pi.connected, pi.host, states


def _pi(station: Station) -> PiValves:
    pi = pi_valves(station)
    if pi is None:
        raise HTTPException(404, "this station has no GPIO valves ([[control.actuators]] gpio)")
    return pi


def _pi_out(station: Station, message: str) -> PiOut:
    connected, host, states = pi_state(station)
    return PiOut(
        success=True, message=message, connected=connected, pi_ip=host, valve_states=states
    )


@router.post("/connect", tags=["ball mill"], dependencies=[ControlWriter], responses=COMMAND_ERRORS)
def pi_connect(body: PiConnectIn, station: StationDep, who: Operator) -> PiOut:
    """Connect to the pigpio daemon of the Pi at ``piIp`` (3 retries); its valve pins are
    claimed closed (de-energised)."""
    pi = _pi(station)
    try:
        pi.connect_to(body.piIp)
    except ControlError as exc:
        raise HTTPException(502, str(exc)) from None
    except Exception as exc:  # DeviceError and the pin factory's own errors
        raise _refused(station, who, f"connect {body.piIp}", 502, str(exc)) from None
    if station.control.audit is not None:
        station.control.audit.record(
            who=who, source="api", action="connect", target=body.piIp, result="ok"
        )
    station.control.notify("actuators")
    return _pi_out(station, f"connected to {body.piIp}")


@router.post("/valve", tags=["ball mill"], dependencies=[ControlWriter], responses=COMMAND_ERRORS)
def pi_valve(body: PiValveIn, station: StationDep, who: Operator) -> PiOut:
    """Open (``state: true``) or close valve ``valveIndex`` (0, 1, 2: BCM 22, 27, 17)."""
    pi = _pi(station)
    specs = list(pi.specs)
    if body.valveIndex >= len(specs):
        reason = f"valveIndex {body.valveIndex} out of range: the Pi has {len(specs)} valves"
        raise _refused(station, who, f"valve {body.valveIndex}", 422, reason)
    spec = specs[body.valveIndex]
    value = spec.words[0] if body.state else spec.words[1]
    wait_done(station, send_command(station, {spec.name: value}, who, "api"))
    return _pi_out(station, f"{spec.name} {value}")


@router.post(
    "/disconnect", tags=["ball mill"], dependencies=[ControlWriter], responses=COMMAND_ERRORS
)
def pi_disconnect(station: StationDep, who: Operator) -> PiOut:
    """Close every valve, then release the Pi's pins."""
    pi = _pi(station)
    message = "all valves closed; disconnected"
    if pi.connected:
        closed = {s.name: s.words[1] for s in pi.specs}
        try:
            wait_done(station, send_command(station, closed, who, "api"))
        except HTTPException as exc:
            message = f"closing the valves failed ({exc.detail}); disconnected"
    pi.disconnect()
    if station.control.audit is not None:
        station.control.audit.record(
            who=who, source="api", action="disconnect", target=pi.name, result="ok", reason=message
        )
    station.control.notify("actuators")
    return _pi_out(station, message)


def plc_point(station: Station) -> str:
    """The PLC bit ``/plc-io`` sets: the S7 point at M0.0 (else the first bit point).

    Raises:
        HTTPException: 404 without a PLC bit.
    """
    cfg = station.config.control
    bits = [
        p
        for b in (cfg.actuators if cfg is not None else [])
        if isinstance(b, S7Config)
        for p in b.points
        if p.kind != "word"
    ]
    if not bits:
        raise HTTPException(404, "this station has no PLC bit ([[control.actuators]] s7)")
    marker = next((p for p in bits if p.address.strip().upper() == "M0.0"), bits[0])
    return marker.name


@router.post("/plc-io", tags=["ball mill"], dependencies=[ControlWriter], responses=COMMAND_ERRORS)
def plc_io(body: PlcIn, station: StationDep, who: Operator) -> PlcOut:
    """Set the PLC's marker bit M0.0 (``value`` true / 1) or clear it; the reply is the bit as
    read back from the PLC."""
    name = plc_point(station)
    spec = station.control.commander.specs[name]
    value = spec.words[0] if body.value else spec.words[1]
    wait_done(station, send_command(station, {name: value}, who, "api"))
    back = station.control.commander.read()[name].acknowledged
    return PlcOut(success=True, value=back == spec.words[0])
