"""The acoustic camera page in a real headless Chromium against a real station subprocess.

The station replays a demo recording of the ball mill's 9-microphone array (48 kHz, looped):
the drone recording on the pipe surface at grid point 112 (row 2, col 12) and a white-noise
source at point 138 (row 2, col 38), see ``rigwatch.acoustics.demo_scene``. Checks that the
map is painted and its peaks name the sources' cells, that MUSIC re-labels the colour scale
as a pseudo-spectrum, that a band above Nyquist is refused with problem details, that clicks
on cells start and stop listening with audio frames arriving, decoded and scheduled on the
page's AudioContext (independent of a sound card: the counters are read, not the output),
and that a station without a camera says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pageutil import debug, no_page_errors
from playwright.sync_api import expect

from rigwatch.acoustics.demo_scene import DemoScene, write_demo_scene
from support.process import StationProcess

PageSession = Any

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DRONE_WAV = ROOT / "data" / "acoustics" / "measurement_drone.wav"
STATION_NAME = "e2e_acoustics"
MAP = "[data-testid=acoustic-map] canvas"

STARTUP_TIMEOUT_S = 60.0

SCENE = DemoScene()
GRID_COLS = SCENE.grid.n_along
SOURCES = [divmod(SCENE.drone_point, GRID_COLS), divmod(SCENE.noise_point, GRID_COLS)]
"""(row, col) of the drone and of the noise source: (2, 12) and (2, 38)."""


@dataclass
class CameraStation:
    """The station under test (what conftest's ``app_page`` reads of a station)."""

    process: StationProcess
    name: str = STATION_NAME

    @property
    def base_url(self) -> str:
        return self.process.base_url


E2EStation = CameraStation


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStation]:
    """A station whose only device replays the demo scene into an acoustic camera (overrides
    conftest's station for this module)."""
    if not DRONE_WAV.is_file():
        pytest.fail(f"test data missing: {DRONE_WAV}", pytrace=False)
    tmp = tmp_path_factory.mktemp("e2e_acoustics")
    scene = tmp / "scene.h5"
    write_demo_scene(DRONE_WAV, scene)
    recordings = tmp / "recordings"
    config = tmp / "station.toml"
    config.write_text(
        f"""
name = "{STATION_NAME}"

[server]
host = "127.0.0.1"

[recorder]
enabled = false
directory = {json.dumps(str(recordings))}

[[devices]]
name = "microphones"
driver = "replay"
path = {json.dumps(str(scene))}
pace = "realtime"
loop = true

[acoustics]
device = "microphones"
array = {{ builtin = "ball_mill_9" }}
map_rate_hz = 4
band = {{ kind = "range", low_hz = 1000, high_hz = 7000 }}
"""
    )
    try:
        process = StationProcess(config, timeout_s=STARTUP_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    st = CameraStation(process)
    try:
        yield st
    finally:
        process.stop(timeout_s=15)


@pytest.fixture
def camera_page(app_page: PageSession, station: E2EStation) -> Iterator[PageSession]:
    """The page opened on ``#/acoustics`` with its first maps drawn; the camera is put back to
    conventional beamforming over 1-7 kHz and its selections removed afterwards."""
    app_page.page.goto(station.base_url + "/#/acoustics")
    app_page.page.wait_for_function("() => window.__rigwatch?.acoustics?.mapDraws >= 2")
    try:
        yield app_page
    finally:
        url = station.base_url
        band = {"kind": "range", "centre_hz": None, "low_hz": 1000, "high_hz": 7000}
        httpx.post(
            f"{url}/api/acoustics/parameters",
            json={"method": "conventional", "band": band},
            timeout=10,
        ).raise_for_status()
        for sel in httpx.get(f"{url}/api/acoustics/selections", timeout=10).json():
            httpx.delete(f"{url}/api/acoustics/selections/{sel['id']}", timeout=10)


def cell_centre(page: Any, row: int, col: int) -> dict[str, float]:
    pos = page.evaluate("([r, c]) => window.__rigwatch.acoustics.cellCentre(r, c)", [row, col])
    return {"x": float(pos["x"]), "y": float(pos["y"])}


# Colours at the centre of every cell of the map canvas (device pixels).
CELL_COLOURS_JS = """
([sel, rows, cols]) => {
  const canvas = document.querySelector(sel);
  const g = canvas.getContext("2d");
  const dpr = canvas.width / canvas.clientWidth;
  const out = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const p = window.__rigwatch.acoustics.cellCentre(r, c);
    const d = g.getImageData(Math.round(p.x * dpr), Math.round(p.y * dpr), 1, 1).data;
    out.push(`${d[0]},${d[1]},${d[2]},${d[3]}`);
  }
  return out;
}
"""


def near(cell: tuple[int, int], target: tuple[int, int]) -> bool:
    """Within one grid cell (rows and columns)."""
    return abs(cell[0] - target[0]) <= 1 and abs(cell[1] - target[1]) <= 1


def audio_frames_on_wire(s: PageSession) -> list[dict[str, Any]]:
    return [m for m in s.ws.other if m.get("type") == "audio"]


def test_map_painted_and_peaks_at_the_sources(
    camera_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = camera_page.page
    expect(page.get_by_test_id("nav-acoustics")).to_have_attribute("aria-current", "page")
    expect(page.get_by_test_id("acoustic-device")).to_contain_text("9 mics")
    expect(page.get_by_test_id("scale-label")).to_have_attribute("data-quantity", "spl_db")
    expect(page.get_by_test_id("scale-label")).to_contain_text("dB re 20 µPa")
    expect(page.get_by_test_id("map-method")).to_have_text("conventional")
    expect(page.get_by_test_id("map-band")).to_have_text("1000-7000 Hz")
    expect(page.get_by_test_id("map-seq")).to_have_text(re.compile(r"^\d[\d,]*$"))
    expect(page.get_by_test_id("map-time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d\d$"))
    expect(page.get_by_test_id("map-compute")).to_have_text(re.compile(r"^\d"))

    # The canvas is painted: the cells' colours vary over the map (levels, not one colour).
    rows, cols = 5, GRID_COLS
    colours = page.evaluate(f"({CELL_COLOURS_JS})", [MAP, rows, cols])
    assert len(colours) == rows * cols
    assert all(c.endswith(",255") for c in colours), "a cell is not painted opaque"
    assert len(set(colours)) >= 10, f"the map is (nearly) uniform: {sorted(set(colours))}"

    # The peak list names the sources' cells (within one cell, as the grid's resolution).
    def peak_cells() -> list[tuple[int, int]]:
        rows_ = page.get_by_test_id("peak")
        return [
            (int(r.get_attribute("data-row") or -1), int(r.get_attribute("data-col") or -1))
            for r in rows_.all()
        ]

    page.wait_for_function(
        """(sources) => {
             const cells = [...document.querySelectorAll('[data-testid=peak]')]
               .map((tr) => [Number(tr.dataset.row), Number(tr.dataset.col)]);
             return sources.every(([r, c]) =>
               cells.some(([pr, pc]) => Math.abs(pr - r) <= 1 && Math.abs(pc - c) <= 1));
           }""",
        arg=SOURCES,
    )
    cells = peak_cells()
    for src in SOURCES:
        assert any(near(c, src) for c in cells), (src, cells)
    first = page.get_by_test_id("peak").first
    expect(first).to_contain_text(re.compile(r"row \d+, col \d+"))
    expect(first).to_contain_text(re.compile(r"\d+\.\d dB"))
    # the peaks are those of the frames the page decoded
    d = debug(page, "acoustics")
    assert d["mapsReceived"] >= 2 and d["decodeErrors"] == 0, d
    assert d["subscribed"] == {"maps": True, "audio": False}, d

    page.screenshot(path=str(artifacts_dir / "acoustics-map.png"))
    no_page_errors(camera_page)


def test_music_relabels_the_scale_as_pseudo_spectrum(
    camera_page: PageSession, artifacts_dir: Path
) -> None:
    page = camera_page.page
    label = page.get_by_test_id("scale-label")
    expect(label).to_have_attribute("data-quantity", "spl_db")
    page.get_by_test_id("method-select").select_option("music")
    expect(label).to_have_attribute("data-quantity", "pseudo_spectrum")
    expect(label).to_contain_text("pseudo-spectrum")
    expect(label).not_to_contain_text("dB")
    expect(page.get_by_test_id("map-method")).to_have_text("music")
    expect(page.get_by_test_id("dynamic-range-value")).not_to_contain_text("dB")
    d = debug(page, "acoustics")
    assert d["scaleTitle"].startswith("pseudo-spectrum"), d["scaleTitle"]
    assert "dB" not in d["scaleTitle"], d["scaleTitle"]

    # The dynamic range slider re-scales the colours (10 lg(P/Pmax) down to -range).
    page.get_by_test_id("dynamic-range").fill("6")
    expect(page.get_by_test_id("dynamic-range-value")).to_have_text("6")
    assert debug(page, "acoustics")["rangeDb"] == 6
    page.screenshot(path=str(artifacts_dir / "acoustics-music.png"))

    page.get_by_test_id("method-select").select_option("conventional")
    expect(label).to_have_attribute("data-quantity", "spl_db")
    expect(page.get_by_test_id("dynamic-range-value")).to_have_text("6 dB")
    no_page_errors(camera_page)


def test_band_above_nyquist_is_refused_with_problem_details(
    camera_page: PageSession, station: E2EStation
) -> None:
    page = camera_page.page
    page.get_by_test_id("band-kind").select_option("range")
    page.get_by_test_id("band-low").fill("30000")
    page.get_by_test_id("band-high").fill("40000")
    page.get_by_test_id("band-apply").click()
    problem = page.get_by_test_id("problem").first
    expect(problem).to_be_visible()
    expect(problem).to_have_attribute("data-status", "422")
    expect(problem.get_by_test_id("problem-request")).to_have_text("POST /api/acoustics/parameters")
    expect(problem.get_by_test_id("problem-detail")).to_contain_text("Nyquist")
    # Nothing changed: the station maps the configured band, the form keeps what was typed.
    params = httpx.get(f"{station.base_url}/api/acoustics", timeout=10).json()["parameters"]
    assert params["band"]["low_hz"] == 1000 and params["band"]["high_hz"] == 7000, params
    expect(page.get_by_test_id("map-band")).to_have_text("1000-7000 Hz")
    expect(page.get_by_test_id("band-low")).to_have_value("30000")

    # A band that fits is taken and the maps follow it.
    page.get_by_test_id("band-kind").select_option("third_octave")
    page.get_by_test_id("band-centre").select_option("4000")
    page.get_by_test_id("band-apply").click()
    expect(page.get_by_test_id("map-band")).to_contain_text("4000")
    assert debug(page, "acoustics")["parameterRefusals"] == 1
    no_page_errors(camera_page, allowed_statuses=(422,))


def test_clicking_cells_listens_and_audio_frames_arrive(
    camera_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = camera_page.page
    canvas = page.locator(MAP)
    (r1, c1), (r2, c2) = SOURCES

    # A click on a cell selects it and asks the WebSocket for audio; frames arrive and are
    # decoded and scheduled on the AudioContext made by the click.
    canvas.click(position=cell_centre(page, r1, c1))
    sel = page.locator(f"[data-testid=selection][data-row='{r1}'][data-col='{c1}']")
    expect(sel).to_have_count(1)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=listen-panel]').dataset.frames) >= 10"
    )
    d = debug(page, "acoustics")
    assert d["subscribed"] == {"maps": True, "audio": True}, d
    assert d["soundOn"] is True and d["contextState"] != "none", d
    assert d["audioDecoded"] >= 10, d
    assert d["audioScheduled"] >= 1, d
    assert d["decodeErrors"] == 0, d
    sent = [m for m in camera_page.ws.sent if m.get("type") == "subscribe_acoustics"]
    assert sent[-1] == {"type": "subscribe_acoustics", "maps": True, "audio": True}, sent
    sel_id = sel.get_attribute("data-id")
    wire = audio_frames_on_wire(camera_page)
    assert wire and wire[-1]["selections"] == [sel_id], wire[-1] if wire else None
    assert wire[-1]["dtype"] == "<i2" and wire[-1]["shape"][1] == 1, wire[-1]
    expect(page.get_by_test_id("audio-frames")).not_to_have_text("0")

    # A second cell: both are listened to; the frames carry one channel per selection.
    canvas.click(position=cell_centre(page, r2, c2))
    expect(page.get_by_test_id("selection")).to_have_count(2)
    page.wait_for_function(
        "() => window.__rigwatch.acoustics.selections.length === 2 && "
        "document.querySelectorAll('[data-testid=selection]').length === 2"
    )
    n = len(audio_frames_on_wire(camera_page))
    page.wait_for_function(
        "(n) => window.__rigwatch.acoustics.audioFramesReceived >= n",
        arg=debug(page, "acoustics")["audioFramesReceived"] + 5,
    )
    both = [f for f in audio_frames_on_wire(camera_page)[n:] if len(f["selections"]) == 2]
    assert both, "no audio frame with both selections"
    ids = set(both[-1]["selections"])
    assert sel_id in ids and both[-1]["shape"][1] == 2, both[-1]
    # one of them heard alone
    other = next(i for i in ids if i != sel_id)
    page.get_by_test_id(f"mix-{other}").check()
    assert debug(page, "acoustics")["mix"] == other
    page.screenshot(path=str(artifacts_dir / "acoustics-listening.png"))

    # A click on a selected cell stops it; the stop button stops the other.
    canvas.click(position=cell_centre(page, r1, c1))
    expect(sel).to_have_count(0)
    page.get_by_test_id("selection-stop").click()
    expect(page.get_by_test_id("selection")).to_have_count(0)
    assert httpx.get(f"{station.base_url}/api/acoustics/selections", timeout=10).json() == []
    page.wait_for_function(
        "() => window.__rigwatch.acoustics.subscribed?.audio === false && "
        "window.__rigwatch.acoustics.mix === 'mix'"
    )
    d = debug(page, "acoustics")
    assert d["audioGaps"] == 0, d
    no_page_errors(camera_page)


def test_station_without_camera_says_so(app_page: PageSession, station: E2EStation) -> None:
    page = app_page.page
    problem = {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "this station has no acoustic camera (no [acoustics] section)",
    }
    page.route(
        "**/api/acoustics",
        lambda route: route.fulfill(
            status=404, content_type="application/problem+json", body=json.dumps(problem)
        ),
    )
    page.goto(station.base_url + "/#/acoustics")
    none = page.get_by_test_id("no-acoustic-camera")
    expect(none).to_be_visible()
    expect(none).to_contain_text("This station has no acoustic camera")
    expect(page.get_by_test_id("acoustic-panel")).to_be_hidden()
    assert debug(page, "acoustics")["available"] is False
    # no subscription on a station without a camera
    assert not [m for m in app_page.ws.sent if m.get("type") == "subscribe_acoustics"]
    assert debug(page, "problems")["visible"] == 0
    no_page_errors(app_page, allowed_statuses=(404,))
