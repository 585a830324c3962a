"""Load TOML configuration files into pydantic models, with errors that name file, key, reason."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ValidationError

from rigwatch.config.drivers import driver_names
from rigwatch.config.station import StationConfig, station_config_model
from rigwatch.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def _format_loc(loc: tuple[Any, ...], union_tags: frozenset[str]) -> str:
    # pydantic puts the tag of a discriminated union (``driver = "sim"``) in an error's
    # location, between the list index and the key; a user never wrote it, so it is left out
    out = ""
    for i, part in enumerate(loc):
        if i > 0 and isinstance(loc[i - 1], int) and part in union_tags:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One message, one line per problem: ``source: key: reason (got value)``."""
    lines = []
    tags = driver_names()
    for err in exc.errors(include_url=False):
        key = _format_loc(tuple(err["loc"]), tags)
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown key (not allowed here; check its spelling)"
        got = ""
        if (
            "input" in err
            and err["type"] not in ("missing",)
            and not isinstance(err["input"], dict)
        ):
            got = f" (got {err['input']!r})"
        lines.append(f"{source}: {key}: {reason}{got}")
    return "\n".join(lines)


@overload
def load_config(path: str | Path, model: None = None) -> StationConfig: ...


@overload
def load_config(path: str | Path, model: type[M]) -> M: ...


def load_config(path: str | Path, model: type[BaseModel] | None = None) -> BaseModel:
    """Read a TOML file and validate it.

    Args:
        path: the TOML file. Relative paths inside it are resolved against its folder.
        model: the pydantic model to validate against; defaults to the station model that
            knows every installed driver (:func:`~rigwatch.config.station.station_config_model`).

    Returns:
        The validated model instance.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid TOML, or fails
            validation; the message names the file, the key and the reason. Also when a
            driver cannot be loaded.
    """
    target: type[BaseModel] = station_config_model() if model is None else model
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    try:
        return target.model_validate(data, context={"base_dir": p.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(p), exc)) from None
