"""The fleet's REST API for people: login, machines and keys, latest state, history, map,
alerts, audit, users. Every route names the role it needs (viewer < operator < admin); every
change is written to the audit."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from rigwatch.errors import AlertError, FleetAuthError
from rigwatch.fleet.alerts import Alert, AlertQuery, AlertState
from rigwatch.fleet.problems import problem_responses
from rigwatch.fleet.schemas import (
    NO_NUL,
    AlertAction,
    AuditOut,
    FleetMap,
    KeyInfo,
    KeyIssued,
    LatestOut,
    LoginIn,
    MachineCreated,
    MachineId,
    MachineIn,
    MachineOut,
    MachineUpdate,
    MetricHistory,
    QueryTime,
    Role,
    TokenOut,
    UserIn,
    UserOut,
)
from rigwatch.fleet.services import FleetServices
from rigwatch.fleet.signals import Severity
from rigwatch.fleet.store import Principal, require_role
from rigwatch.timefmt import from_ns, to_ns

MetricName = Annotated[str, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)]
AlertId = Annotated[str, Path(pattern=NO_NUL, max_length=64)]


def _services(request: Request) -> FleetServices:
    services: FleetServices = request.app.state.fleet
    return services


def bearer(request: Request) -> str | None:
    """The bearer token of a request (header, or ``?token=`` for WebSockets)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def principal_of(services: FleetServices, token: str | None) -> Principal | None:
    """The user of a token; an anonymous viewer when the config allows anonymous reading."""
    if token:
        found = await asyncio.to_thread(services.store.principal_for_token, token)
        if found is None:
            raise FleetAuthError("unknown or expired login token")
        return found
    if services.config.auth.anonymous_read:
        return Principal("anonymous", "viewer")
    return None


def needs(role: Role) -> Any:
    """A dependency giving the caller's principal when its role is at least ``role``."""

    async def dependency(request: Request) -> Principal:
        found = await principal_of(_services(request), bearer(request))
        return require_role(found, role)

    return Depends(dependency)


Viewer = Annotated[Principal, needs("viewer")]
Operator = Annotated[Principal, needs("operator")]
Admin = Annotated[Principal, needs("admin")]

_AUTH = problem_responses(401, 403)
_AUTH_404 = problem_responses(401, 403, 404)
_CREATE = problem_responses(401, 403, 409, 422)
_UPDATE = problem_responses(401, 403, 404, 422)
_ALERT_ACTION = problem_responses(401, 403, 404, 409, 422)


def api_router() -> APIRouter:
    """Every route for people."""
    r = APIRouter()

    # -- auth ----------------------------------------------------------------------------

    @r.post("/api/auth/login", tags=["auth"], responses=problem_responses(401, 422))
    async def login(body: LoginIn, request: Request) -> TokenOut:
        """Exchange a user name and password for a token (``Authorization: Bearer``)."""
        s = _services(request)
        token, role, expires = await asyncio.to_thread(
            s.store.login, body.username, body.password, s.config.auth.token_ttl_s
        )
        return TokenOut(token=token, username=body.username, role=role, expires_at=from_ns(expires))

    @r.post("/api/auth/logout", tags=["auth"], status_code=204, responses=_AUTH)
    async def logout(request: Request, _who: Viewer) -> Response:
        """Invalidate the caller's token."""
        token = bearer(request)
        if token:
            await asyncio.to_thread(_services(request).store.logout, token)
        return Response(status_code=204)

    # -- machines and keys ---------------------------------------------------------------

    @r.get("/api/machines", tags=["machines"], responses=_AUTH)
    async def list_machines(request: Request, _who: Viewer) -> list[MachineOut]:
        """Every registered machine."""
        return await asyncio.to_thread(_services(request).store.list_machines)

    @r.post(
        "/api/machines",
        tags=["machines"],
        status_code=201,
        responses=_CREATE,
    )
    async def add_machine(body: MachineIn, request: Request, who: Admin) -> MachineCreated:
        """Register a machine; its API key is in the answer, once."""
        s = _services(request)
        machine, key = await asyncio.to_thread(s.store.add_machine, body, who.username)
        s.status.add_machine(machine.id)
        return MachineCreated(machine=machine, key=key)

    @r.get("/api/machines/{machine_id}", tags=["machines"], responses=_AUTH_404)
    async def get_machine(machine_id: MachineId, request: Request, _who: Viewer) -> MachineOut:
        """One machine."""
        return await asyncio.to_thread(_services(request).store.get_machine, machine_id)

    @r.patch(
        "/api/machines/{machine_id}",
        tags=["machines"],
        responses=_UPDATE,
    )
    async def update_machine(
        machine_id: MachineId, body: MachineUpdate, request: Request, who: Admin
    ) -> MachineOut:
        """Change a machine's name, type, site, position or tags."""
        s = _services(request)
        return await asyncio.to_thread(s.store.update_machine, machine_id, body, who.username)

    @r.delete("/api/machines/{machine_id}", tags=["machines"], status_code=204, responses=_AUTH_404)
    async def delete_machine(machine_id: MachineId, request: Request, who: Admin) -> Response:
        """Delete a machine with its keys and history."""
        s = _services(request)
        await asyncio.to_thread(s.store.delete_machine, machine_id, who.username)
        s.keys_changed()
        s.hub.forget(machine_id)
        if s.redis is not None:
            await s.redis.forget(machine_id)
        return Response(status_code=204)

    @r.get("/api/machines/{machine_id}/keys", tags=["machines"], responses=_AUTH_404)
    async def list_keys(machine_id: MachineId, request: Request, _who: Admin) -> list[KeyInfo]:
        """A machine's keys (never the keys themselves)."""
        s = _services(request)
        await asyncio.to_thread(s.store.get_machine, machine_id)
        return await asyncio.to_thread(s.store.list_keys, machine_id)

    @r.post("/api/machines/{machine_id}/keys", tags=["machines"], responses=_AUTH_404)
    async def rotate_key(machine_id: MachineId, request: Request, who: Admin) -> KeyIssued:
        """Revoke the machine's keys and issue a new one (in the answer, once)."""
        s = _services(request)
        key = await asyncio.to_thread(s.store.rotate_key, machine_id, who.username)
        s.keys_changed()
        return key

    @r.delete("/api/machines/{machine_id}/keys", tags=["machines"], responses=_AUTH_404)
    async def revoke_keys(machine_id: MachineId, request: Request, who: Admin) -> dict[str, int]:
        """Revoke every key of the machine: ``{"revoked": n}``."""
        s = _services(request)
        n = await asyncio.to_thread(s.store.revoke_keys, machine_id, who.username)
        s.keys_changed()
        return {"revoked": n}

    # -- state, history, map -------------------------------------------------------------

    @r.get("/api/machines/{machine_id}/latest", tags=["state"], responses=_AUTH_404)
    async def latest(machine_id: MachineId, request: Request, _who: Viewer) -> LatestOut:
        """A machine's latest state: colour, values, system info."""
        return await asyncio.to_thread(_services(request).store.latest, machine_id)

    @r.get("/api/latest", tags=["state"], responses=_AUTH)
    async def all_latest(request: Request, _who: Viewer) -> list[LatestOut]:
        """The latest state of every machine that reported."""
        return await asyncio.to_thread(_services(request).store.all_latest)

    @r.get(
        "/api/machines/{machine_id}/history",
        tags=["state"],
        responses=_UPDATE,
    )
    async def history(
        machine_id: MachineId,
        request: Request,
        _who: Viewer,
        metric: MetricName,
        start: QueryTime,
        end: QueryTime | None = None,
        resolution: Literal["auto", "raw", "hour"] = "auto",
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> MetricHistory:
        """A metric's history between ``start`` and ``end`` (default now): raw samples, or
        hourly min/max/mean (roll-ups of data past the retention plus recent raw data)."""
        s = _services(request)
        await asyncio.to_thread(s.store.get_machine, machine_id)
        end_ns = to_ns(end) if end is not None else to_ns(s.clock())
        return await asyncio.to_thread(
            s.store.history, machine_id, metric, to_ns(start), end_ns, resolution, limit
        )

    @r.get("/api/fleet/map", tags=["state"], responses=_AUTH)
    async def fleet_map(request: Request, _who: Viewer) -> Response:
        """Every machine's id, name, colour and position, columnar."""
        found: FleetMap = await asyncio.to_thread(_services(request).store.fleet_map)
        return Response(found.model_dump_json(), media_type="application/json")

    @r.get("/api/fleet/status", tags=["state"], responses=_AUTH)
    async def server_status(request: Request, _who: Viewer) -> dict[str, Any]:
        """Counters (refusals, duplicates, commits...), queue depth and live clients."""
        s = _services(request)
        return {
            "pending": s.writer.pending,
            "ws_clients": s.hub.client_count,
            "seq": s.hub.seq,
            "counters": s.counters.snapshot(),
        }

    # -- alerts --------------------------------------------------------------------------

    @r.get("/api/alerts", tags=["alerts"], responses=problem_responses(401, 403, 422))
    async def list_alerts(
        request: Request,
        _who: Viewer,
        machine_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        rule_id: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
        state: Annotated[list[AlertState] | None, Query()] = None,
        severity: Severity | None = None,
        since: QueryTime | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[Alert]:
        """Alerts, newest first, filtered by machine, rule, state(s), severity, last seen."""
        query = AlertQuery(
            machine_id=machine_id,
            rule_id=rule_id,
            states=frozenset(state) if state else None,
            severity=severity,
            since=since,
            limit=limit,
        )
        return await asyncio.to_thread(_services(request).alerts.store.query, query)

    @r.get("/api/alerts/{alert_id}", tags=["alerts"], responses=_AUTH_404)
    async def get_alert(alert_id: AlertId, request: Request, _who: Viewer) -> Alert:
        """One alert."""
        found = await asyncio.to_thread(_services(request).alerts.store.get, alert_id)
        if found is None:
            raise AlertError(f"no alert with id {alert_id!r}")
        return found

    async def _act(
        alert_id: str, action: str, body: AlertAction, request: Request, who: Principal
    ) -> Alert:
        s = _services(request)
        do = s.alerts.acknowledge if action == "acknowledge" else s.alerts.clear
        change = await asyncio.to_thread(do, alert_id, who.username, body.comment, s.clock())
        await asyncio.to_thread(
            s.store.audit,
            who.username,
            f"alert.{action}",
            alert_id,
            {
                "machine_id": change.alert.machine_id,
                "rule_id": change.alert.rule_id,
                "comment": body.comment,
            },
        )
        return change.alert

    @r.post(
        "/api/alerts/{alert_id}/acknowledge",
        tags=["alerts"],
        responses=_ALERT_ACTION,
    )
    async def acknowledge(
        alert_id: AlertId, request: Request, who: Operator, body: AlertAction | None = None
    ) -> Alert:
        """Acknowledge an active alert, with a comment."""
        return await _act(alert_id, "acknowledge", body or AlertAction(), request, who)

    @r.post(
        "/api/alerts/{alert_id}/clear",
        tags=["alerts"],
        responses=_ALERT_ACTION,
    )
    async def clear(
        alert_id: AlertId, request: Request, who: Operator, body: AlertAction | None = None
    ) -> Alert:
        """Clear an open alert by hand, with a comment."""
        return await _act(alert_id, "clear", body or AlertAction(), request, who)

    # -- audit and users -----------------------------------------------------------------

    @r.get("/api/audit", tags=["admin"], responses=_AUTH)
    async def audit(
        request: Request,
        _who: Admin,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> list[AuditOut]:
        """Human actions, newest first (``before_id``: only those of smaller id, the next
        page; ids are 64-bit, larger values are refused)."""
        return await asyncio.to_thread(_services(request).store.list_audit, limit, before_id)

    @r.get("/api/users", tags=["admin"], responses=_AUTH)
    async def users(request: Request, _who: Admin) -> list[UserOut]:
        """Every user."""
        return await asyncio.to_thread(_services(request).store.list_users)

    @r.post(
        "/api/users",
        tags=["admin"],
        status_code=201,
        responses=_CREATE,
    )
    async def add_user(body: UserIn, request: Request, who: Admin) -> UserOut:
        """Create a user."""
        s = _services(request)
        return await asyncio.to_thread(
            s.store.add_user, body.username, body.password, body.role, who.username
        )

    return r
