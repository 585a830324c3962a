"""System info in today's Windows-service layout, disks read through psutil.disk_usage."""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path

import psutil

from rigwatch.agent.system_info import collect_disks, collect_system_info
from rigwatch.wire.status_v1 import SystemInfo

Part = namedtuple("Part", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")


def test_agent_system_info_has_the_windows_service_layout() -> None:
    now = time.time()
    result = collect_system_info(now)
    info = result.info
    SystemInfo.model_validate(info)  # the fleet's schema of it
    assert set(info) == {"version", "system", "disks"}
    system = info["system"]
    assert set(system) == {
        "os",
        "architecture",
        "upTimeTicks",
        "upTime",
        "name",
        "processors",
        "time",
        "utcTime",
        "timezone",
    }
    uptime_s = now - psutil.boot_time()
    assert abs(system["upTimeTicks"] / 1e7 - uptime_s) < 2  # ticks of 100 ns since boot
    up = system["upTime"]
    assert up["days"] * 86400 + up["hours"] * 3600 + up["minutes"] * 60 + up["seconds"] == int(
        system["upTimeTicks"] / 1e7
    )
    assert system["processors"] == psutil.cpu_count()
    assert set(system["timezone"]) == {
        "id",
        "displayName",
        "standardName",
        "daylightName",
        "baseUtcOffset",
        "supportsDaylightSavingTime",
    }


def test_agent_disks_are_read_through_disk_usage(tmp_path: Path) -> None:
    """A partition entry has no sizes (today's agent read .free/.total from it and failed);
    sizes come from disk_usage(mountpoint). An unreadable drive is left out with an error."""
    parts = [
        Part("C:\\", "C:\\", "NTFS", "rw,fixed"),
        Part("D:\\", "D:\\", "CDFS", "ro,cdrom"),  # empty drive: disk_usage raises
        Part("E:\\", "E:\\", "FAT32", "rw,removable"),
        Part("C:\\", "C:\\", "NTFS", "rw,fixed"),  # listed twice: reported once
        Part("none", "/snap/core/1", "squashfs", "ro"),
    ]
    usages = {
        "C:\\": Usage(500 * 2**30, 400 * 2**30, 100 * 2**30, 80.0),
        "E:\\": Usage(32 * 2**30, 2**30, 31 * 2**30, 3.1),
    }

    def usage(mount: str) -> Usage:
        if mount not in usages:
            raise PermissionError(21, "The device is not ready", mount)
        return usages[mount]

    disks, errors = collect_disks(lambda: parts, usage)
    assert [d["mountPoint"] for d in disks] == ["C:\\", "E:\\"]
    c = disks[0]
    assert c == {
        "mountPoint": "C:\\",
        "type": "Fixed",
        "label": "C:\\",
        "format": "NTFS",
        "freeSpace": 100 * 2**30,
        "totalSize": 500 * 2**30,
        "usedPercentage": 80.0,
    }
    assert disks[1]["type"] == "Removable"
    assert len(errors) == 1 and "D:\\" in errors[0][1] and "not ready" in errors[0][1]


def test_agent_disks_of_this_computer_match_disk_usage() -> None:
    disks, _ = collect_disks()
    assert disks, "no disk found"
    for d in disks:
        u = psutil.disk_usage(d["mountPoint"])
        assert d["totalSize"] == u.total
        assert abs(d["freeSpace"] - u.free) < 2**30  # the file system may change meanwhile
