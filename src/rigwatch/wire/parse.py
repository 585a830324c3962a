"""Validating wire messages, with field-level problems instead of exceptions to pick apart.

Every ingest (HTTP, MQTT, batch) goes through :func:`validate_status` or
:func:`validate_batch`: one place decides what a valid message is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rigwatch.errors import WireError
from rigwatch.wire.status_v1 import SCHEMA_VERSION, StatusBatchV1, StatusMessageV1

MESSAGE_MODELS: dict[int, type[StatusMessageV1]] = {1: StatusMessageV1}
"""schema_version -> message model of that version."""

BATCH_MODELS: dict[int, type[StatusBatchV1]] = {1: StatusBatchV1}
"""schema_version -> batch model of that version."""

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted path: ``messages[3].sensor_data.temperature``.

    Union branch names pydantic inserts (``function-after[...]``, ``TimeSpan``, ``str``) are
    left out: the sender never wrote them.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part[:1].isupper() or part in ("str", "int", "float", "bool"):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(body)"


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """One ``{"field", "message", "type"}`` per problem of ``exc``, in its order, merged when
    the same field failed several union branches."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False, include_input=False):
        path = field_path(tuple(err["loc"]))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the schema; check its spelling)"
        if err["type"] == "missing":
            message = "required field is missing"
        key = f"{path}\0{message}"
        if key in seen:
            continue
        seen.add(key)
        out.append({"field": path, "message": message, "type": err["type"]})
    return out


def _version_of(data: Any) -> int:
    if isinstance(data, Mapping):
        version = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and not isinstance(version, bool):
            return version
        raise WireError(
            "schema_version must be an integer",
            [{"field": "schema_version", "message": "must be an integer", "type": "int_type"}],
        )
    return SCHEMA_VERSION


NUL_PROBLEM = "text must not contain NUL (U+0000)"
"""Why a message with NUL in a text is refused: PostgreSQL's text and JSONB cannot store it,
and no field of a message has a use for it (one rule for every database)."""


def _nul_paths(data: Any, path: tuple[int | str, ...] = ()) -> list[tuple[int | str, ...]]:
    """Where ``data`` (decoded JSON) holds a text with NUL: key or value, in document order."""
    if isinstance(data, str):
        return [path] if "\x00" in data else []
    found: list[tuple[int | str, ...]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            if isinstance(key, str) and "\x00" in key:
                found.append((*path, key.replace("\x00", "\\u0000")))
            else:
                found.extend(_nul_paths(value, (*path, key)))
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            found.extend(_nul_paths(value, (*path, i)))
    return found


def _json_path(path: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _refuse_nul(data: bytes | str | Mapping[str, Any]) -> None:
    """Raise :class:`WireError` naming each text that holds NUL. In JSON text NUL can only be
    the escape ``\\u0000`` (a raw control character is invalid JSON), so a body without that
    escape is passed at the cost of one substring search."""
    if isinstance(data, bytes | str):
        escaped = b"\\u0000" in data if isinstance(data, bytes) else "\\u0000" in data
        if not escaped:
            return
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError):
            return  # invalid JSON, or deeper than any message: the model's parse says where
    else:
        decoded = data
    try:
        paths = _nul_paths(decoded)
    except RecursionError:
        return  # deeper than any message: refused by the model
    if paths:
        found = [
            {"field": _json_path(p), "message": NUL_PROBLEM, "type": "string_nul"} for p in paths
        ]
        raise WireError(f"invalid message: {found[0]['field']}: {NUL_PROBLEM}", found)


def _validate(
    models: Mapping[int, type[M]], data: bytes | str | Mapping[str, Any], now: datetime | None
) -> M:
    context = {"now": now if now is not None else datetime.now(tz=UTC)}
    _refuse_nul(data)
    try:
        if isinstance(data, bytes | str):
            # one parse of the JSON text; only version 1 exists, so it is the fast path
            model = models[SCHEMA_VERSION]
            return model.model_validate_json(data, context=context)
        version = _version_of(data)
        chosen = models.get(version)
        if chosen is None:
            known = ", ".join(str(v) for v in sorted(models))
            raise WireError(
                f"schema_version {version} is not supported (known: {known})",
                [
                    {
                        "field": "schema_version",
                        "message": f"unsupported version {version} (known: {known})",
                        "type": "literal_error",
                    }
                ],
            )
        return chosen.model_validate(data, context=context)
    except ValidationError as exc:
        found = problems(exc)
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise WireError(f"invalid message: {summary}{more}", found) from None


def validate_status(
    data: bytes | str | Mapping[str, Any], *, now: datetime | None = None
) -> StatusMessageV1:
    """Validate one status message.

    Args:
        data: the JSON body (bytes or text) or the decoded object.
        now: the server's clock for the "not more than a day ahead" check (aware or naive UTC);
            the wall clock when omitted.

    Returns:
        The message of its schema version.

    Raises:
        WireError: with ``problems`` naming each bad field (dotted path) and why.
    """
    return _validate(MESSAGE_MODELS, data, now)


def validate_batch(
    data: bytes | str | Mapping[str, Any], *, now: datetime | None = None
) -> StatusBatchV1:
    """Validate a batch ``{"messages": [...]}``; as :func:`validate_status`, with fields named
    ``messages[i].<path>``."""
    return _validate(BATCH_MODELS, data, now)
