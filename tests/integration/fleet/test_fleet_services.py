"""The fleet server against real services: PostgreSQL, Redis, Mosquitto."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from fastapi.testclient import TestClient

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.schemas import MachineIn
from rigwatch.fleet.services import FleetServices
from support.fleet_payloads import payload
from support.fleet_server import ADMIN, add_admin, fleet_config, open_store, pg_schema, serve_fleet
from support.services import mqtt_url, redis_url

pytestmark = pytest.mark.services


def _message(machine_id: str, **changes: Any) -> dict[str, Any]:
    return payload(machine_id=machine_id, timestamp=datetime.now(tz=UTC).isoformat(), **changes)


async def _login(client: httpx.AsyncClient) -> str:
    r = await client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def _next_update(ws: Any, machine_id: str) -> dict[str, Any]:
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] == "machine_update" and frame["machine_id"] == machine_id:
            return dict(frame)


def test_fleet_services_postgres_ingest_history_and_alerts(tmp_path: Path) -> None:
    with pg_schema() as (url, schema):
        config = fleet_config(tmp_path, database={"url": url, "schema_name": schema})
        add_admin(config)
        app = create_fleet_app(config)
        with TestClient(app) as client:
            services: FleetServices = app.state.fleet
            token = client.post(
                "/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
            ).json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            r = client.post(
                "/api/machines",
                json={"id": "pg1", "name": "<b>PG</b>", "tags": {"q": "'; DROP TABLE x;--"}},
                headers=auth,
            )
            key = r.json()["key"]["api_key"]
            key_b = client.post("/api/machines", json={"id": "pg2", "name": "B"}, headers=auth)
            hot = {"temperature": 85.0, "pressure": 2.0, "speed": 1450, "disk_volume": 50.0}
            messages = [_message("pg1", seq=i + 1) for i in range(3)]
            messages.append(_message("pg1", seq=4, sensor_data=hot))
            r = client.post(
                "/api/machines/pg1/status/batch",
                json={"messages": messages},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.json() == {"accepted": 4, "duplicates": 0, "backfill": 0, "colour": "red"}
            r = client.post(
                "/api/machines/pg2/status",
                json=_message("pg2"),
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 403
            assert key_b.status_code == 201
            assert services.store.message_count() == 4
            history = client.get(
                "/api/machines/pg1/history",
                params={
                    "metric": "temperature",
                    "start": "2000-01-01T00:00:00Z",
                    "resolution": "raw",
                },
                headers=auth,
            ).json()
            assert history["value"] == [42.5, 42.5, 42.5, 85.0]
            hourly = client.get(
                "/api/machines/pg1/history",
                params={
                    "metric": "temperature",
                    "start": "2000-01-01T00:00:00Z",
                    "resolution": "hour",
                },
                headers=auth,
            ).json()
            assert sum(hourly["count"]) == 4
            assert max(hourly["max"]) == 85.0
            alerts = client.get("/api/alerts", headers=auth).json()
            assert [(a["rule_id"], a["state"]) for a in alerts] == [("temperature", "active")]
            machine = client.get("/api/machines/pg1", headers=auth).json()
            assert machine["name"] == "<b>PG</b>"
            assert machine["tags"] == {"q": "'; DROP TABLE x;--"}
        store = open_store(config)
        assert store.rollup_and_prune(2**62, 1.0) == 16  # everything rolled up on PostgreSQL
        h = store.history("pg1", "temperature", 0, 2**62, "hour")
        assert (sum(h.count or []), max(h.max or [])) == (4, 85.0)
        store.engine.dispose()


def test_fleet_services_two_workers_share_postgres_and_redis(tmp_path: Path) -> None:
    redis = redis_url()
    prefix = f"rigwatch:test:{uuid.uuid4().hex[:8]}:"
    with pg_schema() as (url, schema):
        config = fleet_config(
            tmp_path,
            database={"url": url, "schema_name": schema},
            live={"redis_url": redis, "channel": prefix + "updates", "key_prefix": prefix},
        )
        add_admin(config)
        store = open_store(config)
        _, key = store.add_machine(MachineIn(id="w1", name="W1"), "test")
        store.engine.dispose()
        try:
            with serve_fleet(config) as (addr_a, _), serve_fleet(config) as (addr_b, _):
                asyncio.run(_two_workers(addr_a, addr_b, key.api_key))
        finally:
            import redis as sync_redis

            client = sync_redis.Redis.from_url(redis)
            client.delete(prefix + "latest")
            client.close()


async def _two_workers(addr_a: str, addr_b: str, key: str) -> None:
    async with (
        httpx.AsyncClient(base_url=f"http://{addr_a}", timeout=20) as a,
        httpx.AsyncClient(base_url=f"http://{addr_b}", timeout=20) as b,
    ):
        token = await _login(a)
        async with (
            websockets.connect(f"ws://{addr_a}/ws?token={token}") as ws_a,
            websockets.connect(f"ws://{addr_b}/ws?token={token}") as ws_b,
        ):
            for ws in (ws_a, ws_b):
                assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "snapshot"
            headers = {"Authorization": f"Bearer {key}"}
            r = await a.post("/api/machines/w1/status", json=_message("w1", seq=1), headers=headers)
            assert r.status_code == 200, r.text
            got_a, got_b = await _next_update(ws_a, "w1"), await _next_update(ws_b, "w1")
            assert got_a["status"] == got_b["status"] == "green"
            assert got_a["data"] == got_b["data"]
            first_a, first_b = got_a["seq"], got_b["seq"]
            hot = {"temperature": 85.0, "pressure": 2.0, "speed": 1450, "disk_volume": 50.0}
            r = await b.post(
                "/api/machines/w1/status",
                json=_message("w1", seq=2, sensor_data=hot),
                headers=headers,
            )
            assert r.json()["colour"] == "red"
            got_a, got_b = await _next_update(ws_a, "w1"), await _next_update(ws_b, "w1")
            assert got_a["status"] == got_b["status"] == "red"
            # each client got each update once: the posting worker publishes its own
            # directly and skips its echo from Redis; the other takes it from Redis
            assert (got_a["seq"], got_b["seq"]) == (first_a + 1, first_b + 1)
            # the same message delivered to both workers (a lost confirmation): stored once
            again = _message("w1", seq=3)
            r = await a.post("/api/machines/w1/status", json=again, headers=headers)
            assert r.json()["accepted"] == 1
            r = await b.post("/api/machines/w1/status", json=again, headers=headers)
            assert (r.json()["accepted"], r.json()["duplicates"]) == (0, 1)
            viewer = {"Authorization": f"Bearer {token}"}
            latest = await b.get("/api/machines/w1/latest", headers=viewer)
            assert latest.json()["colour"] == "green"  # seq 3, back to normal, via worker A
        # a new client of either worker gets the shared latest state in its snapshot
        async with websockets.connect(f"ws://{addr_b}/ws?token={token}") as ws:
            snapshot = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            machines = snapshot["machines"]
            status = dict(zip(machines["machine_id"], machines["status"], strict=True))
            assert status["w1"] == "green"


def test_fleet_services_mqtt_ingest_through_mosquitto(tmp_path: Path) -> None:
    url = mqtt_url()
    root = f"rigwatch-test-{uuid.uuid4().hex[:8]}"
    config = fleet_config(
        tmp_path,
        mqtt={
            "enabled": True,
            "url": url,
            "topic": f"{root}/machines/+/status",
            "client_id": f"{root}-server",
        },
    )
    add_admin(config)
    store = open_store(config)
    store.add_machine(MachineIn(id="mq1", name="MQ1"), "test")
    store.add_machine(MachineIn(id="mq2", name="MQ2"), "test")
    store.revoke_keys("mq2", "test")
    store.engine.dispose()
    app = create_fleet_app(config)
    with TestClient(app) as client:
        services: FleetServices = app.state.fleet
        portal = client.portal
        assert portal is not None
        portal.call(asyncio.wait_for, services.mqtt_subscribed.wait(), 10)
        token = client.post(
            "/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
        ).json()["token"]
        with client.websocket_connect(f"/ws?token={token}") as ws:
            ws.receive_json()
            asyncio.run(_publish(url, root))
            update = ws.receive_json()
        assert (update["machine_id"], update["status"]) == ("mq1", "green")
        assert services.store.message_count() == 1
        counters = services.counters
        assert counters.get("fleet.mqtt_invalid") == 1
        assert counters.get("fleet.mqtt_refused") == 3


async def _publish(url: str, root: str) -> None:
    import aiomqtt

    from rigwatch.fleet.mqtt import broker_address

    host, port = broker_address(url)
    async with aiomqtt.Client(host, port, identifier=f"{root}-agent") as client:
        topic = f"{root}/machines/{{}}/status"
        bad = _message("mq1")
        bad["sensor_data"] = {"temperature": "hot"}
        await client.publish(topic.format("mq1"), orjson.dumps(bad), qos=1)  # invalid
        await client.publish(topic.format("mq1"), orjson.dumps(_message("mq2")), qos=1)  # id
        await client.publish(topic.format("mq2"), orjson.dumps(_message("mq2")), qos=1)  # revoked
        await client.publish(topic.format("nope"), orjson.dumps(_message("nope")), qos=1)
        await client.publish(topic.format("mq1"), orjson.dumps(_message("mq1")), qos=1)
