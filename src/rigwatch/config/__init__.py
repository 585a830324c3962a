"""Configuration: TOML files validated by pydantic models."""

from rigwatch.config.loader import load_config
from rigwatch.config.station import StationConfig

__all__ = ["StationConfig", "load_config"]
