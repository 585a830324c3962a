"""The ball mill's former valve and PLC servers, now the station's: /connect, /valve,
/disconnect and /plc-io against gpiozero's MockFactory and snap7's server (the station's
simulated twins), and /status with the Pi's fields on a station without a camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rigwatch.control.backends.pi_valves import PiValves
from rigwatch.devices.s7 import S7SimServer
from rigwatch.station import Station
from support.control_station import ball_mill_station
from support.server import serve


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Station, str]]:
    station = ball_mill_station(tmp_path)
    with serve(station) as addr:
        yield station, f"http://{addr}"


def pins(station: Station) -> list[bool]:
    pi = next(b for b in station.control.commander.backends if isinstance(b, PiValves))
    factory = pi._inner.pin_factory
    return [factory.pin(p).state for p in (22, 27, 17)]


def test_control_ball_mill_valves_through_the_pi(served: tuple[Station, str]) -> None:
    station, base = served
    r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "mill"})
    lease = {"X-Control-Lease": r.json()["lease"]}
    assert httpx.post(f"{base}/valve", json={"valveIndex": 0, "state": True}).status_code == 409
    r = httpx.post(f"{base}/connect", json={"piIp": "10.1.2.3"}, headers=lease)
    assert r.status_code == 200 and r.json()["pi_ip"] == "10.1.2.3" and r.json()["connected"]
    r = httpx.post(f"{base}/valve", json={"valveIndex": 1, "state": True}, headers=lease)
    assert r.status_code == 200 and r.json()["valve_states"] == [False, True, False]
    assert pins(station) == [False, True, False]
    r = httpx.post(f"{base}/valve", json={"valveIndex": 3, "state": True}, headers=lease)
    assert r.status_code == 422 and "the Pi has 3 valves" in r.json()["detail"]
    status = httpx.get(f"{base}/status").json()
    assert (status["pi_connected"], status["pi_ip"], status["valve_states"]) == (
        True,
        "10.1.2.3",
        [False, True, False],
    )
    assert status["maps"] == 0 and status["selected_pixels"] == []  # no camera here
    r = httpx.post(f"{base}/disconnect", headers=lease)
    assert r.status_code == 200 and r.json()["connected"] is False
    assert r.json()["message"] == "all valves closed; disconnected"
    audit = station.control.audit
    assert audit is not None
    sets = audit.query(action="set")
    assert sets[-1].target == "VALVE1, VALVE2, VALVE3" and sets[-1].result == "ok"
    assert sets[-1].value == '{"VALVE1": "closed", "VALVE2": "closed", "VALVE3": "closed"}'


def test_control_ball_mill_plc_marker_bit(served: tuple[Station, str]) -> None:
    station, base = served
    plc = next(t for t in station.control.twins if isinstance(t, S7SimServer))
    r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "mill"})
    lease = {"X-Control-Lease": r.json()["lease"]}
    r = httpx.post(f"{base}/plc-io", json={"value": 1}, headers=lease)
    assert r.status_code == 200 and r.json() == {"success": True, "value": True}
    assert plc.areas["M"][0] & 1 == 1  # M0.0 set in the PLC's memory
    r = httpx.post(f"{base}/plc-io", json={"value": False}, headers=lease)
    assert r.json()["value"] is False and plc.areas["M"][0] & 1 == 0
    assert httpx.post(f"{base}/plc-io", json={"value": "maybe"}, headers=lease).status_code == 422
