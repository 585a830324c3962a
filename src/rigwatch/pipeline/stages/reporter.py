"""The reporter: hands each processed artifact to the configured handlers (CSV + plot,
OPC-UA, MQTT, fleet) and records what each delivered.

Per artifact and handler the delivery ledger (:mod:`.handlers.ledger`) says whether it was
delivered already; a handler that delivered is not asked again when the item is retried
(another handler failed) or redone (a worker died after delivering). The ``report`` result
of an artifact lists each handler's delivery: ``{"delivered": {"csv_plot": {"file":
"communicating_results.csv", "rows": 644}, "mqtt": {"topic": ..., "qos": 1}}}``. A handler
that cannot deliver (a broker or server away, a full disk: :class:`~rigwatch.errors.
DeliveryError`) makes the stage wait: the item and the rest of the batch go back (no attempt
is counted, so a long outage never ends an item ``failed``), the status says ``waiting`` with
each failing handler's reason, and the stage tries again after ``poll_s``. The handlers that
delivered keep their ledger rows and are not asked again. An item no handler can take (a
message the fleet refuses) is :class:`~rigwatch.errors.BadItem`: it ends ``failed`` with the
reason and the stage goes on.

Retention waits for the report stage (the flow), so while a handler is away nothing reported
late is deleted; the collector's free-space floor protects the disk meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rigwatch.errors import DeliveryError, ManifestError, StageWaiting
from rigwatch.pipeline.config import (
    CsvPlotHandler,
    FleetHandler,
    MqttHandler,
    OpcUaHandler,
    ReporterSection,
)
from rigwatch.pipeline.manifest import Lease, Manifest
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportHandler, ReportRecord
from rigwatch.pipeline.stages.queries import stage_results
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.pipeline.stages.worker import ClaimingStage, Handled, WorkerSettings

log = logging.getLogger(__name__)

LEDGER_NAME = "deliveries.sqlite"
SELF_RECORDING = frozenset({"csv_plot"})
"""Handlers that record their own ledger rows (in one transaction with their file's size)."""


def build_handlers(section: ReporterSection, reports_dir: Path, ledger: Ledger) -> list[Any]:
    """The handlers of the config, in its order."""
    out: list[Any] = []
    for h in section.handlers:
        if isinstance(h, CsvPlotHandler):
            from rigwatch.pipeline.stages.handlers.csv_plot import CsvPlot

            out.append(CsvPlot(h, reports_dir, ledger))
        elif isinstance(h, OpcUaHandler):
            from rigwatch.pipeline.stages.handlers.opcua import OpcUa

            out.append(OpcUa(h))
        elif isinstance(h, MqttHandler):
            from rigwatch.pipeline.stages.handlers.mqtt import Mqtt

            out.append(Mqtt(h))
        elif isinstance(h, FleetHandler):
            from rigwatch.pipeline.stages.handlers.fleet import Fleet

            out.append(Fleet(h, ledger))
    return out


class Reporter(ClaimingStage):
    """The reporter stage.

    Args:
        manifest: the manifest; handlers: the handlers; ledger: the delivery ledger.
    """

    name = "reporter"
    stage = "report"

    def __init__(
        self,
        manifest: Manifest,
        handlers: Sequence[ReportHandler],
        ledger: Ledger,
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        super().__init__(manifest, settings, status, owner)
        self.handlers = list(handlers)
        self.ledger = ledger
        self._batch_results: dict[int, dict[str, Any]] = {}

    def work_batch(self, leases: list[Lease], stop: threading.Event) -> str | None:
        # the batch's processing results in one query
        self._batch_results = stage_results(
            self.manifest, "process", [x.artifact_id for x in leases]
        )
        try:
            return super().work_batch(leases, stop)
        finally:
            self._batch_results = {}

    def record_of(self, lease: Lease) -> ReportRecord:
        """The artifact of a lease with its processing result."""
        payload = self._batch_results.get(lease.artifact_id)
        if payload is None:
            result = self.manifest.result(lease.artifact_id, "process")
            if result is None:
                raise ManifestError(f"artifact {lease.artifact_id} has no process result")
            payload = dict(result.payload)
        a = lease.artifact
        return ReportRecord(a, payload, a.captured_ns or a.created_ns)

    def handle(self, lease: Lease) -> Handled:
        record = self.record_of(lease)
        delivered: dict[str, Any] = {}
        errors: list[str] = []
        for handler in self.handlers:
            before = self.ledger.delivered(handler.name, record.artifact_id)
            if before is not None:
                delivered[handler.name] = before
                continue
            try:
                detail = handler.deliver(record)
            except DeliveryError as exc:
                errors.append(str(exc))
                continue
            if handler.name not in SELF_RECORDING:
                self.ledger.record(handler.name, record.artifact_id, detail)
            delivered[handler.name] = detail
        if errors:
            raise StageWaiting(f"cannot deliver: {'; '.join(errors)}")
        return Handled({"delivered": delivered})

    def after_batch(self) -> None:
        for handler in self.handlers:
            try:
                handler.flush()
            except Exception as exc:  # a plot that cannot be drawn must not stop reporting
                log.warning("%s flush failed: %s", handler.name, exc)

    def close(self) -> None:
        for handler in self.handlers:
            try:
                handler.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", handler.name, exc)
        self.ledger.close()
