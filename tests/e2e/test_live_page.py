"""The station page in a real headless Chromium against a real station subprocess.

Checks that live frames arrive and are drawn (counters and canvas pixels), that the channel
picker and device selector change the subscription (seen in the frames on the wire), that
status panels fill in, and that a recorded segment can be plotted and downloaded as Parquet.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

# Fixtures (tests/e2e/conftest.py): ``station`` is an E2EStation, ``live_page`` a PageSession.
E2EStation = Any
PageSession = Any

pytestmark = pytest.mark.e2e

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


def debug(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.__rigwatch))")


def frames_after(page: Any, count: int, timeout_ms: int = 15_000) -> None:
    """Waits until the page has received ``count`` more frames than now."""
    start = page.evaluate("() => window.__rigwatch.framesReceived")
    page.wait_for_function(
        "(n) => window.__rigwatch.framesReceived >= n", arg=start + count, timeout=timeout_ms
    )


def wait_channels(s: PageSession, device: str, channels: list[str]) -> None:
    """Waits until the page draws frames of ``device`` with exactly ``channels``, then checks
    the newest frames on the wire (decoded here, independently of the page) agree."""
    s.page.wait_for_function(
        """([device, channels]) => {
             const d = window.__rigwatch;
             return d.subscription && d.subscription.device === device &&
               JSON.stringify(d.lastFrameChannels) === JSON.stringify(channels);
           }""",
        arg=[device, channels],
    )
    frames_after(s.page, 10)
    newest = s.ws.frames[-5:]
    assert len(newest) == 5, f"only {len(s.ws.frames)} data frames seen on the wire"
    for f in newest:
        assert f["device"] == device, f
        assert list(f["channels"]) == channels, f
        assert list(f["shape"])[1] == len(channels), f
    sub = s.ws.subscriptions()[-1]
    assert sub["device"] == device and list(sub["channels"]) == channels, sub


def no_page_errors(s: PageSession) -> None:
    assert not s.page_errors, f"uncaught errors in the page: {s.page_errors}"
    assert not s.console_errors, f"console errors in the page: {s.console_errors}"


def test_live_chart_draws_real_data(
    live_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = live_page.page
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("station-name")).to_have_text(station.name)

    # Frames arrive and keep arriving, at a sensible rate, with a sensible latency.
    page.wait_for_function("() => window.__rigwatch.framesReceived > 0")
    frames_after(page, 30)
    page.wait_for_function("() => window.__rigwatch.samplesDrawn > 0")
    page.wait_for_function("() => window.__rigwatch.framesPerSecond > 5")
    d = debug(page)
    assert d["lastSeq"] >= 0
    assert d["decodeErrors"] == 0 and d["serverErrors"] == [], d
    assert d["lastFrameChannels"] == ["DE", "FE", "BA"], d
    assert -50 < d["lastLatencyMs"] < 5_000, d
    expect(page.get_by_test_id("frames-received")).not_to_have_text("0")
    expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"^-?\d+(\.\d)?$"))

    # What the page asked for, seen on the wire.
    sub = live_page.ws.subscriptions()[0]
    assert sub["device"] == "bearing_12k" and sub["channels"] == ["DE", "FE", "BA"], sub
    assert sub["display_rate_hz"] > 0 and sub["fps"] > 0, sub
    assert live_page.ws.frames, "no data frames on the wire"

    # The chart canvas really has the series drawn on it.
    page.wait_for_function(
        f"() => ({COLOURED_PIXELS_JS})('[data-testid=live-chart]') > 500", timeout=10_000
    )

    # Status panels: buffer filling, recorder writing.
    buf = page.get_by_test_id("buffer-status")
    expect(buf.get_by_test_id("device-card-bearing_12k")).to_be_visible()
    expect(buf.get_by_test_id("device-card-healthy_48k")).to_be_visible()
    expect(buf.get_by_test_id("buffer-fill-bearing_12k")).to_have_text(re.compile(r"^\d+\.\d %$"))
    expect(buf.get_by_test_id("rows-recorded-bearing_12k")).not_to_have_text(re.compile(r"^(0|—)$"))
    expect(page.get_by_test_id("station-mode")).not_to_have_text("—")

    page.screenshot(path=str(artifacts_dir / "live_page.png"))
    no_page_errors(live_page)


def test_channel_picker_and_device_selector_resubscribe(
    live_page: PageSession, artifacts_dir: Path
) -> None:
    page = live_page.page
    wait_channels(live_page, "bearing_12k", ["DE", "FE", "BA"])

    picker = page.get_by_test_id("channel-picker")
    picker.get_by_test_id("channel-toggle-FE").uncheck()
    wait_channels(live_page, "bearing_12k", ["DE", "BA"])
    page.wait_for_function("() => window.__rigwatch.samplesDrawn > 0")

    picker.get_by_test_id("channel-toggle-FE").check()
    wait_channels(live_page, "bearing_12k", ["DE", "FE", "BA"])

    # The last checked channel cannot be unchecked: there is always something to draw.
    picker.get_by_test_id("channel-toggle-FE").uncheck()
    picker.get_by_test_id("channel-toggle-BA").uncheck()
    wait_channels(live_page, "bearing_12k", ["DE"])
    expect(picker.get_by_test_id("channel-toggle-DE")).to_be_disabled()

    # Another device: its own channels, its own rate.
    page.get_by_test_id("device-select").select_option("healthy_48k")
    wait_channels(live_page, "healthy_48k", ["DE", "FE"])
    expect(picker.locator("input[type=checkbox]")).to_have_count(2)
    page.wait_for_function(
        f"() => ({COLOURED_PIXELS_JS})('[data-testid=live-chart]') > 300", timeout=10_000
    )

    # A shorter window asks for more display points per second.
    before = debug(page)["subscription"]["displayRateHz"]
    page.get_by_test_id("window-2").click()
    page.wait_for_function("(r) => window.__rigwatch.subscription.displayRateHz > r", arg=before)
    frames_after(page, 10)
    page.wait_for_function("() => window.__rigwatch.samplesDrawn > 0")
    page.screenshot(path=str(artifacts_dir / "live_page_48k_2s.png"))
    no_page_errors(live_page)


def test_recorded_segment_plots_and_downloads(
    live_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = live_page.page
    rows = page.get_by_test_id("recordings-list").get_by_test_id("recording-row")
    # Segments close every 2 s; the list refreshes when the recorder reports a new one.
    expect(rows.first).to_be_visible(timeout=30_000)

    row = rows.filter(has_text="bearing_12k").first
    expect(row).to_be_visible(timeout=30_000)
    filename = row.get_attribute("data-filename")
    assert filename and filename.endswith(".parquet"), filename
    row.click()

    plot = page.get_by_test_id("recording-plot")
    expect(plot).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(plot).to_have_attribute("data-filename", filename)
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(page.get_by_test_id("recording-title")).to_have_text(filename)
    page.wait_for_function(
        f"() => ({COLOURED_PIXELS_JS})('[data-testid=recording-plot]') > 500", timeout=10_000
    )
    page.wait_for_function("() => window.__rigwatch.recordingPlots >= 1")

    # Both download links point at the file, and it is Parquet.
    link = page.get_by_test_id("recording-download")
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href == f"/api/parquet_download/{filename}", href
    assert row.get_by_test_id("recording-download-link").get_attribute("href") == href
    resp = page.request.get(station.base_url + href)
    assert resp.ok, resp.status
    body = resp.body()
    assert body[:4] == b"PAR1" and body[-4:] == b"PAR1", body[:16]
    assert (station.recordings / filename).is_file() or any(station.recordings.rglob(filename)), (
        f"{filename} not under {station.recordings}"
    )

    # Newer segments keep appearing while the station records.
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=recording-row]').length > n",
        arg=rows.count(),
        timeout=30_000,
    )

    # The overview screenshot, once the live chart has most of its 10 s window.
    page.wait_for_function("() => window.__rigwatch.chartSpanS >= 8", timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "station_page.png"))
    no_page_errors(live_page)
