"""The Redis bridge between fleet processes, against the machine's Redis: another process's
updates reach this hub in order, this process's own echo is not published twice, and a
malformed message on the channel is counted and skipped without stopping the listener."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest

from rigwatch.counters import Counters
from rigwatch.fleet.hub import LiveHub, RedisBridge
from rigwatch.fleet.ingest import machine_update
from support.services import redis_url

pytestmark = pytest.mark.services


def _update(machine_id: str, temperature: float) -> dict[str, Any]:
    return machine_update(machine_id, "green", {"temperature": temperature}, "t", "", 1)


async def _scenario(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Counters]:
    import redis.asyncio as aioredis

    prefix = f"rigwatch:test:{uuid.uuid4().hex[:8]}:"
    channel = prefix + "updates"
    counters_a, counters_b = Counters(), Counters()
    hub_a, hub_b = LiveHub(100, counters_a), LiveHub(100, counters_b)
    bridge_a = RedisBridge(hub_a, url, channel, prefix, counters_a)
    bridge_b = RedisBridge(hub_b, url, channel, prefix, counters_b)
    raw = aioredis.from_url(url)
    try:
        await bridge_a.start()
        await bridge_b.start()
        client_a, client_b = hub_a.connect(), hub_b.connect()
        # what a process does after a commit: its own hub at once, the others through Redis
        hub_a.publish(_update("m1", 1.0))
        bridge_a.send([_update("m1", 1.0)])
        await bridge_a.flush()
        for bad in (b"not json", b"[1, 2]", orjson.dumps({"updates": []})):
            await raw.publish(channel, bad)
        hub_a.publish(_update("m2", 2.0))
        bridge_a.send([_update("m2", 2.0)])
        await bridge_a.flush()
        # a third process's update, after everything: once it is in, every earlier message on
        # the channel has been through both listeners (a subscriber gets them in order)
        last = {"origin": "another", "updates": [_update("m3", 3.0)]}
        await raw.publish(channel, orjson.dumps(last))
        got_b = [orjson.loads(await asyncio.wait_for(client_b.queue.get(), 10)) for _ in range(3)]
        got_a = [orjson.loads(await asyncio.wait_for(client_a.queue.get(), 10)) for _ in range(3)]
        assert client_a.queue.empty()
        await raw.delete(prefix + "latest")
    finally:
        await bridge_a.close()
        await bridge_b.close()
        await raw.aclose()
    return got_a, got_b, counters_b


def test_fleet_redis_bridge_delivers_in_order_skips_echo_and_bad_messages() -> None:
    got_a, got_b, counters_b = asyncio.run(_scenario(redis_url()))
    # the other process: the updates in order, numbered by its own hub, nothing else
    assert [(u["machine_id"], u["seq"]) for u in got_b] == [("m1", 1), ("m2", 2), ("m3", 3)]
    assert counters_b.get("fleet.redis_bad_message") == 3
    # the publishing process: each of its updates once (its echo from Redis skipped)
    assert [(u["machine_id"], u["seq"]) for u in got_a] == [("m1", 1), ("m2", 2), ("m3", 3)]
