"""Live hub (snapshot, deltas, resync of a slow client), rate limiter, key cache, MQTT topics."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from rigwatch.counters import Counters
from rigwatch.fleet.hub import BATCH_MAX_UPDATES, LiveHub, serve_client
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


async def _frames_after_publishing(
    hub: LiveHub, updates: list[dict[str, Any]], want: int, batched: bool
) -> list[dict[str, Any]]:
    """Connect a client, publish ``updates`` while its sender waits, collect ``want`` frames."""
    client = hub.connect()
    frames: list[dict[str, Any]] = []
    got = asyncio.Event()
    snapshot_sent = asyncio.Event()

    async def send(text: str) -> None:
        frames.append(orjson.loads(text))
        snapshot_sent.set()
        if len(frames) == want:
            got.set()

    task = asyncio.create_task(serve_client(hub, send, client, batched=batched))
    await asyncio.wait_for(snapshot_sent.wait(), 5)
    for u in updates:  # all queued before the sender runs again: one group
        hub.publish(u)
    await asyncio.wait_for(got.wait(), 5)
    task.cancel()
    return frames


def test_fleet_live_batched_client_gets_queued_updates_in_one_frame() -> None:
    updates = [_update(f"m{i}", float(i)) for i in range(5)]
    frames = asyncio.run(_frames_after_publishing(LiveHub(100, Counters()), updates, 2, True))
    snapshot, group = frames
    assert snapshot["type"] == "snapshot"
    assert group["type"] == "machine_updates"
    inner = group["updates"]
    assert [u["seq"] for u in inner] == [1, 2, 3, 4, 5]  # in order, none missing
    assert [u["machine_id"] for u in inner] == [f"m{i}" for i in range(5)]
    assert all(u["type"] == "machine_update" for u in inner)  # each one today's message
    assert inner[3]["data"] == {"temperature": 3.0}


def test_fleet_live_unbatched_client_gets_one_frame_per_update() -> None:
    updates = [_update(f"m{i}", float(i)) for i in range(3)]
    frames = asyncio.run(_frames_after_publishing(LiveHub(100, Counters()), updates, 4, False))
    assert [f["type"] for f in frames] == ["snapshot", *["machine_update"] * 3]
    assert [f["seq"] for f in frames[1:]] == [1, 2, 3]


def test_fleet_live_batched_frames_hold_at_most_the_batch_bound() -> None:
    updates = [_update(f"m{i % 7}", float(i)) for i in range(BATCH_MAX_UPDATES + 20)]
    hub = LiveHub(10 * BATCH_MAX_UPDATES, Counters())
    frames = asyncio.run(_frames_after_publishing(hub, updates, 3, True))
    sizes = [len(f["updates"]) for f in frames[1:]]
    assert sizes == [BATCH_MAX_UPDATES, 20]
    seqs = [u["seq"] for f in frames[1:] for u in f["updates"]]
    assert seqs == list(range(1, BATCH_MAX_UPDATES + 21))


def test_fleet_live_batched_client_overflow_resyncs_then_goes_on() -> None:
    counters = Counters()
    updates = [_update(f"m{i % 3}", float(i)) for i in range(10)]
    frames = asyncio.run(_frames_after_publishing(LiveHub(4, counters), updates, 3, True))
    connect, resync, group = frames
    assert (connect["reason"], resync["type"], resync["reason"]) == (
        "connect",
        "snapshot",
        "resync",
    )
    assert resync["seq"] == 10  # the fresh state holds every update so far
    by_machine = dict(
        zip(resync["machines"]["machine_id"], resync["machines"]["data"], strict=True)
    )
    assert by_machine == {
        "m0": {"temperature": 9.0},
        "m1": {"temperature": 7.0},
        "m2": {"temperature": 8.0},
    }
    # what was queued after the overflow follows (a client skips seq <= the snapshot's)
    assert [u["seq"] for u in group["updates"]] == [10]
    assert counters.get("fleet.ws_resync") == 2


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
