"""Every example config runs without its hardware: ``station run CONFIG --simulate`` replaces
each hardware device by its simulated twin (NI-DAQ: a simulated task; STM32: the firmware
emulator on a pty), and the live stream and the recorder carry its channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import pyarrow.parquet as pq
import pytest
from websockets.sync.client import connect

from rigwatch.config import load_config
from support.process import StationProcess

ROOT = Path(__file__).resolve().parents[2]
HARDWARE_CONFIGS = ["ball_mill.toml", "rocket_stand.toml"]


def first_frames(port: int, device: str, frames: int) -> list[dict[str, Any]]:
    """``frames`` data frames of ``device`` from the live stream, raw (bucket 1)."""
    out: list[dict[str, Any]] = []
    with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe", "device": device, "display_rate_hz": 1e9}))
        while len(out) < frames:
            m = msgpack.unpackb(ws.recv(timeout=30), raw=False)
            assert m["type"] != "error", m
            if m["type"] == "data":
                out.append(m)
    return out


def values(frame: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(frame["data"], dtype="<f4").reshape(frame["shape"])


@pytest.mark.parametrize("name", HARDWARE_CONFIGS)
def test_hardware_config_runs_simulated(name: str, tmp_path: Path) -> None:
    config = ROOT / "configs" / name
    cfg = load_config(config)
    rec = tmp_path / "rec"
    station = StationProcess(
        config, args=["--simulate", "--host", "127.0.0.1", "--recordings", str(rec)]
    )
    try:
        status = httpx.get(f"{station.base_url}/api/status", timeout=10).json()
        assert [d["name"] for d in status["devices"]] == [d.name for d in cfg.devices]
        for dev_cfg in cfg.devices:
            frames = first_frames(station.port, dev_cfg.name, 2)
            assert frames[1]["seq"] == frames[0]["seq"] + 1
            assert frames[0]["channels"] == dev_cfg.channel_names
            v = values(frames[0])
            assert v.shape[1] == len(dev_cfg.channel_names) and np.isfinite(v).all()
            if dev_cfg.name == "pressure":  # 0.7 V +- 0.02 V through 46.18 x V - 25.7
                assert np.all((v > 5.6) & (v < 7.6)), v
            if dev_cfg.name == "stm32":  # the emulator's test stand at rest: valves closed
                row = dict(zip(frames[0]["channels"], v[-1], strict=True))
                assert 300 < row["Tbogaz1"] < 400 and abs(row["THRUST"]) < 50
        status = httpx.get(f"{station.base_url}/api/status", timeout=10).json()
        assert all(d["state"] == "running" and d["rows"] > 0 for d in status["devices"])
        assert not status["errors"], status["errors"]
    finally:
        assert station.stop() == 0, station.output()
    segments = sorted(rec.glob("*.parquet"))
    assert {p.name.split("_2")[0] for p in segments} == {d.name for d in cfg.devices}
    for seg in segments:
        meta = pq.read_schema(seg).metadata
        if b"nidaq" in meta[b"rigwatch.driver"]:
            assert b'"simulated": "true"' in meta[b"rigwatch.extra"]
