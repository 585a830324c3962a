"""Control figures: command latency and redline reaction, against the STM32 firmware emulator
on a pseudo-terminal (the station's simulated twin of the board).

- ``command_p99_ms``: ``POST /api/valves`` accepted (the request reaches the station's ASGI
  app, uvicorn on the loopback) to the emulator reading the ``Valves:`` line from its end of the
  pty; ``command_roundtrip_p99_ms`` counts from the client's send (httpx, keep-alive) instead.
- ``redline_p99_ms``: a violating sample acquired (its acquisition timestamp) on a 10 kHz
  sensor stream (2 ms blocks) to the emulator reading the abort sequence's first command. The
  path: acquisition thread -> ring buffer -> control thread (redline evaluation) -> runner ->
  safing thread -> valve bank -> the board's port.

The 10 kHz stream is a bench device in the station (text at 230 400 baud carries at most ~1 900
lines/s); the valves are the station's own STM32 valve bank on the emulated board.

Run: ``.venv/bin/python bench/control.py [--quick]``. The last line printed is one JSON object:
``command_p99_ms``, ``command_p50_ms``, ``command_roundtrip_p99_ms``, ``redline_p99_ms``,
``redline_p50_ms``, ``commands``, ``trips``, ``sensor_rate_hz``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from _common import machine_line, update_docs

from rigwatch.cli import SWITCH_INTERVAL_S
from rigwatch.config.station import StationConfig
from rigwatch.control.states import RunnerState as S
from rigwatch.devices.protocols import Block, StreamInfo, channel_infos
from rigwatch.devices.registry import DriverContext, build_device
from rigwatch.station import Station
from rigwatch.web.station_app import create_app

ROOT = Path(__file__).resolve().parents[1]
SENSOR_RATE_HZ = 10_000
BLOCK_S = 0.002
LIMIT = 10.0

SCENARIO = """
name = "bench"
requires_arming = true

[[redlines]]
name = "over"
channels = ["PX"]
max = 10.0
always = true

[[steps]]
hold = "waiting for the bench's violation"

[abort]
steps = [{ set = { PURGE1 = "open" } }, { set = { PURGE1 = "closed" } }]
"""


class TenKilohertz:
    """A sensor at 10 kHz in 2 ms blocks, stamped with each sample's time; :meth:`violate`
    makes the next sample onwards exceed the redline and returns nothing (the stamp of the first
    violating sample is kept in :attr:`violated_ns`)."""

    def __init__(self) -> None:
        from rigwatch.config.base import ChannelConfig

        self._info = StreamInfo(
            device="sensor",
            driver="bench",
            sample_rate_hz=SENSOR_RATE_HZ,
            channels=channel_infos([ChannelConfig(name="PX", unit="bar")]),
        )
        self._next_ns = 0
        self._violate = threading.Event()
        self.violated_ns: int | None = None

    def describe(self) -> StreamInfo:
        return self._info

    def start(self) -> None:
        self._next_ns = time.time_ns()

    def stop(self) -> None:
        pass

    def violate(self) -> None:
        self.violated_ns = None
        self._violate.set()

    def calm(self) -> None:
        self._violate.clear()

    def read_block(self, timeout_s: float) -> Block | None:
        period_ns = 1_000_000_000 // SENSOR_RATE_HZ
        rows = int(BLOCK_S * SENSOR_RATE_HZ)
        end_ns = self._next_ns + rows * period_ns
        wait = (end_ns - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)  # the sensor's own pace
        stamps = self._next_ns + period_ns * np.arange(rows, dtype=np.int64)
        self._next_ns = end_ns
        data = np.full((rows, 1), 5.0, np.float32)
        if self._violate.is_set():
            data[:] = 30.0
            if self.violated_ns is None:
                self.violated_ns = int(stamps[0])
        return Block(data=data, timestamps_ns=stamps)


def build(tmp: Path) -> tuple[Station, TenKilohertz]:
    (tmp / "scenarios").mkdir()
    (tmp / "scenarios" / "bench.toml").write_text(SCENARIO)
    cfg = StationConfig.from_dict(
        {
            "name": "bench_stand",
            "recorder": {"enabled": False, "directory": str(tmp / "rec")},
            "buffer": {"capacity_rows": 200_000},
            "devices": [
                {
                    "name": "stm32",
                    "driver": "stm32",
                    "port": "/dev/null",
                    "sample_rate_hz": 100,
                    "block_duration_s": 0.01,
                    "channels": [{"name": "P1"}, {"name": "P2"}],
                }
            ],
            "control": {
                "audit": str(tmp / "audit.sqlite"),
                "scenarios": [str(tmp / "scenarios")],
                "operator_timeout_s": 600,
                "actuators": [
                    {
                        "type": "stm32_valves",
                        "name": "valves",
                        "device": "stm32",
                        "outputs": [
                            {"name": n}
                            for n in (
                                "RELIEF1",
                                "GOX1",
                                "PURGE1",
                                "PURGE2",
                                "FUEL1",
                                "RELIEF2",
                                "GOX2",
                                "FUEL2",
                                "IGNITION",
                            )
                        ],
                    }
                ],
            },
        }
    )
    sensor = TenKilohertz()
    board = build_device(cfg.devices[0], DriverContext(), simulate=True)
    return Station(cfg, devices=[board, sensor]), sensor


class Accepted:
    """ASGI wrapper noting when each ``POST /api/valves`` reaches the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.at_ns = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/valves":
            self.at_ns = time.perf_counter_ns()
        await self.app(scope, receive, send)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run (under a minute)")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # each trip logs an error by design
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as `rigwatch station run` sets it
    n_commands = 150 if args.quick else 1000
    n_trips = 30 if args.quick else 200
    with tempfile.TemporaryDirectory() as tmp_dir:
        station, sensor = build(Path(tmp_dir))
        emulator = station.streams["stm32"].device.emulator  # type: ignore[attr-defined]
        heard: list[tuple[str, int]] = []
        got = threading.Event()

        def on_command(line: str) -> None:
            heard.append((line, time.perf_counter_ns()))
            got.set()

        emulator.on_command = on_command
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        app = Accepted(create_app(station))
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", ws_per_message_deflate=False)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        commands: list[float] = []
        roundtrips: list[float] = []
        trips: list[float] = []
        try:
            with httpx.Client(base_url=base, timeout=10) as http:
                r = http.post("/api/control/authority", json={"action": "request", "client": "b"})
                lease = {"X-Control-Lease": r.json()["lease"]}
                for i in range(n_commands):  # command to actuator
                    bits = [0, 0, i % 2, 0, 0, 0, 0, 0, 0]
                    got.clear()
                    heard.clear()
                    t0 = time.perf_counter_ns()
                    r = http.post("/api/valves", json={"valves": bits}, headers=lease)
                    assert r.status_code == 200, r.text
                    got.wait(5)
                    commands.append((heard[0][1] - app.at_ns) / 1e6)
                    roundtrips.append((heard[0][1] - t0) / 1e6)
                runner = station.control.runner
                for _ in range(n_trips):  # redline reaction
                    http.post("/api/control/arm", headers=lease).raise_for_status()
                    http.post("/api/scenario/bench", headers=lease).raise_for_status()
                    assert runner.wait_state(S.HOLDING, 5) is S.HOLDING
                    got.clear()
                    heard.clear()
                    sensor.violate()
                    assert runner.wait_state(S.SAFE, 5) is S.SAFE, runner.status()
                    sensor.calm()
                    got.wait(5)
                    assert sensor.violated_ns is not None and heard[0][0] == "Valves:001000000"
                    # perf_counter and time_ns differ by an offset: convert at the same moment
                    offset = time.time_ns() - time.perf_counter_ns()
                    trips.append((heard[0][1] + offset - sensor.violated_ns) / 1e6)
                    http.post("/api/control/reset", headers=lease).raise_for_status()
        finally:
            server.should_exit = True
            thread.join(30)
            sock.close()
    result = {
        "command_p99_ms": round(pct(commands, 99), 3),
        "command_p50_ms": round(pct(commands, 50), 3),
        "command_roundtrip_p99_ms": round(pct(roundtrips, 99), 3),
        "redline_p99_ms": round(pct(trips, 99), 3),
        "redline_p50_ms": round(pct(trips, 50), 3),
        "commands": len(commands),
        "trips": len(trips),
        "sensor_rate_hz": SENSOR_RATE_HZ,
    }
    cmd = "bench/control.py" + (" --quick" if args.quick else "")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    update_docs(
        "control",
        f"""## Control: command latency and redline reaction

`.venv/bin/python {cmd}` ({machine_line()}; load average {load}
during the run, other work sharing the cores). The STM32 firmware emulator on a
pseudo-terminal stands in for the board; the times end when the emulator reads the line.

| figure | p50 | p99 | target | n |
| --- | --- | --- | --- | --- |
| `POST /api/valves` accepted by the station -> `Valves:` line read by the board | \
{result["command_p50_ms"]} ms | {result["command_p99_ms"]} ms | p99 < 5 ms | {len(commands)} |
| the same from the client's send (httpx) | {round(pct(roundtrips, 50), 3)} ms | \
{result["command_roundtrip_p99_ms"]} ms | | {len(roundtrips)} |
| violating sample acquired (10 kHz stream, 2 ms blocks) -> abort's first command read by \
the board | {result["redline_p50_ms"]} ms | {result["redline_p99_ms"]} ms | p99 < 20 ms | \
{len(trips)} |

The redline reaction includes up to one block (2 ms) of acquisition latency: a violating sample
waits in its block until the block is complete. The path after acquisition: the acquisition
thread queues the stream's name; the control thread reads the new rows from the ring buffer and
evaluates the redlines; the trip starts the runner's safing thread, which hands the abort
sequence's first command to the valve bank's transaction thread, which writes it to the port.
""",
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
