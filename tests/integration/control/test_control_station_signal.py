"""SIGTERM or Ctrl-C while a hot sequence runs: the station process runs the scenario's abort
sequence before it exits (a station subprocess with the simulated rocket stand; Ctrl-C takes
the same path through the CLI's handler, tested without a process)."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import httpx

from support.control_station import CONFIGS, rocket_config_dict, write_toml
from support.process import StationProcess


def test_control_station_sigterm_during_a_hot_sequence_runs_the_abort_sequence(
    tmp_path: Path,
) -> None:
    sig = signal.SIGTERM
    data = rocket_config_dict(tmp_path, operator_timeout_s=30.0)
    data["recorder"]["directory"] = str(tmp_path / "rec")
    config = write_toml(data, tmp_path / "stand.toml")
    assert config.parent != CONFIGS
    station = StationProcess(config, args=["--simulate"])
    try:
        base = station.base_url
        r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "a"})
        lease = {"X-Control-Lease": r.json()["lease"]}
        assert httpx.post(f"{base}/api/control/arm", headers=lease).status_code == 200
        r = httpx.post(f"{base}/api/scenario/burning", headers=lease)
        assert r.status_code == 200 and r.json()["state"] == "running", r.text
        station.proc.send_signal(sig)
        assert station.proc.wait(60) == 0, station.output()
    finally:
        station.kill()
    with sqlite3.connect(tmp_path / "rec" / "audit.sqlite") as db:  # simulated: by the recordings
        rows = db.execute(
            "SELECT who, source, action, target, result, reason FROM control_audit "
            "WHERE who = 'station' ORDER BY id"
        ).fetchall()
    sets = [(target, result) for who, source, action, target, result, _ in rows if action == "set"]
    assert sets == [
        ("IGNITION, FUEL1, FUEL2", "ok"),
        ("GOX1, GOX2", "ok"),
        ("RELIEF1, RELIEF2", "ok"),
        ("PURGE1, PURGE2", "ok"),
        ("PURGE1, PURGE2", "ok"),
    ]
    abort = rows[-1]
    assert abort[2:5] == ("abort", "burning", "ok")
    assert f"{sig.name}: the station is stopping during a hot sequence" in abort[5]


def test_control_station_ctrl_c_asks_for_the_abort_before_uvicorn_stops() -> None:
    from rigwatch.cli import _abort_on_signal

    calls: list[tuple[str, object]] = []

    class Server:
        def handle_exit(self, sig: int, frame: object) -> None:
            calls.append(("uvicorn", sig))

    class Control:
        def abort_on_signal(self, name: str) -> None:
            calls.append(("abort", name))

    class Station:
        control = Control()

    server = Server()
    _abort_on_signal(server, Station())
    server.handle_exit(signal.SIGINT, None)  # what uvicorn's handler calls on Ctrl-C
    assert calls == [("abort", "SIGINT"), ("uvicorn", signal.SIGINT)]
