"""FastAPI dependencies of the station's routers: the station, its live hub, the access
policy and the request bounds, all held by the app (``app.state.web``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request

from rigwatch.acquisition.live import LiveHub
from rigwatch.control.audit import record_refusal
from rigwatch.errors import AuthorityRefused
from rigwatch.station import Station
from rigwatch.web.control_feed import ControlFeed
from rigwatch.web.limits import QueryGate, SnapshotGate
from rigwatch.web.security import AccessPolicy

T = TypeVar("T")


@dataclass
class WebContext:
    """Everything the routers of one app use.

    Attributes:
        heavy: the threads recording queries, snapshots and large replies run on, at a lower
            scheduling priority than acquisition and the live stream
            (:func:`rigwatch.threads.background_pool`).
    """

    station: Station
    hub: LiveHub
    access: AccessPolicy
    queries: QueryGate
    snapshots: SnapshotGate
    heavy: ThreadPoolExecutor
    control_feed: ControlFeed | None = field(default=None)

    async def run_heavy(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on a :attr:`heavy` thread, awaited; its CPU time is charged to the
        queries' budget (when there is one)."""
        loop = asyncio.get_running_loop()
        budget = self.queries.budget

        def timed() -> T:
            cpu0 = time.thread_time()
            try:
                return fn(*args)
            finally:
                if budget is not None:
                    budget.charge(time.thread_time() - cpu0)

        return await loop.run_in_executor(self.heavy, timed)


async def get_context(request: Request) -> WebContext:
    """The app's :class:`WebContext` (async: no thread hop for a lookup)."""
    ctx: WebContext = request.app.state.web
    return ctx


async def get_station(ctx: Annotated[WebContext, Depends(get_context)]) -> Station:
    """The station served (async: no thread hop for a lookup)."""
    return ctx.station


Context = Annotated[WebContext, Depends(get_context)]
StationDep = Annotated[Station, Depends(get_station)]


async def require_writer(request: Request, ctx: Context) -> None:
    """Refuse a write or command from a foreign web origin (403) or without the required
    token (401, ``WWW-Authenticate: Bearer``); both counted. (Async: it never blocks, and a
    command then needs no thread hop before its endpoint.)"""
    counters = ctx.station.counters
    origin = request.headers.get("origin")
    if not ctx.access.origin_allowed(origin, request.headers.get("host")):
        counters.inc("http.forbidden_origin", message=f"origin {origin!r}")
        raise HTTPException(403, f"requests from origin {origin!r} may not change this station")
    if not ctx.access.token_ok(request.headers.get("authorization")):
        counters.inc("http.unauthorized", message=f"{request.method} {request.url.path}")
        raise HTTPException(
            401,
            "this station requires a token for writes and commands: "
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


Writer = Depends(require_writer)


async def require_control_writer(request: Request, ctx: Context) -> None:
    """:func:`require_writer` for commands to actuators and the runner: a refusal is also
    recorded in the control audit log."""
    try:
        await require_writer(request, ctx)
    except HTTPException as exc:
        if ctx.station.control.audit is not None:
            await asyncio.to_thread(
                record_refusal,
                ctx.station.control.audit,
                None,  # counted by require_writer
                who=client_label(request),
                source="api",
                target=f"{request.method} {request.url.path}",
                reason=str(exc.detail),
            )
        raise


ControlWriter = Depends(require_control_writer)
""":data:`Writer` for control commands (refusals audited)."""


LEASE_HEADER = "X-Control-Lease"
"""Header carrying the control authority's lease with a command."""


def client_label(request: Request) -> str:
    """``anonymous@<address>``: who a request without control authority came from."""
    host = request.client.host if request.client is not None else "unknown"
    return f"anonymous@{host}"


def abort_caller(request: Request, station: Station) -> str:
    """Who a request needing no authority (an abort) comes from: the holder when it carries
    the current lease (``X-Control-Lease``), else :func:`client_label`."""
    return station.control.authority.caller(
        request.headers.get(LEASE_HEADER), client_label(request)
    )


def no_authority(request: Request, station: Station, exc: AuthorityRefused) -> HTTPException:
    """Audit and count (``control.no_authority``) a request refused for want of control
    authority; returns the error to raise: 409 when another client holds authority, 403 when
    nobody does."""
    record_refusal(
        station.control.audit,
        station.counters,
        who=client_label(request),
        source="api",
        target=f"{request.method} {request.url.path}",
        reason=str(exc),
        counter="control.no_authority",
    )
    return HTTPException(409 if exc.holder else 403, str(exc))


def check_authority(request: Request, ctx: WebContext) -> str:
    """The name of the client holding control authority, when the request carries its lease
    (``X-Control-Lease``). Refused, audited and counted otherwise (:func:`no_authority`)."""
    try:
        return ctx.station.control.authority.check(request.headers.get(LEASE_HEADER)).holder
    except AuthorityRefused as exc:
        raise no_authority(request, ctx.station, exc) from None


async def require_authority(request: Request, ctx: Context) -> str:
    """:func:`check_authority` as a dependency: the lease checked once, on the event loop; a
    refusal's audit row written on a thread."""
    try:
        return ctx.station.control.authority.check(request.headers.get(LEASE_HEADER)).holder
    except AuthorityRefused as exc:
        refusal = exc
    raise await asyncio.to_thread(no_authority, request, ctx.station, refusal)


Operator = Annotated[str, Depends(require_authority)]
"""The controlling client's name (a dependency refusing every other client)."""
