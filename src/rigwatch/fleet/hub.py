"""Live updates for ``/ws`` clients: a snapshot, then deltas with sequence numbers.

Protocol (JSON text frames, server to client)::

    {"type": "snapshot", "seq": 120, "reason": "connect" | "resync",
     "machines": {"machine_id": [...], "status": [...], "data": [...],
                  "timestamp": [...], "reason": [...]}}
    {"type": "machine_update", "seq": 121, "machine_id": "m1", "status": "red",
     "data": {"temperature": 85.0, ...}, "timestamp": "2024-05-01T12:00:00Z",
     "reason": "", "accepted_ns": 1714564800000000000}

A client that connects with ``/ws?batch=1`` gets the same updates gathered into fewer frames:
every update queued for it when it can be sent goes out in one frame, in order::

    {"type": "machine_updates", "updates": [{"type": "machine_update", "seq": 121, ...}, ...]}

At thousands of updates per second this is one WebSocket frame (and one socket write) per
group commit rather than per machine: the dashboard asks for it; a client that does not keeps
today's one frame per update.

``machine_update`` keeps the fields of today's message (``type``, ``machine_id``, ``status``,
``data``, ``timestamp``) and adds ``seq``, ``reason`` and ``accepted_ns``. ``seq`` increases by
one per update of this server worker: a client that sees a gap missed updates. The snapshot's
``seq`` is that of the last update it contains; the snapshot is columnar (index i of each list
is one machine) to stay compact for tens of thousands of machines.

A client that does not keep up never grows the server's memory: each client has a bounded
queue (``client_queue``); when it overflows the queued updates are dropped and the client is
sent a fresh snapshot instead (``reason: "resync"``, counted as ``fleet.ws_resync``).

With Redis configured (:class:`RedisBridge`), each worker's hub publishes its own updates at
once and sends them on one pub/sub channel, tagged with the worker's origin; each hub also
publishes what the other workers sent there (its own echo skipped), so a client of any worker
sees the updates of all. The latest state of each machine is also kept in a Redis hash, from
which a starting worker seeds its snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from rigwatch.counters import Counters

log = logging.getLogger(__name__)

RESYNC = ""
"""Queue marker (no update encodes to empty text): the client overflowed; send it a fresh
snapshot."""

BATCH_MAX_UPDATES = 500
"""Most updates in one ``machine_updates`` frame (about 200 kB of today's updates)."""


class LiveClient:
    """One connected client's bounded queue of updates, as the JSON text to send."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.resyncs = 0

    def offer(self, update: str) -> None:
        """Queue an encoded update; on overflow replace the whole queue by one resync marker."""
        try:
            self.queue.put_nowait(update)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            self.resyncs += 1

    async def take(self, most: int) -> list[str]:
        """Wait for the next item, then take those queued behind it, ``most`` in all."""
        items = [await self.queue.get()]
        while len(items) < most and not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items


class LiveHub:
    """Fan-out of machine updates to connected clients; lives on the event loop (not
    thread-safe: call from the loop).

    Args:
        client_queue: bound of each client's queue.
        counters: ``fleet.ws_resync``, ``fleet.ws_clients``.
    """

    def __init__(self, client_queue: int, counters: Counters) -> None:
        self._size = client_queue
        self._counters = counters
        self._clients: set[LiveClient] = set()
        self._state: dict[str, dict[str, Any]] = {}
        self.seq = 0

    @property
    def client_count(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    def seed(self, updates: list[dict[str, Any]]) -> None:
        """Set the latest state of machines without notifying clients (at start)."""
        for u in updates:
            self._state[u["machine_id"]] = u

    def forget(self, machine_id: str) -> None:
        """Drop a deleted machine from the snapshot."""
        self._state.pop(machine_id, None)

    def publish(self, update: dict[str, Any]) -> None:
        """Number an update, remember it as its machine's latest, offer it to every client.

        An update whose ``data`` is ``None`` (a colour change made by the timer) carries the
        machine's previous ``data`` and ``timestamp``."""
        self.seq += 1
        numbered = {**update, "seq": self.seq}
        if numbered.get("data") is None:  # a colour change without a message (the timer)
            previous = self._state.get(update["machine_id"], {})
            numbered["data"] = previous.get("data", {})
            numbered["timestamp"] = previous.get("timestamp")
        self._state[update["machine_id"]] = numbered
        if not self._clients:
            return
        text = orjson.dumps(numbered).decode()  # encoded once, whatever the number of clients
        for client in self._clients:
            before = client.resyncs
            client.offer(text)
            if client.resyncs != before:
                self._counters.inc("fleet.ws_resync")

    def snapshot(self, reason: str = "connect") -> dict[str, Any]:
        """The latest state of every machine, columnar, with the current ``seq``."""
        states = list(self._state.values())
        return {
            "type": "snapshot",
            "seq": self.seq,
            "reason": reason,
            "machines": {
                "machine_id": [s["machine_id"] for s in states],
                "status": [s["status"] for s in states],
                "data": [s.get("data", {}) for s in states],
                "timestamp": [s.get("timestamp") for s in states],
                "reason": [s.get("reason", "") for s in states],
            },
        }

    def connect(self) -> LiveClient:
        """A new client (call :meth:`disconnect` when it goes)."""
        client = LiveClient(self._size)
        self._clients.add(client)
        self._counters.inc("fleet.ws_clients")
        return client

    def disconnect(self, client: LiveClient) -> None:
        """Forget a client."""
        self._clients.discard(client)


async def serve_client(
    hub: LiveHub,
    send_text: Callable[[str], Awaitable[None]],
    client: LiveClient,
    *,
    batched: bool = False,
) -> None:
    """Send a connected client its snapshot, then its updates (or fresh snapshots after an
    overflow), until sending fails or the task is cancelled.

    Args:
        batched: send the updates queued at each send as one ``machine_updates`` frame (at
            most :data:`BATCH_MAX_UPDATES`); otherwise one ``machine_update`` frame each.
    """
    await send_text(orjson.dumps(hub.snapshot("connect")).decode())
    most = BATCH_MAX_UPDATES if batched else 1
    while True:
        pending: list[str] = []
        for item in await client.take(most):
            if item != RESYNC:
                pending.append(item)
                continue
            if pending:  # what was queued before the overflow, then the fresh state
                await send_text(_frame(pending, batched))
                pending = []
            await send_text(orjson.dumps(hub.snapshot("resync")).decode())
        if pending:
            await send_text(_frame(pending, batched))


def _frame(updates: list[str], batched: bool) -> str:
    if not batched:
        return updates[0]
    # the updates are JSON texts already: joined, not decoded and encoded again
    return '{"type":"machine_updates","updates":[' + ",".join(updates) + "]}"


class RedisBridge:
    """Live updates and latest state through Redis (redis-py asyncio).

    :meth:`send` stores each update in the hash ``<prefix>latest`` and publishes
    ``{"origin": <this bridge>, "updates": [...]}`` on ``channel``; a listener task hands every
    list arriving there from another worker to the local hub. The worker publishes its own
    updates to its hub itself (without waiting for Redis' round trip); a machine's updates all
    come from the one worker its messages are routed to, so each client sees them in order.
    """

    def __init__(
        self, hub: LiveHub, url: str, channel: str, key_prefix: str, counters: Counters
    ) -> None:
        import redis.asyncio as aioredis

        self._hub = hub
        self._redis = aioredis.from_url(url)
        self._channel = channel
        self._latest_key = f"{key_prefix}latest"
        self._counters = counters
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._outgoing: list[dict[str, Any]] = []
        self._sender: asyncio.Task[None] | None = None
        self.origin = uuid.uuid4().hex
        """This worker's tag on what it publishes (its own echo is not published twice)."""

    async def start(self) -> None:
        """Seed the hub from the Redis hash and start listening (returns once subscribed)."""
        stored = await self._redis.hgetall(self._latest_key)
        self._hub.seed([orjson.loads(v) for v in stored.values()])
        self._task = asyncio.create_task(self._listen(), name="fleet-redis-listener")
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        self._subscribed.set()
        try:
            # listen() blocks on the connection; get_message(timeout=...) would set up and
            # tear down a timeout per message
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue  # the subscription's own confirmation
                try:
                    sent = orjson.loads(message["data"])
                    origin, updates = sent["origin"], sent["updates"]
                except (orjson.JSONDecodeError, TypeError, KeyError):
                    self._counters.inc("fleet.redis_bad_message")
                    continue
                if origin == self.origin:
                    continue  # published to this hub already
                for update in updates:
                    self._hub.publish(update)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def send(self, updates: list[dict[str, Any]]) -> None:
        """Queue updates for the other workers and the latest-state hash (on the loop; the
        caller publishes them to this worker's hub). They leave in order, in as few round trips
        as the load needs: while one pipeline is in flight, what comes meanwhile is gathered
        into the next, so a busy loop sends bigger messages rather than a growing queue of
        them. A failed send is counted (``fleet.redis_publish_failed``) and dropped: live
        updates are best effort, the database holds the state."""
        if not updates:
            return
        self._outgoing.extend(updates)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain(), name="fleet-redis-publisher")

    async def flush(self) -> None:
        """Wait until everything queued by :meth:`send` has been sent (or failed)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def _drain(self) -> None:
        while self._outgoing:
            updates, self._outgoing = self._outgoing, []
            latest = {u["machine_id"]: orjson.dumps(u) for u in updates}
            message = orjson.dumps({"origin": self.origin, "updates": updates})
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.hset(self._latest_key, mapping=latest)
                    pipe.publish(self._channel, message)
                    await pipe.execute()
            except Exception as exc:
                self._counters.inc("fleet.redis_publish_failed", message=str(exc)[:300])

    async def forget(self, machine_id: str) -> None:
        """Drop a deleted machine's latest state."""
        await self._redis.hdel(self._latest_key, machine_id)

    async def close(self) -> None:
        """Send what is queued, stop listening and close the connection."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), 5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()
