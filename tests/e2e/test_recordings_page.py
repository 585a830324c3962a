"""The Recordings page: segments recorded by the station are listed, plotted and downloadable;
the buffer-snapshot button writes snapshots and shows the server's refusal (rate limit) as
problem details; a bad request shows its problem details, field errors included."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pageutil import SNAPSHOT_MIN_INTERVAL_S, debug, no_page_errors, wait_coloured
from playwright.sync_api import expect

E2EStation = Any
PageSession = Any

pytestmark = pytest.mark.e2e

PLOT = "[data-testid=recording-plot]"


def open_recordings(s: PageSession, station: E2EStation, file: str | None = None) -> Any:
    route = "#/recordings" + (f"/{quote(file, safe='')}" if file else "")
    s.page.goto(f"{station.base_url}/{route}")
    expect(s.page.get_by_test_id("page-recordings")).to_be_visible()
    return s.page


def test_recorded_segment_is_listed_plotted_and_downloadable(
    app_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = open_recordings(app_page, station)
    rows = page.get_by_test_id("recordings-list").get_by_test_id("recording-row")
    # Segments close every 2 s; the list refreshes when the recorder reports a new one.
    row = rows.filter(has_text="bearing_12k").first
    expect(row).to_be_visible(timeout=30_000)
    filename = row.get_attribute("data-key")
    assert filename and filename.startswith("bearing_12k") and filename.endswith(".parquet")
    assert any(station.recordings.rglob(filename)), f"{filename} not under {station.recordings}"
    listed = httpx.get(f"{station.base_url}/api/parquet_files", timeout=10).json()["files"]
    info = next(f for f in listed if f["filename"] == filename)
    cells = row.locator("td")
    expect(cells.nth(1)).to_have_text("bearing_12k")
    expect(cells.nth(4)).to_have_text(f"{info['rows']:,}")  # rows
    expect(cells.nth(6)).to_have_text("—")  # no error
    expect(page.get_by_test_id("recordings-count")).to_have_text(re.compile(r"^[1-9]\d*$"))

    # Choosing it: the URL names it, the plot draws its channels.
    row.click()
    expect(page).to_have_url(
        re.compile(re.escape(f"#/recordings/{quote(filename, safe='')}") + "$")
    )
    plot = page.get_by_test_id("recording-plot")
    expect(plot).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(plot).to_have_attribute("data-filename", filename)
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(page.get_by_test_id("recording-title")).to_have_text(filename)
    wait_coloured(page, PLOT, 500)
    assert debug(page, "recordings")["plotsRendered"] == 1
    assert debug(page, "recordings")["plotted"] == filename

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
    assert len(body) == info["size_bytes"]

    # Newer segments keep appearing while the station records.
    count = rows.count()
    page.wait_for_function(
        "(n) => document.querySelectorAll('[data-testid=recording-row]').length > n",
        arg=count,
        timeout=30_000,
    )
    page.mouse.move(700, 700)  # the cursor readout over the plot
    page.screenshot(path=str(artifacts_dir / "recordings_page.png"))

    # A reload shows the same recording again.
    page.reload()
    expect(page.get_by_test_id("recording-plot")).to_have_attribute(
        "data-filename", filename, timeout=30_000
    )
    expect(page.get_by_test_id("recording-plot")).to_have_attribute("data-state", "ready")
    wait_coloured(page, PLOT, 500)
    no_page_errors(app_page)


def test_snapshot_button_saves_then_shows_the_rate_limit(
    app_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = open_recordings(app_page, station)
    button = page.get_by_test_id("save-snapshot")
    result = page.get_by_test_id("snapshot-result")
    problems = page.get_by_test_id("problems").get_by_test_id("problem")
    expect(problems).to_have_count(0)

    # First click: one snapshot per device, listed at once.
    with page.expect_response("**/api/save_sensor_buffer") as first:
        button.click()
    assert first.value.status == 200, first.value.text()
    files = first.value.json()["files"]
    devices = sorted(
        re.sub(r"^buffer_(.+)_\d{8}T\d{6}_\d{6}Z(-\d+)?\.parquet$", r"\1", f) for f in files
    )
    assert devices == ["bearing_12k", "healthy_48k"], files
    expect(result).to_contain_text("saved 2 files")
    for f in files:
        assert f.startswith("buffer_") and f.endswith(".parquet"), f
        assert any(station.recordings.rglob(f)), f"{f} not under {station.recordings}"
        row = page.locator(f'[data-testid=recording-row][data-key="{f}"]')
        expect(row).to_be_visible()
        expect(row.get_by_test_id("snapshot-tag")).to_have_text("snapshot")
    assert debug(page, "recordings")["snapshotFiles"] == files

    # An immediate second click: refused by the server's rate limit, shown as problem details.
    expect(button).to_be_enabled()
    with page.expect_response("**/api/save_sensor_buffer") as second:
        button.click()
    assert second.value.status == 429
    assert second.value.headers["content-type"].startswith("application/problem+json")
    body = second.value.json()
    assert f"one per {SNAPSHOT_MIN_INTERVAL_S} s" in body["detail"], body
    shown = problems.first
    expect(shown).to_be_visible()
    expect(shown).to_have_attribute("data-status", "429")
    expect(shown.get_by_test_id("problem-status")).to_have_text("429")
    expect(shown.get_by_test_id("problem-title")).to_have_text(body["title"])
    expect(shown.get_by_test_id("problem-detail")).to_have_text(body["detail"])
    expect(shown.get_by_test_id("problem-request")).to_have_text("POST /api/save_sensor_buffer")
    expect(shown).to_contain_text(body["detail"])
    expect(result).to_contain_text("not saved: 429")
    assert debug(page, "recordings")["snapshotRefused"] == 429
    # nothing new was written
    assert len(list(station.recordings.rglob("buffer_*.parquet"))) == len(files)
    page.screenshot(path=str(artifacts_dir / "recordings_snapshot_refused.png"))

    # The same refusal again counts up instead of stacking; dismissing removes it.
    with page.expect_response("**/api/save_sensor_buffer") as third:
        button.click()
    assert third.value.status == 429
    expect(problems).to_have_count(1)
    expect(shown).to_contain_text("×2")
    shown.get_by_test_id("problem-dismiss").click()
    expect(problems).to_have_count(0)
    no_page_errors(app_page, allowed_statuses=(429,))


def test_bad_requests_show_problem_details(
    app_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    # A link to a recording that does not exist: 404, its detail shown.
    missing = "bearing_12k_no_such_segment.parquet"
    expected = httpx.get(f"{station.base_url}/api/parquet_data/{missing}", timeout=10)
    assert expected.status_code == 404
    page = open_recordings(app_page, station, missing)
    shown = page.get_by_test_id("problem").first
    expect(shown).to_have_attribute("data-status", "404")
    expect(shown.get_by_test_id("problem-title")).to_have_text(expected.json()["title"])
    expect(shown.get_by_test_id("problem-detail")).to_have_text(expected.json()["detail"])
    expect(shown.get_by_test_id("problem-request")).to_have_text(f"GET /api/parquet_data/{missing}")
    expect(page.get_by_test_id("recording-plot")).to_have_attribute("data-state", "error")
    expect(shown.get_by_test_id("problem-fields")).to_have_count(0)
    shown.get_by_test_id("problem-dismiss").click()
    expect(page.get_by_test_id("problem")).to_have_count(0)

    # A request the server finds invalid field by field: the page's query is altered on the way
    # (max_points=1, below the API's minimum of 2); the real server answers 422 and names it.
    def too_few_points(route: Any) -> None:
        url = re.sub(r"max_points=\d+", "max_points=1", route.request.url)
        route.continue_(url=url)

    page.route("**/api/parquet_data/**", too_few_points)
    rows = page.get_by_test_id("recording-row").filter(has_text="bearing_12k")
    expect(rows.first).to_be_visible(timeout=30_000)
    with page.expect_response("**/api/parquet_data/**") as answer:
        rows.first.click()
    assert answer.value.status == 422
    body = answer.value.json()
    assert body["errors"], body
    shown = page.get_by_test_id("problem").first
    expect(shown).to_have_attribute("data-status", "422")
    expect(shown.get_by_test_id("problem-title")).to_have_text(body["title"])
    expect(shown.get_by_test_id("problem-detail")).to_have_text(body["detail"])
    fields = shown.get_by_test_id("problem-field")
    expect(fields).to_have_count(len(body["errors"]))
    for i, e in enumerate(body["errors"]):
        expect(fields.nth(i)).to_contain_text(e["field"])
        expect(fields.nth(i)).to_contain_text(e["reason"])
    assert any("max_points" in e["field"] for e in body["errors"]), body
    expect(page.get_by_test_id("recording-plot")).to_have_attribute("data-state", "error")
    page.screenshot(path=str(artifacts_dir / "problem_details.png"))
    no_page_errors(app_page, allowed_statuses=(404, 422))
