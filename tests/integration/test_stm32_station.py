"""A station reading the STM32 board (emulated on a pty): good rows arrive, bad lines counted."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgpack
from websockets.sync.client import connect

from rigwatch.config.station import StationConfig
from rigwatch.devices.emulators.stm32 import Stm32Emulator
from rigwatch.station import Station
from support.server import serve

KEYS = ["P1", "P2", "T1", "THRUST"]


def test_stm32_lines_reach_the_api_and_bad_lines_are_counted(tmp_path: Path):
    with Stm32Emulator(rate_hz=0, channels=KEYS, streaming=False) as board:
        tty = board.start()
        cfg = StationConfig.from_dict(
            {
                "name": "stand",
                "recorder": {"directory": str(tmp_path / "rec")},
                "devices": [
                    {
                        "name": "stm32",
                        "driver": "stm32",
                        "port": tty,
                        "sample_rate_hz": 100,
                        "channels": [{"name": k, "unit": "bar"} for k in KEYS],
                    }
                ],
            }
        )
        station = Station(cfg)
        with serve(station) as addr, connect(f"ws://{addr}/ws") as ws:
            ws.send(msgpack.packb({"type": "subscribe", "device": "stm32", "fps": 60}))
            assert msgpack.unpackb(ws.recv(timeout=10))["type"] == "subscribed"
            board.emit_lines([{"P1": 1.5, "P2": 2.5, "T1": 20.0, "THRUST": 100.0}])
            board.inject(b"P1: 1.0 | P2 oops | T1: 21.0 | THRUST: 101.0\n")  # one bad field
            board.inject(b"\xff\xfe garbage without fields\n")  # nothing parseable
            board.emit_lines([{"P1": 3.0, "P2": 4.0, "T1": 22.0, "THRUST": 102.0}])
            rows = 0
            while rows < 3:
                m = msgpack.unpackb(ws.recv(timeout=10), raw=False)
                if m["type"] == "data":
                    rows = m["end_index"]
            sensors = httpx.get(f"http://{addr}/api/sensors").json()["devices"]["stm32"]
            assert sensors["values"] == {"P1": 3.0, "P2": 4.0, "T1": 22.0, "THRUST": 102.0}
            status = httpx.get(f"http://{addr}/api/status").json()
        errors = status["errors"]
        assert errors["stm32.stm32.malformed_field"] == 1
        assert errors["stm32.stm32.malformed_line"] == 1
        assert "P2 oops" in status["error_messages"]["stm32.stm32.malformed_field"]
        assert status["devices"][0]["rows"] == 3  # the line with a bad field is kept (P2 NaN)
