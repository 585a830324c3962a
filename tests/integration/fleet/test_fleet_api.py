"""The fleet server's REST API on SQLite: keys, validation, storage, alerts, roles, audit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.services import FleetServices
from support.fleet_payloads import payload
from support.fleet_server import ADMIN, FleetClock, add_admin, fleet_config

INJECTIONS = [
    "'; DROP TABLE machines; --",
    '<script>alert("x")</script>',
    "<img src=x onerror=alert(1)>",
    "Robert'); DELETE FROM api_keys;--",
]


@dataclass
class Fleet:
    client: TestClient
    app: FastAPI
    clock: FleetClock
    token: str

    @property
    def services(self) -> FleetServices:
        services: FleetServices = self.app.state.fleet
        return services

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def add_machine(self, machine_id: str, **fields: Any) -> str:
        body = {"id": machine_id, "name": fields.pop("name", machine_id.upper()), **fields}
        r = self.client.post("/api/machines", json=body, headers=self.auth)
        assert r.status_code == 201, r.text
        return str(r.json()["key"]["api_key"])

    def message(self, machine_id: str, offset_s: float = 0.0, **changes: Any) -> dict[str, Any]:
        when = self.clock.now.timestamp() + offset_s
        from datetime import UTC, datetime

        stamp = datetime.fromtimestamp(when, tz=UTC).isoformat()
        return payload(machine_id=machine_id, timestamp=stamp, **changes)

    def post(
        self, machine_id: str, body: Any, key: str, batch: bool = False, raw: bytes | None = None
    ) -> Any:
        path = f"/api/machines/{machine_id}/status" + ("/batch" if batch else "")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        content = raw if raw is not None else orjson.dumps(body)
        return self.client.post(path, content=content, headers=headers)

    def stored(self, machine_id: str | None = None) -> int:
        return self.services.store.message_count(machine_id)


@contextmanager
def _fleet(tmp_path: Path, **sections: dict[str, Any]) -> Iterator[Fleet]:
    clock = FleetClock()
    sections.setdefault("rules", {"tick_s": 600})  # the tests call tick() themselves
    config = fleet_config(tmp_path, **sections)
    add_admin(config)
    app = create_fleet_app(config, clock=clock)
    with TestClient(app) as client:
        r = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200, r.text
        yield Fleet(client, app, clock, r.json()["token"])


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with _fleet(tmp_path) as f:
        yield f


def test_fleet_api_today_payload_stored_and_broadcast(fleet: Fleet) -> None:
    key = fleet.add_machine("ironcast_berlin", latitude=52.52, longitude=13.405)
    with fleet.client.websocket_connect(f"/ws?token={fleet.token}") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        r = fleet.post("ironcast_berlin", fleet.message("ironcast_berlin"), key)
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 1, "duplicates": 0, "backfill": 0, "colour": "green"}
        update = ws.receive_json()
    assert update["type"] == "machine_update"
    assert update["machine_id"] == "ironcast_berlin"
    assert update["status"] == "green"
    assert update["data"]["temperature"] == 42.5
    assert update["seq"] == snapshot["seq"] + 1
    assert fleet.stored("ironcast_berlin") == 1
    latest = fleet.client.get("/api/machines/ironcast_berlin/latest", headers=fleet.auth).json()
    assert latest["colour"] == "green"
    assert latest["info"]["system_info"]["system"]["name"] == "HMC-ECM-RELINNI"
    # the info keeps what was reported: fields that are null are left out
    assert latest["info"]["system_info"]["system"]["upTime"] == {
        "days": 19,
        "hours": 22,
        "minutes": 30,
        "seconds": 0,
    }
    assert "null" not in json.dumps(latest["info"])
    history = fleet.client.get(
        "/api/machines/ironcast_berlin/history",
        params={"metric": "pressure", "start": "2000-01-01T00:00:00Z", "resolution": "raw"},
        headers=fleet.auth,
    ).json()
    assert history["value"] == [2.1]
    fleet_map = fleet.client.get("/api/fleet/map", headers=fleet.auth).json()
    assert fleet_map == {
        "count": 1,
        "id": ["ironcast_berlin"],
        "name": ["IRONCAST_BERLIN"],
        "colour": ["green"],
        "latitude": [52.52],
        "longitude": [13.405],
    }


def test_fleet_api_batched_live_client_gets_every_update_in_order(fleet: Fleet) -> None:
    machines = ["mill_a", "mill_b", "mill_c"]
    keys = {m: fleet.add_machine(m) for m in machines}
    with fleet.client.websocket_connect(f"/ws?batch=1&token={fleet.token}") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        for i, m in enumerate(machines):
            msg = fleet.message(m)
            msg["sensor_data"]["temperature"] = 81.0 + i  # above the 80 degC critical line
            r = fleet.post(m, msg, keys[m])
            assert r.status_code == 200, r.text
        updates: list[dict[str, Any]] = []
        while len(updates) < len(machines):
            frame = ws.receive_json()
            assert frame["type"] == "machine_updates"
            updates.extend(frame["updates"])
    assert [u["seq"] for u in updates] == [snapshot["seq"] + 1 + i for i in range(3)]
    assert [u["machine_id"] for u in updates] == machines
    for i, u in enumerate(updates):
        assert u["type"] == "machine_update"
        assert (u["status"], u["data"]["temperature"]) == ("red", 81.0 + i)
        assert u["accepted_ns"] > 0


def test_fleet_api_key_of_one_machine_refused_for_another(fleet: Fleet) -> None:
    key_a = fleet.add_machine("machine_a")
    fleet.add_machine("machine_b")
    r = fleet.post("machine_b", fleet.message("machine_b"), key_a)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert "another machine" in r.json()["detail"]
    # the key's own machine id in the body does not help either
    r = fleet.post("machine_b", fleet.message("machine_a"), key_a)
    assert r.status_code == 403
    assert fleet.stored() == 0
    assert fleet.services.counters.get("fleet.key_mismatch") == 2


def test_fleet_api_wrong_revoked_and_rotated_keys_refused(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    for bad in ("", "rwk_not-a-key", key + "x"):
        r = fleet.post("m1", fleet.message("m1"), bad)
        assert r.status_code == 401, bad
        assert r.headers["www-authenticate"] == "Bearer"
    r = fleet.client.post("/api/machines/m1/keys", headers=fleet.auth)
    new_key = r.json()["api_key"]
    assert fleet.post("m1", fleet.message("m1"), key).status_code == 401
    assert fleet.post("m1", fleet.message("m1"), new_key).status_code == 200
    r = fleet.client.delete("/api/machines/m1/keys", headers=fleet.auth)
    assert r.json() == {"revoked": 1}
    assert fleet.post("m1", fleet.message("m1", 1), new_key).status_code == 401
    assert fleet.stored() == 1
    assert fleet.services.counters.get("fleet.key_refused") == 5
    actions = [e["action"] for e in fleet.client.get("/api/audit", headers=fleet.auth).json()]
    assert actions[:3] == ["key.revoke", "key.rotate", "machine.add"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sensor_data": {"temperature": 42.5, "colour": "red", "unknown": {}}}, "sensor_data"),
        ({"surprise": 1}, "surprise"),
        ({"timestamp": "1970-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp"),
        ({"sensor_data": {"temperature": "42.5"}}, "sensor_data.temperature"),
        ({"sensor_data": {"temperature": 1e300}}, "sensor_data.temperature"),
        ({"machine_id": "other_machine"}, "machine_id"),
    ],
)
def test_fleet_api_bad_payloads_refused_with_field_problems(
    fleet: Fleet, change: dict[str, Any], field: str
) -> None:
    key = fleet.add_machine("m1")
    body = fleet.message("m1")
    body.update(change)
    r = fleet.post("m1", body, key)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["status"] == 422
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem["errors"]
    assert fleet.stored() == 0


def test_fleet_api_nan_and_oversized_refused(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    text = orjson.dumps(fleet.message("m1")).replace(b"42.5", b"NaN")
    r = fleet.post("m1", None, key, raw=text)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"].startswith("sensor_data.temperature")
    huge = fleet.message("m1", status="x" * 70_000)
    r = fleet.post("m1", huge, key)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    r = fleet.post("m1", None, key, raw=b"{not json")
    assert r.status_code == 422
    assert fleet.stored() == 0
    assert fleet.services.counters.get("fleet.oversized") == 1


def test_fleet_api_injection_strings_stored_verbatim(fleet: Fleet) -> None:
    tags = {f"k{i}": s for i, s in enumerate(INJECTIONS)}
    fleet.add_machine("m1", name=INJECTIONS[1], site=INJECTIONS[0], tags=tags)
    r = fleet.client.get("/api/machines/m1", headers=fleet.auth)
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["name"] == INJECTIONS[1]
    assert body["site"] == INJECTIONS[0]
    assert body["tags"] == tags
    assert [m["id"] for m in fleet.client.get("/api/machines", headers=fleet.auth).json()] == ["m1"]
    r = fleet.client.post(
        "/api/machines", json={"id": "<b>x</b>", "name": "bad id"}, headers=fleet.auth
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.id"


def test_fleet_api_duplicates_by_seq_and_batch(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    first = fleet.message("m1", -2, seq=10)
    assert fleet.post("m1", first, key).json()["accepted"] == 1
    batch = {"messages": [first, fleet.message("m1", -1, seq=11), fleet.message("m1", 0, seq=12)]}
    r = fleet.post("m1", batch, key, batch=True)
    assert r.json() == {"accepted": 2, "duplicates": 1, "backfill": 0, "colour": "green"}
    assert fleet.stored("m1") == 3
    bad = {"messages": [fleet.message("m1", 1, seq=13), {"machine_id": "m1"}]}
    r = fleet.post("m1", bad, key, batch=True)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "messages[1].timestamp"
    assert fleet.stored("m1") == 3


def test_fleet_api_backfill_stored_without_alerts_in_the_past(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    assert fleet.post("m1", fleet.message("m1", seq=100), key).json()["colour"] == "green"
    # a backlog from the agent's outbox: an hour old, with a critical temperature
    hot = {"temperature": 95.0, "pressure": 2.0, "speed": 1450, "disk_volume": 50.0}
    late = [
        fleet.message("m1", -3600 + 10 * i, seq=50 + i, sensor_data=hot, backfill=True)
        for i in range(5)
    ]
    r = fleet.post("m1", {"messages": late}, key, batch=True)
    assert r.json() == {"accepted": 0, "duplicates": 5, "backfill": 0, "colour": "green"}
    late = [
        fleet.message("m1", -3600 + 10 * i, seq=101 + i, sensor_data=hot, backfill=True)
        for i in range(5)
    ]
    r = fleet.post("m1", {"messages": late}, key, batch=True)
    assert r.json() == {"accepted": 5, "duplicates": 0, "backfill": 5, "colour": "green"}
    assert fleet.client.get("/api/alerts", headers=fleet.auth).json() == []
    history = fleet.client.get(
        "/api/machines/m1/history",
        params={"metric": "temperature", "start": "2000-01-01T00:00:00Z", "resolution": "raw"},
        headers=fleet.auth,
    ).json()
    assert history["value"] == [95.0] * 5 + [42.5]
    assert history["backfill"] == [True] * 5 + [False]
    latest = fleet.client.get("/api/machines/m1/latest", headers=fleet.auth).json()
    assert latest["values"]["temperature"] == 42.5  # backfill does not replace the latest


def test_fleet_api_alert_lifecycle_roles_and_audit(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    for name, role in (("viewer1", "viewer"), ("operator1", "operator")):
        r = fleet.client.post(
            "/api/users",
            json={"username": name, "password": "password-123", "role": role},
            headers=fleet.auth,
        )
        assert r.status_code == 201, r.text
    tokens = {}
    for name in ("viewer1", "operator1"):
        r = fleet.client.post(
            "/api/auth/login", json={"username": name, "password": "password-123"}
        )
        tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
    hot = {"temperature": 85.0, "pressure": 2.0, "speed": 1450, "disk_volume": 50.0}
    r = fleet.post("m1", fleet.message("m1", sensor_data=hot), key)
    assert r.json()["colour"] == "red"
    alerts = fleet.client.get("/api/alerts", headers=tokens["viewer1"]).json()
    assert [(a["rule_id"], a["severity"], a["state"]) for a in alerts] == [
        ("temperature", "critical", "active")
    ]
    alert_id = alerts[0]["id"]
    ack = f"/api/alerts/{alert_id}/acknowledge"
    r = fleet.client.post(ack, json={"comment": "on it"}, headers=tokens["viewer1"])
    assert r.status_code == 403
    r = fleet.client.post(ack, json={"comment": "on it"}, headers=tokens["operator1"])
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["acknowledged_by"]) == ("acknowledged", "operator1")
    assert fleet.client.post(ack, headers=tokens["operator1"]).status_code == 409
    assert fleet.client.get("/api/audit", headers=tokens["operator1"]).status_code == 403
    entries = fleet.client.get("/api/audit", headers=fleet.auth).json()
    assert entries[0]["action"] == "alert.acknowledge"
    assert entries[0]["detail"]["comment"] == "on it"
    r = fleet.client.get(
        "/api/alerts", params={"state": ["active"]}, headers=tokens["viewer1"]
    ).json()
    assert r == []
    assert fleet.client.get("/api/alerts").status_code == 401


def test_fleet_api_grey_on_the_timer_without_messages(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    assert fleet.post("m1", fleet.message("m1"), key).json()["colour"] == "green"
    with fleet.client.websocket_connect(f"/ws?token={fleet.token}") as ws:
        snapshot = ws.receive_json()
        assert snapshot["machines"]["status"] == ["green"]
        fleet.clock.advance(1799)
        fleet.client.portal.call(fleet.services.tick)  # type: ignore[union-attr]
        fleet.clock.advance(2)
        fleet.client.portal.call(fleet.services.tick)  # type: ignore[union-attr]
        update = ws.receive_json()
    assert (update["machine_id"], update["status"]) == ("m1", "grey")
    assert update["data"]["temperature"] == 42.5  # the last values are kept
    latest = fleet.client.get("/api/machines/m1/latest", headers=fleet.auth).json()
    assert latest["colour"] == "grey"
    assert "no fresh data" in latest["reason"]
    alerts = fleet.client.get("/api/alerts", headers=fleet.auth).json()
    assert [a["rule_id"] for a in alerts] == ["no_data"]


def test_fleet_api_grey_by_the_running_timer(tmp_path: Path) -> None:
    with _fleet(tmp_path, rules={"tick_s": 0.02}) as f:
        key = f.add_machine("m1")
        assert f.post("m1", f.message("m1"), key).status_code == 200
        with f.client.websocket_connect(f"/ws?token={f.token}") as ws:
            ws.receive_json()
            f.clock.advance(3600)
            update = ws.receive_json()  # no message, no call: the timer did it
        assert update["status"] == "grey"


def test_fleet_api_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with _fleet(tmp_path, ingest={"rate_limit": {"messages_per_s": 0.01, "burst": 2}}) as f:
        key = f.add_machine("m1")
        assert f.post("m1", f.message("m1", -2), key).status_code == 200
        assert f.post("m1", f.message("m1", -1), key).status_code == 200
        r = f.post("m1", f.message("m1"), key)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert f.stored() == 2


def test_fleet_api_full_queue_answers_503_and_stores_every_accepted(tmp_path: Path) -> None:
    with _fleet(tmp_path, ingest={"queue_max_messages": 1}) as f:
        key = f.add_machine("m1")
        store = f.services.store
        entered, release = threading.Event(), threading.Event()
        original = store.write_batch

        def slow_write(*args: Any) -> None:
            entered.set()
            assert release.wait(10)
            original(*args)

        store.write_batch = slow_write  # type: ignore[method-assign]
        results: list[int] = []
        first = threading.Thread(
            target=lambda: results.append(f.post("m1", f.message("m1", -1), key).status_code)
        )
        first.start()
        assert entered.wait(10)
        r = f.post("m1", f.message("m1"), key)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        release.set()
        first.join(10)
        assert results == [200]
        assert f.stored() == 1
        assert f.services.counters.get("fleet.busy") == 1  # refused before reading the body


def test_fleet_api_problem_details_for_unknown_and_invalid(fleet: Fleet) -> None:
    r = fleet.client.get("/api/machines/nope", headers=fleet.auth)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = fleet.client.post(
        "/api/machines", json={"id": "m1", "name": "x", "extra": 1}, headers=fleet.auth
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.extra"
    r = fleet.client.post("/api/machines", content=b"x" * 70_000, headers=fleet.auth)
    assert r.status_code == 413
    assert (
        fleet.client.post(
            "/api/auth/login", json={"username": "admin", "password": "wrong"}
        ).status_code
        == 401
    )


def test_fleet_api_openapi_documents_ingest_schema(fleet: Fleet) -> None:
    spec = fleet.client.get("/openapi.json").json()
    body = spec["paths"]["/api/machines/{machine_id}/status"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/StatusMessageV1")
    assert "StatusMessageV1" in spec["components"]["schemas"]
    assert "SystemInfo" in spec["components"]["schemas"]


def test_fleet_api_hysteresis_one_alert_on_a_noisy_signal(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    colours = []
    for i, temperature in enumerate([59.0, 61.0, 59.5, 60.5, 59.0, 61.5, 58.5, 60.2, 59.9]):
        sensors = {"temperature": temperature, "pressure": 2.0, "speed": 1450, "disk_volume": 5}
        body = fleet.message("m1", i - 10, seq=i + 1, sensor_data=sensors)
        colours.append(fleet.post("m1", body, key).json()["colour"])
    # fires once above 60, stays yellow while hovering (recovers only at <= 58)
    assert colours == ["green"] + ["yellow"] * 8
    alerts = fleet.client.get("/api/alerts", headers=fleet.auth).json()
    assert [(a["rule_id"], a["state"], a["count"]) for a in alerts] == [
        ("temperature", "active", 8)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["machine_id", "timestamp", "sensor_data", "seq", "x", "status"]),
                inner,
                max_size=5,
            )
        ),
        max_leaves=12,
    ),
    batch=st.booleans(),
)
def test_fleet_api_fuzzed_bodies_never_5xx_and_store_nothing(
    fuzz_fleet: tuple[Fleet, str], body: Any, batch: bool
) -> None:
    fleet, key = fuzz_fleet
    r = fleet.post("m1", body, key, batch=batch)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert fleet.stored() == 0


@pytest.fixture(scope="module")
def fuzz_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, str]]:
    with _fleet(tmp_path_factory.mktemp("fuzz")) as f:
        yield f, f.add_machine("m1")


def test_fleet_api_failed_commit_answers_503_and_the_writer_goes_on(fleet: Fleet) -> None:
    key = fleet.add_machine("m1")
    store = fleet.services.store
    original = store.write_batch
    calls = []

    def failing_once(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk gone")
        original(*args)

    store.write_batch = failing_once  # type: ignore[method-assign]
    r = fleet.post("m1", fleet.message("m1", -1, seq=1), key)
    assert r.status_code == 503
    assert "could not be stored" in r.json()["detail"]
    assert fleet.stored() == 0
    r = fleet.post("m1", fleet.message("m1", 0, seq=1), key)  # the agent sends it again
    assert r.status_code == 200
    assert fleet.stored() == 1


def test_fleet_api_live_stream_refused_without_login_says_why(fleet: Fleet) -> None:
    from starlette.websockets import WebSocketDisconnect

    before = fleet.app.state.fleet.counters.get("fleet.ws_refused")
    with (
        fleet.client.websocket_connect("/ws?batch=1") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    # closed after the handshake, so that a browser can read the code and the reason
    assert (closed.value.code, closed.value.reason) == (1008, "login token required")
    assert fleet.app.state.fleet.counters.get("fleet.ws_refused") == before + 1
    with (
        fleet.client.websocket_connect("/ws?token=made-up") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == 1008
