"""MQTT: one JSON message per reported artifact, published with aiomqtt.

Topic ``<topic>/<kind>``; body ``{"artifact_id", "kind", "file", "timestamp", "result",
"temperature_readings"}`` (the processing result as in the results log). QoS 1 by default:
at least once; a subscriber drops repeats by ``artifact_id``. The connection is kept open and
opened again after an error.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from rigwatch.errors import DeliveryError
from rigwatch.pipeline.config import MqttHandler
from rigwatch.pipeline.stages.handlers.aio import LoopThread
from rigwatch.pipeline.stages.handlers.records import ReportRecord

log = logging.getLogger(__name__)


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


class Mqtt:
    """The ``mqtt`` handler (see the module docstring)."""

    name = "mqtt"

    def __init__(self, config: MqttHandler) -> None:
        self.config = config
        self._loop = LoopThread("reporter-mqtt")
        self._client: Any = None

    async def _connect(self) -> None:
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
        self._client = client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except Exception as exc:
                log.debug("mqtt disconnect: %s", exc)

    async def _publish(self, topic: str, body: bytes) -> None:
        if self._client is None:
            await self._connect()
        await self._client.publish(
            topic,
            body,
            qos=self.config.qos,
            retain=self.config.retain,
            timeout=self.config.timeout_s,
        )

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        topic = f"{self.config.topic}/{record.artifact.kind}"
        body = json.dumps(message_of(record), allow_nan=False, default=str).encode()
        try:
            self._loop.run(self._publish(topic, body), self.config.timeout_s * 2)
        except Exception as exc:
            try:
                self._loop.run(self._disconnect(), self.config.timeout_s)
            except Exception as inner:
                log.debug("mqtt disconnect after error: %s", inner)
            raise DeliveryError(
                f"mqtt {self.config.host}:{self.config.port}: {type(exc).__name__}: {exc}"
            ) from exc
        return {"topic": topic, "qos": self.config.qos, "bytes": len(body)}

    def flush(self) -> None:
        pass

    def close(self) -> None:
        try:
            self._loop.run(self._disconnect(), self.config.timeout_s)
        except Exception as exc:
            log.debug("mqtt close: %s", exc)
        self._loop.close()
