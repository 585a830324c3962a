"""What the browser tests share: reading the page's counters (``window.__rigwatch``),
waiting for live frames, counting drawn pixels, and checking that the page logged no errors."""

from __future__ import annotations

import re
from typing import Any

SNAPSHOT_MIN_INTERVAL_S = 30
"""The e2e station's ``api.snapshot_min_interval_s``: a second snapshot right after the first is
refused (429)."""

# Counts strongly coloured, opaque pixels of a uPlot canvas: the series lines. The grid, axes
# and text are grey and the bands are translucent, so an empty chart counts (almost) zero.
COLOURED_PIXELS_JS = """
(selector) => {
  const canvas = document.querySelector(selector + " canvas");
  if (!canvas || !canvas.width || !canvas.height) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2], a = data[i + 3];
    if (a > 150 && Math.max(r, g, b) - Math.min(r, g, b) > 70) n++;
  }
  return n;
}
"""


def debug(page: Any, part: str | None = None) -> Any:
    """``window.__rigwatch`` (or its ``part``: "live", "recordings", "problems"), as JSON."""
    expr = "window.__rigwatch" + (f"[{part!r}]" if part else "")
    return page.evaluate(f"() => JSON.parse(JSON.stringify({expr} ?? null))")


def frames_received(page: Any) -> int:
    return int(page.evaluate("() => window.__rigwatch.live.framesReceived"))


def frames_after(page: Any, count: int, timeout_ms: int = 15_000) -> int:
    """Waits until the Live page has received ``count`` more frames than now; returns the
    count it started from."""
    page.wait_for_function("() => window.__rigwatch?.live?.mounted === true")
    start = frames_received(page)
    page.wait_for_function(
        "(n) => window.__rigwatch.live.framesReceived >= n", arg=start + count, timeout=timeout_ms
    )
    return start


def coloured_pixels(page: Any, selector: str) -> int:
    return int(page.evaluate(f"({COLOURED_PIXELS_JS})", selector))


def wait_coloured(page: Any, selector: str, at_least: int, timeout_ms: int = 10_000) -> None:
    """Waits until the chart under ``selector`` has ``at_least`` coloured pixels."""
    page.wait_for_function(
        f"([sel, n]) => ({COLOURED_PIXELS_JS})(sel) >= n",
        arg=[selector, at_least],
        timeout=timeout_ms,
    )


def no_page_errors(s: Any, allowed_statuses: tuple[int, ...] = ()) -> None:
    """No uncaught error and no console error, except Chromium's "Failed to load resource"
    line for a request the test made fail on purpose with one of ``allowed_statuses``."""
    assert not s.page_errors, f"uncaught errors in the page: {s.page_errors}"
    allowed = re.compile(
        r"Failed to load resource: the server responded with a status of "
        rf"({'|'.join(str(c) for c in allowed_statuses) or 'none'})\b"
    )
    unexpected = [m for m in s.console_errors if not allowed.search(m)]
    assert not unexpected, f"console errors in the page: {unexpected}"
