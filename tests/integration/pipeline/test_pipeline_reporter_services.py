"""The reporter's OPC-UA and MQTT handlers against real servers: an asyncua server started by
the test, and Mosquitto (127.0.0.1:1883, ``RIGWATCH_MQTT_URL``)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import aiomqtt
import pytest

from rigwatch.pipeline.config import MqttHandler, OpcUaHandler
from rigwatch.pipeline.stages.handlers.mqtt import Mqtt
from rigwatch.pipeline.stages.handlers.opcua import OpcUa
from rigwatch.pipeline.stages.worker import wait_until
from support.pipeline_stages import roi_record
from support.services import configured_mqtt_url, mqtt_url

MQTT_URL = configured_mqtt_url()
_u = urlparse(MQTT_URL)
MQTT_HOST, MQTT_PORT = _u.hostname or "127.0.0.1", _u.port or 1883


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def opcua_server() -> Iterator[tuple[str, dict[str, object]]]:
    """An asyncua server on a thread: ``(endpoint, {name: node})``."""
    from asyncua import Server, ua

    endpoint = f"opc.tcp://127.0.0.1:{_free_port()}/rigwatch/"
    loop = asyncio.new_event_loop()
    nodes: dict[str, object] = {}
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = Server()
        await server.init()
        server.set_endpoint(endpoint)
        idx = await server.register_namespace("urn:rigwatch:test")
        obj = await server.nodes.objects.add_object(idx, "Rig")
        nodes["mu"] = await obj.add_variable(
            ua.NodeId("Rig.Resonance", idx), "Resonance", 0.0, ua.VariantType.Double
        )
        nodes["temp"] = await obj.add_variable(
            ua.NodeId("Rig.Temperature", idx), "Temperature", 0.0, ua.VariantType.Float
        )
        nodes["id"] = await obj.add_variable(
            ua.NodeId("Rig.ArtifactId", idx), "ArtifactId", 0, ua.VariantType.Int64
        )
        for n in nodes.values():
            await n.set_writable()  # type: ignore[attr-defined]
        nodes["ns"] = idx
        async with server:
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(30), "asyncua server did not start"
    yield endpoint, nodes
    loop.call_soon_threadsafe(lambda: stop.set() if stop else None)
    thread.join(10)


def test_opcua_values_land_in_server(opcua_server: tuple[str, dict[str, object]]) -> None:
    endpoint, nodes = opcua_server
    ns = nodes["ns"]
    handler = OpcUa(
        OpcUaHandler(
            endpoint=endpoint,
            nodes={
                "ROI_A1_1.mu.Median": f"ns={ns};s=Rig.Resonance",
                "temperature.chip": f"ns={ns};s=Rig.Temperature",
                "artifact_id": f"ns={ns};s=Rig.ArtifactId",
                "missing.key": f"ns={ns};s=Rig.Resonance",
            },
        )
    )
    try:
        detail = handler.deliver(roi_record(7, 61.25, 23.5))
        # artifact_id is not in the result: two of the three present keys are written
        assert detail["nodes_written"] == 2
        handler.deliver(roi_record(8, 62.5, 24.0))
    finally:
        handler.close()

    async def read() -> tuple[float, float]:
        from asyncua import Client

        async with Client(endpoint) as client:
            mu = await client.get_node(f"ns={ns};s=Rig.Resonance").read_value()
            temp = await client.get_node(f"ns={ns};s=Rig.Temperature").read_value()
            return mu, temp

    mu, temp = asyncio.run(read())
    assert mu == 62.5  # the latest
    assert temp == pytest.approx(24.0)


def test_opcua_unreachable_is_a_delivery_error() -> None:
    from rigwatch.errors import DeliveryError

    handler = OpcUa(
        OpcUaHandler(
            endpoint=f"opc.tcp://127.0.0.1:{_free_port()}/", nodes={"a": "ns=2;i=1"}, timeout_s=1.0
        )
    )
    try:
        with pytest.raises(DeliveryError, match="opcua"):
            handler.deliver(roi_record(1, 1.0, 20.0))
    finally:
        handler.close()


@pytest.fixture
def broker() -> None:
    mqtt_url()  # skips (or fails under RIGWATCH_REQUIRE_SERVICES=1) when unreachable


@pytest.mark.services
def test_mqtt_messages_reach_mosquitto(broker: None, tmp_path: Path) -> None:
    prefix = f"rigwatch-test/{uuid.uuid4().hex[:8]}"
    got: list[dict[str, object]] = []
    subscribed = threading.Event()
    done = threading.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client(MQTT_HOST, MQTT_PORT) as sub:
            await sub.subscribe(f"{prefix}/#", qos=1)
            subscribed.set()
            async for message in sub.messages:
                got.append(json.loads(bytes(message.payload)))  # type: ignore[arg-type]
                if len(got) == 3:
                    done.set()
                    return

    thread = threading.Thread(target=lambda: asyncio.run(subscribe()), daemon=True)
    thread.start()
    assert subscribed.wait(10)
    handler = Mqtt(MqttHandler(host=MQTT_HOST, port=MQTT_PORT, topic=prefix))
    try:
        details = [handler.deliver(roi_record(i, 60.0 + i, 22.0)) for i in (1, 2, 3)]
    finally:
        handler.close()
    assert details[0]["topic"] == f"{prefix}/image"
    assert wait_until(done.is_set, 10)
    assert [m["artifact_id"] for m in got] == [1, 2, 3]
    assert got[2]["result"]["image_analysis"][1]["mu"]["Median"] == 63.0  # type: ignore[index]
    assert got[0]["temperature_readings"] == {"chip": 22.0}
    thread.join(5)
