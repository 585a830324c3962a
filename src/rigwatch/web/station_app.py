"""The station's FastAPI application: REST API, live WebSocket and the web page.

Endpoints keep the paths of the test-stand backend users run today (``/api/hello``,
``/api/status``, ``/api/sensors``, ``/api/buffer_status``, ``/api/save_sensor_buffer``,
``/api/parquet_files``, ``/api/parquet_data/{filename}``, ``/ws``) and the ball mill's pressure
push. The live protocol is documented in ``docs/live-protocol.md``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from rigwatch import __version__
from rigwatch.acquisition.live import LiveHub
from rigwatch.errors import RecordingError
from rigwatch.recordings.catalog import UnsafePath, list_recordings, safe_recording_path
from rigwatch.recordings.query import UnknownChannel, query_recording
from rigwatch.station import Station
from rigwatch.web.live_ws import LiveSession
from rigwatch.web.problems import install_problem_handlers

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


class SaveBufferRequest(BaseModel):
    """Body of ``POST /api/save_sensor_buffer`` (optional)."""

    model_config = ConfigDict(extra="forbid")
    device: str | None = Field(default=None, description="Only this device (default: all).")
    last_n: int | None = Field(default=None, gt=0, description="Only the newest rows.")


def create_app(station: Station, manage_station: bool = True) -> FastAPI:
    """The station's FastAPI app.

    Args:
        station: the station served.
        manage_station: start the station when the app starts and stop it when it stops.
    """
    hub = LiveHub(station.streams, station.config.live, station.counters)
    counters = station.counters
    push = station.config.pressure_push

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
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
            if manage_station:
                await asyncio.to_thread(station.stop)

    app = FastAPI(
        title=f"rigwatch station {station.config.name}",
        version=__version__,
        lifespan=lifespan,
        description="Acquisition, recording and live streaming of one machine's sensors.",
    )
    app.state.station = station
    app.state.hub = hub
    install_problem_handlers(app, counters)

    def live_stats() -> dict[str, int]:
        return {
            "clients": hub.stats.clients,
            "frames_sent": hub.stats.frames_sent,
            "samples_skipped": hub.stats.samples_skipped,
        }

    @app.get("/api/hello", tags=["station"])
    def hello() -> dict[str, str]:
        """Health check."""
        return {
            "message": "rigwatch station",
            "station": station.config.name,
            "version": __version__,
        }

    @app.get("/api/status", tags=["station"])
    def status() -> dict[str, Any]:
        """Devices, recorders, live clients and error counters."""
        return station.status(live=live_stats())

    @app.get("/api/sensors", tags=["station"])
    def sensors() -> dict[str, Any]:
        """Latest calibrated value of every channel."""
        return station.sensors()

    @app.get("/api/buffer_status", tags=["station"])
    def buffer_status() -> dict[str, Any]:
        """Fill state of each device's ring buffer."""
        return station.buffer_status()

    @app.post("/api/save_sensor_buffer", tags=["recordings"])
    def save_sensor_buffer(
        body: Annotated[SaveBufferRequest | None, Body()] = None,
    ) -> dict[str, Any]:
        """Write the ring buffers' content to Parquet files now."""
        req = body or SaveBufferRequest()
        if req.device is not None and req.device not in station.streams:
            raise HTTPException(404, f"unknown device {req.device!r}")
        files = station.save_buffers(req.device, req.last_n)
        return {"files": [p.name for p in files]}

    @app.get("/api/parquet_files", tags=["recordings"])
    def parquet_files() -> dict[str, Any]:
        """Recorded segments and buffer snapshots, oldest first."""
        return {"files": [r.model_dump() for r in list_recordings(station.recordings_dir)]}

    def _resolve(filename: str) -> Path:
        try:
            path = safe_recording_path(station.recordings_dir, filename)
        except UnsafePath as exc:
            raise HTTPException(400, str(exc)) from None
        if not path.is_file():
            raise HTTPException(404, f"no recording named {filename!r}")
        return path

    @app.get("/api/parquet_data/{filename:path}", tags=["recordings"])
    def parquet_data(
        filename: str,
        start_ns: Annotated[int | None, Query(description="Start, ns since the epoch")] = None,
        end_ns: Annotated[int | None, Query(description="End (exclusive), ns since epoch")] = None,
        channels: Annotated[str | None, Query(description="Comma-separated names")] = None,
        max_points: Annotated[int, Query(ge=2, le=200_000)] = 2000,
    ) -> dict[str, Any]:
        """A time range of a recording, min/max-decimated to at most ``max_points`` buckets."""
        path = _resolve(filename)
        chans = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
        try:
            return query_recording(path, start_ns, end_ns, chans, max_points).model_dump()
        except UnknownChannel as exc:
            raise HTTPException(400, str(exc)) from None
        except RecordingError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/api/parquet_download/{filename:path}", tags=["recordings"])
    def parquet_download(filename: str) -> FileResponse:
        """The recording file itself."""
        path = _resolve(filename)
        return FileResponse(path, media_type="application/vnd.apache.parquet", filename=path.name)

    @app.websocket("/ws")
    async def ws_live(ws: WebSocket) -> None:
        await ws.accept()
        await LiveSession(ws, hub, station).run()

    if push is not None:

        async def ws_pressure(ws: WebSocket) -> None:
            await ws.accept()
            try:
                while True:
                    value = station.latest_value(push.device, push.channel)
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
