"""The fleet: results handed to the agent's outbox as status messages (wire schema v1); the
agent sends them to the fleet server and keeps them while it is unreachable.

Each artifact becomes one message whose ``sensor_data`` holds the configured metrics
(``{metric: value key}``, keys as :func:`~.records.flatten_result`), timestamped with the
artifact's capture time and marked ``backfill`` (it reports the past). Its outbox message id
is ``pipeline-<artifact id>``: the outbox refuses a second message with a pending id.

The fleet server drops a message whose ``seq`` it has seen (:mod:`rigwatch.fleet.ingest`), but
the outbox forgets a message once the agent sent it. So the ``seq`` of an artifact's message is
reserved in the reporter's delivery ledger (handler name :data:`SEQ_RESERVATION`) before the
message is put: a reporter that put the message and died before recording the delivery, whose
item is redone after the agent sent the message, puts the very same message again (same
``seq``), which the server drops, instead of a second one under a new ``seq``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from typing import Any

from rigwatch.agent.outbox import Outbox
from rigwatch.errors import BadItem, DeliveryError, OutboxError, StageError, WireError
from rigwatch.pipeline.config import FleetHandler
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.wire.parse import validate_status

log = logging.getLogger(__name__)

SEQ_RESERVATION = "fleet.seq"
"""Ledger handler name under which the ``seq`` of each artifact's message is reserved."""


class Fleet:
    """The ``fleet`` handler (see the module docstring).

    Args:
        config: the handler's config.
        ledger: the reporter's delivery ledger, where each artifact's ``seq`` is reserved
            (``None``: a new ``seq`` per delivery, for a handler used on its own).
    """

    name = "fleet"

    def __init__(self, config: FleetHandler, ledger: Ledger | None = None) -> None:
        self.config = config
        self.ledger = ledger
        self.outbox = Outbox(config.outbox, config.outbox_max_bytes)

    def seq_for(self, record: ReportRecord, now_ns: int) -> int:
        """The ``seq`` of the record's message: the one reserved for its artifact, else a new
        one from the outbox, reserved in the ledger (the first reservation wins a race).

        Raises:
            OutboxError: no sequence number could be allocated.
            DeliveryError: the ledger cannot be read or written (busy, disk full).
            StageError: the ledger holds an invalid reservation.
        """
        if self.ledger is None:
            return self.outbox.allocate_seq(now_ns)
        try:
            held = self.ledger.delivered(SEQ_RESERVATION, record.artifact_id)
            if held is None:
                seq = self.outbox.allocate_seq(now_ns)
                self.ledger.record(SEQ_RESERVATION, record.artifact_id, {"seq": seq})
                held = self.ledger.delivered(SEQ_RESERVATION, record.artifact_id)
        except sqlite3.Error as exc:
            raise DeliveryError(f"fleet: delivery ledger {self.ledger.path}: {exc}") from exc
        if held is None or not isinstance(held.get("seq"), int):
            raise StageError(
                f"delivery ledger: no valid {SEQ_RESERVATION} reservation for artifact "
                f"{record.artifact_id}: {held}"
            )
        return int(held["seq"])

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
            seq = self.seq_for(record, now)
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
