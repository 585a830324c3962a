"""Recordings: listing, range queries, downloads, and buffer snapshots.

Queries are bounded (``[api]`` config): a few at a time, each reply at most
``max_query_values`` numbers; snapshots one at a time and at most one per interval. Their
work runs on low-priority worker threads, never on the event loop that serves the live
stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import FileResponse, Response

from rigwatch.errors import DiskFull, RecorderError, RecordingError
from rigwatch.recordings.catalog import UnsafePath, list_recordings, safe_recording_path
from rigwatch.recordings.query import UnknownChannel, query_range
from rigwatch.station import Station
from rigwatch.web.deps import Context, StationDep, Writer
from rigwatch.web.problems import problem_responses
from rigwatch.web.schemas import ParquetFiles, RangeQuery, SaveBufferRequest, SaveBufferResult

router = APIRouter(prefix="/api", tags=["recordings"])

MAX_POINTS = 20_000
"""Most buckets a query may ask for (a screen is a few thousand pixels wide)."""


@router.get("/parquet_files")
def parquet_files(station: StationDep) -> ParquetFiles:
    """Recorded segments and buffer snapshots, by file name; unreadable ones with their
    error."""
    return ParquetFiles(files=list_recordings(station.recordings_dir))


def _resolve(station: Station, filename: str) -> Path:
    try:
        path = safe_recording_path(station.recordings_dir, filename)
    except UnsafePath as exc:
        raise HTTPException(400, str(exc)) from None
    if not path.is_file():
        raise HTTPException(404, f"no recording named {filename!r}")
    return path


@router.get(
    "/parquet_data/{filename:path}",
    response_model=RangeQuery,
    responses=problem_responses(400, 404, 422, 503),
)
async def parquet_data(
    filename: str,
    ctx: Context,
    start_ns: Annotated[int | None, Query(description="Start, ns since the epoch")] = None,
    end_ns: Annotated[int | None, Query(description="End (inclusive), ns since epoch")] = None,
    channels: Annotated[str | None, Query(description="Comma-separated names")] = None,
    max_points: Annotated[int, Query(ge=2, le=MAX_POINTS)] = 2000,
) -> Response:
    """A time range of a recording, min/max-decimated to at most ``max_points`` buckets."""
    station = ctx.station
    path = _resolve(station, filename)
    chans = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    limit = station.config.api.max_query_values
    async with ctx.queries.slot():
        try:
            result = await ctx.run_heavy(
                query_range, path, start_ns, end_ns, chans, max_points, limit
            )
        except UnknownChannel as exc:
            raise HTTPException(400, str(exc)) from None
        except RecordingError as exc:  # QueryTooLarge, FormatError
            raise HTTPException(422, str(exc)) from None
        except FileNotFoundError:
            raise HTTPException(404, f"no recording named {filename!r}") from None
        body = await ctx.run_heavy(result.to_json)
    return Response(body, media_type="application/json")


@router.get(
    "/parquet_download/{filename:path}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The Parquet file.",
            "content": {
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **problem_responses(400, 404),
    },
)
def parquet_download(filename: str, station: StationDep) -> FileResponse:
    """The recording file itself."""
    path = _resolve(station, filename)
    return FileResponse(path, media_type="application/vnd.apache.parquet", filename=path.name)


@router.post(
    "/save_sensor_buffer",
    dependencies=[Writer],
    responses=problem_responses(401, 403, 404, 429, 507),
)
async def save_sensor_buffer(
    ctx: Context,
    body: Annotated[SaveBufferRequest | None, Body()] = None,
) -> SaveBufferResult:
    """Write the ring buffers' content to Parquet files now (one snapshot at a time, at most
    one per ``api.snapshot_min_interval_s``)."""
    station = ctx.station
    req = body or SaveBufferRequest()
    if req.device is not None and req.device not in station.streams:
        raise HTTPException(404, f"unknown device {req.device!r}")
    async with ctx.snapshots.turn():
        try:
            files = await ctx.run_heavy(station.save_buffers, req.device, req.last_n)
        except DiskFull as exc:
            raise HTTPException(507, str(exc)) from None
        except RecorderError as exc:
            raise HTTPException(500, str(exc)) from None
    return SaveBufferResult(files=[p.name for p in files])
