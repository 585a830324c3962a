"""The Control page in a real headless Chromium against a real station subprocess: the rocket
stand's configuration under ``--simulate`` (the STM32 emulator on a pseudo-terminal answers
every valve word with ``ACK:``, the Arduino emulator drives the step motor).

Checks that the page takes control authority and keeps it (heartbeats), that a valve opened
on the page is shown acknowledged by the board, that a command refused by an interlock shows
the interlock's reason and moves nothing, that a refused runner transition shows its reason,
that Abort during a running scenario brings the runner to ``safe`` with every valve in its
safe position and the abort in the audit log, that without authority the commands are
disabled and the page names the holder, that a valve change made by another client through the
REST API reaches the open page over the WebSocket (no GET /api/control in between), that with
the WebSocket down the page still follows the station by its slow fallback poll, and that a
station without ``[control]`` says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from pageutil import debug, no_page_errors
from playwright.sync_api import expect

from rigwatch.config.station import StationConfig
from rigwatch.station import Station
from support.control_station import rocket_config_dict, write_toml
from support.process import StationProcess
from support.server import serve

PageSession = Any

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT_S = 60.0
VALVES = ["RELIEF1", "GOX1", "PURGE1", "PURGE2", "FUEL1", "RELIEF2", "GOX2", "FUEL2", "IGNITION"]
# every output in its safe position (the vents RELIEF1 and RELIEF2 energised open), and the
# same with PURGE1 energised open
SAFE_WORD = [1, 0, 0, 0, 0, 1, 0, 0, 0]
PURGE1_OPEN = [1, 0, 1, 0, 0, 1, 0, 0, 0]


@dataclass
class ControlStation:
    """The station under test (what conftest's ``app_page`` reads of a station)."""

    process: StationProcess
    name: str = "rocket_stand"

    @property
    def base_url(self) -> str:
        return self.process.base_url


E2EStation = ControlStation


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStation]:
    """The simulated rocket stand (overrides conftest's station for this module)."""
    tmp = tmp_path_factory.mktemp("e2e_control")
    data = rocket_config_dict(tmp)
    config = write_toml(data, tmp / "stand.toml")
    try:
        process = StationProcess(config, timeout_s=STARTUP_TIMEOUT_S, args=["--simulate"])
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield ControlStation(process)
    finally:
        process.stop(timeout_s=30)


def _control(url: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/control", timeout=10)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def control_page(app_page: PageSession, station: E2EStation) -> Iterator[PageSession]:
    """The page opened on ``#/control`` with its first state drawn. Afterwards the stand is
    brought back to idle (abort if hot, reset) and the page's authority released."""
    page = app_page.page
    page.goto(station.base_url + "/#/control")
    page.wait_for_function("() => window.__rigwatch?.control?.polls >= 1")
    try:
        yield app_page
    finally:
        url = station.base_url
        lease = page.evaluate("() => sessionStorage.getItem('rigwatch.control.lease')")
        headers = {"X-Control-Lease": lease} if lease else {}
        state = _control(url)["runner"]["state"]
        if state in ("armed", "running", "holding"):
            if state == "armed":
                httpx.post(f"{url}/api/control/disarm", headers=headers, timeout=10)
            else:
                httpx.post(f"{url}/api/control/abort", headers=headers, timeout=15)
        if state in ("running", "holding", "aborting"):
            # the abort sequence ends in safe
            _wait_state(url, {"safe"})
        if _control(url)["runner"]["state"] in ("safe", "done"):
            httpx.post(f"{url}/api/control/reset", headers=headers, timeout=10)
        if lease:
            httpx.post(
                f"{url}/api/control/authority",
                json={"action": "release", "lease": lease},
                headers=headers,
                timeout=10,
            )


def _wait_state(url: str, states: set[str], timeout_s: float = 20.0) -> None:
    """Waits until the runner is in one of ``states``: each check waits for the station's
    answer (no sleeps), until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            if client.get(f"{url}/api/control").json()["runner"]["state"] in states:
                return
    raise AssertionError(f"runner not in {states} within {timeout_s} s")


def take_control(page: Any, name: str) -> None:
    page.get_by_test_id("client-name").fill(name)
    page.get_by_test_id("take-control").click()
    status = page.get_by_test_id("authority-status")
    expect(status).to_have_attribute("data-mine", "yes")
    expect(status).to_contain_text(f"You control the station as {name}")


def test_control_page_opens_a_valve_and_shows_it_acknowledged(
    control_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = control_page.page
    expect(page.get_by_test_id("nav-control")).to_have_attribute("aria-current", "page")
    # without authority: commands disabled, Abort not
    expect(page.get_by_test_id("authority-status")).to_contain_text("Nobody controls the station")
    expect(page.get_by_test_id("valve-PURGE1-open")).to_be_disabled()
    expect(page.get_by_test_id("runner-arm")).to_be_disabled()
    expect(page.get_by_test_id("abort")).to_be_enabled()
    # nothing acknowledged yet: every output is shown unknown, not as a position
    for name in VALVES:
        card = page.get_by_test_id(f"valve-{name}")
        expect(card).to_have_attribute("data-status", "unknown")
        expect(card.get_by_test_id("valve-acknowledged")).to_have_text("unknown")
    page.screenshot(path=str(artifacts_dir / "control-unknown.png"))

    take_control(page, "ana")
    assert _control(station.base_url)["authority"]["holder"] == "ana"
    # the page renews its lease (the operator's heartbeat)
    page.wait_for_function("() => window.__rigwatch.control.heartbeats >= 2")

    page.get_by_test_id("valve-PURGE1-open").click()
    purge = page.get_by_test_id("valve-PURGE1")
    expect(purge).to_have_attribute("data-acknowledged", "open")
    expect(purge).to_have_attribute("data-commanded", "open")
    expect(purge).to_have_attribute("data-status", "acknowledged")
    expect(purge.get_by_test_id("valve-acknowledged")).to_have_text("open")
    expect(page.get_by_test_id("valve-PURGE1-open")).to_have_attribute("aria-pressed", "true")
    # the station agrees: the board acknowledged PURGE1 open
    purge_api = next(a for a in _control(station.base_url)["actuators"] if a["name"] == "PURGE1")
    assert purge_api["acknowledged"] == "open" and purge_api["status"] == "acknowledged"
    # every other output of the word is known now (the page sent all 9 bits)
    for name in VALVES:
        expect(page.get_by_test_id(f"valve-{name}")).to_have_attribute(
            "data-status", "acknowledged"
        )
    # the audit log shows the command, newest first
    first = page.get_by_test_id("audit-row").first
    expect(first.get_by_test_id("audit-action")).to_have_text("set")
    expect(first).to_contain_text("ana")
    expect(first.get_by_test_id("audit-why")).to_contain_text("ACK: Valves:")

    # the motor moves within its limits and is acknowledged
    page.get_by_test_id("motor-angle-MOTOR1").fill("45")
    page.get_by_test_id("motor-move-MOTOR1").click()
    expect(page.get_by_test_id("motor-MOTOR1")).to_have_attribute("data-acknowledged", "45")

    page.screenshot(path=str(artifacts_dir / "control-valve-open.png"))
    page.get_by_test_id("valves-safe").click()
    expect(purge).to_have_attribute("data-acknowledged", "closed")
    no_page_errors(control_page)


def test_control_page_shows_refusals_with_their_reasons(
    control_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = control_page.page
    take_control(page, "ana")
    page.get_by_test_id("valves-safe").click()
    expect(page.get_by_test_id("valve-GOX1")).to_have_attribute("data-acknowledged", "closed")

    # a hot scenario from idle: the runner refuses (arming first), with the reason
    page.get_by_test_id("scenario-select").select_option("o2cleaning")
    page.get_by_test_id("runner-start").click()
    refusal = page.get_by_test_id("runner-refusal")
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("run o2cleaning refused")
    expect(page.get_by_test_id("runner-refusal-reason")).to_contain_text("arm")
    expect(page.get_by_test_id("runner-state")).to_have_attribute("data-state", "idle")

    # armed, ignition with the oxidiser valves closed: the interlock refuses, nothing moves
    page.get_by_test_id("runner-arm").click()
    expect(page.get_by_test_id("runner-state")).to_have_attribute("data-state", "armed")
    expect(refusal).to_be_hidden()
    page.get_by_test_id("valve-IGNITION-on").click()
    reason = page.get_by_test_id("valve-refusal-reason")
    expect(reason).to_contain_text("ignition-needs-oxidiser")
    expect(reason).to_contain_text("igniting without oxidiser flow")
    problem = page.get_by_test_id("problem").first
    expect(problem).to_have_attribute("data-status", "409")
    expect(problem.get_by_test_id("problem-request")).to_have_text("POST /api/valves")
    expect(problem.get_by_test_id("problem-detail")).to_contain_text("igniting without oxidiser")
    ignition = page.get_by_test_id("valve-IGNITION")
    expect(ignition).to_have_attribute("data-acknowledged", "off")
    ign_api = next(a for a in _control(station.base_url)["actuators"] if a["name"] == "IGNITION")
    assert ign_api["acknowledged"] == "off", ign_api
    first = page.get_by_test_id("audit-row").first
    expect(first.get_by_test_id("audit-result")).to_have_text("refused")
    expect(first.get_by_test_id("audit-why")).to_contain_text("ignition-needs-oxidiser")
    page.screenshot(path=str(artifacts_dir / "control-refused.png"))

    page.get_by_test_id("runner-disarm").click()
    expect(page.get_by_test_id("runner-state")).to_have_attribute("data-state", "idle")
    assert debug(page, "control")["refusals"] == 2
    no_page_errors(control_page, allowed_statuses=(409,))


def test_control_page_abort_during_a_scenario_reaches_safe(
    control_page: PageSession, station: E2EStation, artifacts_dir: Path
) -> None:
    page = control_page.page
    take_control(page, "ana")
    # every output known and safe before the scenario
    page.get_by_test_id("valves-safe").click()
    for name in VALVES:
        expect(page.get_by_test_id(f"valve-{name}")).to_have_attribute("data-safe", "yes")
    state = page.get_by_test_id("runner-state")
    page.get_by_test_id("runner-arm").click()
    expect(state).to_have_attribute("data-state", "armed")
    expect(page.get_by_test_id("runner-armed-by")).to_have_text("ana")

    page.get_by_test_id("scenario-select").select_option("o2cleaning")
    page.get_by_test_id("runner-start").click()
    expect(state).to_have_attribute("data-state", "running")
    expect(page.get_by_test_id("runner-scenario")).to_have_text("o2cleaning")
    # the scenario moves valves: the oxidiser isolation valve is acknowledged open
    expect(page.get_by_test_id("valve-GOX1")).to_have_attribute("data-acknowledged", "open")
    expect(page.get_by_test_id("runner-step")).to_have_text(re.compile(r"^\d+ · "))
    # its redline is watched and charted
    expect(page.get_by_test_id("redline").first).to_have_attribute("data-name", "ox-line-over")
    page.wait_for_function("() => window.__rigwatch.control.chart.framesReceived >= 3")
    page.screenshot(path=str(artifacts_dir / "control-running.png"))

    page.get_by_test_id("abort").click()
    expect(state).to_have_attribute("data-state", "safe", timeout=20_000)
    expect(page.get_by_test_id("runner-abort")).to_contain_text("abort pressed on the control page")
    # every valve acknowledged in its safe position
    for name in VALVES:
        card = page.get_by_test_id(f"valve-{name}")
        expect(card).to_have_attribute("data-safe", "yes")
        expect(card).to_have_attribute("data-status", "acknowledged")
    actuators = {a["name"]: a for a in _control(station.base_url)["actuators"]}
    for name in VALVES:
        a = actuators[name]
        assert a["acknowledged"] == a["safe"], a
    # the audit log shows the abort
    abort_row = page.locator("[data-testid=audit-row].audit-act-abort").first
    expect(abort_row).to_be_visible()
    expect(abort_row).to_contain_text("o2cleaning")
    page.screenshot(path=str(artifacts_dir / "control-aborted.png"))

    # after an abort the operator acknowledges the outcome
    page.get_by_test_id("runner-reset").click()
    expect(state).to_have_attribute("data-state", "idle")
    no_page_errors(control_page)


def test_control_page_hold_and_resume_a_scenario(
    control_page: PageSession, station: E2EStation
) -> None:
    page = control_page.page
    take_control(page, "ana")
    state = page.get_by_test_id("runner-state")
    page.get_by_test_id("runner-arm").click()
    expect(state).to_have_attribute("data-state", "armed")
    page.get_by_test_id("scenario-select").select_option("o2cleaning")
    page.get_by_test_id("runner-start").click()
    expect(state).to_have_attribute("data-state", "running")
    # Hold takes effect after the step in progress (at most its 3 s wait)
    page.get_by_test_id("runner-hold").click()
    expect(state).to_have_attribute("data-state", "holding", timeout=10_000)
    expect(page.get_by_test_id("runner-hold-message")).to_contain_text("ana")
    expect(page.get_by_test_id("runner-resume")).to_be_enabled()
    expect(page.get_by_test_id("runner-hold")).to_be_disabled()
    page.get_by_test_id("runner-resume").click()
    # the rest of the scenario runs to its end
    expect(state).to_have_attribute("data-state", "done", timeout=10_000)
    actions = page.locator("[data-testid=audit-row] [data-testid=audit-action]")
    expect(actions.filter(has_text=re.compile(r"^resume$"))).to_have_count(1)
    expect(actions.filter(has_text=re.compile(r"^hold$"))).to_have_count(1)
    page.get_by_test_id("runner-reset").click()
    expect(state).to_have_attribute("data-state", "idle")
    no_page_errors(control_page)


def test_control_page_without_authority_names_the_holder(
    control_page: PageSession, station: E2EStation
) -> None:
    page = control_page.page
    url = station.base_url
    r = httpx.post(
        f"{url}/api/control/authority", json={"action": "request", "client": "bob"}, timeout=10
    )
    assert r.status_code == 200, r.text
    lease = r.json()["lease"]
    try:
        status = page.get_by_test_id("authority-status")
        expect(status).to_contain_text("bob controls the station")
        expect(status).to_have_attribute("data-mine", "no")
        for button in page.locator("[data-testid=valve-panel] button").all():
            expect(button).to_be_disabled()
        expect(page.get_by_test_id("motor-move-MOTOR1")).to_be_disabled()
        expect(page.get_by_test_id("runner-arm")).to_be_disabled()
        expect(page.get_by_test_id("abort")).to_be_enabled()
        # asking for control while bob holds it is refused with the reason
        page.get_by_test_id("client-name").fill("eve")
        page.get_by_test_id("take-control").click()
        problem = page.get_by_test_id("problem").first
        expect(problem).to_have_attribute("data-status", "409")
        expect(problem.get_by_test_id("problem-detail")).to_contain_text("bob")
        assert _control(url)["authority"]["holder"] == "bob"
    finally:
        httpx.post(
            f"{url}/api/control/authority",
            json={"action": "release", "lease": lease},
            headers={"X-Control-Lease": lease},
            timeout=10,
        )
    expect(page.get_by_test_id("authority-status")).to_contain_text("Nobody controls")
    no_page_errors(control_page, allowed_statuses=(409,))


class ControlGets:
    """Counts the page's GET /api/control requests (not the audit's) from ``start()`` on."""

    def __init__(self, page: Any) -> None:
        self.count = 0
        self._on = False
        page.on("request", self._request)

    def _request(self, request: Any) -> None:
        if self._on and request.method == "GET" and urlparse(request.url).path == "/api/control":
            self.count += 1

    def start(self) -> None:
        self.count = 0
        self._on = True


def _take_as(url: str, client: str) -> dict[str, str]:
    r = httpx.post(
        f"{url}/api/control/authority", json={"action": "request", "client": client}, timeout=10
    )
    assert r.status_code == 200, r.text
    return {"X-Control-Lease": r.json()["lease"]}


def _set_valves(url: str, word: list[int], lease: dict[str, str]) -> None:
    r = httpx.post(f"{url}/api/valves", json={"valves": word}, headers=lease, timeout=15)
    assert r.status_code == 200, r.text


def _release(url: str, lease: dict[str, str]) -> None:
    httpx.post(
        f"{url}/api/control/authority",
        json={"action": "release", "lease": lease["X-Control-Lease"]},
        headers=lease,
        timeout=10,
    )


def test_control_page_follows_a_rest_valve_change_over_the_websocket(
    control_page: PageSession, station: E2EStation
) -> None:
    page = control_page.page
    url = station.base_url
    gets = ControlGets(page)
    # the page asked for the control state over the WebSocket and got it
    page.wait_for_function(
        "() => window.__rigwatch.control.live && window.__rigwatch.control.pushes >= 1"
    )
    assert {"type": "subscribe_control"} in control_page.ws.sent
    lease = _take_as(url, "bob")
    try:
        expect(page.get_by_test_id("authority-status")).to_contain_text("bob controls the station")
        _set_valves(url, SAFE_WORD, lease)
        purge = page.get_by_test_id("valve-PURGE1")
        expect(purge).to_have_attribute("data-acknowledged", "closed")

        before = debug(page, "control")
        gets.start()
        _set_valves(url, PURGE1_OPEN, lease)  # bob's command, from outside the page
        expect(purge).to_have_attribute("data-acknowledged", "open")
        expect(purge).to_have_attribute("data-commanded", "open")
        expect(purge).to_have_attribute("data-status", "acknowledged")
        # valve_state and control_state of the change come in either order
        page.wait_for_function(
            "(w) => window.__rigwatch.control.valveBits.join() === w.join()", arg=PURGE1_OPEN
        )
        after = debug(page, "control")
        # it came over the WebSocket: not one GET /api/control since the command
        assert gets.count == 0, gets.count
        assert after["polls"] == before["polls"], (before, after)
        assert after["pushes"] > before["pushes"], (before, after)
        assert after["valveFrames"] > before["valveFrames"], (before, after)
        assert "PURGE1: commanded open, acknowledged open (acknowledged)" in after["actuators"]
        received = control_page.ws.other
        assert any(
            m.get("type") == "valve_state" and m.get("valves") == PURGE1_OPEN for m in received
        )
        assert any(
            m.get("type") == "control_state"
            and any(
                a["name"] == "PURGE1" and a["acknowledged"] == "open"
                for a in m["state"]["actuators"]
            )
            for m in received
        )
    finally:
        _set_valves(url, SAFE_WORD, lease)
        _release(url, lease)
    expect(page.get_by_test_id("authority-status")).to_contain_text("Nobody controls")
    assert gets.count == 0, gets.count
    no_page_errors(control_page)


def _command_as(url: str, client: str, word: list[int]) -> None:
    """Take authority, send ``word`` to the valve bank, give authority back (a lease lives
    only ``operator_timeout_s`` without heartbeats)."""
    lease = _take_as(url, client)
    try:
        _set_valves(url, word, lease)
    finally:
        _release(url, lease)


def test_control_page_without_websocket_follows_by_its_fallback_poll(
    app_page: PageSession, station: E2EStation
) -> None:
    page = app_page.page
    url = station.base_url
    # every connection to /ws is refused (closed at once): the page has only its poll
    page.route_web_socket(re.compile(r".*/ws$"), lambda ws: ws.close())
    page.goto(url + "/#/control")
    page.wait_for_function("() => window.__rigwatch?.control?.polls >= 1")
    purge = page.get_by_test_id("valve-PURGE1")
    try:
        _command_as(url, "bob", SAFE_WORD)
        expect(purge).to_have_attribute("data-acknowledged", "closed", timeout=20_000)
        polls = debug(page, "control")["polls"]
        _command_as(url, "bob", PURGE1_OPEN)
        expect(purge).to_have_attribute("data-acknowledged", "open", timeout=20_000)
        control = debug(page, "control")
        assert control["polls"] > polls, control
        assert control["live"] is False and control["pushes"] == 0, control
        assert not app_page.ws.other  # nothing came over a WebSocket
    finally:
        _command_as(url, "bob", SAFE_WORD)
    expect(purge).to_have_attribute("data-acknowledged", "closed", timeout=20_000)
    no_page_errors(app_page)


def test_control_page_station_without_control_says_so(browser: Any, tmp_path: Path) -> None:
    cfg = StationConfig.from_dict(
        {
            "name": "no_control",
            "recorder": {"enabled": False, "directory": str(tmp_path / "rec")},
            "devices": [{"name": "p", "driver": "sim", "sample_rate_hz": 10, "channel_count": 1}],
        },
        base_dir=tmp_path,
    )
    st = Station(cfg, simulate=True)
    st.start()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        with serve(st) as address:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://{address}/#/control")
            none = page.get_by_test_id("no-control")
            expect(none).to_be_visible()
            expect(none).to_contain_text("This station has no control part")
            expect(page.get_by_test_id("authority-panel")).to_be_hidden()
            control = debug(page, "control")
            assert control["available"] is False, control
            problems = debug(page, "problems")
            assert problems["visible"] == 0, problems
            assert not errors, errors
    finally:
        context.close()
        st.stop()
