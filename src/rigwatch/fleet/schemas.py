"""Request and response models of the fleet's REST API (pydantic; unknown keys refused in
requests). Times are ISO 8601 UTC in JSON; coordinates in degrees (WGS 84)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from rigwatch.config.base import NAME_PATTERN
from rigwatch.fleet.rules import Colour

Role = Literal["viewer", "operator", "admin"]
"""viewer reads; operator also acknowledges and clears alerts; admin also manages machines,
keys and users and reads the audit."""

ROLE_RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}

MachineId = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=64)]


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
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: Annotated[str, StringConstraints(max_length=128)] = ""
    site: Annotated[str, StringConstraints(max_length=256)] = ""
    latitude: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
    longitude: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None
    tags: Tags = Field(default_factory=dict)


class MachineUpdate(RequestModel):
    """Fields to change on a machine (absent: unchanged)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    type: Annotated[str, StringConstraints(max_length=128)] | None = None
    site: Annotated[str, StringConstraints(max_length=256)] | None = None
    latitude: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
    longitude: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None
    tags: Tags | None = None


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

    comment: Annotated[str, StringConstraints(max_length=2000)] = ""


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

    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
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
