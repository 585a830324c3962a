"""Configuration models of a station: server, ring buffer, recorder, live hub and devices.

Every model forbids unknown keys, so a misspelt key is an error, not a silently ignored line.
Relative paths are resolved against the folder of the TOML file that holds them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
_NAME_RE = re.compile(NAME_PATTERN)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(Strict):
    """One channel: name, unit after calibration, and linear calibration ``gain * raw + offset``."""

    name: Name
    unit: str = Field(default="", max_length=32)
    gain: float = 1.0
    offset: float = 0.0


def _check_unique_channels(channels: list[ChannelConfig] | None) -> None:
    if channels:
        names = [c.name for c in channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique, repeated: {', '.join(dup)}")


class _DeviceBase(Strict):
    name: Name
    block_duration_s: float = Field(
        default=0.05, gt=0, le=2.0, description="Duration of one block handed to the engine."
    )


class ReplayDeviceConfig(_DeviceBase):
    """Plays a recording as a live device."""

    driver: Literal["replay"]
    path: ResolvedPath
    format: Literal["auto", "npz", "wav", "parquet", "hdf5"] = "auto"
    keys: list[str] | None = Field(
        default=None, description="Arrays (npz) or columns (parquet) to play, in order."
    )
    sample_rate_hz: float | None = Field(
        default=None, gt=0, description="Rate of the file's samples when the file does not say."
    )
    pace: Literal["realtime", "fast"] = "realtime"
    loop: bool = False
    resample_hz: float | None = Field(default=None, gt=0)
    channels: list[ChannelConfig] | None = None

    @model_validator(mode="after")
    def _unique(self) -> ReplayDeviceConfig:
        _check_unique_channels(self.channels)
        return self


class SimSignalConfig(Strict):
    """A generated signal: ``sine`` (amplitude, frequency_hz, phase_rad), ``noise`` (amplitude
    is the standard deviation), ``chirp`` (linear sweep from frequency_hz to f1_hz over
    sweep_s, repeated)."""

    kind: Literal["sine", "noise", "chirp"] = "sine"
    amplitude: float = 1.0
    frequency_hz: float = Field(default=50.0, ge=0)
    f1_hz: float = Field(default=1000.0, ge=0)
    sweep_s: float = Field(default=1.0, gt=0)
    phase_rad: float = 0.0
    offset: float = 0.0


class SimDeviceConfig(_DeviceBase):
    """Signal generators for any channel count and rate."""

    driver: Literal["sim"]
    sample_rate_hz: float = Field(gt=0, le=10_000_000)
    channel_count: int | None = Field(default=None, ge=1, le=4096)
    channels: list[ChannelConfig] | None = None
    signals: list[SimSignalConfig] = Field(default_factory=lambda: [SimSignalConfig()])
    pace: Literal["realtime", "fast"] = "realtime"
    seed: int = 0

    @model_validator(mode="after")
    def _channels(self) -> SimDeviceConfig:
        _check_unique_channels(self.channels)
        if self.channels is None and self.channel_count is None:
            raise ValueError("give either channels or channel_count")
        if (
            self.channels is not None
            and self.channel_count is not None
            and len(self.channels) != self.channel_count
        ):
            raise ValueError(
                f"channel_count {self.channel_count} != {len(self.channels)} channels listed"
            )
        return self


class Stm32DeviceConfig(_DeviceBase):
    """The test-stand STM32 text protocol (``KEY: VALUE | ...`` lines) over a serial port."""

    driver: Literal["stm32"]
    port: str = Field(description="Serial device (/dev/ttyACM0) or a pyserial URL.")
    baudrate: int = Field(default=230_400, gt=0)
    sample_rate_hz: float = Field(default=100.0, gt=0, description="Expected lines per second.")
    channels: list[ChannelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Stm32DeviceConfig:
        _check_unique_channels(self.channels)
        return self


class NidaqDeviceConfig(_DeviceBase):
    """NI-DAQmx continuous analog input."""

    driver: Literal["nidaq"]
    physical_channels: str = Field(description='NI-DAQmx channel string, e.g. "Dev1/ai1:9".')
    terminal_config: Literal["RSE", "NRSE", "DIFF", "PSEUDO_DIFF", "DEFAULT"] = "RSE"
    sample_rate_hz: float = Field(gt=0)
    min_val_v: float = -10.0
    max_val_v: float = 10.0
    channels: list[ChannelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> NidaqDeviceConfig:
        _check_unique_channels(self.channels)
        if self.min_val_v >= self.max_val_v:
            raise ValueError("min_val_v must be below max_val_v")
        return self


DeviceConfig = Annotated[
    ReplayDeviceConfig | SimDeviceConfig | Stm32DeviceConfig | NidaqDeviceConfig,
    Field(discriminator="driver"),
]

DRIVER_NAMES: frozenset[str] = frozenset(
    name
    for model in get_args(get_args(DeviceConfig)[0])
    for name in get_args(model.model_fields["driver"].annotation)
)
"""The ``driver`` values of :data:`DeviceConfig` (``"replay"``, ``"sim"``...)."""


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=5001, ge=0, le=65535)


class BufferConfig(Strict):
    capacity_rows: int = Field(
        default=6_000_000, ge=1_000, description="Rows kept per device in the ring buffer."
    )


class RecorderConfig(Strict):
    enabled: bool = True
    directory: ResolvedPath = Path("recordings")
    segment_duration_s: float = Field(default=60.0, gt=0)
    segment_max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    codec: Literal["zstd", "snappy", "lz4", "gzip", "brotli", "none"] = "zstd"
    compression_level: int | None = None
    flush_interval_s: float = Field(
        default=1.0, gt=0, le=1.0, description="Journal flush period: the most a kill -9 loses."
    )
    fsync: bool = True

    @model_validator(mode="after")
    def _level_needs_codec_with_levels(self) -> RecorderConfig:
        if self.compression_level is not None and self.codec in ("snappy", "none"):
            raise ValueError(f"compression_level cannot be set with codec {self.codec!r}")
        return self


class LiveConfig(Strict):
    default_fps: float = Field(default=30.0, gt=0, le=240)
    max_fps: float = Field(default=120.0, gt=0, le=1000)
    default_display_rate_hz: float = Field(default=2_000.0, gt=0)
    max_backlog_s: float = Field(
        default=2.0, gt=0, description="A client further behind than this skips ahead (counted)."
    )
    max_message_bytes: int = Field(
        default=64 * 1024, ge=256, description="Largest message a client may send."
    )
    max_frame_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest data frame sent; more rows wait for the next frame.",
    )


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
    pressure_push: PressurePushConfig | None = None
    devices: list[DeviceConfig] = Field(min_length=1)

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
        return self
