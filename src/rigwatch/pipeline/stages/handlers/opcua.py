"""OPC-UA: the latest results written to nodes of a server (asyncua client).

Each configured ``value key -> node id`` pair is written with the value of that key in the
record (:func:`~.records.flatten_result`), converted to the node's data type (read once per
node); keys the record lacks are left alone. Writing the latest value is idempotent, so a
record written twice leaves the server as once. The connection is kept open between records
and opened again after an error.
"""

from __future__ import annotations

import os
from typing import Any

from rigwatch.pipeline.config import OpcUaHandler
from rigwatch.pipeline.stages.handlers.aio import AsyncClientHandler
from rigwatch.pipeline.stages.handlers.records import ReportRecord, Scalar


def _convert(value: Scalar, variant_type: Any) -> Any:
    from asyncua import ua

    vt = ua.VariantType
    if variant_type in (vt.Double, vt.Float):
        return float(value)  # type: ignore[arg-type]
    if variant_type in (vt.Int16, vt.Int32, vt.Int64, vt.UInt16, vt.UInt32, vt.UInt64, vt.Byte):
        return round(float(value))  # type: ignore[arg-type]
    if variant_type == vt.Boolean:
        return bool(value)
    if variant_type == vt.String:
        return str(value)
    return value


class OpcUa(AsyncClientHandler):
    """The ``opcua`` handler (see the module docstring)."""

    name = "opcua"

    def __init__(self, config: OpcUaHandler) -> None:
        super().__init__(config.timeout_s, config.endpoint)
        self.config = config
        # {value key: (node, its variant type)} of the open client
        self._nodes: dict[str, tuple[Any, Any]] = {}

    async def open_client(self) -> Any:
        from asyncua import Client

        client = Client(self.config.endpoint, timeout=self.config.timeout_s)
        if self.config.username:
            client.set_user(self.config.username)
            if self.config.password_env:
                client.set_password(os.environ.get(self.config.password_env, ""))
        await client.connect()
        self._nodes = {}
        return client

    async def close_client(self, client: Any) -> None:
        self._nodes = {}
        await client.disconnect()

    async def _write(self, client: Any, values: dict[str, Scalar]) -> dict[str, Any]:
        from asyncua import ua

        written: dict[str, Any] = {}
        for key, node_id in self.config.nodes.items():
            value = values.get(key)
            if value is None:
                continue
            if key not in self._nodes:
                node = client.get_node(node_id)
                self._nodes[key] = (node, await node.read_data_type_as_variant_type())
            node, vtype = self._nodes[key]
            converted = _convert(value, vtype)
            await node.write_value(ua.DataValue(ua.Variant(converted, vtype)))
            written[node_id] = converted
        return written

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        values = record.values()
        written = self.send(lambda client: self._write(client, values), self.config.timeout_s * 4)
        return {"endpoint": self.config.endpoint, "nodes_written": len(written)}
