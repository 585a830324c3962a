"""Status payloads in the layout of today's agent (seed 004), for wire and fleet tests."""

from __future__ import annotations

import copy
from typing import Any

from rigwatch.wire.examples import TODAY_STATUS

TODAY_PAYLOAD: dict[str, Any] = TODAY_STATUS
"""Exactly what ``MachineDataCollector.send_data_to_api`` posts (with a disk it can read)."""


def payload(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`TODAY_PAYLOAD` with top-level keys replaced (``None`` removes)."""
    out = copy.deepcopy(TODAY_PAYLOAD)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
