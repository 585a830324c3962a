"""MQTT: one JSON message per reported artifact, published with aiomqtt.

Topic ``<topic>/<kind>``; body ``{"artifact_id", "kind", "file", "timestamp", "result",
"temperature_readings"}`` (the processing result as in the results log). QoS 1 by default:
at least once; a subscriber drops repeats by ``artifact_id``. The connection is kept open and
opened again after an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from rigwatch.pipeline.config import MqttHandler
from rigwatch.pipeline.stages.handlers.aio import AsyncClientHandler
from rigwatch.pipeline.stages.handlers.records import ReportRecord


def message_of(record: ReportRecord) -> dict[str, Any]:
    """The message body of a record (JSON object)."""
    return {
        "artifact_id": record.artifact_id,
        "kind": record.artifact.kind,
        "file": record.filename,
        "timestamp": record.timestamp_iso,
        "result": dict(record.result),
        "temperature_readings": record.temperatures() or None,
    }


class Mqtt(AsyncClientHandler):
    """The ``mqtt`` handler (see the module docstring)."""

    name = "mqtt"

    def __init__(self, config: MqttHandler) -> None:
        super().__init__(config.timeout_s, f"{config.host}:{config.port}")
        self.config = config

    async def open_client(self) -> Any:
        import aiomqtt

        password = os.environ.get(self.config.password_env) if self.config.password_env else None
        client = aiomqtt.Client(
            self.config.host,
            self.config.port,
            username=self.config.username,
            password=password,
            timeout=self.config.timeout_s,
        )
        await client.__aenter__()
        return client

    async def close_client(self, client: Any) -> None:
        await client.__aexit__(None, None, None)

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        topic = f"{self.config.topic}/{record.artifact.kind}"
        body = json.dumps(message_of(record), allow_nan=False, default=str).encode()
        self.send(
            lambda client: client.publish(
                topic,
                body,
                qos=self.config.qos,
                retain=self.config.retain,
                timeout=self.config.timeout_s,
            ),
            self.config.timeout_s * 2,
        )
        return {"topic": topic, "qos": self.config.qos, "bytes": len(body)}
