"""Status payloads in the layout of today's agent (seed 004), for wire and fleet tests."""

from __future__ import annotations

import copy
from typing import Any

TODAY_PAYLOAD: dict[str, Any] = {
    "machine_id": "ironcast_berlin",
    "system_info": {
        "version": "1.0.0.0",
        "system": {
            "os": "nt",
            "architecture": "AMD64",
            "upTimeTicks": 17226000000000,
            "upTime": {"days": 19, "hours": 22, "minutes": 30, "seconds": 0},
            "name": "HMC-ECM-RELINNI",
            "processors": 8,
            "time": "2024-05-01T14:00:00.123456",
            "utcTime": "2024-05-01T12:00:00.123456",
            "timezone": {
                "id": "Local Time",
                "displayName": "Local Timezone",
                "standardName": "Local Standard Time",
                "daylightName": "Local Daylight Time",
                "baseUtcOffset": {"ticks": 0},
                "supportsDaylightSavingTime": True,
            },
        },
        "disks": [
            {
                "mountPoint": "C:\\",
                "type": "Fixed",
                "label": "C:\\",
                "format": "NTFS",
                "freeSpace": 107374182400,
                "totalSize": 499963174912,
                "usedPercentage": 78.52,
            }
        ],
    },
    "sensor_data": {"temperature": 42.5, "pressure": 2.1, "speed": 1450, "disk_volume": 78.5},
    "timestamp": "2024-05-01T12:00:00.123456",
    "status": "online",
}
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
