"""The status message schema (rigwatch.wire): today's payload accepted, bad input refused with
the field named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rigwatch.errors import WireError
from rigwatch.wire import (
    MAX_BATCH,
    SCHEMA_VERSION,
    StatusMessage,
    validate_batch,
    validate_status,
)
from support.fleet_payloads import TODAY_PAYLOAD, payload

NOW = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


def refused(data: Any) -> list[dict[str, str]]:
    with pytest.raises(WireError) as info:
        validate_status(data, now=NOW)
    assert info.value.problems, "a refusal must carry field-level problems"
    return info.value.problems


def fields(problems: list[dict[str, str]]) -> set[str]:
    return {p["field"] for p in problems}


def test_wire_today_payload_validates_unchanged_as_dict_and_json() -> None:
    from_dict = validate_status(TODAY_PAYLOAD, now=NOW)
    from_json = validate_status(json.dumps(TODAY_PAYLOAD).encode(), now=NOW)
    assert from_dict == from_json
    assert from_dict.schema_version == SCHEMA_VERSION == 1
    assert from_dict.machine_id == "ironcast_berlin"
    assert from_dict.values() == {
        "temperature": 42.5,
        "pressure": 2.1,
        "speed": 1450.0,
        "disk_volume": 78.5,
    }
    # naive ISO text (datetime.utcnow().isoformat()) is UTC
    assert from_dict.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert from_dict.status == "online"
    assert from_dict.accessible is None
    info = from_dict.system_info
    assert info is not None
    assert info.system.timezone.baseUtcOffset.ticks == 0  # type: ignore[union-attr]
    assert info.system.upTime.total_seconds() == 19 * 86400 + 22 * 3600 + 30 * 60  # type: ignore[union-attr]
    assert info.disks[0].usedPercentage == 78.52


def test_wire_round_trip_through_json_is_lossless() -> None:
    msg = validate_status(TODAY_PAYLOAD, now=NOW)
    again = validate_status(msg.model_dump_json(), now=NOW)
    assert again == msg
    assert msg.to_json_dict()["timestamp"] == "2024-05-01T12:00:00.123456Z"


def test_wire_dotnet_timespan_forms_are_accepted() -> None:
    p = payload()
    p["system_info"]["system"]["timezone"]["baseUtcOffset"] = "-05:00:00"
    p["system_info"]["system"]["upTime"] = {
        "ticks": 36_000_000_000,
        "days": 0,
        "hours": 1,
        "milliseconds": 0,
        "minutes": 0,
        "seconds": 0,
        "totalDays": 0.041666,
        "totalHours": 1.0,
        "totalMilliseconds": 3.6e6,
        "totalMinutes": 60.0,
        "totalSeconds": 3600.0,
    }
    p["system_info"]["system"]["time"] = "2024-05-01T07:00:00.1234567-05:00"
    msg = validate_status(p, now=NOW)
    assert msg.system_info is not None
    assert msg.system_info.system.upTime.total_seconds() == 3600.0  # type: ignore[union-attr]


def test_wire_new_optional_fields() -> None:
    p = payload(
        schema_version=1,
        sensor_data={"temperature": None, "pressure": 2.1},
        sensor_errors={"temperature": "no answer to TEMP? within 1 s"},
        accessible=True,
        alarms=[{"code": "E104", "message": "ladle", "severity": "critical"}],
        errors=[{"source": "sensor:temperature", "message": "timeout"}],
        backfill=True,
        seq=7,
    )
    msg = validate_status(p, now=NOW)
    assert msg.values() == {"pressure": 2.1}
    assert msg.sensor_errors == {"temperature": "no answer to TEMP? within 1 s"}
    assert msg.alarms[0].severity == "critical"
    assert msg.backfill is True and msg.seq == 7


def test_wire_minimal_message_and_construction_in_python() -> None:
    msg = StatusMessage(machine_id="m1", timestamp=NOW, sensor_data={"speed": 0})
    assert validate_status(msg.model_dump_json(), now=NOW) == msg
    assert msg.sensor_data == {"speed": 0.0}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"machine_id": "bad id; drop table"}, "machine_id"),
        ({"timestamp": None}, "timestamp"),
        ({"sensor_data": {"temperature": "42.5"}}, "sensor_data.temperature"),
        ({"sensor_data": {"temperature": True}}, "sensor_data.temperature"),
        ({"sensor_data": {"temperature": float("nan")}}, "sensor_data.temperature"),
        ({"sensor_data": {"pressure": float("inf")}}, "sensor_data.pressure"),
        ({"sensor_data": {"pressure": float("-inf")}}, "sensor_data.pressure"),
        ({"sensor_data": {"disk_volume": 140.0}}, "sensor_data.disk_volume"),
        ({"sensor_data": {"temperature": -300.0}}, "sensor_data.temperature"),
        ({"sensor_data": {"bad name!": 1.0}}, "sensor_data.bad name!"),
        ({"sensor_data": {"temperature": None}}, "sensor_data.temperature"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp"),
        ({"timestamp": "1970-01-01T00:00:00"}, "timestamp"),
        ({"timestamp": "2024-05-02T12:01:00Z"}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"accessible": "no"}, "accessible"),
        ({"seq": -1}, "seq"),
        ({"schema_version": 2}, "schema_version"),
        ({"alarms": [{"code": "E1", "severity": "fatal"}]}, "alarms[0].severity"),
        ({"alarms": [{"code": "E1", "since": "1990-01-01T00:00:00Z"}]}, "alarms[0].since"),
        ({"errors": [{"source": "x"}]}, "errors[0].message"),
        ({"status": "x" * 33}, "status"),
    ],
)
def test_wire_bad_input_refused_with_field_named(change: dict[str, Any], field: str) -> None:
    p = payload(**{k: v for k, v in change.items() if v is not None})
    for k, v in change.items():
        if v is None:
            p.pop(k)
    assert field in fields(refused(p))


def test_wire_failed_read_must_be_null_never_a_number() -> None:
    p = payload(sensor_data={"temperature": 0.0}, sensor_errors={"temperature": "timeout"})
    problems = refused(p)
    assert fields(problems) == {"sensor_data.temperature"}
    assert "null" in problems[0]["message"]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("system_info", "system", "processors"), 0, "system_info.system.processors"),
        (("system_info", "system", "processors"), "8", "system_info.system.processors"),
        (("system_info", "system", "processors"), 8.0, "system_info.system.processors"),
        (("system_info", "system", "hostname"), "x", "system_info.system.hostname"),
        (("system_info", "system", "utcTime"), "2090-01-01T00:00:00", "system_info.system.utcTime"),
        (
            ("system_info", "system", "timezone", "baseUtcOffset"),
            "one hour",
            "system_info.system.timezone.baseUtcOffset",
        ),
        (
            ("system_info", "system", "timezone", "baseUtcOffset"),
            {"ticks": 0, "weeks": 1},
            "system_info.system.timezone.baseUtcOffset.weeks",
        ),
        (("system_info", "disks", 0, "freeSpace"), 10**13, "system_info.disks[0].freeSpace"),
        (("system_info", "disks", 0, "usedPercentage"), 101, "system_info.disks[0].usedPercentage"),
        (("system_info", "disks", 0, "serial"), "x", "system_info.disks[0].serial"),
        (("system_info", "extra"), {}, "system_info.extra"),
    ],
)
def test_wire_system_info_checked_at_every_level(
    path: tuple[str | int, ...], value: Any, field: str
) -> None:
    p = payload()
    node: Any = p
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert field in fields(refused(p))


def test_wire_json_specific_bad_input() -> None:
    body = json.dumps(TODAY_PAYLOAD)
    nan_body = body.replace('"temperature": 42.5', '"temperature": NaN')
    assert "sensor_data.temperature" in fields(refused(nan_body))
    big_body = body.replace('"temperature": 42.5', '"temperature": 1e999')
    assert "sensor_data.temperature" in fields(refused(big_body))
    assert fields(refused(b"{not json")) == {"(body)"}
    assert fields(refused(b"[1, 2]")) == {"(body)"}


def test_wire_future_bound_is_relative_to_the_given_now() -> None:
    ts = NOW + timedelta(hours=23)
    p = payload(timestamp=ts.isoformat())
    assert validate_status(p, now=NOW).timestamp == ts
    later = validate_status(p, now=NOW + timedelta(days=1))
    assert later.timestamp == ts
    assert "timestamp" in fields(
        refused(payload(timestamp=(NOW + timedelta(hours=25)).isoformat()))
    )


def test_wire_batch_bounds_and_indexed_fields() -> None:
    good = [payload(seq=i) for i in range(3)]
    batch = validate_batch({"messages": good}, now=NOW)
    assert [m.seq for m in batch.messages] == [0, 1, 2]
    bad = [*good, payload(sensor_data={"temperature": "hot"})]
    with pytest.raises(WireError) as info:
        validate_batch(json.dumps({"messages": bad}), now=NOW)
    assert "messages[3].sensor_data.temperature" in fields(info.value.problems)
    with pytest.raises(WireError) as info:
        validate_batch({"messages": []}, now=NOW)
    assert "messages" in fields(info.value.problems)
    with pytest.raises(WireError) as info:
        validate_batch({"messages": [TODAY_PAYLOAD] * (MAX_BATCH + 1)}, now=NOW)
    assert "messages" in fields(info.value.problems)
    with pytest.raises(WireError):
        validate_batch({"messages": good, "compressed": True}, now=NOW)
