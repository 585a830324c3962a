"""Building blocks shared by every configuration model: strict models, names, paths resolved
against the config file's folder, channels, and the base of every device's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
"""Device, channel and station names: a letter or ``_``, then letters, digits, ``_`` or ``-``
(they become Parquet column names, file-name parts and URL parts)."""


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path; relative paths are resolved against the folder of the TOML file that holds them."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(Strict):
    """One channel: name, unit after calibration, and linear calibration ``gain * raw + offset``."""

    name: Name
    unit: str = Field(default="", max_length=32)
    gain: float = 1.0
    offset: float = 0.0


def check_unique_channels(channels: list[ChannelConfig] | None) -> None:
    """Raise ``ValueError`` naming the repeated channel names, if any."""
    if channels:
        names = [c.name for c in channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique, repeated: {', '.join(dup)}")


class DeviceConfig(Strict):
    """What every ``[[devices]]`` entry has. A driver's own model subclasses it, narrowing
    ``driver`` to its name (``driver: Literal["sim"]``) and adding its keys.

    Attributes:
        name: device name, unique within the station.
        driver: the driver's registered name (see :mod:`rigwatch.config.drivers`).
        block_duration_s: duration of one block handed to the engine.
    """

    name: Name
    driver: str
    block_duration_s: float = Field(
        default=0.05, gt=0, le=2.0, description="Duration of one block handed to the engine."
    )

    @property
    def channel_names(self) -> list[str] | None:
        """Names of the configured channels, or ``None`` when the driver finds them itself
        (a replayed file's columns)."""
        channels = getattr(self, "channels", None)
        return None if channels is None else [c.name for c in channels]
