"""The machine computer's system info, in the layout of the Windows service in use today.

Layout (``rigwatch.wire.status_v1.SystemInfo``)::

    {"version": "...",
     "system": {"os", "architecture", "upTimeTicks", "upTime": {days, hours, minutes,
                seconds, ticks}, "name", "processors", "time", "utcTime",
                "timezone": {"id", "displayName", "standardName", "daylightName",
                             "baseUtcOffset": {"ticks"}, "supportsDaylightSavingTime"}},
     "disks": [{"mountPoint", "type", "label", "format", "freeSpace", "totalSize",
                "usedPercentage"}]}

A tick is 100 ns (.NET ``TimeSpan``). Sizes are bytes, ``usedPercentage`` is percent.

Disk sizes come from ``psutil.disk_usage(mountpoint)`` for each entry of
``psutil.disk_partitions()``: a partition entry only names the device, mount point, file
system and options (today's agent read ``.free``/``.total`` from the entries, which have
neither, so it failed before sending anything). A partition whose usage cannot be read (an
empty DVD drive, a network share that is gone, no permission) is left out and reported as an
error of the message instead of failing the whole message.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil  # type: ignore[import-untyped]

from rigwatch import __version__

log = logging.getLogger(__name__)

TICKS_PER_S = 10_000_000
""".NET ``TimeSpan`` ticks per second (a tick is 100 ns)."""

MAX_DISKS = 64
"""Most disks reported (the wire schema's bound)."""

SKIPPED_FSTYPES = frozenset({"squashfs", "tmpfs", "devtmpfs", "ramfs", "proc", "sysfs", "iso9660"})
"""File systems that are not disks of the machine (read-only images, memory)."""

NETWORK_FSTYPES = frozenset({"nfs", "nfs4", "cifs", "smbfs", "smb3", "sshfs", "fuse.sshfs"})

_WINDOWS_DRIVE_TYPES = {
    "fixed": "Fixed",
    "removable": "Removable",
    "cdrom": "CDRom",
    "remote": "Network",
    "ramdisk": "Ram",
}
"""psutil's Windows partition options -> .NET ``DriveType`` names."""


@dataclass
class SystemInfoResult:
    """System info and the problems met while collecting it.

    Attributes:
        info: the ``system_info`` object (JSON-ready dict).
        errors: ``(source, message)`` for each part that could not be read.
    """

    info: dict[str, Any]
    errors: list[tuple[str, str]] = field(default_factory=list)


def _span(seconds: float) -> dict[str, int]:
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return {
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": secs,
        "ticks": int(max(0.0, seconds) * TICKS_PER_S),
    }


def _iana_zone() -> str | None:
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else None


def timezone_info() -> dict[str, Any]:
    """The local time zone in the layout of .NET ``TimeZoneInfo``.

    ``id`` is the zone's name: the Windows zone name (``W. Europe Standard Time``) on Windows,
    the IANA name (``Europe/Berlin``) where the system names it, else the standard abbreviation.
    ``baseUtcOffset`` is the standard (non-daylight) offset east of UTC in ticks; the offset
    in force now shows in the system section's ``time``.
    """
    standard_offset_s = -time.timezone
    standard, daylight = time.tzname
    zone_id = standard if sys.platform == "win32" else (_iana_zone() or standard)
    sign = "+" if standard_offset_s >= 0 else "-"
    hh, mm = divmod(abs(standard_offset_s) // 60, 60)
    return {
        "id": zone_id,
        "displayName": f"(UTC{sign}{hh:02d}:{mm:02d}) {zone_id}",
        "standardName": standard,
        "daylightName": daylight,
        "baseUtcOffset": {"ticks": standard_offset_s * TICKS_PER_S},
        "supportsDaylightSavingTime": bool(time.daylight),
    }


def os_description() -> str:
    """The operating system, like .NET's ``Environment.OSVersion`` text
    (``Microsoft Windows 10.0.19045``, ``Linux 6.8.0-45-generic``)."""
    system = platform.system() or sys.platform
    if system == "Windows":
        return f"Microsoft Windows {platform.version()}"
    return f"{system} {platform.release()}"


def _drive_type(part: Any) -> str:
    opts = {o.strip().lower() for o in str(part.opts).split(",")}
    for opt, name in _WINDOWS_DRIVE_TYPES.items():
        if opt in opts:
            return name
    if str(part.fstype).lower() in NETWORK_FSTYPES:
        return "Network"
    return "Fixed"


def collect_disks(
    partitions: Callable[[], list[Any]] | None = None,
    usage: Callable[[str], Any] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Every disk's sizes through ``psutil.disk_usage`` of its mount point.

    Args:
        partitions: lists partitions (default ``psutil.disk_partitions(all=False)``).
        usage: reads one mount point's usage (default ``psutil.disk_usage``).

    Returns:
        ``(disks, errors)``: the disks in the layout above, in partition order, each mount point
        once, at most :data:`MAX_DISKS`; and ``(source, message)`` per partition left out.
    """
    list_parts = partitions or (lambda: psutil.disk_partitions(all=False))
    read_usage = usage or psutil.disk_usage
    disks: list[dict[str, Any]] = []
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    try:
        parts = list_parts()
    except OSError as exc:
        return [], [("system_info.disks", f"cannot list partitions: {exc}")]
    for part in parts:
        mount = str(part.mountpoint)
        fstype = str(part.fstype)
        if not fstype or fstype.lower() in SKIPPED_FSTYPES or mount in seen:
            continue
        seen.add(mount)
        try:
            u = read_usage(mount)
        except OSError as exc:  # PermissionError, an empty drive, a vanished share
            errors.append(("system_info.disks", f"{mount}: cannot read usage: {exc}"))
            continue
        total, free = int(u.total), int(u.free)
        if total <= 0:
            continue
        if len(disks) == MAX_DISKS:
            errors.append(("system_info.disks", f"more than {MAX_DISKS} disks; the rest left out"))
            break
        disks.append(
            {
                "mountPoint": mount,
                "type": _drive_type(part),
                "label": str(part.device),
                "format": fstype,
                "freeSpace": min(free, total),
                "totalSize": total,
                "usedPercentage": round(min(100.0, max(0.0, float(u.percent))), 2),
            }
        )
    return disks, errors


def collect_system_info(now: float | None = None, version: str = __version__) -> SystemInfoResult:
    """The system info of this computer at ``now`` (seconds since the epoch; default: now).

    ``upTime`` and ``upTimeTicks`` are the time since boot (``now - psutil.boot_time()``);
    ``time`` is the local wall-clock time with its offset, ``utcTime`` the same instant in UTC.
    """
    t = time.time() if now is None else now
    errors: list[tuple[str, str]] = []
    try:
        uptime_s = max(0.0, t - psutil.boot_time())
    except OSError as exc:
        uptime_s = 0.0
        errors.append(("system_info.system", f"cannot read the boot time: {exc}"))
    utc = datetime.fromtimestamp(t, tz=UTC)
    disks, disk_errors = collect_disks()
    errors.extend(disk_errors)
    info = {
        "version": version,
        "system": {
            "os": os_description(),
            "architecture": platform.machine() or "unknown",
            "upTimeTicks": int(uptime_s * TICKS_PER_S),
            "upTime": _span(uptime_s),
            "name": platform.node() or os.environ.get("COMPUTERNAME", "unknown"),
            "processors": psutil.cpu_count(logical=True) or os.cpu_count() or 1,
            "time": utc.astimezone().isoformat(),
            "utcTime": utc.isoformat().replace("+00:00", "Z"),
            "timezone": timezone_info(),
        },
        "disks": disks,
    }
    return SystemInfoResult(info, errors)
