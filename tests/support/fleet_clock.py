"""Messages and times for fleet engine tests: a fixed start and messages at given offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rigwatch.wire import StatusMessage

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def message(t_s: float, machine_id: str = "m1", **fields: Any) -> StatusMessage:
    """A status message stamped ``at(t_s)``; ``sensor_data`` defaults to normal values."""
    fields.setdefault(
        "sensor_data", {"temperature": 40.0, "pressure": 2.0, "speed": 1450.0, "disk_volume": 50.0}
    )
    return StatusMessage(machine_id=machine_id, timestamp=at(t_s), **fields)
