"""The fleet dashboard in headless Chromium against a real fleet server (uvicorn in a thread,
SQLite in a temporary folder): live colour changes on the open map without a reload, 50 000
machines loaded and drawn, the machine page's charts with thresholds, acknowledging an alert,
machine names rendered as text, never as markup, and the login form: alone on a first visit,
with the reason and the refusal when a token was refused."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pageutil import debug, no_page_errors
from playwright.sync_api import expect

from support.fleet_dashboard import (
    DASHBOARD_INDEX,
    SILENT_COLOURS,
    DashboardFleet,
    dashboard_config,
    insert_bulk_machines,
    running_fleet,
)

INJECTED = '<img src=x onerror="window.__pwned=1"><b>Mill</b>'

# The colour drawn at machine `id`'s place on the map canvas (its own dot or its cluster),
# read from the canvas pixels: [r, g, b, a, colour the page says it drew].
PIXEL_JS = """
(id) => {
  const m = window.__rigwatch?.map;
  const p = m?.ready ? m.clientPoint(id) : null;
  if (!p) return null;
  const c = document.querySelector('[data-testid=map-canvas]');
  const r = c.getBoundingClientRect();
  const s = c.width / r.width;
  const d = c.getContext('2d').getImageData(
    Math.round((p.x - r.left) * s), Math.round((p.y - r.top) * s), 1, 1).data;
  return [d[0], d[1], d[2], d[3], p.colour];
}
"""
IS_RED = f"(id) => {{ const p = ({PIXEL_JS})(id); return !!p && p[0] > 200 && p[1] < 130; }}"
IS_GREEN = f"(id) => {{ const p = ({PIXEL_JS})(id); return !!p && p[0] < 120 && p[1] > 160; }}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardFleet]:
    if not DASHBOARD_INDEX.is_file():
        pytest.skip(f"the fleet dashboard is not built ({DASHBOARD_INDEX}): npm run build")
    config = dashboard_config(tmp_path_factory.mktemp("fleet_dashboard"))
    with running_fleet(config) as f:
        # far apart: each is drawn on its own at the map's first zoom
        f.add_machine("press-berlin", "Press Berlin", 52.5, 13.4, site="Berlin")
        f.add_machine("press-tokyo", "Press Tokyo", 35.7, 139.7)
        f.add_machine(
            "mill-saopaulo", INJECTED, -23.5, -46.6, tags={"line": "<script>x()</script>"}
        )
        yield f


@pytest.fixture
def page(browser: Any, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.errors = []  # type: ignore[attr-defined]
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("console", lambda m: pg.console_errors.append(m.text) if m.type == "error" else None)
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            with contextlib.suppress(Exception):
                pg.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"))
        context.close()


class _Errors:
    def __init__(self, pg: Any) -> None:
        self.page_errors = pg.errors
        self.console_errors = pg.console_errors


def open_map(page: Any, fleet: DashboardFleet) -> None:
    page.goto(fleet.page_url("#/map"))
    page.wait_for_function(
        "() => window.__rigwatch?.map?.ready && window.__rigwatch.live.snapshots > 0"
    )


def test_critical_temperature_turns_red_on_the_open_map_within_a_second(
    page: Any, fleet: DashboardFleet
) -> None:
    fleet.post_status("press-berlin", temperature=42.5)
    open_map(page, fleet)
    page.wait_for_function(IS_GREEN, arg="press-berlin", timeout=5_000)
    assert "token=" not in page.url  # the token was moved out of the address
    navigations = page.evaluate("() => performance.getEntriesByType('navigation').length")
    mounts = page.evaluate("() => window.__rigwatch.mounts")

    result = fleet.post_status("press-berlin", temperature=85.0)
    assert result["colour"] == "red"
    page.wait_for_function(IS_RED, arg="press-berlin", timeout=1_000)

    # no reload: the same document, the map mounted once, the change arrived as a delta
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == navigations
    assert page.evaluate("() => window.__rigwatch.mounts") == mounts
    assert page.evaluate("() => window.__rigwatch.live.updates") >= 1
    assert page.evaluate("() => window.__rigwatch.fleet.counts.red") >= 1
    # the others are untouched: Tokyo never reported (grey), not red
    tokyo = page.evaluate(f"({PIXEL_JS})", "press-tokyo")
    assert tokyo is not None and tokyo[4] == "grey"
    no_page_errors(_Errors(page))


def test_status_filter_hides_and_shows_a_colour(page: Any, fleet: DashboardFleet) -> None:
    open_map(page, fleet)
    total = page.evaluate("() => window.__rigwatch.map.drawnMachines")
    assert total == 3
    page.get_by_test_id("filter-grey").uncheck()
    page.wait_for_function("() => window.__rigwatch.map.drawnByColour.grey === 0")
    assert page.evaluate("() => window.__rigwatch.map.clientPoint('press-tokyo')") is None
    page.get_by_test_id("filter-grey").check()
    page.wait_for_function("(n) => window.__rigwatch.map.drawnMachines === n", arg=total)


def test_machine_names_are_text_never_markup(page: Any, fleet: DashboardFleet) -> None:
    open_map(page, fleet)
    # the popup of the machine's dot
    point = page.evaluate("() => window.__rigwatch.map.clientPoint('mill-saopaulo')")
    assert point is not None and not point["cluster"]
    page.mouse.click(point["x"], point["y"])
    assert page.get_by_test_id("popup-name").text_content() == INJECTED
    # the machine page
    page.get_by_test_id("popup-open").click()
    page.wait_for_function("() => window.__rigwatch.machine?.loaded === true")
    assert page.get_by_test_id("machine-name").text_content() == INJECTED
    assert page.get_by_test_id("registry-name").text_content() == INJECTED
    assert "<script>x()</script>" in (page.get_by_test_id("registry-tags").text_content() or "")
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("[data-testid=machine-name] b").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    no_page_errors(_Errors(page))


def test_machine_page_draws_every_metric_with_its_thresholds(
    page: Any, fleet: DashboardFleet
) -> None:
    fleet.post_status("press-tokyo", temperature=50.0)
    fleet.post_status("press-tokyo", temperature=65.0)
    page.goto(fleet.page_url("#/machine/press-tokyo"))
    page.wait_for_function("() => window.__rigwatch.machine?.loaded === true")
    m = page.evaluate("() => JSON.parse(JSON.stringify(window.__rigwatch.machine))")
    assert set(m["charts"]) >= {"temperature", "pressure", "speed", "disk_volume"}
    assert m["points"]["temperature"] >= 2
    assert m["thresholds"]["temperature"] == [60.0, 80.0]
    assert m["thresholds"]["speed"] == [500.0, 2000.0, 200.0, 2500.0]
    # the time axis shows the chosen span (24 h) up to now, not just the span of the points
    assert 86_400 <= m["xSpanS"]["temperature"] <= 86_400 + 120
    assert m["colour"] == "yellow"
    assert page.locator("[data-testid=chart-temperature] canvas").count() >= 1
    # a new value is appended live
    before = m["points"]["temperature"]
    fleet.post_status("press-tokyo", temperature=66.0)
    page.wait_for_function(
        "(n) => window.__rigwatch.machine.points.temperature > n", arg=before, timeout=5_000
    )
    assert "HMC-ECM-RELINNI" in (page.get_by_test_id("machine-sysinfo").text_content() or "")
    no_page_errors(_Errors(page))


def test_alert_is_acknowledged_with_a_comment(page: Any, fleet: DashboardFleet) -> None:
    fleet.post_status("press-berlin", temperature=90.0)
    page.goto(fleet.page_url("#/alerts"))
    row = page.locator("[data-testid=alert-row][data-state=active]").filter(has_text="Press Berlin")
    row.first.wait_for()
    row.first.get_by_test_id("ack").click()
    page.get_by_test_id("ack-comment").fill("coolant pump checked")
    page.get_by_test_id("ack-confirm").click()
    page.wait_for_function("() => window.__rigwatch.alerts.acknowledged === 1")
    acked = page.locator("[data-testid=alert-row][data-state=acknowledged]").filter(
        has_text="coolant pump checked"
    )
    acked.first.wait_for()
    assert "admin" in (acked.first.get_by_test_id("alert-who").text_content() or "")
    no_page_errors(_Errors(page))


def test_login_form_when_no_token(page: Any, fleet: DashboardFleet) -> None:
    from support.fleet_server import ADMIN

    page.goto(fleet.base_url + "/#/map")
    page.get_by_test_id("login-form").wait_for()
    # the map's 401 was handled (left to the form, or shown)
    page.wait_for_function(
        "() => window.__rigwatch.problems.ignored > 0 || window.__rigwatch.problems.reported > 0"
    )
    # a first visit is no failure: the form alone, no refused-request banner beside it
    expect(page.get_by_test_id("problem")).to_have_count(0)
    assert debug(page, "problems")["reported"] == 0
    # the map's 401 is the only refusal the browser logs (the stream is closed with 1008)
    no_page_errors(_Errors(page), allowed_statuses=(401,))
    # the stream was refused and stopped: it says so rather than "connecting" for ever
    page.wait_for_function("() => window.__rigwatch.live.state === 'closed'")
    page.get_by_test_id("login-user").fill(ADMIN[0])
    page.get_by_test_id("login-password").fill(ADMIN[1])
    page.get_by_test_id("login-submit").click()
    page.wait_for_function(
        "() => window.__rigwatch?.map?.ready && window.__rigwatch.fleet.count >= 3"
    )
    assert page.get_by_test_id("user").text_content() == "admin · admin"
    expect(page.get_by_test_id("problem")).to_have_count(0)


def test_refused_token_shows_the_login_form_and_why(page: Any, fleet: DashboardFleet) -> None:
    from support.fleet_server import ADMIN

    # a token of its own, logged out: the server refuses it as it does an expired one
    r = httpx.post(
        f"{fleet.base_url}/api/auth/login",
        json={"username": ADMIN[0], "password": ADMIN[1]},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    token = str(r.json()["token"])
    out = httpx.post(
        f"{fleet.base_url}/api/auth/logout",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert out.status_code == 204, out.text

    page.goto(f"{fleet.base_url}/?token={token}#/map")
    page.get_by_test_id("login-form").wait_for()
    expect(page.get_by_test_id("login-note")).to_contain_text("login")
    # the token was sent and refused: that is said beside the form
    refused = page.get_by_test_id("problem").filter(has_text="GET /api/fleet/map")
    expect(refused).to_have_count(1)
    expect(refused.get_by_test_id("problem-status")).to_have_text("401")
    expect(refused.get_by_test_id("problem-detail")).to_contain_text("token")
    assert page.evaluate("() => localStorage.getItem('rigwatch.fleet.token')") == ""
    # logged in again: the old token's refusal no longer holds and is gone
    page.get_by_test_id("login-user").fill(ADMIN[0])
    page.get_by_test_id("login-password").fill(ADMIN[1])
    page.get_by_test_id("login-submit").click()
    page.wait_for_function("() => window.__rigwatch?.map?.ready")
    expect(page.get_by_test_id("problem")).to_have_count(0)


def test_fifty_thousand_machines_are_loaded_and_drawn(
    browser: Any, tmp_path: Path, artifacts_dir: Path
) -> None:
    if not DASHBOARD_INDEX.is_file():
        pytest.skip(f"the fleet dashboard is not built ({DASHBOARD_INDEX}): npm run build")
    n = 50_000
    config = dashboard_config(tmp_path)
    counts = insert_bulk_machines(config, n, SILENT_COLOURS)
    with running_fleet(config) as f:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        try:
            pg = context.new_page()
            pg.goto(f.page_url("#/map"))
            pg.wait_for_function(
                "(n) => window.__rigwatch?.map?.ready && window.__rigwatch.map.drawnMachines === n",
                arg=n,
                timeout=30_000,
            )
            d = pg.evaluate("() => JSON.parse(JSON.stringify(window.__rigwatch.map))")
            fleet_counts = pg.evaluate("() => window.__rigwatch.fleet.counts")
            pg.screenshot(path=str(artifacts_dir / "fleet-map-50k.png"))
        finally:
            context.close()
    assert d["indexed"] == n
    assert d["clusters"] > 0 and d["clusters"] + d["points"] < 2_000  # clustered, not 50 000 dots
    assert fleet_counts == {
        c: counts.get(c, 0) for c in ("red", "black", "yellow", "grey", "green")
    }
    assert d["drawnByColour"] == fleet_counts
