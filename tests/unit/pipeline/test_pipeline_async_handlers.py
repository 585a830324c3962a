"""The reporter's handlers over asyncio clients without servers: the shared connection
handling (one client kept open, closed and opened again after an error, every failure a
DeliveryError naming the server, close), and what MQTT and OPC-UA each send, through fake
clients."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from rigwatch.errors import DeliveryError
from rigwatch.pipeline.config import MqttHandler, OpcUaHandler
from rigwatch.pipeline.stages.handlers.aio import AsyncClientHandler
from rigwatch.pipeline.stages.handlers.mqtt import Mqtt, message_of
from rigwatch.pipeline.stages.handlers.opcua import OpcUa
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.pipeline.stages.worker import wait_until
from support.pipeline_stages import roi_record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the shared connection handling ----------------------------------------------------------


class Client:
    """A connected fake client."""

    def __init__(self, n: int) -> None:
        self.n = n


class Probe(AsyncClientHandler):
    """A handler whose client is a :class:`Client`; records what it opened and closed."""

    name = "probe"

    def __init__(self, timeout_s: float = 5.0) -> None:
        super().__init__(timeout_s, "host:1")
        self.opened: list[Client] = []
        self.closed: list[Client] = []
        self.open_error: Exception | None = None
        self.close_error: Exception | None = None

    async def open_client(self) -> Client:
        if self.open_error is not None:
            raise self.open_error
        client = Client(len(self.opened) + 1)
        self.opened.append(client)
        return client

    async def close_client(self, client: Any) -> None:
        self.closed.append(client)
        if self.close_error is not None:
            raise self.close_error

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        n = self.send(self._number, self.timeout_s)
        return {"client": n}

    async def _number(self, client: Client) -> int:
        return client.n


async def refuse(client: Client) -> int:
    raise RuntimeError("refused")


def test_one_client_serves_every_delivery_until_an_error() -> None:
    handler = Probe()
    try:
        assert handler.deliver(roi_record(1, 60.0)) == {"client": 1}
        assert handler.deliver(roi_record(2, 61.0)) == {"client": 1}
        assert len(handler.opened) == 1 and handler.closed == []
        with pytest.raises(DeliveryError) as err:
            handler.send(refuse, 5.0)
        assert str(err.value) == "probe host:1: RuntimeError: refused"
        assert handler.closed == handler.opened  # closed after the error...
        assert handler.deliver(roi_record(3, 62.0)) == {"client": 2}  # ...and opened again
    finally:
        handler.close()
    assert handler.closed == handler.opened


def test_a_failed_connect_is_a_delivery_error_and_is_tried_again() -> None:
    handler = Probe()
    handler.open_error = ConnectionRefusedError("nobody listens")
    try:
        with pytest.raises(DeliveryError, match=r"^probe host:1: ConnectionRefusedError: nobody"):
            handler.deliver(roi_record(1, 60.0))
        assert handler.opened == [] and handler.closed == []  # no client: nothing to close
        handler.open_error = None
        assert handler.deliver(roi_record(1, 60.0)) == {"client": 1}
    finally:
        handler.close()


def test_a_delivery_over_its_time_limit_is_cancelled_and_its_client_closed() -> None:
    handler = Probe()
    cancelled: list[bool] = []

    async def hang(client: Client) -> int:
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 0

    try:
        with pytest.raises(DeliveryError, match=r"^probe host:1: TimeoutError"):
            handler.send(hang, 0.2)
        assert wait_until(lambda: cancelled == [True], 5)
        assert handler.closed == handler.opened and len(handler.opened) == 1
    finally:
        handler.close()


def test_close_ends_the_client_and_the_loop_even_when_disconnecting_fails() -> None:
    handler = Probe()
    handler.deliver(roi_record(1, 60.0))
    handler.close_error = OSError("connection reset")
    handler.close()  # logged, not raised
    assert handler.closed == handler.opened
    assert handler._loop.loop.is_closed()


# -- MQTT ------------------------------------------------------------------------------------


class FakeMqttClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, Any]]] = []
        self.exited = False
        self.fail: Exception | None = None

    async def publish(self, topic: str, body: bytes, **options: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.published.append((topic, body, options))

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True


class FakeMqtt(Mqtt):
    def __init__(self, config: MqttHandler) -> None:
        super().__init__(config)
        self.clients: list[FakeMqttClient] = []

    async def open_client(self) -> FakeMqttClient:
        self.clients.append(FakeMqttClient())
        return self.clients[-1]


def test_mqtt_publishes_one_message_per_record_on_one_connection() -> None:
    handler = FakeMqtt(MqttHandler(topic="rig/results", qos=2, retain=True, timeout_s=3.0))
    try:
        first, second = roi_record(1, 60.0), roi_record(2, 61.0)
        detail = handler.deliver(first)
        handler.deliver(second)
        (client,) = handler.clients
        (topic, body, options), _ = client.published
        assert topic == "rig/results/image"
        assert json.loads(body) == message_of(first)
        assert options == {"qos": 2, "retain": True, "timeout": 3.0}
        assert detail == {"topic": "rig/results/image", "qos": 2, "bytes": len(body)}
        client.fail = RuntimeError("broker went away")
        with pytest.raises(DeliveryError, match=r"^mqtt 127.0.0.1:1883: RuntimeError: broker"):
            handler.deliver(roi_record(3, 62.0))
        assert client.exited
        handler.deliver(roi_record(3, 62.0))
        assert len(handler.clients) == 2 and len(handler.clients[1].published) == 1
    finally:
        handler.close()
    assert handler.clients[1].exited


def test_mqtt_without_a_broker_is_a_delivery_error() -> None:
    port = free_port()
    handler = Mqtt(MqttHandler(host="127.0.0.1", port=port, timeout_s=2.0))
    try:
        with pytest.raises(DeliveryError, match=rf"^mqtt 127.0.0.1:{port}: "):
            handler.deliver(roi_record(1, 60.0))
    finally:
        handler.close()


# -- OPC-UA ----------------------------------------------------------------------------------


class FakeNode:
    def __init__(self, variant_type: Any) -> None:
        self.variant_type = variant_type
        self.type_reads = 0
        self.values: list[Any] = []
        self.fail: Exception | None = None

    async def read_data_type_as_variant_type(self) -> Any:
        self.type_reads += 1
        return self.variant_type

    async def write_value(self, value: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.values.append(value.Value.Value)


class FakeOpcUaClient:
    def __init__(self, nodes: dict[str, FakeNode]) -> None:
        self.nodes = nodes
        self.disconnected = False

    def get_node(self, node_id: str) -> FakeNode:
        return self.nodes[node_id]

    async def disconnect(self) -> None:
        self.disconnected = True


class FakeOpcUa(OpcUa):
    def __init__(self, config: OpcUaHandler, nodes: dict[str, FakeNode]) -> None:
        super().__init__(config)
        self.nodes = nodes
        self.clients: list[FakeOpcUaClient] = []

    async def open_client(self) -> FakeOpcUaClient:
        self.clients.append(FakeOpcUaClient(self.nodes))
        return self.clients[-1]


def test_opcua_writes_converted_values_and_reads_each_node_type_once_per_connection() -> None:
    from asyncua import ua

    mu, temp = FakeNode(ua.VariantType.Double), FakeNode(ua.VariantType.Int32)
    config = OpcUaHandler(
        endpoint="opc.tcp://plc:4840/",
        nodes={"ROI_A1_1.mu.Median": "ns=2;s=Mu", "temperature.chip": "ns=2;s=T", "x": "ns=2;i=9"},
    )
    handler = FakeOpcUa(config, {"ns=2;s=Mu": mu, "ns=2;s=T": temp})
    try:
        detail = handler.deliver(roi_record(1, 60.25))
        assert detail == {"endpoint": "opc.tcp://plc:4840/", "nodes_written": 2}  # no "x"
        handler.deliver(roi_record(2, 61.5))
        assert (mu.values, temp.values) == ([60.25, 61.5], [22, 22])  # 21.5 rounded to Int32
        assert (mu.type_reads, temp.type_reads) == (1, 1)
        mu.fail = RuntimeError("BadNodeIdUnknown")
        with pytest.raises(DeliveryError, match=r"^opcua opc.tcp://plc:4840/: RuntimeError: Bad"):
            handler.deliver(roi_record(3, 62.0))
        assert handler.clients[0].disconnected
        mu.fail = None
        handler.deliver(roi_record(3, 62.0))
        assert len(handler.clients) == 2
        assert (mu.type_reads, temp.type_reads) == (2, 2)  # read again on the new connection
    finally:
        handler.close()
    assert handler.clients[1].disconnected
