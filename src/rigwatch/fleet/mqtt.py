"""MQTT ingest: subscribe to ``rigwatch/machines/+/status`` on a broker (aiomqtt) and hand each
message to the same validation and group commit as HTTP.

Who may publish is the broker's job: each machine logs in with its id as user name and its key
as password and may write only its own topic (Mosquitto: ``password_file`` plus an ACL
``pattern write rigwatch/machines/%u/status``; see docs/fleet.md). The server trusts the topic's
machine id, and refuses (counts, drops) a message whose ``machine_id`` differs from the topic's,
whose machine is unknown or has no valid key, or that is invalid.

The session is persistent (``clean_session=False`` with a fixed client id), so the broker keeps
QoS 1 messages while the server is down. Messages are acknowledged to the broker on receipt;
at most ``max_in_flight`` of them wait for their commit at a time (back-pressure: the broker
holds the rest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from rigwatch.counters import Counters
from rigwatch.fleet.config import MqttSection

log = logging.getLogger(__name__)


def machine_of_topic(pattern: str, topic: str) -> str | None:
    """The machine id in ``topic`` at the position of ``+`` in ``pattern``; ``None`` when the
    topic does not match the pattern."""
    want = pattern.split("/")
    got = topic.split("/")
    if len(want) != len(got):
        return None
    found: str | None = None
    for w, g in zip(want, got, strict=True):
        if w == "+":
            found = g
        elif w != g:
            return None
    return found or None


def broker_address(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``mqtt://host:port`` (port 1883 by default)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT URL must be mqtt://host[:port], not {url!r}")
    return parts.hostname, parts.port or 1883


async def run_mqtt_ingest(
    config: MqttSection,
    handle: Callable[[str, bytes], Awaitable[None]],
    counters: Counters,
    subscribed: asyncio.Event | None = None,
) -> None:
    """Receive messages until cancelled, reconnecting after ``reconnect_s`` on a lost broker.

    Args:
        config: broker, topic, credentials.
        handle: called with ``(machine id of the topic, payload)`` per message.
        counters: ``fleet.mqtt_received``, ``fleet.mqtt_bad_topic``, ``fleet.mqtt_disconnected``.
        subscribed: set once the subscription is active (tests wait on it).
    """
    import aiomqtt

    host, port = broker_address(config.url)
    while True:
        try:
            async with aiomqtt.Client(
                host,
                port,
                username=config.username,
                password=config.password,
                identifier=config.client_id,
                clean_session=False,
                timeout=10,
            ) as client:
                await client.subscribe(config.topic, qos=config.qos)
                log.info("MQTT ingest subscribed to %s on %s:%d", config.topic, host, port)
                if subscribed is not None:
                    subscribed.set()
                async for message in client.messages:
                    counters.inc("fleet.mqtt_received")
                    machine_id = machine_of_topic(config.topic, str(message.topic))
                    payload = message.payload
                    if machine_id is None or not isinstance(payload, bytes | bytearray):
                        counters.inc("fleet.mqtt_bad_topic", message=str(message.topic)[:200])
                        continue
                    await handle(machine_id, bytes(payload))
        except aiomqtt.MqttError as exc:
            counters.inc("fleet.mqtt_disconnected", message=str(exc)[:300])
            log.warning("MQTT broker %s:%d: %s; again in %g s", host, port, exc, config.reconnect_s)
            await asyncio.sleep(config.reconnect_s)
