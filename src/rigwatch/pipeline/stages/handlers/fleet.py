"""The fleet: results handed to the agent's outbox as status messages (wire schema v1); the
agent sends them to the fleet server and keeps them while it is unreachable.

Each artifact becomes one message whose ``sensor_data`` holds the configured metrics
(``{metric: value key}``, keys as :func:`~.records.flatten_result`), timestamped with the
artifact's capture time and marked ``backfill`` (it reports the past). Its outbox message id
is ``pipeline-<artifact id>``: the outbox refuses a second message with a pending id.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from rigwatch.agent.outbox import Outbox
from rigwatch.errors import BadItem, DeliveryError, OutboxError, WireError
from rigwatch.pipeline.config import FleetHandler
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.wire.parse import validate_status

log = logging.getLogger(__name__)


class Fleet:
    """The ``fleet`` handler (see the module docstring)."""

    name = "fleet"

    def __init__(self, config: FleetHandler) -> None:
        self.config = config
        self.outbox = Outbox(config.outbox, config.outbox_max_bytes)

    def message(self, record: ReportRecord, seq: int) -> dict[str, Any]:
        """The status message of a record."""
        values = record.values()
        data: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for metric, key in self.config.metrics.items():
            v = values.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                data[metric] = float(v)
            else:
                data[metric] = None
                errors[metric] = f"no value {key!r} in the result of {record.filename}"
        return {
            "schema_version": 1,
            "machine_id": self.config.machine_id,
            "timestamp": record.timestamp_iso,
            "status": "online",
            "sensor_data": data,
            "sensor_errors": errors,
            "backfill": True,
            "seq": seq,
        }

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        message_id = f"pipeline-{record.artifact_id}"
        now = time.time_ns()
        try:
            seq = self.outbox.allocate_seq(now)
            message = self.message(record, seq)
            validate_status(message)
            body = json.dumps(message).encode()
            self.outbox.put(message_id, body, now)
        except WireError as exc:
            raise BadItem(f"fleet: invalid message for {record.filename}: {exc}") from exc
        except OutboxError as exc:
            if "already pending" in str(exc):
                return {"message_id": message_id, "already_pending": True}
            raise DeliveryError(f"fleet: {exc}") from exc
        return {"message_id": message_id, "metrics": len(message["sensor_data"])}

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.outbox.close()
