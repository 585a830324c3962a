"""Live hub (snapshot, deltas, resync of a slow client), rate limiter, key cache, MQTT topics."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from rigwatch.counters import Counters
from rigwatch.fleet.hub import LiveHub, serve_client
from rigwatch.fleet.ingest import KeyCache, RateLimiter, machine_update
from rigwatch.fleet.mqtt import broker_address, machine_of_topic


def _update(machine_id: str, temperature: float, colour: str = "green") -> dict[str, Any]:
    return machine_update(machine_id, colour, {"temperature": temperature}, "t", "", 0)


def test_fleet_live_snapshot_then_numbered_deltas() -> None:
    async def main() -> list[dict[str, Any]]:
        hub = LiveHub(8, Counters())
        hub.seed([_update("m0", 1.0)])
        client = hub.connect()
        frames: list[dict[str, Any]] = []
        got = asyncio.Event()

        async def send(text: str) -> None:
            frames.append(orjson.loads(text))
            if len(frames) == 3:
                got.set()

        task = asyncio.create_task(serve_client(hub, send, client))
        await asyncio.sleep(0)
        hub.publish(_update("m1", 2.0))
        hub.publish(_update("m0", 3.0, "red"))
        await asyncio.wait_for(got.wait(), 5)
        task.cancel()
        return frames

    snapshot, first, second = asyncio.run(main())
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == 0
    assert snapshot["machines"]["machine_id"] == ["m0"]
    assert [first["seq"], second["seq"]] == [1, 2]
    assert set(first) >= {"type", "machine_id", "status", "data", "timestamp"}
    assert (second["machine_id"], second["status"]) == ("m0", "red")


def test_fleet_live_update_encoded_once_for_every_client() -> None:
    async def main() -> list[str]:
        hub = LiveHub(8, Counters())
        clients = [hub.connect() for _ in range(3)]
        hub.publish(_update("m1", 2.0))
        return [c.queue.get_nowait() for c in clients]

    texts = asyncio.run(main())
    assert texts[0] is texts[1] is texts[2]  # one encoding shared, not one per client
    frame = orjson.loads(texts[0])
    assert (frame["type"], frame["machine_id"], frame["seq"]) == ("machine_update", "m1", 1)


def test_fleet_live_slow_client_resynchronised_with_bounded_queue() -> None:
    async def main() -> tuple[list[dict[str, Any]], int, Counters]:
        counters = Counters()
        hub = LiveHub(4, counters)
        client = hub.connect()
        frames: list[dict[str, Any]] = []
        unblock = asyncio.Event()
        done = asyncio.Event()

        async def send(text: str) -> None:
            frames.append(orjson.loads(text))
            if len(frames) == 1:
                await unblock.wait()  # the client stops reading after its snapshot
            elif frames[-1].get("machine_id") == "m2" or frames[-1]["type"] == "snapshot":
                done.set()

        task = asyncio.create_task(serve_client(hub, send, client))
        await asyncio.sleep(0)
        for i in range(1000):
            hub.publish(_update(f"m{i % 3}", float(i)))
            assert client.queue.qsize() <= 4  # bounded, whatever the publishing rate
        peak = client.queue.qsize()
        unblock.set()
        await asyncio.wait_for(done.wait(), 5)
        task.cancel()
        return frames, peak, counters

    frames, peak, counters = asyncio.run(main())
    assert peak <= 4
    resync = frames[1]
    assert (resync["type"], resync["reason"]) == ("snapshot", "resync")
    assert resync["seq"] == 1000
    by_machine = dict(
        zip(resync["machines"]["machine_id"], resync["machines"]["data"], strict=True)
    )
    assert by_machine["m0"] == {"temperature": 999.0}  # the fresh state, nothing lost
    assert by_machine["m2"] == {"temperature": 998.0}
    assert counters.get("fleet.ws_resync") >= 1


def test_fleet_live_timer_update_keeps_previous_data() -> None:
    hub = LiveHub(4, Counters())
    hub.publish(_update("m1", 40.0))
    hub.publish(machine_update("m1", "grey", None, None, "no fresh data", 0))
    snap = hub.snapshot()
    assert snap["machines"]["status"] == ["grey"]
    assert snap["machines"]["data"] == [{"temperature": 40.0}]


def test_fleet_live_rate_limiter_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=4, clock=lambda: now[0])
    assert limiter.take("k", 4) is None
    wait = limiter.take("k", 1)
    assert wait == pytest.approx(0.5)
    assert limiter.take("other", 1) is None  # per key
    now[0] += 0.5
    assert limiter.take("k", 1) is None
    assert limiter.take("k", 10) == pytest.approx(2.0)  # beyond the burst: time to full


def test_fleet_live_key_cache_bounded() -> None:
    cache = KeyCache(ttl_s=60, max_entries=2)
    cache.put("a", "m1")
    cache.put("b", None)
    assert cache.get("a") == (True, "m1")
    assert cache.get("b") == (True, None)
    cache.put("c", "m3")  # full: cleared
    assert cache.get("a") == (False, None)
    assert cache.get("c") == (True, "m3")


def test_fleet_live_mqtt_topics() -> None:
    pattern = "rigwatch/machines/+/status"
    assert machine_of_topic(pattern, "rigwatch/machines/m1/status") == "m1"
    assert machine_of_topic(pattern, "rigwatch/machines/m1/other") is None
    assert machine_of_topic(pattern, "rigwatch/machines/m1/status/x") is None
    assert broker_address("mqtt://broker:1884") == ("broker", 1884)
    assert broker_address("mqtt://broker") == ("broker", 1883)
    with pytest.raises(ValueError):
        broker_address("http://broker")
