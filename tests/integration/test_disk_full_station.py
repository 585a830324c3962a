"""A served station whose disk fills: the recorder stops with a clear status while acquisition
and the live stream go on; recording resumes when space is back. Retention runs at start and
counts buffer snapshots."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pyarrow.parquet as pq
import pytest
from websockets.sync.client import ClientConnection, connect

from rigwatch.config.station import StationConfig
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.errors import DiskFull
from rigwatch.station import Station
from support.disk import FakeDisk, wait_until
from support.server import serve

MIB = 1 << 20


def config(directory: Path, **retention: object) -> StationConfig:
    return StationConfig.from_dict(
        {
            "name": "full_disk",
            "recorder": {
                "directory": str(directory),
                "segment_duration_s": 0.5,  # 500 rows of the 1 kHz ramp
                "fsync": False,
                "disk_full_retry_s": 0.05,
                "retention": {"min_free_bytes": MIB, **retention},
            },
            "api": {"snapshot_min_interval_s": 0},
            "devices": [
                {"name": "dev", "driver": "sim", "sample_rate_hz": 1000, "channel_count": 2}
            ],
        }
    )


def live_until(ws: ClientConnection, end_index: int) -> int:
    """Read data frames until one reaches ``end_index``; returns the last end index."""
    end = 0
    while end < end_index:
        m = msgpack.unpackb(ws.recv(timeout=30), raw=False)
        if m["type"] == "data":
            end = m["end_index"]
    return end


def test_full_disk_stops_recording_only_and_recording_resumes(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    disk = FakeDisk()
    dev = ListDevice("dev", rate_hz=1000.0)
    station = Station(config(rec_dir), devices=[dev], disk=disk)
    stream = station.streams["dev"]
    recorder = station.recorders["dev"]
    put = 0

    def deliver(rows: int) -> None:
        nonlocal put
        dev.blocks.put(ramp_block(put, rows, 2))
        put += rows

    with serve(station) as addr, connect(f"ws://{addr}/ws") as ws:
        base = f"http://{addr}"
        ws.send(msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 100}))
        assert msgpack.unpackb(ws.recv(timeout=30), raw=False)["type"] == "subscribed"
        deliver(700)
        live_until(ws, 700)
        assert recorder.flush() == 700

        disk.fill()
        deliver(300)
        wait_until(lambda: recorder.status()["state"] == "disk_full", what="disk_full")
        status = httpx.get(f"{base}/api/status").json()
        rec = status["recorder"]["dev"]
        assert rec["state"] == "disk_full"
        assert rec["free_bytes"] == 0 and rec["min_free_bytes"] == MIB
        assert str(rec_dir) in rec["last_error"] and "0 bytes free" in rec["last_error"]
        assert status["errors"]["recorder.dev.disk_full"] == 1

        # acquisition and the live stream go on while nothing is recorded
        for _ in range(4):
            deliver(500)
        assert live_until(ws, put) == put == 3000
        assert stream.stats.rows == 3000 and stream.state == "running"
        with pytest.raises(DiskFull):
            recorder.flush()  # answered once the recorder has followed the buffer
        rec = httpx.get(f"{base}/api/status").json()["recorder"]["dev"]
        assert rec["lost_rows"] == 300 + 2000  # the unjournaled rows, then all rows read
        assert rec["state"] == "disk_full"
        snapshot = httpx.post(f"{base}/api/save_sensor_buffer")
        assert snapshot.status_code == 507 and "min_free_bytes" in snapshot.json()["detail"]
        for p in rec_dir.glob("*.parquet"):  # every visible file is complete meanwhile
            assert pq.read_table(p).num_rows > 0

        disk.free_up()
        wait_until(lambda: recorder.status()["state"] == "recording", what="resume")
        deliver(400)
        live_until(ws, put)
        assert recorder.flush() == put
        rec = httpx.get(f"{base}/api/status").json()["recorder"]["dev"]
        assert rec["state"] == "recording" and rec["free_bytes"] == disk.free_bytes
    station.stop()

    recorded = 0
    starts = []
    for p in sorted(rec_dir.glob("*.parquet")):
        table = pq.read_table(p)
        start = int(table.schema.metadata[b"rigwatch.start_index"])
        starts.append(start)
        want = ramp_block(start, table.num_rows, 2).data
        got = np.stack([table.column(c).to_numpy() for c in ("a", "b")], axis=1)
        np.testing.assert_array_equal(got, want)
        recorded += table.num_rows
    assert recorded + station.counters.get("recorder.dev.lost_rows") == put
    assert 3000 in starts  # the segment opened when recording resumed
    assert not [p for p in rec_dir.iterdir() if p.name.startswith(".")]


def test_retention_at_start_and_after_a_snapshot_counts_snapshots(tmp_path: Path) -> None:
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    old = []
    for i in range(4):
        p = rec_dir / f"dev_20240101T00000{i}_000000Z.parquet"
        p.write_bytes(b"old")
        os.utime(p, (1_700_000_000 + i, 1_700_000_000 + i))
        old.append(p)
    foreign = rec_dir / "notes.parquet"
    foreign.write_bytes(b"not ours")
    dev = ListDevice("dev", rate_hz=1000.0)
    station = Station(config(rec_dir, max_files=2), devices=[dev])
    station.start()
    try:
        assert sorted(p.name for p in rec_dir.glob("*.parquet")) == sorted(
            [old[2].name, old[3].name, foreign.name]
        )
        assert station.counters.get("recorder.retention_deleted") == 2
        dev.blocks.put(ramp_block(0, 200, 2))
        wait_until(lambda: station.streams["dev"].stats.rows == 200, what="acquisition")
        (snap,) = station.save_buffers()
        assert snap.name.startswith("buffer_dev_")
        # the snapshot is the newest: the oldest recording made room for it
        assert sorted(p.name for p in rec_dir.glob("*.parquet")) == sorted(
            [old[3].name, snap.name, foreign.name]
        )
        status = station.recorders["dev"].status()
        assert status["retention_deleted_files"] == 3
        assert status["retention_deleted_bytes"] == 3 * len(b"old")
    finally:
        station.stop()
    assert foreign.read_bytes() == b"not ours"
