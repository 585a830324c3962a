"""The agent publishing through a real MQTT broker (Mosquitto on 127.0.0.1:1883 by default,
``RIGWATCH_MQTT_URL`` to change it)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path
from urllib.parse import urlparse

import aiomqtt
import pytest

from rigwatch.agent.clock import VirtualClock
from rigwatch.agent.config import MqttServerConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.sender import MqttTransport, Sender
from support.services import configured_mqtt_url, mqtt_url

URL = configured_mqtt_url()
_u = urlparse(URL)
HOST, PORT = _u.hostname or "127.0.0.1", _u.port or 1883


@pytest.fixture
def broker() -> None:
    mqtt_url()  # skips (or fails under RIGWATCH_REQUIRE_SERVICES=1) when unreachable


def _fill(box: Outbox, n: int, clock: VirtualClock) -> None:
    for i in range(n):
        body = json.dumps({"seq": i, "timestamp": clock.time() - n + i}).encode()
        box.put(str(i), body, created_ns=int((clock.time() - n + i) * 1e9))


@pytest.mark.services
def test_agent_mqtt_publishes_backlog_in_order(broker: None, tmp_path: Path) -> None:
    machine = f"mill_{uuid.uuid4().hex[:8]}"
    cfg = MqttServerConfig(transport="mqtt", host=HOST, port=PORT)
    topic = f"rigwatch/machines/{machine}/status"
    clock = VirtualClock()
    box = Outbox(tmp_path / "o.sqlite3", 1_000_000)
    _fill(box, 25, clock)

    async def scenario() -> list[dict[str, object]]:
        got: list[dict[str, object]] = []
        async with aiomqtt.Client(HOST, PORT, identifier=f"test-{machine}") as sub:
            await sub.subscribe(topic, qos=1)
            transport = MqttTransport(cfg, machine, "k-secret")
            sender = Sender(box, transport, clock=clock, batch_max_messages=10)
            result = await sender.drain()
            await transport.aclose()
            assert result.delivered == 25 and result.empty

            async def collect() -> None:
                async for message in sub.messages:
                    assert str(message.topic) == topic
                    got.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
                    if len(got) == 25:
                        return

            await asyncio.wait_for(collect(), timeout=10)
        return got

    got = asyncio.run(scenario())
    assert [m["seq"] for m in got] == list(range(25))
    assert all(m["backfill"] is True for m in got[:-1])  # a newer one waited behind them
    assert len(box) == 0
    box.close()


def test_agent_mqtt_broker_down_keeps_messages(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    cfg = MqttServerConfig(transport="mqtt", host="127.0.0.1", port=dead_port, timeout_s=2)
    clock = VirtualClock()
    box = Outbox(tmp_path / "o.sqlite3", 1_000_000)
    _fill(box, 3, clock)
    transport = MqttTransport(cfg, "mill_1", None)
    sender = Sender(box, transport, clock=clock)

    async def scenario() -> None:
        result = await sender.drain()
        await transport.aclose()
        assert result.delivered == 0
        assert result.last_outcome is not None and result.last_outcome.kind == "retry"

    asyncio.run(scenario())
    assert len(box) == 3 and sender.next_attempt_at > clock.monotonic()
    box.close()
