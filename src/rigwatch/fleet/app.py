"""The fleet server's FastAPI app: :func:`create_fleet_app`.

Routes: ingest (:mod:`rigwatch.fleet.routes_ingest`), the REST API for people
(:mod:`rigwatch.fleet.routes_api`), ``GET /api/health`` and the live WebSocket ``/ws``
(:mod:`rigwatch.fleet.hub` describes its messages). Every error is RFC 9457 problem details.
The lifespan opens the database (migrating it), starts the group-commit writer, the rules
timer, retention, Redis and MQTT, and stops them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from rigwatch.counters import Counters
from rigwatch.errors import FleetAuthError
from rigwatch.fleet.config import FleetConfig, load_fleet_config
from rigwatch.fleet.dashboard import mount_dashboard
from rigwatch.fleet.fastpath import answer_ingest
from rigwatch.fleet.hub import serve_client
from rigwatch.fleet.problems import BODY_REFUSED, PROBLEM_JSON, install_problem_handlers
from rigwatch.fleet.routes_api import api_router, principal_of
from rigwatch.fleet.routes_ingest import ingest_router
from rigwatch.fleet.services import Clock, FleetServices, wall_clock
from rigwatch.wire import StatusBatchV1

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 (by ``Content-Length`` before
    reading, or while reading) on every path except ingest (which has its own limits);
    counted as ``fleet.oversized``.

    A body that grows past the limit while read (chunked, or a ``Content-Length`` that lied)
    ends the app's reading; whatever the app then answers (FastAPI would make a 400 of the
    interrupted read) is dropped for the 413.
    """

    def __init__(self, app: ASGIApp, limit: int, counters: Counters) -> None:
        self.app = app
        self.limit = limit
        self.counters = counters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.endswith(("/status", "/status/batch")):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send, f"body of {int(value)} bytes")
                return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = scope[BODY_REFUSED] = True
                    raise _TooLarge
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited, unless_refused)
        if refused:
            await self._refuse(send, f"body of more than {self.limit} bytes")

    async def _refuse(self, send: Send, what: str) -> None:
        detail = f"{what} exceeds the limit of {self.limit} bytes"
        self.counters.inc("fleet.oversized", message=detail)
        body = orjson.dumps(
            {"type": "about:blank", "title": "Content Too Large", "status": 413, "detail": detail}
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def app_from_environment() -> FastAPI:
    """The app for the config named by ``RIGWATCH_FLEET_CONFIG`` (uvicorn's factory when it
    runs several worker processes)."""
    app = create_fleet_app(load_fleet_config(os.environ[CONFIG_ENV]))
    tune_gc_for_serving()
    return app


GC_GEN0_THRESHOLD = 20_000
"""Container allocations between two young-generation collections while serving (CPython's
default is 700)."""


def tune_gc_for_serving() -> None:
    """Make CPython's cyclic garbage collector cheaper for a serving process.

    Every status message allocates a few hundred short-lived containers (parsed JSON, the
    validated model, rows, the live update); almost none are in reference cycles, so reference
    counting frees them and the cyclic collector, run every 700 allocations by default, only
    costs time. Objects alive now (modules, config, app) are moved out of its view
    (:func:`gc.freeze`) and the young generation is collected every
    :data:`GC_GEN0_THRESHOLD` allocations: about 10 % less CPU per ingested message in
    ``bench/fleet_ingest.py``, for a few MB more of not yet collected cycles. Called once per
    server process by ``rigwatch fleet serve`` (https://docs.python.org/3/library/gc.html).
    """
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


CONFIG_ENV = "RIGWATCH_FLEET_CONFIG"


class _TooLarge(Exception):
    pass


def _document_wire(app: FastAPI) -> None:
    """Put the wire schema (StatusMessageV1, StatusBatchV1 and their parts) into OpenAPI."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = original()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        wire = StatusBatchV1.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in wire.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas["StatusBatchV1"] = wire
        for item in spec.get("paths", {}).values():
            for op in item.values():
                for code, resp in op.get("responses", {}).items():
                    if code.startswith(("4", "5")):
                        resp["content"] = {
                            PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        }
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


class FleetApp(FastAPI):
    """The fleet's FastAPI app; its ingest POSTs are answered before the middleware stack
    (see :mod:`rigwatch.fleet.fastpath`)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        services = getattr(self.state, "fleet", None) if scope["type"] == "http" else None
        if not await answer_ingest(services, scope, receive, send):
            await super().__call__(scope, receive, send)


def create_fleet_app(config: FleetConfig, *, clock: Clock = wall_clock) -> FastAPI:
    """The fleet server app for ``config``.

    Args:
        config: the configuration (database, ingest limits, live, MQTT, auth, rules, notify).
        clock: the server's clock (aware UTC); tests inject one that moves when told.

    The running parts are at ``app.state.fleet`` (a
    :class:`~rigwatch.fleet.services.FleetServices`) once the lifespan has started.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await asyncio.to_thread(FleetServices, config, clock, counters)
        app.state.fleet = services
        await services.start()
        log.info("fleet server ready (database %s)", services.engine.url.render_as_string())
        try:
            yield
        finally:
            await services.stop()

    app = FleetApp(
        title="rigwatch fleet",
        version="1",
        lifespan=lifespan,
        summary="Machines report in; rules set their colour; alerts; live map.",
    )
    counters = Counters()
    install_problem_handlers(app, counters)
    app.include_router(ingest_router())
    app.include_router(api_router())

    @app.get("/api/health", tags=["state"])
    async def health() -> dict[str, str]:
        """Liveness: ``{"status": "ok"}``."""
        return {"status": "ok"}

    @app.websocket("/ws")
    async def live(ws: WebSocket) -> None:
        services: FleetServices = ws.app.state.fleet
        token = ws.query_params.get("token")
        header = ws.headers.get("authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:].strip()
        try:
            who = await principal_of(services, token)
        except FleetAuthError:
            who = None
        if who is None:
            services.counters.inc("fleet.ws_refused")
            # accepted, then closed with 1008 (policy violation) and the reason: a browser
            # sees neither the status nor the reason of a refused handshake, only 1006
            await ws.accept()
            await ws.close(code=1008, reason="login token required")
            return
        await ws.accept()
        client = services.hub.connect()
        batched = ws.query_params.get("batch") == "1"
        sender = asyncio.create_task(
            serve_client(services.hub, ws.send_text, client, batched=batched)
        )
        try:
            while True:  # read (and ignore) client frames until it goes
                receiver = asyncio.ensure_future(ws.receive_text())
                done, _ = await asyncio.wait(
                    {sender, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if sender in done:
                    receiver.cancel()
                    break
                receiver.result()  # raises WebSocketDisconnect when the client went
        except WebSocketDisconnect:
            pass
        except Exception as exc:  # a broken connection
            log.debug("ws client gone: %s", exc)
        finally:
            services.hub.disconnect(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    mount_dashboard(app)  # last: the page at "/" behind every API route
    app.add_middleware(BodyLimit, limit=config.server.max_request_bytes, counters=counters)
    _document_wire(app)
    return app
