"""Wire: versioned message schemas shared by the agent, the fleet and the reporters.

The names without a version (:data:`StatusMessage`, :data:`StatusBatch`) are the current
version; older versions stay importable from their modules (``rigwatch.wire.status_v1``).
``docs/wire.md`` documents every field.

Layer rule (docs/architecture.md): imports only ``config``, ``recordings`` and the value types.
"""

from rigwatch.wire.parse import field_path, problems, validate_batch, validate_status
from rigwatch.wire.status_v1 import (
    MAX_BATCH,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    SCHEMA_VERSION,
    AgentErrorEntry,
    Disk,
    MachineAlarm,
    StatusBatchV1,
    StatusMessageV1,
    SystemInfo,
    SystemSection,
    TimeSpan,
    TimeZoneInfo,
)

StatusMessage = StatusMessageV1
"""The current status message model."""

StatusBatch = StatusBatchV1
"""The current batch model."""

__all__ = [
    "MAX_BATCH",
    "MAX_BATCH_BYTES",
    "MAX_MESSAGE_BYTES",
    "SCHEMA_VERSION",
    "AgentErrorEntry",
    "Disk",
    "MachineAlarm",
    "StatusBatch",
    "StatusBatchV1",
    "StatusMessage",
    "StatusMessageV1",
    "SystemInfo",
    "SystemSection",
    "TimeSpan",
    "TimeZoneInfo",
    "field_path",
    "problems",
    "validate_batch",
    "validate_status",
]
