"""FastAPI dependencies of the station's routers: the station, its live hub, the access
policy and the request bounds, all held by the app (``app.state.web``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request

from rigwatch.acquisition.live import LiveHub
from rigwatch.station import Station
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


def get_context(request: Request) -> WebContext:
    """The app's :class:`WebContext`."""
    ctx: WebContext = request.app.state.web
    return ctx


def get_station(ctx: Annotated[WebContext, Depends(get_context)]) -> Station:
    """The station served."""
    return ctx.station


Context = Annotated[WebContext, Depends(get_context)]
StationDep = Annotated[Station, Depends(get_station)]


def require_writer(request: Request, ctx: Context) -> None:
    """Refuse a write or command from a foreign web origin (403) or without the required
    token (401, ``WWW-Authenticate: Bearer``); both counted."""
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
