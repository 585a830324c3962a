"""The Live page in a real headless Chromium against a real station subprocess.

Checks that live frames arrive without gaps and are drawn (counters, the frames on the wire,
canvas pixels), that the channel picker, device selector and window buttons change the
subscription (seen in the frames on the wire), and that the header and status cards fill in.
Screenshots go to test-artifacts/e2e/.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from pageutil import debug, frames_after, no_page_errors, wait_coloured
from playwright.sync_api import expect

# Fixtures (tests/e2e/conftest.py): ``station`` is an E2EStation, ``live_page`` a PageSession.
E2EStation = Any
PageSession = Any

pytestmark = pytest.mark.e2e

LIVE_CHART = "[data-testid=live-chart]"


def assert_consecutive(frames: list[dict[str, Any]]) -> None:
    """Frames of one subscription on the wire: seq goes up by exactly 1 from frame to frame."""
    seqs = [f["seq"] for f in frames]
    steps = {b - a for a, b in itertools.pairwise(seqs)}
    assert steps == {1}, f"seq of consecutive frames: {seqs}"


def wait_channels(s: PageSession, device: str, channels: list[str]) -> None:
    """Waits until the page draws frames of ``device`` with exactly ``channels``, then checks
    the newest frames on the wire (decoded here, independently of the page) agree."""
    s.page.wait_for_function(
        """([device, channels]) => {
             const d = window.__rigwatch.live;
             if (!d) return false;
             return d.subscription && d.subscription.device === device &&
               JSON.stringify(d.lastFrameChannels) === JSON.stringify(channels);
           }""",
        arg=[device, channels],
    )
    frames_after(s.page, 10)
    newest = s.ws.frames_of_last_subscription(device)[-5:]
    assert len(newest) == 5, f"only {len(s.ws.frames)} data frames seen on the wire"
    for f in newest:
        assert f["device"] == device, f
        assert list(f["channels"]) == channels, f
        assert list(f["shape"])[1] == len(channels), f
    assert_consecutive(newest)
    sub = s.ws.subscriptions()[-1]
    assert sub["device"] == device and list(sub["channels"]) == channels, sub


def test_live_chart_draws_real_data(
    live_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = live_page.page
    expect(page.get_by_test_id("page-live")).to_be_visible()
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    expect(page.get_by_test_id("station-name")).to_have_text(station.name)
    expect(page.get_by_test_id("version")).to_have_text(re.compile(r"^v\d"))
    expect(page.get_by_test_id("uptime")).to_have_text(re.compile(r"\d"))
    expect(page.get_by_test_id("station-mode")).to_have_text(
        re.compile(r"^(idle|monitoring|test|maintenance)$")
    )

    # Frames arrive and keep arriving, at a sensible rate, with a sensible latency.
    page.wait_for_function("() => window.__rigwatch.live?.framesReceived > 0")
    before = debug(page, "live")
    frames_after(page, 30)
    page.wait_for_function("() => window.__rigwatch.live?.samplesDrawn > 0")
    page.wait_for_function("() => window.__rigwatch.live?.framesPerSecond > 5")
    d = debug(page, "live")
    assert d["framesReceived"] >= before["framesReceived"] + 30, (before, d)
    # every frame is drawn on the next animation frame (several frames may share one)
    assert d["draws"] >= before["draws"] + 10, (before, d)
    assert d["decodeErrors"] == 0 and d["serverErrors"] == [], d
    assert d["seqGaps"] == 0, d
    assert d["lastFrameChannels"] == ["DE", "FE", "BA"], d
    assert -50 < d["lastLatencyMs"] < 5_000, d
    expect(page.get_by_test_id("frames-received")).not_to_have_text("0")
    expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"^-?\d+(\.\d)?$"))

    # What the page asked for, seen on the wire; the frames it got follow each other.
    sub = live_page.ws.subscriptions()[0]
    assert sub["device"] == "bearing_12k" and sub["channels"] == ["DE", "FE", "BA"], sub
    assert sub["display_rate_hz"] > 0 and sub["fps"] > 0, sub
    frames = live_page.ws.frames_of_last_subscription("bearing_12k")
    assert len(frames) >= 30, f"{len(frames)} frames on the wire"
    assert_consecutive(frames)
    # the page saw the same stream: its newest seq is one the wire carried
    assert d["lastSeq"] in {f["seq"] for f in frames}, (d["lastSeq"], frames[-3:])

    # The chart canvas really has the series drawn on it.
    wait_coloured(page, LIVE_CHART, 500)

    # Status panels: buffer filling, recorder writing.
    buf = page.get_by_test_id("buffer-status")
    expect(buf.get_by_test_id("device-card-bearing_12k")).to_be_visible()
    expect(buf.get_by_test_id("device-card-healthy_48k")).to_be_visible()
    expect(buf.get_by_test_id("buffer-fill-bearing_12k")).to_have_text(re.compile(r"^\d+\.\d %$"))
    expect(buf.get_by_test_id("rows-recorded-bearing_12k")).not_to_have_text(re.compile(r"^(0|—)$"))
    card = buf.get_by_test_id("device-card-bearing_12k")
    expect(card.locator(".badge[data-kind=device]")).to_have_attribute("data-state", "running")
    expect(card.locator(".badge[data-kind=recorder]")).to_have_attribute("data-state", "recording")
    # the recordings' file system's free space, as the station measures it (kB .. TB)
    free = buf.get_by_test_id("disk-free-bearing_12k")
    expect(free).to_have_text(re.compile(r"^[\d.]+ [kMGT]B$"))

    # The screenshot once the chart has most of its 10 s window.
    page.wait_for_function("() => window.__rigwatch.live?.chartSpanS >= 8", timeout=30_000)
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
    page.wait_for_function("() => window.__rigwatch.live?.samplesDrawn > 0")

    picker.get_by_test_id("channel-toggle-FE").check()
    wait_channels(live_page, "bearing_12k", ["DE", "FE", "BA"])

    # The last checked channel cannot be unchecked: there is always something to draw.
    picker.get_by_test_id("channel-toggle-FE").uncheck()
    picker.get_by_test_id("channel-toggle-BA").uncheck()
    wait_channels(live_page, "bearing_12k", ["DE"])
    expect(picker.get_by_test_id("channel-toggle-DE")).to_be_disabled()

    # Another device: its own channels, its own rate; the first device is unsubscribed.
    page.get_by_test_id("device-select").select_option("healthy_48k")
    wait_channels(live_page, "healthy_48k", ["DE", "FE"])
    expect(picker.locator("input[type=checkbox]")).to_have_count(2)
    unsubscribed = [m for m in live_page.ws.sent if m.get("type") == "unsubscribe"]
    assert unsubscribed and unsubscribed[-1]["device"] == "bearing_12k", live_page.ws.sent[-4:]
    wait_coloured(page, LIVE_CHART, 300)

    # A shorter window asks for more display points per second.
    before = debug(page, "live")["subscription"]["displayRateHz"]
    page.get_by_test_id("window-2").click()
    page.wait_for_function(
        "(r) => window.__rigwatch.live?.subscription.displayRateHz > r", arg=before
    )
    wait_channels(live_page, "healthy_48k", ["DE", "FE"])
    assert live_page.ws.subscriptions()[-1]["display_rate_hz"] > before
    page.wait_for_function("() => window.__rigwatch.live?.samplesDrawn > 0")
    assert debug(page, "live")["seqGaps"] == 0
    page.screenshot(path=str(artifacts_dir / "live_page_48k_2s.png"))
    no_page_errors(live_page)
