"""Stopping a station: Ctrl-C and SIGTERM exit 0 after closing segments, within a bounded
grace period even while a client holds a download open without reading it."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq

from support.process import StationProcess

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, grace_s: int) -> Path:
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f"""
name = "stopper"
[server]
shutdown_grace_s = {grace_s}
[recorder]
directory = "{tmp_path / "rec"}"
segment_duration_s = 600
[[devices]]
name = "gen"
driver = "sim"
sample_rate_hz = 1000
channel_count = 2
"""
    )
    return cfg


def test_sigterm_with_a_stalled_download_exits_0_within_the_grace_period(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, grace_s=1)
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "big.parquet").write_bytes(b"\0" * (64 << 20))  # far more than socket buffers hold
    station = StationProcess(cfg)
    sock = socket.create_connection(("127.0.0.1", station.port))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /api/parquet_download/big.parquet HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")  # the download started; now stall
        t0 = time.monotonic()
        station.proc.send_signal(signal.SIGTERM)
        try:
            code = station.proc.wait(30)
        except subprocess.TimeoutExpired:
            station.kill()
            raise AssertionError("the station did not stop within 30 s") from None
        elapsed = time.monotonic() - t0
    finally:
        sock.close()
        station.kill()
    assert code == 0, station.output()
    assert elapsed < 15, elapsed  # the grace period (1 s) plus the station's own shutdown
    assert "stopped by SIGTERM" in station.output()
    segments = list(rec.glob("gen_*.parquet"))
    assert len(segments) == 1 and pq.read_metadata(segments[0]).num_rows > 0


def test_ctrl_c_exits_0_and_closes_the_open_segment(tmp_path: Path) -> None:
    station = StationProcess(write_config(tmp_path, grace_s=5))
    assert station.stop() == 0, station.output()
    assert "stopped by SIGINT" in station.output()
    segments = list((tmp_path / "rec").glob("gen_*.parquet"))
    assert len(segments) == 1 and pq.read_metadata(segments[0]).num_rows > 0
