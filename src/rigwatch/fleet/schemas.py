"""Request and response models of the fleet's REST API (pydantic; unknown keys refused in
requests). Times are ISO 8601 UTC in JSON; coordinates in degrees (WGS 84)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from rigwatch.config.base import NAME_PATTERN
from rigwatch.fleet.rules import Colour

Role = Literal["viewer", "operator", "admin"]
"""viewer reads; operator also acknowledges and clears alerts; admin also manages machines,
keys and users and reads the audit."""

ROLE_RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}

NO_NUL = r"^[^\x00]*$"
"""Free text: anything but NUL (U+0000), which PostgreSQL's text refuses (one rule for every
database: refused with 422 on SQLite too)."""

MachineId = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
TagValue = Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)]
MachineName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_NUL)]
MachineType = Annotated[str, StringConstraints(max_length=128, pattern=NO_NUL)]
MachineSite = Annotated[str, StringConstraints(max_length=256, pattern=NO_NUL)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=64)]
NotNull = SkipJsonSchema[None]
"""The default of an optional request field that may be left out but not sent as ``null``
(absent from the JSON schema; refused by a validator when sent)."""

EARLIEST_TIME = datetime(1677, 9, 21, 0, 12, 44, tzinfo=UTC)
"""The earliest whole second of int64 nanoseconds since the Unix epoch (-2**63 ns)."""
LATEST_TIME = datetime(2262, 4, 11, 23, 47, 16, tzinfo=UTC)
"""The latest whole second of int64 nanoseconds since the Unix epoch (2**63 - 1 ns)."""


def _storable_time(at: datetime) -> datetime:
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= aware <= LATEST_TIME:
        raise ValueError(
            f"must lie between {EARLIEST_TIME:%Y-%m-%dT%H:%M:%SZ} and "
            f"{LATEST_TIME:%Y-%m-%dT%H:%M:%SZ} (times are int64 ns since 1970)"
        )
    return at


QueryTime = Annotated[datetime, AfterValidator(_storable_time)]
"""A time given in a query (``start``, ``end``, ``since``): ISO 8601, naive read as UTC, within
:data:`EARLIEST_TIME` .. :data:`LATEST_TIME` (outside: 422 naming the parameter)."""


class RequestModel(BaseModel):
    """Base of request bodies: unknown keys refused, NaN and infinities refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Problem(BaseModel):
    """RFC 9457 problem details; ``errors`` names each bad field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class MachineIn(RequestModel):
    """A machine to register. Names and tags are free text, stored verbatim."""

    id: MachineId
    name: MachineName
    type: MachineType = ""
    site: MachineSite = ""
    latitude: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
    longitude: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None
    tags: Tags = Field(default_factory=dict)


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    """Leave ``"default": null`` out of the JSON schema of fields that may not be null."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None and "anyOf" not in prop:
            del prop["default"]


class MachineUpdate(RequestModel):
    """Fields to change on a machine (absent: unchanged). ``latitude``/``longitude`` may be
    ``null`` (no position); ``name``, ``type``, ``site`` and ``tags`` may not (422: a machine
    always has them; leave the field out to keep it)."""

    name: MachineName | NotNull = None
    type: MachineType | NotNull = None
    site: MachineSite | NotNull = None
    latitude: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
    longitude: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None
    tags: Tags | NotNull = None

    model_config = ConfigDict(json_schema_extra=_drop_null_defaults)

    @field_validator("name", "type", "site", "tags")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # runs only for a value that was sent (defaults are not validated): an explicit null
        if value is None:
            raise ValueError("must not be null (leave the field out to keep its value)")
        return value


class MachineOut(BaseModel):
    """A registered machine."""

    id: str
    name: str
    type: str
    site: str
    latitude: float | None
    longitude: float | None
    tags: dict[str, str]
    created_at: datetime


class KeyIssued(BaseModel):
    """A new API key: shown this once, stored only as its SHA-256."""

    machine_id: str
    key_id: str
    api_key: str


class MachineCreated(BaseModel):
    """A machine just registered, with its first API key."""

    machine: MachineOut
    key: KeyIssued


class KeyInfo(BaseModel):
    """An API key's public facts (never the key)."""

    key_id: str
    machine_id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class LatestOut(BaseModel):
    """A machine's latest state.

    Attributes:
        colour: green, yellow, red, black or grey; reason: why black or grey.
        timestamp: the newest message's timestamp; received_at: when it arrived.
        last_fresh_at: when fresh (non-backfill) data last arrived.
        values: metric -> value of the newest message; metrics: rule id -> status.
        info: system_info, status, accessible, alarms, errors, sensor_errors.
    """

    machine_id: str
    colour: Colour
    reason: str
    timestamp: datetime | None
    received_at: datetime | None
    last_fresh_at: datetime | None
    values: dict[str, float]
    metrics: dict[str, str]
    info: dict[str, Any] | None


class IngestResult(BaseModel):
    """What an ingest request did: messages stored, duplicates dropped (same seq seen
    before), backfill among the stored, and the machine's colour afterwards."""

    accepted: int
    duplicates: int
    backfill: int
    colour: Colour


class MetricHistory(BaseModel):
    """A metric's history in columns (one entry per point, oldest first).

    ``resolution`` ``raw``: ``t`` (ISO 8601 UTC), ``value`` and ``backfill`` per sample;
    ``hour``: ``t`` is the hour's start and ``min``, ``max``, ``mean``, ``count`` its
    aggregate (``value`` = ``mean``).
    """

    machine_id: str
    metric: str
    resolution: Literal["raw", "hour"]
    t: list[datetime]
    value: list[float]
    backfill: list[bool] | None = None
    min: list[float] | None = None
    max: list[float] | None = None
    count: list[int] | None = None
    truncated: bool = False


class FleetMap(BaseModel):
    """Every machine's position and colour, in columns (index i of each list is one machine):
    compact for tens of thousands of markers."""

    count: int
    id: list[str]
    name: list[str]
    colour: list[Colour]
    latitude: list[float | None]
    longitude: list[float | None]


class AlertAction(RequestModel):
    """An acknowledgement or a clear by a person, with an optional comment."""

    comment: Annotated[str, StringConstraints(max_length=2000, pattern=NO_NUL)] = ""


class AuditOut(BaseModel):
    """One human action."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class LoginIn(RequestModel):
    """A user's credentials."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class TokenOut(BaseModel):
    """A login token (``Authorization: Bearer <token>``) and its expiry."""

    token: str
    username: str
    role: Role
    expires_at: datetime


class UserIn(RequestModel):
    """A user to create."""

    username: Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=8, max_length=1024)]
    role: Role = "viewer"


class UserOut(BaseModel):
    """A user (never the password hash)."""

    username: str
    role: Role
    created_at: datetime
    disabled: bool
