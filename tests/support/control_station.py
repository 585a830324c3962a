"""Stations with a control part for tests: the rocket stand's config (STM32 emulator on a pty
with the valve bank on its port, the Arduino emulator) and the ball mill's (gpiozero's
MockFactory, snap7's server), both under --simulate, with files in a temporary folder."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rigwatch.config.station import StationConfig
from rigwatch.devices.emulators.stm32 import Stm32Emulator
from rigwatch.station import Station

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"


def rocket_config_dict(
    tmp_path: Path, motor_timeout_s: float | None = None, **control: Any
) -> dict[str, Any]:
    """configs/rocket_stand.toml with its files in ``tmp_path`` (simulated, the audit log is
    ``tmp_path/rec/audit.sqlite``), lines at 200 Hz in 10 ms
    blocks, no recorder, loopback server; ``control`` overrides keys of ``[control]``;
    ``motor_timeout_s``: the Arduino's reply timeout, without retries."""
    data = tomllib.loads((CONFIGS / "rocket_stand.toml").read_text())
    data["server"] = {"host": "127.0.0.1"}
    data["recorder"] = {"enabled": False, "directory": str(tmp_path / "rec")}
    data["buffer"] = {"capacity_rows": 100_000}
    dev = data["devices"][0]
    dev.update(sample_rate_hz=200, block_duration_s=0.01)
    data["control"].update(audit="audit.sqlite", scenarios=[str(CONFIGS / "scenarios")], **control)
    if motor_timeout_s is not None:
        motors = next(a for a in data["control"]["actuators"] if a["type"] == "arduino_motors")
        motors.update(reply_timeout_s=motor_timeout_s, retries=0)
    return data


def rocket_station(tmp_path: Path, motor_timeout_s: float | None = None, **control: Any) -> Station:
    """The simulated rocket stand (not started)."""
    data = rocket_config_dict(tmp_path, motor_timeout_s, **control)
    cfg = StationConfig.from_dict(data, base_dir=CONFIGS)
    return Station(cfg, simulate=True)


def ball_mill_station(tmp_path: Path) -> Station:
    """The simulated ball mill's control part on a small sim device (not started)."""
    data = tomllib.loads((CONFIGS / "ball_mill.toml").read_text())
    cfg = StationConfig.from_dict(
        {
            "name": "ball_mill",
            "recorder": {"enabled": False, "directory": str(tmp_path / "rec")},
            "devices": [
                {"name": "pressure", "driver": "sim", "sample_rate_hz": 10, "channel_count": 1}
            ],
            "control": data["control"],
        },
        base_dir=CONFIGS,
    )
    return Station(cfg, simulate=True)


def emulator(station: Station) -> Stm32Emulator:
    """The STM32 emulator behind the station's simulated stm32 device."""
    emu: Stm32Emulator = station.streams["stm32"].device.emulator  # type: ignore[attr-defined]
    return emu


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def write_toml(data: dict[str, Any], path: Path) -> Path:
    """Write ``data`` (strings, numbers, booleans, lists, tables) as TOML, one top-level key a
    line with inline tables; returns ``path``."""
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items()))
    return path


def wait_acquiring(station: Station, channel: str = "P1", timeout_s: float = 10.0) -> None:
    """Wait until the control part has been fed a value of ``channel`` (the board's port is
    open and its lines flow), so commands sent next find the port open."""
    values = station.control.values
    deadline = time.monotonic() + timeout_s
    while values.get(channel) is None:
        left = deadline - time.monotonic()
        assert left > 0, f"no value of {channel} within {timeout_s} s"
        values.wait_change(values.version, left)


@contextmanager
def served_rocket_stand(tmp_path: Path) -> Iterator[tuple[Station, str]]:
    """The rocket stand served over HTTP, started and acquiring: ``(station, "host:port")``."""
    import httpx

    from support.server import serve

    station = rocket_station(tmp_path, operator_timeout_s=30.0)
    with serve(station) as addr:
        httpx.get(f"http://{addr}/api/hello", timeout=30)  # the app (and station) started
        wait_acquiring(station)
        yield station, addr
