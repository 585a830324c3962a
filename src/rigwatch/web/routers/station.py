"""Station state: health, status, newest values, ring buffers, and the mode."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from rigwatch import __version__
from rigwatch.errors import ModeRefused
from rigwatch.timefmt import iso_utc
from rigwatch.web import views
from rigwatch.web.deps import (
    Context,
    ControlWriter,
    StationDep,
    abort_caller,
    check_authority,
)
from rigwatch.web.problems import problem_responses
from rigwatch.web.schemas import BufferStatus, Hello, ModeChange, Sensors, StationStatus

router = APIRouter(prefix="/api", tags=["station"])


@router.get("/hello")
def hello(station: StationDep) -> Hello:
    """Health check that names the station."""
    return Hello(message="rigwatch station", station=station.config.name, version=__version__)


@router.get("/status")
def status(ctx: Context) -> StationStatus:
    """Devices, recorders, live clients, mode and error counters."""
    return views.station_status(ctx.station, ctx.hub)


@router.get("/sensors")
def sensors(station: StationDep) -> Sensors:
    """Newest calibrated value of every channel."""
    return views.sensors(station)


@router.get("/buffer_status")
def buffer_status(station: StationDep) -> BufferStatus:
    """Fill state of each device's ring buffer."""
    return views.buffer_status(station)


@router.post(
    "/system_mode/{mode}",
    dependencies=[ControlWriter],
    responses=problem_responses(401, 403, 409),
)
def system_mode(mode: str, request: Request, ctx: Context) -> ModeChange:
    """Change the station's mode, i.e. its scenario runner's state (see
    ``rigwatch.control.system_mode``): ``idle`` (disarm or reset), ``armed``, ``holding``,
    ``running`` (resume), ``safe`` (abort: the abort sequence runs). Needs control authority
    (``X-Control-Lease``) except ``safe``; a change the runner does not allow is refused (409)
    with the reason and the allowed ones."""
    station = ctx.station
    try:
        if station.modes.is_abort(mode):
            who = abort_caller(request, station)
        else:
            station.modes.parse(mode)
            who = check_authority(request, ctx)
        state = station.set_mode(mode, who, "api")
    except ModeRefused as exc:
        station.counters.inc("http.mode_refused", message=str(exc))
        raise HTTPException(409, str(exc)) from None
    return ModeChange(mode=state.mode.value, since=iso_utc(state.since_ns))
