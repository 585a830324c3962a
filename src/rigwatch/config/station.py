"""Configuration of a station: server, ring buffer, recorder, live hub and its devices.

Every model forbids unknown keys, so a misspelt key is an error, not a silently ignored line.
Relative paths are resolved against the folder of the TOML file that holds them.

Each ``[[devices]]`` entry is validated against its driver's own model, chosen by its
``driver`` key among the drivers found through the ``rigwatch.drivers`` entry points
(:mod:`rigwatch.config.drivers`); :func:`station_config_model` builds the model that knows
them all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, create_model, model_validator

from rigwatch.config.acoustics import AcousticCameraConfig
from rigwatch.config.base import DeviceConfig, Name, ResolvedPath, Strict
from rigwatch.config.control import StationControlConfig, Stm32ValvesConfig
from rigwatch.config.drivers import load_drivers
from rigwatch.errors import ConfigError
from rigwatch.recordings.codecs import Codec


class ServerConfig(Strict):
    """Where the station's HTTP server listens, who may use it and how it shuts down.

    Anything that writes or commands (``POST`` requests, WebSocket commands) is refused from a
    web page of another origin than the station's own and those in ``allowed_origins``. A
    station listening beyond the loopback interface also requires a token for it: the
    ``RIGWATCH_TOKEN`` environment variable, else the content of ``token_file``, else one
    generated at start and printed once.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=5001, ge=0, le=65535)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Other web origins (scheme://host:port) that may use the API (CORS, "
        "WebSocket Origin check).",
    )
    token_file: ResolvedPath | None = Field(
        default=None, description="File holding the token for writes and commands."
    )
    require_token: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="'auto': a token is required when host is not a loopback address.",
    )
    shutdown_grace_s: int = Field(
        default=5,
        ge=1,
        le=300,
        description="On Ctrl-C or SIGTERM, requests still running after this are cut off.",
    )


class ApiConfig(Strict):
    """Bounds that keep heavy requests from starving acquisition and the live stream."""

    max_concurrent_queries: int = Field(
        default=2, ge=1, le=64, description="Recording queries served at the same time."
    )
    query_wait_s: float = Field(
        default=2.0, ge=0, le=60, description="How long a query waits for a slot (then 503)."
    )
    max_query_values: int = Field(
        default=400_000,
        ge=1000,
        description="Largest reply of a query: max_points x channels x 2 (min and max).",
    )
    query_cpu_share: float = Field(
        default=0.25,
        gt=0,
        le=16,
        description="CPU (in cores) recording queries and snapshots may use on average; "
        "beyond it new queries get 503 until the budget recovers.",
    )
    query_cpu_burst_s: float = Field(
        default=2.0, gt=0, description="CPU seconds they may use at once after a quiet spell."
    )
    snapshot_min_interval_s: float = Field(
        default=5.0, ge=0, description="Buffer snapshots at most this often (then 429)."
    )


class BufferConfig(Strict):
    capacity_rows: int = Field(
        default=6_000_000, ge=1_000, description="Rows kept per device in the ring buffer."
    )


class RetentionConfig(Strict):
    """``[recorder.retention]``: which recordings are kept, and the free space recording needs.

    The limits apply to every visible recording of the recordings directory, whatever device
    wrote it: segments, recovered segments and buffer snapshots. Files of other names, hidden
    work files and the open segments are never touched. The oldest files go first, oldest by
    modification time (when the file was completed on this disk, independent of a device's
    clock). Unset limits do not apply; with none set, nothing is ever deleted.
    """

    max_files: int | None = Field(
        default=None, ge=1, description="Keep at most this many recordings (the newest)."
    )
    max_age_s: float | None = Field(
        default=None, gt=0, description="Delete recordings completed more than this long ago (s)."
    )
    max_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Keep the total size of the recordings at most this many bytes, "
        "deleting the oldest.",
    )
    min_free_bytes: int | None = Field(
        default=None,
        ge=0,
        description="Free-space floor of the recordings file system, in bytes: below it the "
        "recorders stop (state 'disk_full') and resume when there is room again. Unset: 1 GiB "
        "or 5 % of the file system's size, whichever is smaller.",
    )
    delete_for_min_free: bool = Field(
        default=False,
        description="Also delete the oldest recordings while free space is below "
        "min_free_bytes (a rolling disk). Off: nothing is deleted for space; recording stops.",
    )


class RecorderConfig(Strict):
    enabled: bool = True
    directory: ResolvedPath = Path("recordings")
    segment_duration_s: float = Field(default=60.0, gt=0)
    segment_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    codec: Codec = "zstd"
    compression_level: int | None = None
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=1.0, description="Journal flush period: the most a kill -9 loses."
    )
    fsync: bool = True
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig,
        description="Limits on the recordings kept and the free space recording needs.",
    )
    disk_full_retry_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="While a recorder is stopped by a full disk, free space is checked this "
        "often (s); recording resumes in a new segment when there is room.",
    )

    @model_validator(mode="after")
    def _level_needs_codec_with_levels(self) -> RecorderConfig:
        if self.compression_level is not None and self.codec in ("snappy", "none"):
            raise ValueError(f"compression_level cannot be set with codec {self.codec!r}")
        return self

    @model_validator(mode="after")
    def _max_bytes_holds_a_segment(self) -> RecorderConfig:
        limit = self.retention.max_bytes
        if limit is not None and limit < self.segment_max_bytes:
            raise ValueError(
                f"retention.max_bytes ({limit}) must be at least segment_max_bytes "
                f"({self.segment_max_bytes}), else segments are deleted as they close"
            )
        return self


class LiveConfig(Strict):
    """The live WebSocket ``/ws``: frame rates, display rate, and bounds on each client."""

    default_fps: float = Field(
        default=30.0, gt=0, le=240, description="Frames per second when a subscribe gives none."
    )
    min_fps: float = Field(
        default=0.1, gt=0, le=240, description="Lowest frames per second a client may ask."
    )
    max_fps: float = Field(
        default=120.0, gt=0, le=1000, description="Highest frames per second a client may ask."
    )
    default_display_rate_hz: float = Field(
        default=2_000.0,
        gt=0,
        description="Display points per second per channel when a subscribe gives none.",
    )
    max_backlog_s: float = Field(
        default=2.0, gt=0, description="A client further behind than this skips ahead (counted)."
    )
    max_message_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Largest message a client may send; larger ones get an 'oversized' error. "
        "At most 1 MiB, the server's WebSocket limit (beyond it the connection is closed).",
    )
    max_frame_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest data frame sent; more rows wait for the next frame.",
    )
    max_clients: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Live connections served at once; more are closed with code 1013.",
    )
    send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A client that leaves a frame unsent this long (it does not read) is "
        "disconnected with code 1008 and counted; nothing else waits for it.",
    )

    @model_validator(mode="after")
    def _fps_bounds(self) -> LiveConfig:
        if not self.min_fps <= self.default_fps <= self.max_fps:
            raise ValueError(
                f"default_fps must be within [min_fps, max_fps] = [{self.min_fps:g}, "
                f"{self.max_fps:g}], got {self.default_fps:g}"
            )
        return self


class PressurePushConfig(Strict):
    """Today's ball-mill push: ``{"pressure": value}`` once per interval over a WebSocket."""

    device: Name
    channel: Name
    interval_s: float = Field(default=1.0, gt=0)
    path: str = Field(default="/ws/pressure", pattern=r"^/[A-Za-z0-9_/\-]*$")


class StationConfig(Strict):
    """A whole station: see ``configs/*.toml`` for examples."""

    name: Name = "station"
    server: ServerConfig = ServerConfig()
    buffer: BufferConfig = BufferConfig()
    recorder: RecorderConfig = RecorderConfig()
    live: LiveConfig = LiveConfig()
    api: ApiConfig = ApiConfig()
    pressure_push: PressurePushConfig | None = None
    acoustics: AcousticCameraConfig | None = None
    control: StationControlConfig | None = None
    devices: list[DeviceConfig] = Field(
        min_length=1, description="One entry per device; keys depend on its driver."
    )

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> StationConfig:
        """Validate a station configuration given as data (the content of a TOML file),
        each device against its driver's model.

        Args:
            data: the configuration.
            base_dir: folder relative paths are resolved against (default: left relative).

        Raises:
            pydantic.ValidationError: the data is invalid.
            ConfigError: a driver cannot be loaded.
        """
        context = {"base_dir": base_dir} if base_dir is not None else None
        return station_config_model().model_validate(data, context=context)

    @model_validator(mode="after")
    def _cross_checks(self) -> StationConfig:
        names = [d.name for d in self.devices]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"device names must be unique, repeated: {', '.join(dup)}")
        if self.pressure_push is not None:
            dev = next((d for d in self.devices if d.name == self.pressure_push.device), None)
            if dev is None:
                raise ValueError(
                    f"pressure_push.device {self.pressure_push.device!r} is not a device"
                )
            chans = getattr(dev, "channels", None)
            if chans is not None and self.pressure_push.channel not in [c.name for c in chans]:
                raise ValueError(
                    f"pressure_push.channel {self.pressure_push.channel!r} is not a channel of "
                    f"device {dev.name!r}"
                )
        if self.acoustics is not None:
            self._check_acoustics(self.acoustics)
        if self.control is not None:
            for backend in self.control.actuators:
                if not isinstance(backend, Stm32ValvesConfig):
                    continue
                dev = next((d for d in self.devices if d.name == backend.device), None)
                if dev is None or dev.driver != "stm32":
                    stm32 = [d.name for d in self.devices if d.driver == "stm32"]
                    raise ValueError(
                        f"control.actuators {backend.name!r}: device {backend.device!r} is not "
                        f"an stm32 device of this station (stm32 devices: {stm32 or 'none'})"
                    )
        return self

    def _check_acoustics(self, cam: AcousticCameraConfig) -> None:
        dev = next((d for d in self.devices if d.name == cam.device), None)
        if dev is None:
            raise ValueError(f"acoustics.device {cam.device!r} is not a device")
        chans = getattr(dev, "channels", None)
        if chans is None:
            return
        known = [c.name for c in chans]
        wired = (cam.array.channels or []) + cam.array.excluded
        unknown = [c for c in wired if c not in known]
        if unknown:
            raise ValueError(
                f"acoustics.array names channels {unknown} that device {dev.name!r} does not "
                f"have (it has {known})"
            )


_models_lock = threading.Lock()
_models: dict[tuple[tuple[str, int], ...], type[StationConfig]] = {}


def station_config_model(drivers: dict[str, Any] | None = None) -> type[StationConfig]:
    """The :class:`StationConfig` subclass whose ``devices`` accept every known driver.

    Each ``[[devices]]`` entry is validated against the ``config_model`` of the driver its
    ``driver`` key names (a tagged union on ``driver``): an unknown driver is an error that
    lists the known ones.

    Args:
        drivers: ``{name: driver}``; default: :func:`rigwatch.config.drivers.load_drivers`.

    Raises:
        ConfigError: no driver is known, or a driver cannot be loaded.
    """
    found = load_drivers() if drivers is None else drivers
    if not found:
        raise ConfigError("no device driver is installed (entry points 'rigwatch.drivers')")
    key = tuple(sorted((name, id(d.config_model)) for name, d in found.items()))
    with _models_lock:
        model = _models.get(key)
        if model is None:
            members = tuple(found[name].config_model for name, _ in key)
            entry: Any = (
                members[0]
                if len(members) == 1
                else Annotated[Union[members], Field(discriminator="driver")]  # noqa: UP007
            )
            model = create_model(
                "StationConfig",
                __base__=StationConfig,
                __module__=StationConfig.__module__,
                devices=(
                    list[entry],
                    Field(min_length=1, description="One entry per device."),
                ),
            )
            _models[key] = model
        return model
