"""The station's FastAPI application: REST routers, live WebSocket and the web page.

Endpoints keep the paths of the test-stand backend users run today (``/api/hello``,
``/api/status``, ``/api/sensors``, ``/api/buffer_status``, ``/api/save_sensor_buffer``,
``/api/system_mode/{mode}``, ``/api/parquet_files``, ``/api/parquet_data/{filename}``,
``/api/valves``, ``/api/step_motor``, ``/api/scenario/{name}``, ``/ws``), the ball mill's
pressure push, valve and PLC endpoints, and the typed control API (``/api/control...``).
Routers per area live in :mod:`rigwatch.web.routers`, response models in
:mod:`rigwatch.web.schemas`; the live protocol is documented in ``docs/live-protocol.md``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rigwatch import __version__
from rigwatch.acquisition.live import LiveHub
from rigwatch.station import Station
from rigwatch.threads import background_pool
from rigwatch.web import views
from rigwatch.web.acoustics_feed import AcousticsFeed
from rigwatch.web.control_feed import ControlFeed
from rigwatch.web.control_ws import ControlChannel
from rigwatch.web.deps import WebContext
from rigwatch.web.limits import CpuBudget, QueryGate, SnapshotGate
from rigwatch.web.live_ws import LiveSession
from rigwatch.web.problems import document_problems, install_problem_handlers
from rigwatch.web.routers import acoustics, control, recordings
from rigwatch.web.routers import station as station_routes
from rigwatch.web.security import AccessPolicy

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    station: Station,
    manage_station: bool = True,
    *,
    access: AccessPolicy | None = None,
) -> FastAPI:
    """The station's FastAPI app.

    Args:
        station: the station served.
        manage_station: start the station when the app starts and stop it when it stops.
        access: who may write and command; default: from ``station.config.server`` for its
            configured host.

    Raises:
        ConfigError: the access policy cannot be built (unreadable token file...).
    """
    hub = LiveHub(station.streams, station.config.live, station.counters)
    counters = station.counters
    push = station.config.pressure_push
    policy = access or AccessPolicy.from_config(station.config.server, station.config.server.host)
    api = station.config.api
    heavy = background_pool(api.max_concurrent_queries + 1, "api-heavy")
    feed = None if station.acoustics is None else AcousticsFeed(station.acoustics, counters)
    control_feed = ControlFeed(station)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        if feed is not None:
            feed.attach(asyncio.get_running_loop())
        control_feed.attach(asyncio.get_running_loop())
        if manage_station:
            await asyncio.to_thread(station.start)
        # long-lived objects of the app and the station leave the collector's view: a full
        # collection then scans only what was allocated since, keeping its pauses short
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            hub.detach()
            if feed is not None:
                feed.detach()
            control_feed.detach()
            heavy.shutdown(wait=False, cancel_futures=True)
            if manage_station:
                await asyncio.to_thread(station.stop)

    app = FastAPI(
        title=f"rigwatch station {station.config.name}",
        version=__version__,
        lifespan=lifespan,
        description="Acquisition, recording and live streaming of one machine's sensors.",
    )
    app.state.web = WebContext(
        station=station,
        hub=hub,
        access=policy,
        queries=QueryGate(
            api.max_concurrent_queries,
            api.query_wait_s,
            CpuBudget(api.query_cpu_share, api.query_cpu_burst_s),
        ),
        snapshots=SnapshotGate(api.snapshot_min_interval_s),
        heavy=heavy,
        control_feed=control_feed,
    )
    install_problem_handlers(app, counters)
    document_problems(app)
    if policy.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(policy.cors_origins()),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.include_router(station_routes.router)
    app.include_router(recordings.router)
    app.include_router(acoustics.router)
    app.include_router(control.router)

    @app.websocket("/ws")
    async def ws_live(ws: WebSocket) -> None:
        origin = ws.headers.get("origin")
        if not policy.origin_allowed(origin, ws.headers.get("host")):
            counters.inc("ws.forbidden_origin", message=f"handshake from origin {origin!r}")
            await ws.close(code=1008, reason="origin not allowed")  # before accept: HTTP 403
            return
        may_command = policy.token_ok(ws.headers.get("authorization"), ws.query_params.get("token"))
        await ws.accept()
        await LiveSession(
            ws,
            hub,
            station,
            may_command=may_command,
            acoustics=feed,
            extension=lambda session: ControlChannel(session, control_feed),
        ).run()

    if push is not None:

        async def ws_pressure(ws: WebSocket) -> None:
            await ws.accept()
            try:
                while True:
                    value = views.latest_value(station, push.device, push.channel)
                    await ws.send_text(json.dumps({"pressure": value}))
                    await asyncio.sleep(push.interval_s)
            except (WebSocketDisconnect, RuntimeError, ConnectionError):
                pass

        app.add_api_websocket_route(push.path, ws_pressure)

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    else:

        @app.get("/", include_in_schema=False)
        def no_frontend() -> HTMLResponse:
            return HTMLResponse(
                "<h1>rigwatch station</h1><p>The web page is not built: run <code>make</code>."
                " The API is at <a href='/docs'>/docs</a>.</p>"
            )

    return app
