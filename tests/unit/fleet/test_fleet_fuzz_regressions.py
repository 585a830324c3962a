"""Regressions found by fuzzing the fleet's OpenAPI (tests/integration/fleet/test_fleet_fuzz.py):
each was a 5xx or an answer the schema does not document; each is now a counted 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter, ValidationError

from rigwatch.counters import Counters
from rigwatch.errors import AlertError, FleetStoreError, WireError
from rigwatch.fleet.app import BodyLimit
from rigwatch.fleet.problems import install_problem_handlers
from rigwatch.fleet.schemas import EARLIEST_TIME, LATEST_TIME, MachineIn, MachineUpdate, QueryTime
from rigwatch.wire import validate_batch, validate_status


class _Body(BaseModel):
    name: str


def _app(counters: Counters, limit: int | None = None) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, counters)

    @app.post("/echo")
    async def echo(body: _Body) -> dict[str, str]:
        return {"name": body.name}

    @app.get("/machine")
    async def machine() -> None:
        raise FleetStoreError("no machine 'x'")

    @app.get("/alert")
    async def alert() -> None:
        raise AlertError("alert 'a' is cleared: it cannot be acknowledged")

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    if limit is not None:
        app.add_middleware(BodyLimit, limit=limit, counters=counters)
    return app


@pytest.fixture
def counted() -> Iterator[tuple[TestClient, Counters]]:
    counters = Counters()
    with TestClient(_app(counters, limit=1024)) as client:
        yield client, counters


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"name": "\xff\xfe"}', "not UTF-8 text (byte 10)"),  # FastAPI: 400, undocumented
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_fleet_undecodable_json_body_is_422_json_invalid_and_counted(
    body: bytes, reason: str
) -> None:
    counters = Counters()
    with TestClient(_app(counters)) as client:
        r = client.post("/echo", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 422
    assert problem["errors"] == [
        {
            "field": "body",
            "message": f"the body is not valid JSON: {reason}",
            "type": "json_invalid",
        }
    ]
    assert counters.snapshot() == {"fleet.invalid_request": 1}


@pytest.mark.parametrize(("path", "status"), [("/machine", 404), ("/alert", 409)])
def test_fleet_store_and_alert_refusals_are_counted(
    counted: tuple[TestClient, Counters], path: str, status: int
) -> None:
    client, counters = counted
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert counters.get(f"fleet.http_{status}") == 1


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(total // 256):
        yield b"x" * 256
    yield b'"}'


def test_fleet_body_limit_refuses_a_growing_chunked_body_with_413_once(
    counted: tuple[TestClient, Counters],
) -> None:
    client, counters = counted
    # no Content-Length: the limit is only found while reading (FastAPI made a 400 of it)
    r = client.post("/echo", content=_chunks(4096), headers=JSON)
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    assert counters.snapshot() == {"fleet.oversized": 1}  # the app's cut read is not counted
    r = client.post("/raw", content=_chunks(4096))
    assert r.status_code == 413
    assert counters.snapshot() == {"fleet.oversized": 2}
    r = client.post("/echo", content=b"x" * 2000, headers=JSON)  # by Content-Length
    assert r.status_code == 413
    assert counters.snapshot() == {"fleet.oversized": 3}
    assert client.post("/echo", content=_chunks(512), headers=JSON).status_code == 200
    assert client.post("/echo", json={"name": "ok"}).json() == {"name": "ok"}


@pytest.mark.parametrize(
    "text",
    ["2263-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "9999-12-31T23:59:59-23:00"],
)
def test_fleet_query_times_beyond_int64_ns_are_refused(text: str) -> None:
    # they reached SQLite as integers too large (OverflowError: 500)
    with pytest.raises(ValidationError, match="must lie between"):
        TypeAdapter(QueryTime).validate_python(text)


def test_fleet_query_time_bounds_are_representable() -> None:
    adapter = TypeAdapter(QueryTime)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for bound in (EARLIEST_TIME, LATEST_TIME):
        at = adapter.validate_python(bound.isoformat())
        assert -(2**63) <= (at - epoch) // timedelta(microseconds=1) * 1000 < 2**63
    assert adapter.validate_python("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12)


@pytest.mark.parametrize("name", ["name", "type", "site", "tags"])
def test_fleet_machine_update_refuses_null_for_fields_a_machine_always_has(name: str) -> None:
    # {"name": null} reached the database: NOT NULL constraint failed (500)
    with pytest.raises(ValidationError, match="must not be null"):
        MachineUpdate.model_validate({name: None})
    prop: dict[str, Any] = MachineUpdate.model_json_schema()["properties"][name]
    assert "anyOf" not in prop and "default" not in prop  # the schema says: not nullable
    assert MachineUpdate.model_validate({}).model_dump(exclude_unset=True) == {}


def test_fleet_machine_update_null_position_still_clears_it() -> None:
    update = MachineUpdate.model_validate({"latitude": None, "longitude": None})
    assert update.model_dump(exclude_unset=True) == {"latitude": None, "longitude": None}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0001-01-01T00:00:00+01:00", "before 2000-01-01"),
        ("9999-12-31T23:59:59-01:00", "more than 24 h after"),
    ],
)
def test_wire_timestamp_with_an_offset_at_the_ends_of_the_calendar_is_refused(
    text: str, why: str
) -> None:
    # converting to UTC first raised OverflowError: ingest answered 500
    now = datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(WireError, match=why) as info:
        validate_status({"machine_id": "m1", "timestamp": text}, now=now)
    assert info.value.problems[0]["field"] == "timestamp"
    with pytest.raises(WireError, match=why):
        validate_status(f'{{"machine_id": "m1", "timestamp": "{text}"}}'.encode(), now=now)
    ok = validate_status({"machine_id": "m1", "timestamp": "2024-05-01T02:00:00+02:00"}, now=now)
    assert ok.timestamp == datetime(2024, 5, 1, tzinfo=UTC)


def _message(**changes: Any) -> dict[str, Any]:
    return {"machine_id": "m1", "timestamp": "2024-05-01T00:00:00Z", **changes}


def test_wire_text_with_nul_is_refused_naming_each_field() -> None:
    # PostgreSQL refuses NUL in text: the commit failed and ingest answered 503 forever
    body = _message(status="on\x00", alarms=[{"code": "c", "message": "\x00"}])
    for data in (body, orjson.dumps(body), orjson.dumps(body).decode()):
        with pytest.raises(WireError, match="NUL") as info:
            validate_status(data)
        assert [p["field"] for p in info.value.problems] == ["status", "alarms[0].message"]
        assert {p["type"] for p in info.value.problems} == {"string_nul"}
    with pytest.raises(WireError) as info:
        validate_batch(orjson.dumps({"messages": [_message(), _message(access_error="\x00")]}))
    assert info.value.problems[0]["field"] == "messages[1].access_error"
    # a backslash and "u0000" as text is not NUL
    text = validate_status(orjson.dumps(_message(status="a\\u0000b"))).status
    assert text == "a\\u0000b"


@pytest.mark.parametrize(
    "body",
    [
        {"id": "m1", "name": "a\x00"},
        {"id": "m1", "name": "a", "site": "\x00"},
        {"id": "m1", "name": "a", "tags": {"k\x00": "v"}},
        {"id": "m1", "name": "a", "tags": {"k": "v\x00"}},
    ],
)
def test_fleet_machine_text_with_nul_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        MachineIn.model_validate(body)
    update = {k: v for k, v in body.items() if k != "id"}
    with pytest.raises(ValidationError, match="should match pattern"):
        MachineUpdate.model_validate(update)
    assert MachineIn.model_validate({"id": "m1", "name": "<b>'; DROP--</b>"}).name.startswith("<b>")
