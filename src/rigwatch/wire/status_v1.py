"""Version 1 of the status message a machine's agent sends to the fleet server.

A message is the JSON object posted to ``POST /api/machines/{machine_id}/status`` (or published
on the machine's MQTT topic). Version 1 accepts the payload of the agents in service today
unchanged: ``machine_id``, ``system_info`` in the layout of the Windows service, ``sensor_data``,
``timestamp`` and ``status``; it adds optional fields that today's agents do not send:
``schema_version``, ``accessible``, ``access_error``, ``sensor_errors``, ``alarms``,
``errors``, ``backfill`` and ``seq``. ``docs/wire.md`` describes every field with its unit.

Validation is strict:

- unknown keys are refused at every level whose keys are fixed (everything except the
  ``sensor_data`` and ``sensor_errors`` maps, whose keys are metric names checked against
  :data:`METRIC_NAME_PATTERN`);
- numbers must be JSON numbers (``"42.5"`` and ``true`` are refused), finite (no NaN, no
  infinity) and inside physical bounds for the four standard metrics;
- timestamps must lie between 2000-01-01 and one day after "now" (the validation context's
  ``now``, see :func:`validate_status`; the wall clock otherwise). A timestamp without an offset
  is read as UTC, as today's agent writes ``datetime.utcnow().isoformat()``;
- a sensor that could not be read is ``null`` in ``sensor_data`` *with* a reason in
  ``sensor_errors``; a value with an error is refused (a failed read is never a number);
- no text holds NUL (U+0000): checked by :func:`rigwatch.wire.validate_status` and
  :func:`rigwatch.wire.validate_batch`, the one way in of every ingest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from rigwatch.config.base import NAME_PATTERN
from rigwatch.timefmt import to_ns
from rigwatch.wire.examples import TODAY_STATUS

SCHEMA_VERSION: Literal[1] = 1
"""The version this module describes (``schema_version`` of a message)."""

METRIC_NAME_PATTERN = NAME_PATTERN
"""Metric and machine names: a letter or ``_``, then letters, digits, ``_`` or ``-``."""

MAX_METRICS = 64
"""Most metrics in one message's ``sensor_data``."""

MAX_ALARMS = 64
"""Most entries in ``alarms`` and in ``errors`` of one message."""

MAX_DISKS = 64
"""Most entries in ``system_info.disks``."""

MAX_BATCH = 500
"""Most messages in one :class:`StatusBatchV1`."""

MAX_MESSAGE_BYTES = 64 * 1024
"""Largest JSON body of one message an ingest should read (bigger bodies: 413)."""

MAX_BATCH_BYTES = 8 * 1024 * 1024
"""Largest JSON body of one batch an ingest should read (bigger bodies: 413)."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""Timestamps before this instant are refused (a machine clock that was never set)."""

MAX_FUTURE = timedelta(days=1)
"""Timestamps later than "now" plus this are refused (a machine clock far ahead)."""

METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (-273.15, 5000.0),
    "pressure": (-1.01325, 10000.0),
    "speed": (-1.0e6, 1.0e6),
    "disk_volume": (0.0, 100.0),
}
"""Physically possible range of the standard metrics, inclusive: temperature in degC (not
below absolute zero), pressure in bar gauge (not below -1 atm), speed in rpm, disk_volume in
percent. Values outside are refused as corrupt; alarms on plausible values are the rules'
job, not the schema's."""

ABS_LIMIT = 1.0e12
"""Any other metric's magnitude must not exceed this."""

_TIMESPAN_TEXT = re.compile(r"^-?(\d{1,8}\.)?\d{1,2}:\d{2}:\d{2}(\.\d{1,7})?$")


def _now(info: ValidationInfo) -> datetime:
    context = info.context
    # a dict is what validate_status passes: looked up without the Mapping ABC's check
    if type(context) is not dict and not isinstance(context, Mapping):
        context = {}
    now = context.get("now")
    if isinstance(now, datetime):
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return datetime.now(tz=UTC)


def _check_utc_time(value: datetime, info: ValidationInfo) -> datetime:
    # compared as given, converted only once in range: a time with an offset at the ends of
    # the calendar (0001-01-01T00:00:00+01:00) has no UTC datetime (astimezone: OverflowError)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if value < EARLIEST:
        raise ValueError(f"timestamp {value.isoformat()} is before {EARLIEST.date()}")
    latest = _now(info) + MAX_FUTURE
    if value > latest:
        raise ValueError(
            f"timestamp {value.isoformat()} is more than 24 h after the server's clock "
            f"({latest - MAX_FUTURE:%Y-%m-%dT%H:%M:%SZ})"
        )
    return value.astimezone(UTC)


def _check_local_time(value: datetime, info: ValidationInfo) -> datetime:
    # a machine's local wall clock: kept as written (naive or with its offset), only checked
    probe = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    _check_utc_time(probe, info)
    return value


UtcTime = Annotated[datetime, AfterValidator(_check_utc_time)]
"""An instant: ISO 8601 text; without an offset it is UTC. Becomes an aware UTC datetime.
Refused before :data:`EARLIEST` or more than :data:`MAX_FUTURE` after now."""

LocalTime = Annotated[datetime, AfterValidator(_check_local_time)]
"""A machine's local wall-clock time, kept as written (naive or with its offset)."""

Text = Annotated[str, Field(max_length=256)]
LongText = Annotated[str, Field(max_length=2000)]
MetricName = Annotated[str, Field(pattern=METRIC_NAME_PATTERN, max_length=64)]
MachineId = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]
Count = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
Number = StrictFloat
"""A JSON number (integer or not), finite; text and booleans are refused."""


class WireModel(BaseModel):
    """Base of every wire model: unknown keys refused, NaN and infinities refused, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TimeSpan(WireModel):
    """A .NET ``TimeSpan`` as serialised by System.Text.Json (camelCase properties).

    Every property is optional: today's agent sends ``{"ticks": 0}`` for an offset and
    ``{days, hours, minutes, seconds}`` for an uptime. A tick is 100 ns.
    """

    ticks: StrictInt | None = None
    days: StrictInt | None = None
    hours: StrictInt | None = None
    minutes: StrictInt | None = None
    seconds: StrictInt | None = None
    milliseconds: StrictInt | None = None
    microseconds: StrictInt | None = None
    nanoseconds: StrictInt | None = None
    totalDays: Number | None = None
    totalHours: Number | None = None
    totalMinutes: Number | None = None
    totalSeconds: Number | None = None
    totalMilliseconds: Number | None = None
    totalMicroseconds: Number | None = None
    totalNanoseconds: Number | None = None

    def total_seconds(self) -> float:
        """The span in seconds: from ``ticks`` when given, else from its parts."""
        if self.ticks is not None:
            return self.ticks / 1e7
        if self.totalSeconds is not None:
            return float(self.totalSeconds)
        return (
            (self.days or 0) * 86400.0
            + (self.hours or 0) * 3600.0
            + (self.minutes or 0) * 60.0
            + (self.seconds or 0)
            + (self.milliseconds or 0) / 1e3
        )


def _check_timespan_text(value: str) -> str:
    if not _TIMESPAN_TEXT.match(value):
        raise ValueError(f"not a TimeSpan text [-][d.]hh:mm:ss[.fffffff]: {value[:40]!r}")
    return value


TimeSpanText = Annotated[str, Field(max_length=32), AfterValidator(_check_timespan_text)]
"""A .NET ``TimeSpan`` as Json.NET writes it: ``"01:00:00"``, ``"-05:00:00"``, ``"3.04:05:06"``."""


class TimeZoneInfo(WireModel):
    """The machine's time zone (.NET ``TimeZoneInfo``)."""

    id: Text
    displayName: Text
    standardName: Text
    daylightName: Text
    baseUtcOffset: TimeSpan | TimeSpanText
    supportsDaylightSavingTime: StrictBool


class SystemSection(WireModel):
    """``system_info.system``: the machine computer's operating system and clock."""

    os: Text
    architecture: Text
    upTimeTicks: Count  # 100 ns ticks since boot
    upTime: TimeSpan | TimeSpanText
    name: Text
    processors: Annotated[StrictInt, Field(ge=1, le=65536)]
    time: LocalTime
    utcTime: UtcTime
    timezone: TimeZoneInfo


class Disk(WireModel):
    """One file system of the machine computer; sizes in bytes, ``usedPercentage`` in %."""

    mountPoint: Text
    type: Annotated[str, Field(max_length=32)] | StrictInt  # .NET DriveType, text or number
    label: Text
    format: Annotated[str, Field(max_length=32)]
    freeSpace: Count
    totalSize: Count
    usedPercentage: Annotated[Number, Field(ge=0, le=100)]

    @model_validator(mode="after")
    def _free_within_total(self) -> Disk:
        if self.freeSpace > self.totalSize:
            _field_errors(
                "Disk",
                [(("freeSpace",), f"larger than totalSize ({self.totalSize} B)", self.freeSpace)],
            )
        return self


class SystemInfo(WireModel):
    """``system_info``: the layout of the Windows service (``version``, ``system``, ``disks``)."""

    version: Annotated[str, Field(max_length=64)]
    system: SystemSection
    disks: Annotated[list[Disk], Field(max_length=MAX_DISKS)]


class MachineAlarm(WireModel):
    """An alarm active on the machine's own controller at the message's time.

    ``alarms`` lists the alarms active when the message was made: an alarm missing from a later
    message is no longer active.
    """

    code: Annotated[str, Field(min_length=1, max_length=64)]
    message: LongText = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    since: UtcTime | None = None
    source: Text | None = None


class AgentErrorEntry(WireModel):
    """A problem the agent met while making the message (a plug-in failed, a disk unreadable)."""

    source: Text
    message: LongText
    at: UtcTime | None = None


def _field_errors(title: str, found: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    """Raise one ValidationError whose problems sit at the given field locations."""
    if found:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("value_error", "{reason}", {"reason": reason}),
                    loc=loc,
                    input=value,
                )
                for loc, reason, value in found
            ],
        )


class StatusMessageV1(WireModel):
    """One status message of one machine (schema version 1).

    Attributes:
        schema_version: 1 (default: today's agents do not send it).
        machine_id: the machine's id; must equal the id of the URL or topic it arrives on.
        system_info: the machine computer (Windows service layout), or ``None``.
        sensor_data: metric name -> value (``temperature`` degC, ``pressure`` bar,
            ``speed`` rpm, ``disk_volume`` %); ``None`` when the read failed (then
            ``sensor_errors`` says why).
        sensor_errors: metric name -> why its value is missing.
        timestamp: when the values were read, aware UTC.
        status: the agent's own word for the machine's state (today ``"online"``);
            informational, it does not set the colour.
        accessible: ``False`` when the controller or sensor interface does not answer
            (the fleet shows the machine black); ``None`` when the agent does not say.
        access_error: why the machine is not accessible.
        alarms: the machine's active alarms. errors: the agent's own problems.
        backfill: ``True`` when the message is delivered late from the agent's outbox.
        seq: the agent's message counter (increasing), for duplicate detection.

    Raises:
        pydantic.ValidationError: on any problem, with the field's location.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [TODAY_STATUS]})

    schema_version: Literal[1] = SCHEMA_VERSION
    machine_id: MachineId
    system_info: SystemInfo | None = None
    sensor_data: Annotated[dict[MetricName, Number | None], Field(max_length=MAX_METRICS)] = Field(
        default_factory=dict
    )
    sensor_errors: Annotated[dict[MetricName, LongText], Field(max_length=MAX_METRICS)] = Field(
        default_factory=dict
    )
    timestamp: UtcTime
    status: Annotated[str, Field(max_length=32)] | None = None
    accessible: StrictBool | None = None
    access_error: LongText | None = None
    alarms: Annotated[list[MachineAlarm], Field(max_length=MAX_ALARMS)] = Field(
        default_factory=list
    )
    errors: Annotated[list[AgentErrorEntry], Field(max_length=MAX_ALARMS)] = Field(
        default_factory=list
    )
    backfill: StrictBool = False
    seq: Count | None = None

    @model_validator(mode="after")
    def _check_sensors(self) -> StatusMessageV1:
        found: list[tuple[tuple[str | int, ...], str, Any]] = []
        errors = self.sensor_errors
        default = (-ABS_LIMIT, ABS_LIMIT)
        for name, value in self.sensor_data.items():
            if value is None:
                if name not in errors:
                    found.append(
                        (
                            ("sensor_data", name),
                            f"null without a reason in sensor_errors.{name}",
                            value,
                        )
                    )
                continue
            low, high = METRIC_BOUNDS.get(name, default)
            if not (low <= value <= high):
                found.append(
                    (
                        ("sensor_data", name),
                        f"{value!r} is outside the possible range [{low}, {high}]",
                        value,
                    )
                )
            if errors and name in errors:
                found.append(
                    (
                        ("sensor_data", name),
                        "has a value and an error in sensor_errors; a failed read is null",
                        value,
                    )
                )
        _field_errors("StatusMessageV1", found)
        return self

    def values(self) -> dict[str, float]:
        """The metrics that were read: name -> value as ``float``."""
        return {k: float(v) for k, v in self.sensor_data.items() if v is not None}

    def timestamp_ns(self) -> int:
        """``timestamp`` as int64 nanoseconds since the Unix epoch (UTC)."""
        return to_ns(self.timestamp)

    def to_json_dict(self) -> dict[str, Any]:
        """The message as JSON-ready data (timestamps as ISO 8601 UTC text, ``Z``)."""
        return self.model_dump(mode="json")


class StatusBatchV1(WireModel):
    """A backlog of status messages sent in one body, oldest first (1 to :data:`MAX_BATCH`)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    messages: Annotated[list[StatusMessageV1], Field(min_length=1, max_length=MAX_BATCH)]
