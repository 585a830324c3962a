"""The station server end to end over real HTTP and WebSocket connections."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import msgpack
import numpy as np
import pyarrow.parquet as pq
import pytest
from websockets.sync.client import connect

from rigwatch.config.station import StationConfig
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import ChannelInfo
from rigwatch.station import Station
from support.server import serve


def station_config(
    tmp_path: Path, device: str = "dev", channels: tuple[str, ...] = ("a", "b"), **extra
) -> StationConfig:
    return StationConfig.from_dict(
        {
            "name": "bench_a",
            "recorder": {"directory": str(tmp_path / "rec"), "segment_duration_s": 1.0},
            "live": {"max_message_bytes": 4096},
            "devices": [
                {
                    "name": device,
                    "driver": "sim",
                    "sample_rate_hz": 1000,
                    "channels": [{"name": c, "unit": "V"} for c in channels],
                }
            ],
            **extra,
        }
    )


@pytest.fixture
def running(tmp_path: Path):
    dev = ListDevice("dev", rate_hz=1000.0)
    station = Station(station_config(tmp_path), devices=[dev])
    with serve(station) as addr:
        yield station, dev, addr


def recv(ws) -> dict:
    return msgpack.unpackb(ws.recv(timeout=10), raw=False)


def recv_type(ws, mtype: str) -> dict:
    for _ in range(100):
        m = recv(ws)
        if m["type"] == mtype:
            return m
    raise AssertionError(f"no {mtype} frame")


def test_rest_endpoints_report_devices_buffers_and_sensors(running):
    _, dev, addr = running
    dev.blocks.put(ramp_block(0, 50, 2))
    with connect(f"ws://{addr}/ws") as ws:  # wait until the rows are in: ask over the wire
        for _ in range(200):
            ws.send(msgpack.packb({"type": "get_sensors"}))
            if recv_type(ws, "sensors")["devices"]["dev"]["values"]["a"] == 490.0:
                break
    base = f"http://{addr}"
    assert httpx.get(f"{base}/api/hello").json()["station"] == "bench_a"
    status = httpx.get(f"{base}/api/status").json()
    (d,) = status["devices"]
    assert d["name"] == "dev" and d["rows"] == 50 and d["state"] == "running"
    assert d["channels"] == [{"name": "a", "unit": "V"}, {"name": "b", "unit": "V"}]
    assert "dev" in status["recorder"]
    buf = httpx.get(f"{base}/api/buffer_status").json()["devices"]["dev"]
    assert buf["write_index"] == 50 and buf["capacity_rows"] == 6_000_000
    sensors = httpx.get(f"{base}/api/sensors").json()["devices"]["dev"]
    assert sensors["values"] == {"a": 490.0, "b": 491.0} and sensors["units"]["a"] == "V"
    assert httpx.get(f"{base}/docs").status_code == 200
    assert "/api/parquet_data/{filename}" in httpx.get(f"{base}/openapi.json").text


def test_websocket_streams_subscribed_channels_with_exact_values(running):
    _, dev, addr = running
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(
            msgpack.packb(
                {
                    "type": "subscribe",
                    "device": "dev",
                    "channels": ["b"],
                    "display_rate_hz": 1000,
                    "fps": 60,
                }
            )
        )
        sub = recv(ws)
        assert sub["type"] == "subscribed" and sub["channels"] == ["b"]
        assert sub["bucket_size"] == 1 and sub["units"] == ["V"]
        for i in range(0, 300, 30):
            dev.blocks.put(ramp_block(i, 30, 2))
        values: list[np.ndarray] = []
        seqs = []
        while sum(len(v) for v in values) < 300:
            m = recv_type(ws, "data")
            assert m["dtype"] == "<f4" and m["missed"] == 0
            seqs.append(m["seq"])
            values.append(np.frombuffer(m["data"], "<f4").reshape(m["shape"])[:, 0])
        np.testing.assert_array_equal(np.concatenate(values), ramp_block(0, 300, 2).data[:, 1])
        assert seqs == list(range(len(seqs)))


def test_websocket_bad_messages_get_error_frames_and_are_counted(running):
    station, _, addr = running
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "launch_rocket"}))
        e = recv(ws)
        assert e["type"] == "error" and e["code"] == "unknown_type"
        assert "launch_rocket" in e["message"] and "subscribe" in e["message"]
        ws.send(b"\xc1\xc1\xc1")
        assert recv(ws)["code"] == "malformed"
        ws.send("{not json")
        assert recv(ws)["code"] == "malformed"
        ws.send(msgpack.packb([1, 2, 3]))
        assert recv(ws)["code"] == "malformed"
        ws.send(msgpack.packb({"type": "ping", "pad": "x" * 5000}))
        e = recv(ws)
        assert e["code"] == "oversized" and "4096" in e["message"]
        ws.send(json.dumps({"type": "subscribe", "device": "dev", "fps": "fast"}))
        e = recv(ws)
        assert e["code"] == "invalid_field" and "fps" in e["message"]
        ws.send(json.dumps({"type": "subscribe", "device": "ghost"}))
        assert recv(ws)["code"] == "unknown_device"
        ws.send(json.dumps({"type": "subscribe", "device": "dev", "channels": ["zz"]}))
        assert recv(ws)["code"] == "unknown_channel"
        ws.send(json.dumps({"type": "system_mode", "mode": "warp"}))
        e = recv(ws)
        assert e["code"] == "mode_refused" and "unknown mode 'warp'" in e["message"]
        ws.send(json.dumps({"type": "system_mode", "mode": "safe"}))  # nothing to abort with
        e = recv(ws)
        assert e["code"] == "mode_refused" and "no safing scenario" in e["message"]
        # the connection still works after all of that
        ws.send(json.dumps({"type": "control_authority", "action": "request", "client": "a"}))
        assert recv(ws)["holder"] == "a"
        ws.send(json.dumps({"type": "system_mode", "mode": "armed"}))
        assert recv(ws) == {"type": "system_mode", "mode": "armed"}
        ws.send(json.dumps({"type": "system_mode", "mode": "holding"}))
        e = recv(ws)
        assert e["code"] == "mode_refused" and "nothing is running" in e["message"]
        ws.send(json.dumps({"type": "ping"}))
        assert recv(ws) == {"type": "pong"}
    errors = httpx.get(f"http://{addr}/api/status").json()["errors"]
    assert errors["ws.unknown_type"] == 1 and errors["ws.malformed"] == 3
    assert errors["ws.oversized"] == 1 and errors["ws.invalid_field"] == 1
    assert errors["ws.mode_refused"] == 3
    assert errors["ws.unknown_device"] == 1 and errors["ws.unknown_channel"] == 1
    assert station.mode == "armed"


def test_recordings_listing_data_download_and_path_traversal(running):
    station, dev, addr = running
    dev.blocks.put(ramp_block(0, 2500, 2))
    dev.blocks.put(None)  # end of stream: the recorder closes its segment
    assert station.streams["dev"].wait_finished(10)
    station.recorders["dev"].stop()
    base = f"http://{addr}/api"
    files = httpx.get(f"{base}/parquet_files").json()["files"]
    assert files and all(f["device"] == "dev" for f in files)
    assert sum(f["rows"] for f in files) == 2500
    name = files[0]["filename"]
    q = httpx.get(f"{base}/parquet_data/{name}", params={"channels": "b", "max_points": 10}).json()
    assert list(q["series"]) == ["b"] and len(q["t_s"]) <= 10
    assert max(q["series"]["b"]["max"]) == float(files[0]["rows"] - 1) * 10 + 1
    dl = httpx.get(f"{base}/parquet_download/{name}")
    assert dl.status_code == 200 and dl.content[:4] == b"PAR1"
    bad = httpx.get(f"{base}/parquet_data/..%2F..%2Fetc%2Fpasswd")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{base}/parquet_data/nope.parquet").status_code == 404
    unknown = httpx.get(f"{base}/parquet_data/{name}", params={"channels": "zz"})
    assert unknown.status_code == 400 and "zz" in unknown.json()["detail"]
    invalid = httpx.get(f"{base}/parquet_data/{name}", params={"max_points": "many"})
    assert invalid.status_code == 422 and "max_points" in invalid.json()["detail"]


def test_save_sensor_buffer_writes_the_buffer(running):
    station, dev, addr = running
    dev.blocks.put(ramp_block(0, 100, 2))
    dev.blocks.put(None)
    assert station.streams["dev"].wait_finished(10)
    r = httpx.post(f"http://{addr}/api/save_sensor_buffer")
    assert r.status_code == 200
    (name,) = r.json()["files"]
    table = pq.read_table(station.recordings_dir / name)
    np.testing.assert_array_equal(table.column("a").to_numpy(), ramp_block(0, 100, 2).data[:, 0])
    r = httpx.post(f"http://{addr}/api/save_sensor_buffer", json={"device": "ghost"})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]


def test_pressure_push_sends_calibrated_value(tmp_path: Path):
    dev = ListDevice("pressure", channels=[ChannelInfo("pressure", "bar", 46.18, -25.7)], rate_hz=2)
    cfg = station_config(
        tmp_path,
        device="pressure",
        channels=("pressure",),
        pressure_push={"device": "pressure", "channel": "pressure", "interval_s": 0.05},
    )
    station = Station(cfg, devices=[dev])
    dev.blocks.put(ramp_block(0, 1, 1))  # 0 V -> -25.7 bar
    with serve(station) as addr:
        with connect(f"ws://{addr}/ws/pressure") as ws:
            for _ in range(200):
                msg = json.loads(ws.recv(timeout=10))
                if msg["pressure"] is not None:
                    break
        assert set(msg) == {"pressure"}
        assert msg["pressure"] == pytest.approx(-25.7, abs=1e-4)


def test_a_corrupt_recording_is_listed_with_its_error_and_refused_clearly(running):
    station, dev, addr = running
    dev.blocks.put(ramp_block(0, 100, 2))
    dev.blocks.put(None)
    assert station.streams["dev"].wait_finished(10)
    good = station.save_buffers()[0]
    bad = station.recordings_dir / "dev_truncated.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    base = f"http://{addr}/api"
    files = {f["filename"]: f for f in httpx.get(f"{base}/parquet_files").json()["files"]}
    assert files[good.name]["rows"] == 100 and not files[good.name].get("error")
    assert files[bad.name]["error"]
    r = httpx.get(f"{base}/parquet_data/{bad.name}")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert bad.name in r.json()["detail"]
    assert httpx.get(f"{base}/parquet_data/{good.name}").status_code == 200  # still served
    assert httpx.get(f"{base}/status").json()["errors"]["http.rejected_request"] >= 1
