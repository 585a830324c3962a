"""A station killed with SIGKILL loses at most the last second of its open segment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

from rigwatch.config import load_config
from rigwatch.station import Station
from support.server import free_port

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
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rigwatch", "station", "run", str(cfg), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        rows_at_status = 0
        while rows_at_status < 2 * RATE:  # at least 2 s acquired and journalled
            assert time.monotonic() < deadline, "station did not record"
            assert proc.poll() is None, "station exited"
            try:
                st = httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()
                rows_at_status = st["devices"][0]["rows"]
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling interval of an external process, not synchronisation
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
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
