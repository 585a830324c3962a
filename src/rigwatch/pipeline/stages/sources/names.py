"""Today's file names of collected images: ``image_%Y%m%d_%H%M%S_%f_cam<idx>.png``.

The stamp is UTC (today's pipeline wrote local time; imported names are read as UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rigwatch.timefmt import from_ns, to_ns

IMAGE_RE = re.compile(r"^image_(?P<stamp>\d{8}_\d{6}_\d{6})_cam(?P<cam>\d+)\.png$")
STAMP_FORMAT = "%Y%m%d_%H%M%S_%f"


def image_name(ts_ns: int, camera_index: int) -> str:
    """The file name of an image taken at ``ts_ns`` by camera ``camera_index``."""
    return f"image_{from_ns(ts_ns).strftime(STAMP_FORMAT)}_cam{camera_index}.png"


def parse_image_name(name: str) -> tuple[int, int] | None:
    """``(captured_ns, camera_index)`` of a name in today's pattern, else ``None``."""
    m = IMAGE_RE.match(name)
    if m is None:
        return None
    try:
        dt = datetime.strptime(m.group("stamp"), STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return to_ns(dt), int(m.group("cam"))
