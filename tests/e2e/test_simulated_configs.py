"""The example configs of hardware stations, run with ``--simulate``, shown by the page: the
ball mill's nine microphones and pressure input, the test stand's STM32 channels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pageutil import frames_after, no_page_errors, wait_coloured
from playwright.sync_api import expect

from rigwatch.config import load_config
from support.process import StationProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["ball_mill.toml", "rocket_stand.toml"])
def simulated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    config = ROOT / "configs" / request.param
    station = StationProcess(
        config,
        args=["--simulate", "--host", "127.0.0.1", "--recordings", str(tmp_path / "rec")],
    )
    try:
        yield request.param, station
    finally:
        assert station.stop() == 0, station.output()


def test_page_shows_the_channels_of_a_simulated_hardware_config(
    simulated: tuple[str, Any], app_page: Any, artifacts_dir: Path
) -> None:
    name, station = simulated
    cfg = load_config(ROOT / "configs" / name)
    page = app_page.page
    page.goto(station.base_url + "/")
    select = page.get_by_test_id("device-select")
    expect(select.locator("option")).to_have_count(len(cfg.devices))
    for dev in cfg.devices:
        select.select_option(dev.name)
        picker = page.get_by_test_id("channel-picker")
        for channel in dev.channel_names or []:
            expect(picker.get_by_test_id(f"channel-toggle-{channel}")).to_be_attached()
        if dev.name != "pressure":  # 2 Hz: a frame every half second, too slow to wait for
            frames_after(page, 5)
            wait_coloured(page, "[data-testid=live-chart]", 200)
    select.select_option(cfg.devices[0].name)  # the fast device, drawn, for the screenshot
    frames_after(page, 20)
    page.screenshot(path=str(artifacts_dir / f"simulated_{name.removesuffix('.toml')}.png"))
    no_page_errors(app_page)
