"""Example messages: today's agent's post, field for field.

:data:`TODAY_STATUS` is exactly what today's machine agent (``MachineDataCollector
.send_data_to_api`` of the fleet monitor this schema replaces) posts for a machine with a
readable disk: the Windows-service layout of ``system_info`` and four sensor values, without
``seq`` or any of the fields schema version 1 adds. The OpenAPI description shows it as the
example of a status message; tests and the ingest benchmark start from copies of it.
"""

from __future__ import annotations

from typing import Any

TODAY_STATUS: dict[str, Any] = {
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
"""Today's post (temperature degC, pressure bar, speed rpm, disk_volume %). Treat as read-only:
copy it (``copy.deepcopy``) before changing anything."""
