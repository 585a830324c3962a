"""The acoustic camera: maps, parameters, listening to points, export; and the ball mill's
former endpoints (``/heatmap``, ``/audio_data``, ``/select_pixel``, ``/play``,
``/deselect_pixel``, ``/status``) with their names and JSON shapes.

A station without ``[acoustics]`` answers every endpoint here with 404 (problem details).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import ValidationError

from rigwatch.acoustics.export import export_map, map_axes
from rigwatch.acoustics.geometry import CylinderGrid
from rigwatch.acoustics.live import AcousticCamera, AcousticMap, Selection
from rigwatch.errors import AcousticsError
from rigwatch.timefmt import iso_utc
from rigwatch.web.acoustic_schemas import (
    AcousticMapOut,
    AcousticsOut,
    ArrayOut,
    CameraStatsOut,
    GridOut,
    HeatmapDimensions,
    LegacyAudioData,
    LegacyHeatmap,
    LegacyStatus,
    ParametersIn,
    ParametersOut,
    PeakOut,
    PixelIn,
    PixelPlayIn,
    PixelReply,
    PlayIn,
    SelectIn,
    SelectionOut,
)
from rigwatch.web.deps import Context, Writer
from rigwatch.web.problems import problem_responses

router = APIRouter(tags=["acoustics"])

EXPORT_TYPES = {
    "png": "image/png",
    "npy": "application/octet-stream",
    "csv": "text/csv; charset=utf-8",
}


PARAMETER_FIELDS = set(ParametersOut.model_fields) - {"speed_of_sound_m_s", "sample_rate_hz"}


def get_camera(ctx: Context) -> AcousticCamera:
    """The station's acoustic camera; 404 when it has none."""
    cam = ctx.station.acoustics
    if cam is None:
        raise HTTPException(404, "this station has no acoustic camera (no [acoustics] section)")
    return cam


Camera = Annotated[AcousticCamera, Depends(get_camera)]


def _latest(cam: AcousticCamera) -> AcousticMap:
    m = cam.latest
    if m is None:
        raise HTTPException(
            503,
            "no map yet: the camera needs its first second of data",
            headers={"Retry-After": "1"},
        )
    return m


def _map_out(m: AcousticMap) -> AcousticMapOut:
    return AcousticMapOut(
        seq=m.seq,
        timestamp=iso_utc(m.timestamp_ns),
        values=m.values.astype(float).tolist(),
        quantity=m.quantity,
        unit=m.unit,
        method=m.method,
        band=m.band_label,
        f_low_hz=m.f_low_hz,
        f_high_hz=m.f_high_hz,
        compute_ms=m.compute_s * 1e3,
        excluded=list(m.excluded),
        peaks=[PeakOut(**p.__dict__) for p in m.peaks],
    )


def _selection_out(s: Selection) -> SelectionOut:
    return SelectionOut(**s.__dict__)


def _grid_out(cam: AcousticCamera) -> GridOut:
    grid = cam.scene.grid
    rows_m, cols_m, (row_label, col_label) = map_axes(grid.points_m, grid.shape)
    return GridOut(
        kind="cylinder" if isinstance(grid, CylinderGrid) else "plane",
        shape=grid.shape,
        x_m=cols_m.tolist(),
        y_m=rows_m.tolist(),
        row_label=row_label,
        col_label=col_label,
    )


def _parameters_out(cam: AcousticCamera) -> ParametersOut:
    return ParametersOut(
        **cam.config.model_dump(include=PARAMETER_FIELDS),
        speed_of_sound_m_s=cam.scene.speed_of_sound_m_s,
        sample_rate_hz=cam.sample_rate_hz,
    )


def _state(cam: AcousticCamera) -> AcousticsOut:
    mics = cam.scene.mics
    names = list(cam.scene.channel_names)
    st = cam.stats
    return AcousticsOut(
        device=cam.stream.name,
        array=ArrayOut(
            n_mics=mics.n_mics,
            channels=names,
            positions_m=[tuple(p) for p in mics.positions_m.tolist()],
            excluded=[names[i] for i in sorted(mics.excluded)],
            dead=list(st.dead),
        ),
        grid=_grid_out(cam),
        parameters=_parameters_out(cam),
        stats=CameraStatsOut(
            state=st.state,
            maps=st.maps,
            last_compute_ms=st.last_compute_s * 1e3,
            blocks_refused=st.blocks_refused,
            rows_missed=st.rows_missed,
            audio_frames=st.audio_frames,
            last_error=st.last_error,
            sound_card=st.sound_card,
        ),
        selections=[_selection_out(s) for s in cam.selections],
        listen_latency_ms=cam.listen_latency_s() * 1e3,
    )


# -- typed API -----------------------------------------------------------------------------------


@router.get("/api/acoustics", responses=problem_responses(404))
def acoustics_state(cam: Camera) -> AcousticsOut:
    """The camera's array, grid, parameters, counts and selections."""
    return _state(cam)


@router.get("/api/acoustics/map", responses=problem_responses(404, 503))
def acoustic_map(cam: Camera) -> AcousticMapOut:
    """The newest map (dB re 20 uPa, or MUSIC's pseudo-spectrum) with its peaks."""
    return _map_out(_latest(cam))


@router.get(
    "/api/acoustics/map.{fmt}",
    responses={
        **problem_responses(404, 503),
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in EXPORT_TYPES.values()
            },
            "description": "the map",
        },
    },
    response_class=Response,
)
async def acoustic_map_export(
    fmt: Literal["png", "npy", "csv"],
    cam: Camera,
    ctx: Context,
    dynamic_range_db: Annotated[float | None, Query(gt=0, le=120)] = None,
) -> Response:
    """The newest map as a PNG image (colour scale in dB), a NumPy array or CSV
    (x, y, z, value per point)."""
    m = _latest(cam)
    rng = dynamic_range_db or cam.config.dynamic_range_db

    def render() -> bytes:
        with tempfile.TemporaryDirectory(prefix="rigwatch-map-") as tmp:
            path = Path(tmp) / f"map.{fmt}"
            export_map(
                path,
                m.values,
                cam.scene.grid.points_m,
                m.unit or "MUSIC pseudo-spectrum",
                scale="db" if m.quantity == "spl_db" else "linear",
                dynamic_range_db=rng,
                title=f"{m.method}, {m.band_label}",
            )
            return path.read_bytes()

    body = await ctx.run_heavy(render)
    name = f"{ctx.station.config.name}_map_{m.seq}.{fmt}"
    return Response(
        body,
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post(
    "/api/acoustics/parameters",
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 422),
)
def acoustic_parameters(body: ParametersIn, cam: Camera) -> ParametersOut:
    """Change the method, band, steering vectors, diagonal removal, map rate, dynamic range,
    averaging time or MUSIC's source count; they apply from the next map."""
    changes = body.model_dump(exclude_none=True)
    try:
        cam.set_parameters(changes)
    except (AcousticsError, ValidationError) as exc:
        raise HTTPException(422, str(exc)) from None
    return _parameters_out(cam)


@router.get("/api/acoustics/selections", responses=problem_responses(404))
def selections(cam: Camera) -> list[SelectionOut]:
    """The points listened to."""
    return [_selection_out(s) for s in cam.selections]


@router.post(
    "/api/acoustics/selections",
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 409, 422),
)
def select(body: SelectIn, cam: Camera) -> SelectionOut:
    """Listen to a map cell: its focused sound arrives as ``audio`` frames on ``/ws`` after
    ``subscribe_acoustics`` with ``audio: true``."""
    try:
        return _selection_out(cam.select(body.row, body.col))
    except AcousticsError as exc:
        code = 409 if "already selected" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None


@router.delete(
    "/api/acoustics/selections/{selection_id}",
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404),
)
def deselect(selection_id: str, cam: Camera) -> SelectionOut:
    """Stop listening to a selection."""
    try:
        return _selection_out(cam.deselect(selection_id))
    except KeyError:
        raise HTTPException(404, f"no selection {selection_id!r}") from None


@router.post(
    "/api/acoustics/selections/{selection_id}/play",
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 503),
)
def play(selection_id: str, body: PlayIn, cam: Camera) -> SelectionOut:
    """Play a selection on the station's own sound card (extra ``rigwatch[audio]``), or stop."""
    try:
        return _selection_out(cam.set_playing(selection_id, body.playing))
    except KeyError:
        raise HTTPException(404, f"no selection {selection_id!r}") from None
    except AcousticsError as exc:
        raise HTTPException(503, str(exc)) from None


# -- the ball mill's former endpoints --------------------------------------------------------------


def _pixels(cam: AcousticCamera) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    sels = cam.selections
    return [(s.col, s.row) for s in sels], [(s.col, s.row) for s in sels if s.playing]


def _pixel_reply(cam: AcousticCamera, message: str) -> PixelReply:
    selected, playing = _pixels(cam)
    return PixelReply(success=True, message=message, selected_pixels=selected, playing=playing)


@router.get("/heatmap", tags=["ball mill"], responses=problem_responses(404, 503))
def heatmap(cam: Camera) -> LegacyHeatmap:
    """The newest map min-max normalised to 0..1, rows x columns as the ball mill's clients
    read it; ``dimensions`` in metres (pipe length and diameter, or a plane's width and
    height)."""
    m = _latest(cam)
    grid = cam.scene.grid
    if isinstance(grid, CylinderGrid):
        dims = HeatmapDimensions(length=grid.length_m, diameter=grid.diameter_m)
    else:
        pts = grid.points_m
        span = np.ptp(pts, axis=0)
        dims = HeatmapDimensions(length=float(span[0]), diameter=float(span[1]))
    return LegacyHeatmap(
        heatmap=m.normalised().tolist(), timestamp=iso_utc(m.timestamp_ns), dimensions=dims
    )


@router.get("/audio_data", tags=["ball mill"], responses=problem_responses(404, 503))
def audio_data(
    cam: Camera, samples: Annotated[int, Query(ge=1, le=96_000)] = 4800
) -> LegacyAudioData:
    """The newest ``samples`` raw samples of every microphone (Pa)."""
    buf = cam.stream.buffer
    n = min(samples, buf.rows_available)
    if n == 0:
        raise HTTPException(503, "no samples yet", headers={"Retry-After": "1"})
    got = buf.snapshot(n)
    cols = list(cam.scene.mics.channels)
    return LegacyAudioData(
        audio_data=got.data[:, cols].astype(float).tolist(),
        sample_rate=cam.sample_rate_hz,
        channels=list(cam.scene.channel_names),
        timestamp=iso_utc(int(got.timestamps_ns[-1])),
    )


@router.post(
    "/select_pixel",
    tags=["ball mill"],
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 409, 422),
)
def select_pixel(body: PixelIn, cam: Camera) -> PixelReply:
    """Select heatmap pixel ``(x, y)`` for listening (x: column, y: row)."""
    try:
        cam.select(body.y, body.x)
    except AcousticsError as exc:
        raise HTTPException(409 if "already selected" in str(exc) else 422, str(exc)) from None
    return _pixel_reply(cam, f"pixel ({body.x}, {body.y}) selected")


@router.post(
    "/play",
    tags=["ball mill"],
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
def play_pixel(body: PixelPlayIn, cam: Camera) -> PixelReply:
    """Start (``play: true``) or stop playing pixel ``(x, y)`` on the station's sound card; the
    pixel is selected first if it is not."""
    try:
        sel = cam.select(body.y, body.x)
        cam.set_playing(sel.id, body.play)
    except AcousticsError as exc:
        raise HTTPException(503 if "sound" in str(exc) else 422, str(exc)) from None
    verb = "playing" if body.play else "stopped"
    return _pixel_reply(cam, f"pixel ({body.x}, {body.y}) {verb}")


@router.post(
    "/deselect_pixel",
    tags=["ball mill"],
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 422),
)
def deselect_pixel(body: PixelIn, cam: Camera) -> PixelReply:
    """Stop listening to pixel ``(x, y)``."""
    try:
        cam.deselect_cell(body.y, body.x)
    except AcousticsError as exc:
        raise HTTPException(422, str(exc)) from None
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    return _pixel_reply(cam, f"pixel ({body.x}, {body.y}) deselected")


@router.get("/status", tags=["ball mill"], responses=problem_responses(404))
def legacy_status(ctx: Context) -> LegacyStatus:
    """The ball mill's former ``/status`` fields: acquisition and mapping state, the selected
    and playing pixels, the Pi connection and valve states. 404 for a station with neither an
    acoustic camera nor GPIO valves."""
    from rigwatch.web.routers.control import pi_state, pi_valves

    station = ctx.station
    cam = station.acoustics
    if cam is None and pi_valves(station) is None:
        raise HTTPException(404, "this station has no acoustic camera and no GPIO valves")
    connected, pi_ip, valves = pi_state(station)
    pi = {"pi_connected": connected, "pi_ip": pi_ip, "valve_states": valves}
    if cam is None:
        states = [s.state for s in station.streams.values()]
        running = bool(states) and all(s == "running" for s in states)
        return LegacyStatus(
            is_running=running,
            status="running" if running else (states[0] if states else "idle"),
            queue_size=0,
            maps=0,
            selected_pixels=[],
            playing=[],
            is_playing=False,
            **pi,
        )
    selected, playing = _pixels(cam)
    running = cam.stream.state == "running"
    return LegacyStatus(
        is_running=running,
        status=cam.stream.state,
        queue_size=0,
        maps=cam.stats.maps,
        selected_pixels=selected,
        playing=playing,
        is_playing=bool(playing),
        **pi,
    )
