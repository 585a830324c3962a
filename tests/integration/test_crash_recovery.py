"""A station killed with SIGKILL loses at most the last second of its open segment."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pyarrow.parquet as pq
from websockets.sync.client import connect

from rigwatch.config import load_config
from rigwatch.station import Station
from support.process import StationProcess

ROOT = Path(__file__).resolve().parents[2]
IR = ROOT / "data" / "cwru" / "1797_IR_7_DE12.npz"
RATE = 12_000


def test_kill_9_then_restart_recovers_the_open_segment(tmp_path: Path):
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f"""
name = "crash"
[recorder]
directory = "{tmp_path / "rec"}"
segment_duration_s = 600
flush_interval_s = 0.5
[buffer]
capacity_rows = 100000
[[devices]]
name = "ir"
driver = "replay"
path = "{IR}"
keys = ["DE", "FE", "BA"]
sample_rate_hz = {RATE}
pace = "realtime"
loop = true
"""
    )
    station = StationProcess(cfg)
    try:
        with connect(f"ws://127.0.0.1:{station.port}/ws") as ws:
            ws.send(msgpack.packb({"type": "subscribe", "device": "ir", "display_rate_hz": 100}))
            acquired = 0
            while acquired < 2 * RATE:  # at least 2 s acquired (and journalled by now)
                m = msgpack.unpackb(ws.recv(timeout=30), raw=False)
                if m["type"] == "data":
                    acquired = m["end_index"]
        rows_at_status = httpx.get(f"{station.base_url}/api/status").json()["devices"][0]["rows"]
        station.kill()
    finally:
        station.kill()
    assert station.proc.returncode == -signal.SIGKILL
    rec = tmp_path / "rec"
    assert not list(rec.glob("ir_*.parquet"))  # the only segment was still open
    assert list(rec.glob(".*"))  # its journal and temporary file are there

    station = Station(load_config(cfg))
    station.start()
    station.stop()
    assert station.counters.get("recorder.recovered_segments") == 1
    files = sorted(rec.glob("ir_*.parquet"))
    recovered = pq.read_table(files[0])
    assert int(recovered.schema.metadata[b"rigwatch.start_index"]) == 0
    # at most the last second (plus one block in flight) was lost
    assert recovered.num_rows >= rows_at_status - RATE * 1.0 - RATE * 0.05
    src = np.load(IR)["DE"][:, 0].astype(np.float32)
    n = recovered.num_rows
    want = np.tile(src, n // src.shape[0] + 1)[:n]
    assert np.array_equal(recovered.column("DE").to_numpy(), want)
    assert not [p for p in rec.iterdir() if p.name.startswith(".")]  # no leftovers
