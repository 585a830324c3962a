"""Response and request bodies of the station's REST API.

Every ``/api`` endpoint declares one of these models, so ``/openapi.json`` describes every
response and the web page's TypeScript types are generated from it (``frontend/``): a renamed
field breaks the page's build, not the page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rigwatch.recordings.catalog import RecordingInfo
from rigwatch.recordings.query import ChannelUnit, MinMaxSeries, RangeQuery

__all__ = [
    "BufferDeviceStatus",
    "BufferStatus",
    "ChannelUnit",
    "DeviceSensors",
    "DeviceState",
    "DeviceStatus",
    "FieldProblem",
    "Hello",
    "LiveStats",
    "MinMaxSeries",
    "ModeChange",
    "ParquetFiles",
    "Problem",
    "RangeQuery",
    "RecorderStatus",
    "RecordingInfo",
    "SaveBufferRequest",
    "SaveBufferResult",
    "Sensors",
    "StationStatus",
]

DeviceState = Literal["idle", "starting", "retrying", "running", "finished", "failed", "stopped"]
RecorderState = Literal["idle", "recording", "error", "disk_full", "finished", "stopped"]


class Hello(BaseModel):
    """``GET /api/hello``: a health check that names the station."""

    message: str
    station: str
    version: str


class DeviceStatus(BaseModel):
    """One device of the station."""

    name: str
    driver: str
    state: DeviceState = Field(description="'retrying': failed to start, tried again.")
    sample_rate_hz: float
    channels: list[ChannelUnit]
    rows: int = Field(description="Rows acquired since start.")
    blocks: int
    device_errors: int
    last_error: str
    simulated: bool = Field(description="A simulated twin stands in for the hardware.")


class RecorderStatus(BaseModel):
    """The recorder of one device."""

    device: str
    state: RecorderState = Field(
        description="'disk_full': recording stopped for want of space (rows are dropped and "
        "counted in lost_rows; it resumes by itself); 'error': a write failed, retrying."
    )
    segment: str | None = Field(description="The open segment's file name, if any.")
    segments_closed: int
    rows_recorded: int
    bytes_written: int = Field(description="Closed segments plus the open one's bytes on disk.")
    missed_rows: int = Field(description="Rows lost because the recorder fell behind.")
    lost_rows: int = Field(
        default=0, description="Rows read but not recorded (a full disk, a failed write)."
    )
    last_error: str | None
    directory: str
    free_bytes: int | None = Field(
        default=None,
        description="Free bytes of the recordings file system now (null: cannot be queried).",
    )
    min_free_bytes: int | None = Field(
        default=None, description="Free-space floor below which recording stops, in bytes."
    )
    retention_deleted_files: int = Field(
        default=0, description="Recordings deleted by retention since the station started."
    )
    retention_deleted_bytes: int = Field(
        default=0, description="Bytes of the recordings deleted by retention since start."
    )


class LiveStats(BaseModel):
    """Live WebSocket totals since start."""

    clients: int
    frames_sent: int
    samples_skipped: int


class StationStatus(BaseModel):
    """``GET /api/status``: devices, recorders, live clients, mode and error counters."""

    station: str
    mode: str = Field(
        description="The scenario runner's state: idle, armed, running, holding, aborting, "
        "safe or done."
    )
    mode_since: str = Field(description="When the mode was entered, ISO 8601 UTC.")
    simulated: bool = Field(description="Started with --simulate.")
    uptime_s: float
    devices: list[DeviceStatus]
    recorder: dict[str, RecorderStatus]
    live: LiveStats
    errors: dict[str, int] = Field(description="Counters of rejected input and failures.")
    error_messages: dict[str, str] = Field(description="The last message of each counter.")


class BufferDeviceStatus(BaseModel):
    """Fill state of one device's ring buffer."""

    capacity_rows: int
    channels: int
    write_index: int = Field(description="Rows written since start (absolute index).")
    oldest_index: int = Field(description="Absolute index of the oldest readable row.")
    rows_available: int
    fill_ratio: float
    memory_bytes: int
    seconds_available: float


class BufferStatus(BaseModel):
    """``GET /api/buffer_status``."""

    devices: dict[str, BufferDeviceStatus]


class DeviceSensors(BaseModel):
    """The newest calibrated value of each channel of one device."""

    timestamp: str | None = Field(description="Time of the newest row, ISO 8601 UTC.")
    values: dict[str, float | None] = Field(description="None before the first row or NaN.")
    units: dict[str, str]


class Sensors(BaseModel):
    """``GET /api/sensors``."""

    timestamp: str
    devices: dict[str, DeviceSensors]


class SaveBufferRequest(BaseModel):
    """Body of ``POST /api/save_sensor_buffer`` (optional)."""

    model_config = ConfigDict(extra="forbid")
    device: str | None = Field(default=None, description="Only this device (default: all).")
    last_n: int | None = Field(default=None, gt=0, description="Only the newest rows.")


class SaveBufferResult(BaseModel):
    """The snapshot files written."""

    files: list[str]


class ParquetFiles(BaseModel):
    """``GET /api/parquet_files``: recorded segments and buffer snapshots, by file name."""

    files: list[RecordingInfo]


class ModeChange(BaseModel):
    """The station's mode after a ``POST /api/system_mode/{mode}``."""

    mode: str
    since: str = Field(description="When the mode was entered, ISO 8601 UTC.")


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    field: str
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem details body (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None
