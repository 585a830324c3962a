"""End-to-end fixtures: a real station subprocess and the machine's headless Chromium.

The station (one per test module) replays real CWRU bearing recordings in real time and
records 2 s Parquet segments into a temporary folder. Chromium is the Debian package at
/usr/bin/chromium (``make test`` installs it); without it, or without the built page or the
front end's node_modules, these tests skip, unless RIGWATCH_REQUIRE_SERVICES=1, then they
fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from pageutil import SNAPSHOT_MIN_INTERVAL_S

from support.process import StationProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
STATIC_INDEX = ROOT / "src" / "rigwatch" / "web" / "static" / "index.html"
FRONTEND = ROOT / "frontend"
CWRU_12K = ROOT / "data" / "cwru" / "1797_IR_7_DE12.npz"
CWRU_48K = ROOT / "data" / "cwru" / "1797_Normal_48k.npz"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATION_NAME = "e2e_station"
STARTUP_TIMEOUT_S = 60.0


def _unavailable(reason: str) -> None:
    """Skips the test, or fails it when services are required (RIGWATCH_REQUIRE_SERVICES=1)."""
    if os.environ.get("RIGWATCH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (required because RIGWATCH_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def _chromium_path() -> str | None:
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def _toml_str(value: object) -> str:
    # A JSON string is a valid TOML basic string for paths (quotes and backslashes escaped).
    return json.dumps(str(value))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    path = _chromium_path()
    if path is None:
        _unavailable("Chromium is not installed (/usr/bin/chromium); `make test` installs it")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Any]:
    if not STATIC_INDEX.is_file():
        _unavailable(f"the page is not built ({STATIC_INDEX} missing): run `make frontend`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=chromium_executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield b
        finally:
            b.close()


@dataclass
class E2EStation:
    """The station under test: its process, URL, recordings folder and devices."""

    process: StationProcess
    recordings: Path
    name: str = STATION_NAME
    devices: dict[str, list[str]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def log_tail(self, lines: int = 60) -> str:
        return self.process.output(lines)


def _write_config(path: Path, recordings: Path) -> dict[str, list[str]]:
    path.write_text(
        f"""
name = "{STATION_NAME}"

[server]
host = "127.0.0.1"

[api]
snapshot_min_interval_s = {SNAPSHOT_MIN_INTERVAL_S}

[buffer]
capacity_rows = 480_000

[recorder]
directory = {_toml_str(recordings)}
segment_duration_s = 2

[live]
default_fps = 30

[[devices]]
name = "bearing_12k"
driver = "replay"
path = {_toml_str(CWRU_12K)}
keys = ["DE", "FE", "BA"]
sample_rate_hz = 12000
pace = "realtime"
loop = true
channels = [
  {{ name = "DE", unit = "g" }},
  {{ name = "FE", unit = "g" }},
  {{ name = "BA", unit = "g" }},
]

[[devices]]
name = "healthy_48k"
driver = "replay"
path = {_toml_str(CWRU_48K)}
keys = ["DE", "FE"]
sample_rate_hz = 48000
pace = "realtime"
loop = true
channels = [
  {{ name = "DE", unit = "g" }},
  {{ name = "FE", unit = "g" }},
]
"""
    )
    return {"bearing_12k": ["DE", "FE", "BA"], "healthy_48k": ["DE", "FE"]}


@pytest.fixture(scope="session")
def frontend_tools() -> Path:
    """frontend/node_modules/.bin, with openapi-typescript and tsc (``make frontend``)."""
    bin_dir = FRONTEND / "node_modules" / ".bin"
    for tool in ("openapi-typescript", "tsc"):
        if not os.access(bin_dir / tool, os.X_OK):
            _unavailable(f"{bin_dir / tool} missing: run `make frontend`")
    return bin_dir


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2EStation]:
    for f in (CWRU_12K, CWRU_48K):
        if not f.is_file():
            pytest.fail(f"test data missing: {f}", pytrace=False)
    tmp = tmp_path_factory.mktemp("e2e_station")
    recordings = tmp / "recordings"
    config = tmp / "station.toml"
    devices = _write_config(config, recordings)
    try:
        process = StationProcess(config, timeout_s=STARTUP_TIMEOUT_S)
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    st = E2EStation(process, recordings, devices=devices)
    try:
        hello = httpx.get(f"{st.base_url}/api/hello", timeout=10).json()
        assert hello["station"] == STATION_NAME
        yield st
    finally:
        process.stop(timeout_s=15)


class WsSpy:
    """Records what the page sends and receives on its WebSocket, decoded independently.

    ``events`` keeps both directions in order, as ``("sent" | "received", message)``; data
    frames keep their header only (the arrays are checked through the page).
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.other: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sockets = 0

    @staticmethod
    def _decode(payload: bytes | str) -> dict[str, Any] | None:
        try:
            if isinstance(payload, bytes | bytearray):
                msg = msgpack.unpackb(payload, raw=False)
            else:
                msg = json.loads(payload)
        except Exception:
            return None
        return msg if isinstance(msg, dict) else None

    def attach(self, ws: Any) -> None:
        if not ws.url.endswith("/ws"):
            return
        self.sockets += 1

        def on_sent(payload: bytes | str) -> None:
            msg = self._decode(payload)
            if msg is not None:
                self.sent.append(msg)
                self.events.append(("sent", msg))

        def on_received(payload: bytes | str) -> None:
            msg = self._decode(payload)
            if msg is None:
                return
            if msg.get("type") == "data":
                # Keep the header only: the arrays are checked through the page.
                header = {
                    k: msg.get(k)
                    for k in ("type", "device", "seq", "channels", "shape", "bucket_size", "missed")
                }
                self.frames.append(header)
                self.events.append(("received", header))
            else:
                self.other.append(msg)
                self.events.append(("received", msg))

        ws.on("framesent", on_sent)
        ws.on("framereceived", on_received)

    def subscriptions(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "subscribe"]

    def frames_of_last_subscription(self, device: str) -> list[dict[str, Any]]:
        """Data frames of ``device`` received after the server's last ``subscribed`` for it."""
        out: list[dict[str, Any]] = []
        for direction, msg in list(self.events):
            if direction != "received" or msg.get("device") != device:
                continue
            if msg.get("type") == "subscribed":
                out = []
            elif msg.get("type") == "data":
                out.append(msg)
        return out


@dataclass
class PageSession:
    page: Any
    ws: WsSpy
    console_errors: list[str]
    page_errors: list[str]


@pytest.fixture
def app_page(
    browser: Any, station: E2EStation, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[PageSession]:
    """A 1400x900 browser page (fresh storage) watching its WebSocket and errors, not yet
    opened on the station; a screenshot is saved when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    spy = WsSpy()
    console_errors: list[str] = []
    page_errors: list[str] = []
    page.on("websocket", spy.attach)
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    session = PageSession(page, spy, console_errors, page_errors)
    try:
        yield session
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(artifacts_dir / f"FAILED-{request.node.name}.png"))
        context.close()


@pytest.fixture
def live_page(app_page: PageSession, station: E2EStation) -> PageSession:
    """The station's page opened at "/" (the Live page)."""
    app_page.page.goto(station.base_url + "/")
    return app_page


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    if rep.when == "call":
        item.rep_call = rep  # type: ignore[attr-defined]
    return rep
