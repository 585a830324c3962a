"""The fleet server refuses what it must, counts each refusal and stores nothing of it:
keys replayed or revoked on the batch path, bodies too large (by length and while read, on
ingest and on the API), injection strings where names are checked, times and ids beyond 64
bits, ``null`` for a machine's name. Free-text names and tags are stored verbatim and answered
as JSON (the dashboard sets them as text: tests/e2e/test_fleet_dashboard.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.config import FleetConfig
from rigwatch.fleet.services import FleetServices
from support.fleet_payloads import payload
from support.fleet_server import ADMIN, FleetClock, add_admin, fleet_config, pg_schema

INJECTIONS = [
    "'; DROP TABLE machines; --",
    '<script>alert("x")</script>',
    "<img src=x onerror=alert(1)>",
    "Robert'); DELETE FROM api_keys;--",
    "m1' OR '1'='1",
]


@dataclass
class Server:
    client: TestClient
    services: FleetServices
    clock: FleetClock
    auth: dict[str, str]
    keys: dict[str, str]

    def message(self, machine_id: str, seq: int = 1, **changes: Any) -> dict[str, Any]:
        stamp = self.clock.now.isoformat()
        return payload(machine_id=machine_id, timestamp=stamp, seq=seq, **changes)

    def ingest(self, path_id: str, body: Any, key: str | None, batch: bool = False) -> Any:
        path = f"/api/machines/{path_id}/status" + ("/batch" if batch else "")
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        content = body if isinstance(body, bytes) or not isinstance(body, dict) else None
        if content is None:
            content = orjson.dumps(body)
        return self.client.post(path, content=content, headers=headers)

    def stored(self) -> int:
        return self.services.store.message_count()

    def counted(self, name: str) -> int:
        return self.services.counters.get(name)


@contextmanager
def _serve(config: FleetConfig, clock: FleetClock) -> Iterator[Server]:
    add_admin(config)
    app = create_fleet_app(config, clock=clock)
    with TestClient(app) as client:
        login = {"username": ADMIN[0], "password": ADMIN[1]}
        token = client.post("/api/auth/login", json=login).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        keys = {}
        for machine_id in ("m1", "m2"):
            body = {"id": machine_id, "name": machine_id}
            keys[machine_id] = client.post("/api/machines", json=body, headers=auth).json()["key"][
                "api_key"
            ]
        yield Server(client, app.state.fleet, clock, auth, keys)


LIMITS = {"max_message_bytes": 4096, "max_batch_bytes": 16384}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    clock = FleetClock(datetime(2024, 5, 1, 12, tzinfo=UTC))
    with _serve(fleet_config(tmp_path, rules={"tick_s": 600}, server=LIMITS), clock) as s:
        yield s


def _chunked(total: int) -> Iterator[bytes]:
    for _ in range(total // 1024):
        yield b" " * 1024
    yield b"{}"


def test_fleet_refusals_replayed_and_revoked_keys_on_the_batch_path(server: Server) -> None:
    batch = {"messages": [server.message("m2", 1), server.message("m2", 2)]}
    r = server.ingest("m2", batch, server.keys["m1"], batch=True)  # m1's key replayed for m2
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert server.counted("fleet.key_mismatch") == 1
    old = server.keys["m2"]
    r = server.client.post("/api/machines/m2/keys", headers=server.auth)
    new = r.json()["api_key"]
    r = server.ingest("m2", batch, old, batch=True)  # the rotated (revoked) key
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert server.counted("fleet.key_refused") == 1
    assert server.stored() == 0
    assert server.ingest("m2", batch, new, batch=True).json()["accepted"] == 2
    assert server.stored() == 2


def test_fleet_refusals_huge_ingest_bodies_refused_before_anything_else(server: Server) -> None:
    huge = server.message("m1", status="x" * 5000)
    r = server.ingest("m1", huge, None)  # too large is answered before the missing key
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    r = server.ingest("m1", huge, server.keys["m1"])
    assert r.status_code == 413
    batch = {"messages": [server.message("m1", i, status="x" * 1000) for i in range(20)]}
    assert server.ingest("m1", batch, server.keys["m1"], batch=True).status_code == 413
    # no Content-Length: found too large while read
    r = server.client.post(
        "/api/machines/m1/status/batch",
        content=_chunked(20_000),
        headers={"Authorization": f"Bearer {server.keys['m1']}"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert server.counted("fleet.oversized") == 4
    assert server.counted("fleet.key_refused") == 0
    assert server.stored() == 0


def test_fleet_refusals_huge_api_bodies_counted_and_nothing_stored(server: Server) -> None:
    body = orjson.dumps({"id": "m9", "name": "x" * 70_000})
    r = server.client.post("/api/machines", content=body, headers=server.auth)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    r = server.client.post(
        "/api/machines",
        content=iter([body[:30_000], body[30_000:]]),  # chunked, no Content-Length
        headers={**server.auth, "Content-Type": "application/json"},
    )
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    r = server.client.patch(
        "/api/machines/m1", content=orjson.dumps({"site": "y" * 70_000}), headers=server.auth
    )
    assert r.status_code == 413
    assert server.counted("fleet.oversized") == 3
    assert [m["id"] for m in server.client.get("/api/machines", headers=server.auth).json()] == [
        "m1",
        "m2",
    ]
    assert server.client.get("/api/machines/m1", headers=server.auth).json()["site"] == ""


@pytest.mark.parametrize("text", INJECTIONS)
def test_fleet_refusals_injection_where_names_are_checked(server: Server, text: str) -> None:
    key = server.keys["m1"]
    refusals = 0
    counted = sum(server.services.counters.snapshot().values())

    def refused(r: Any, *statuses: int) -> None:
        nonlocal refusals
        assert r.status_code in (statuses or (422,)), r.text
        assert r.headers["content-type"] == "application/problem+json"
        refusals += 1

    # as a machine id: in the ingest URL (a "/" in it makes it no route), in the message, as a
    # metric name, as a new machine, as a user
    refused(server.ingest(quote(text, safe=""), server.message("m1"), key), 404, 405, 422)
    refused(server.ingest("m1", server.message(text), key))
    refused(server.ingest("m1", server.message("m1", sensor_data={text: 1.0}), key))
    r = server.client.post("/api/machines", json={"id": text, "name": "x"}, headers=server.auth)
    refused(r)
    user = {"username": text, "password": "password-123"}
    refused(server.client.post("/api/users", json=user, headers=server.auth))
    r = server.client.get(
        "/api/machines/m1/history",
        params={"metric": text, "start": "2024-01-01T00:00:00Z"},
        headers=server.auth,
    )
    refused(r)
    login = {"username": text, "password": text}
    refused(server.client.post("/api/auth/login", json=login), 401)
    assert sum(server.services.counters.snapshot().values()) == counted + refusals
    assert server.stored() == 0
    machines = server.client.get("/api/machines", headers=server.auth).json()
    assert [m["id"] for m in machines] == ["m1", "m2"]
    assert [u["username"] for u in server.client.get("/api/users", headers=server.auth).json()] == [
        "admin"
    ]
    # as free text (name, site, tags) it is stored verbatim, by design, and answered as JSON
    change = {"name": text, "site": text, "tags": {text: text, "k": text}}
    r = server.client.patch("/api/machines/m1", json=change, headers=server.auth)
    assert r.status_code == 200, r.text
    r = server.client.get("/api/machines/m1", headers=server.auth)
    assert r.headers["content-type"] == "application/json"
    assert {k: r.json()[k] for k in change} == change
    assert server.client.get("/api/fleet/map", headers=server.auth).json()["name"] == [text, "m2"]
    assert server.ingest("m1", server.message("m1"), key).status_code == 200  # tables intact
    assert server.stored() == 1


def test_fleet_refusals_values_beyond_64_bits_and_null_names(server: Server) -> None:
    def refused(r: Any, field: str) -> None:
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field

    before = server.counted("fleet.invalid_request")
    history = "/api/machines/m1/history"
    params = {"metric": "temperature", "start": "2263-01-01T00:00:00Z"}
    refused(server.client.get(history, params=params, headers=server.auth), "query.start")
    params = {**params, "start": "2024-01-01T00:00:00Z", "end": "1600-01-01T00:00:00Z"}
    refused(server.client.get(history, params=params, headers=server.auth), "query.end")
    r = server.client.get(
        "/api/alerts", params={"since": "3000-01-01T00:00:00Z"}, headers=server.auth
    )
    refused(r, "query.since")
    r = server.client.get("/api/audit", params={"before_id": 2**63}, headers=server.auth)
    refused(r, "query.before_id")
    r = server.client.patch("/api/machines/m1", json={"name": None}, headers=server.auth)
    refused(r, "body.name")
    assert server.counted("fleet.invalid_request") == before + 5
    assert server.counted("fleet.server_error") == 0
    assert server.client.get("/api/machines/m1", headers=server.auth).json()["name"] == "m1"
    r = server.client.patch("/api/machines/m1", json={"latitude": None}, headers=server.auth)
    assert r.status_code == 200


def _refuses_nul(server: Server) -> None:
    key = server.keys["m1"]
    counted = sum(server.services.counters.snapshot().values())
    answers = [
        server.ingest("m1", server.message("m1", status="on\x00"), key),
        server.ingest("m1", {"messages": [server.message("m1", access_error="\x00")]}, key, True),
        server.client.post("/api/machines", json={"id": "m9", "name": "\x00"}, headers=server.auth),
        server.client.patch("/api/machines/m1", json={"tags": {"k": "\x00"}}, headers=server.auth),
        server.client.post("/api/auth/login", json={"username": "a\x00", "password": "x"}),
        server.client.get("/api/alerts/a%00b", headers=server.auth),
        server.client.get("/api/alerts", params={"rule_id": "\x00"}, headers=server.auth),
    ]
    assert [r.status_code for r in answers] == [422] * len(answers), [r.text for r in answers]
    assert sum(server.services.counters.snapshot().values()) == counted + len(answers)
    assert server.counted("fleet.server_error") == 0
    assert server.stored() == 0
    machines = server.client.get("/api/machines", headers=server.auth).json()
    assert [(m["id"], m["tags"]) for m in machines] == [("m1", {}), ("m2", {})]


def test_fleet_refusals_text_with_nul_on_sqlite(server: Server) -> None:
    _refuses_nul(server)


@pytest.mark.services
def test_fleet_refusals_text_with_nul_on_postgres(tmp_path: Path) -> None:
    # PostgreSQL cannot store NUL: these were 500s, and 503s that the agent resends forever
    clock = FleetClock(datetime(2024, 5, 1, 12, tzinfo=UTC))
    with pg_schema() as (url, schema):
        config = fleet_config(
            tmp_path, rules={"tick_s": 600}, database={"url": url, "schema_name": schema}
        )
        with _serve(config, clock) as server:
            _refuses_nul(server)
