"""The shell: the navigation switches pages, the URL names the page, a reload keeps it, the
header stays, and leaving the Live page ends its live subscription (and coming back starts a
new one)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from pageutil import debug, frames_after, frames_received, no_page_errors, wait_coloured
from playwright.sync_api import expect

E2EStation = Any
PageSession = Any

pytestmark = pytest.mark.e2e


def test_navigation_switches_pages_and_urls(
    live_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = live_page.page
    nav = page.get_by_test_id("nav")
    # "/" is the Live page.
    expect(page.get_by_test_id("page-live")).to_be_visible()
    expect(nav.get_by_test_id("nav-live")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_test_id("nav-recordings")).not_to_have_attribute("aria-current", "page")
    expect(nav.locator("a")).to_have_text(["Live", "Recordings", "Acoustic camera", "Control"])
    frames_after(page, 10)
    assert debug(page, "page") == "live"

    # To Recordings: the URL says so, the Live page is gone, the header stays.
    nav.get_by_test_id("nav-recordings").click()
    expect(page).to_have_url(re.compile(r"#/recordings$"))
    expect(page.get_by_test_id("page-recordings")).to_be_visible()
    expect(page.get_by_test_id("page-live")).to_have_count(0)
    expect(nav.get_by_test_id("nav-recordings")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("station-name")).to_have_text(station.name)
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    assert debug(page, "page") == "recordings"
    expect(page).to_have_title(re.compile(rf"^Recordings · {station.name} · rigwatch$"))

    # Reload: still Recordings.
    page.reload()
    expect(page.get_by_test_id("page-recordings")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/recordings$"))
    expect(page.get_by_test_id("nav-recordings")).to_have_attribute("aria-current", "page")
    page.wait_for_function("() => window.__rigwatch.page === 'recordings'")

    # Back in history: the Live page again, drawing.
    page.go_back()
    expect(page.get_by_test_id("page-live")).to_be_visible()
    page.wait_for_function("() => window.__rigwatch.live?.mounted")
    frames_after(page, 10)
    wait_coloured(page, "[data-testid=live-chart]", 300)
    no_page_errors(live_page)


def test_leaving_live_page_ends_the_subscription(live_page: PageSession) -> None:
    page = live_page.page
    spy = live_page.ws
    frames_after(page, 10)
    assert spy.subscriptions()[-1]["device"] == "bearing_12k"

    page.get_by_test_id("nav-recordings").click()
    expect(page.get_by_test_id("page-recordings")).to_be_visible()
    # The page unsubscribed on the wire, after its last subscribe ...
    page.wait_for_function("() => window.__rigwatch.live?.mounted === false")
    kinds = [(m["type"], m.get("device")) for m in spy.sent]
    assert kinds[-1] == ("unsubscribe", "bearing_12k"), kinds
    # ... the server confirmed, and data frames stop (those already in flight may land).
    deadline = time.monotonic() + 5
    while not any(m.get("type") == "unsubscribed" for m in spy.other):
        assert time.monotonic() < deadline, "no 'unsubscribed' answer"
        page.wait_for_timeout(100)
    page.wait_for_timeout(500)
    on_wire = len(spy.frames)
    seen = frames_received(page)
    page.wait_for_timeout(1500)  # 45 frames at 30 frames/s, were it still subscribed
    assert len(spy.frames) == on_wire, f"{len(spy.frames) - on_wire} data frames after leaving"
    assert frames_received(page) == seen
    # The connection itself stays (the header shows it) and was not reopened.
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "open")
    assert spy.sockets == 1

    # Coming back subscribes again, on the same connection, with fresh counters.
    page.get_by_test_id("nav-live").click()
    expect(page).to_have_url(re.compile(r"#/live$"))
    page.wait_for_function("() => window.__rigwatch.live?.mounted")
    frames_after(page, 10)
    assert [m["type"] for m in spy.sent][-1] == "subscribe"
    assert spy.sockets == 1
    assert debug(page, "live")["seqGaps"] == 0
    assert debug(page, "mounts") == 3  # live, recordings, live
    no_page_errors(live_page)


def test_unknown_route_names_the_pages(app_page: PageSession, station: E2EStation) -> None:
    page = app_page.page
    page.goto(station.base_url + "/#/no-such-page")
    notice = page.get_by_test_id("page-not-found")
    expect(notice).to_contain_text("no-such-page")
    notice.get_by_role("link", name="Recordings").click()
    expect(page.get_by_test_id("page-recordings")).to_be_visible()
    no_page_errors(app_page)
