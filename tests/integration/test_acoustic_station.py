"""The acoustic camera in a running station: maps of a replayed recording with known sources,
the ball mill's former endpoints, typed parameters, listening over the WebSocket, dead and
broken microphones."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import msgpack
import numpy as np
import pytest
from websockets.sync.client import ClientConnection, connect

from rigwatch.acoustics.demo_scene import DemoScene, write_demo_scene
from rigwatch.config import StationConfig
from rigwatch.station import Station
from support.server import serve

ROOT = Path(__file__).resolve().parents[2]
DRONE = ROOT / "data" / "acoustics" / "measurement_drone.wav"
SCENE = DemoScene()
N_ALONG = SCENE.grid.n_along
SOURCES = {divmod(SCENE.drone_point, N_ALONG), divmod(SCENE.noise_point, N_ALONG)}
"""(row, col) of the drone and of the white-noise source on the map."""


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scene") / "scene.h5"
    write_demo_scene(DRONE, path)
    return path


def station_config(path: Path, **acoustics: Any) -> StationConfig:
    cam = {
        "device": "microphones",
        "array": {"builtin": "ball_mill_9"},
        "map_rate_hz": 10,
        "average_s": 0.5,
        "band": {"kind": "range", "low_hz": 1000, "high_hz": 7000},
        **acoustics,
    }
    return StationConfig.from_dict(
        {
            "recorder": {"enabled": False, "directory": str(path.parent / "rec")},
            "acoustics": cam,
            "devices": [
                {
                    "name": "microphones",
                    "driver": "replay",
                    "path": str(path),
                    "loop": True,
                    "block_duration_s": 0.05,
                }
            ],
        }
    )


@pytest.fixture
def served(scene_file: Path) -> Iterator[tuple[Station, str]]:
    station = Station(station_config(scene_file))
    with serve(station) as addr:
        yield station, addr


def recv(ws: ClientConnection, mtype: str, limit: int = 400) -> dict[str, Any]:
    """The next message of type ``mtype`` (others skipped; an error frame fails)."""
    for _ in range(limit):
        m = msgpack.unpackb(ws.recv(timeout=20), raw=False)
        assert m["type"] != "error", m
        if m["type"] == mtype:
            return m
    raise AssertionError(f"no {mtype!r} message in {limit}")


def map_values(frame: dict[str, Any]) -> np.ndarray:
    assert frame["dtype"] == "<f4"
    return np.frombuffer(frame["data"], dtype="<f4").reshape(frame["shape"])


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        pause.wait(0.02)
    return True


def near(cell: tuple[int, int], targets: set[tuple[int, int]], cells: int = 1) -> bool:
    return any(abs(cell[0] - r) <= cells and abs(cell[1] - c) <= cells for r, c in targets)


def test_maps_over_the_websocket_find_both_sources(served: tuple[Station, str]) -> None:
    _, addr = served
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics", "maps": True}))
        assert recv(ws, "acoustics_subscribed")["maps"] is True
        first = recv(ws, "acoustic_map")
        second = recv(ws, "acoustic_map")
        # averaged over 1.5 s of data (time constant average_s = 0.5 s), however slowly it came
        while second["timestamp_ns"] - first["timestamp_ns"] < 1_500_000_000:
            second = recv(ws, "acoustic_map")
    assert second["seq"] > first["seq"]
    values = map_values(second)
    assert values.shape == (5, 50) and np.isfinite(values).all()
    assert second["quantity"] == "spl_db" and second["unit"] == "dB re 20 uPa"
    # the 9-microphone array is small: the map is smooth but its two maxima are the sources
    top = [(p["row"], p["col"]) for p in second["peaks"][:2]]
    assert all(near(cell, SOURCES) for cell in top), (top, SOURCES)
    assert {near(cell, {s}) for cell in top for s in SOURCES} == {True, False}
    # sound pressure levels of sources of 1 Pa and 0.3 Pa rms at 1 m, heard from 1.4 m
    assert 60 < float(values.max()) < 100


def test_former_heatmap_endpoint_keeps_its_shape(served: tuple[Station, str]) -> None:
    _, addr = served
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics"}))
        recv(ws, "acoustic_map")
    body = httpx.get(f"http://{addr}/heatmap").json()
    assert set(body) == {"heatmap", "timestamp", "dimensions"}
    hm = np.array(body["heatmap"])
    assert hm.shape == (5, 50)
    assert hm.min() == 0.0 and hm.max() == 1.0
    assert body["dimensions"] == {"length": 3.15, "diameter": 0.30}
    assert body["timestamp"].endswith("Z")
    typed = httpx.get(f"http://{addr}/api/acoustics").json()
    assert typed["grid"]["shape"] == [5, 50] and len(typed["grid"]["x_m"]) == 50
    assert typed["array"]["n_mics"] == 9 and typed["parameters"]["method"] == "conventional"


def test_listening_to_a_pixel_streams_pcm_frames(served: tuple[Station, str]) -> None:
    _, addr = served
    r = httpx.post(f"http://{addr}/select_pixel", json={"x": 12, "y": 2})
    assert r.status_code == 200 and r.json()["selected_pixels"] == [[12, 2]]
    sel = httpx.get(f"http://{addr}/api/acoustics/selections").json()
    assert [(s["row"], s["col"]) for s in sel] == [(2, 12)]
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics", "maps": False, "audio": True}))
        frames = [recv(ws, "audio") for _ in range(4)]
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 4))
    for f in frames:
        assert f["selections"] == [sel[0]["id"]] and f["dtype"] == "<i2"
        assert f["sample_rate_hz"] == 48000.0 and f["shape"][1] == 1
        pcm = np.frombuffer(f["data"], dtype="<i2")
        assert pcm.size == f["shape"][0] >= 2400 and np.abs(pcm).max() > 0  # 50 ms frames
    # consecutive frames are consecutive samples of the acquisition
    assert frames[1]["start_index"] == frames[0]["start_index"] + frames[0]["shape"][0]
    status = httpx.get(f"http://{addr}/status").json()
    assert status["selected_pixels"] == [[12, 2]] and status["is_running"] is True
    r = httpx.post(f"http://{addr}/deselect_pixel", json={"x": 12, "y": 2})
    assert r.json()["selected_pixels"] == []
    r = httpx.post(f"http://{addr}/deselect_pixel", json={"x": 12, "y": 2})
    assert r.status_code == 404 and "not selected" in r.json()["detail"]


def test_parameters_change_the_next_map_and_bad_ones_are_refused(
    served: tuple[Station, str],
) -> None:
    station, addr = served
    r = httpx.post(f"http://{addr}/api/acoustics/parameters", json={"method": "music"})
    assert r.status_code == 200 and r.json()["method"] == "music"
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics"}))
        frame = recv(ws, "acoustic_map")
        while frame["method"] != "music":
            frame = recv(ws, "acoustic_map")
    assert frame["quantity"] == "pseudo_spectrum" and frame["unit"] == ""
    v = map_values(frame)
    assert v.min() == 0.0 and v.max() == 1.0
    bad = httpx.post(
        f"http://{addr}/api/acoustics/parameters",
        json={"band": {"kind": "range", "low_hz": 30000, "high_hz": 40000}},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert "Nyquist" in bad.json()["detail"]
    unknown = httpx.post(f"http://{addr}/api/acoustics/parameters", json={"block_size": 512})
    assert unknown.status_code == 422
    assert station.acoustics is not None and station.acoustics.config.method == "music"
    outside = httpx.post(f"http://{addr}/api/acoustics/selections", json={"row": 5, "col": 0})
    assert outside.status_code == 422 and "outside the 5 x 50 map" in outside.json()["detail"]


def test_map_exports(served: tuple[Station, str]) -> None:
    _, addr = served
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics"}))
        recv(ws, "acoustic_map")
    png = httpx.get(f"http://{addr}/api/acoustics/map.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    csv = httpx.get(f"http://{addr}/api/acoustics/map.csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("x_m,y_m,z_m") and len(lines) == 1 + 250
    assert httpx.get(f"http://{addr}/api/acoustics/map.gif").status_code == 422


def test_station_without_camera_says_so(tmp_path: Path) -> None:
    cfg = StationConfig.from_dict(
        {
            "recorder": {"enabled": False, "directory": str(tmp_path)},
            "devices": [{"name": "s", "driver": "sim", "sample_rate_hz": 100, "channel_count": 1}],
        }
    )
    with serve(Station(cfg)) as addr:
        r = httpx.get(f"http://{addr}/heatmap")
        assert r.status_code == 404 and "no acoustic camera" in r.json()["detail"]
        with connect(f"ws://{addr}/ws") as ws:
            ws.send(msgpack.packb({"type": "subscribe_acoustics"}))
            m = msgpack.unpackb(ws.recv(timeout=10), raw=False)
    assert m["type"] == "error" and m["code"] == "no_acoustics"


def _broken_copy(src: Path, dst: Path, dead: int, nan_rows: slice) -> None:
    with h5py.File(src) as f:
        data = f["time_data"][()]
        fs = f["time_data"].attrs["sample_freq"]
    data[:, dead] = 0.0
    data[nan_rows, 5] = np.nan
    with h5py.File(dst, "w") as f:
        f.create_dataset("time_data", data=data).attrs["sample_freq"] = fs


def test_dead_microphone_is_excluded_and_broken_blocks_refused(
    scene_file: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.h5"
    _broken_copy(scene_file, broken, dead=3, nan_rows=slice(0, 4800))
    station = Station(station_config(broken))
    with serve(station) as addr, connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "subscribe_acoustics"}))
        frame = recv(ws, "acoustic_map")
        while "ch3" not in frame["excluded"]:
            frame = recv(ws, "acoustic_map")
        state = httpx.get(f"http://{addr}/api/acoustics").json()
    assert state["array"]["dead"] == ["ch3"]
    assert np.isfinite(map_values(frame)).all()
    # the first 0.1 s hold NaN on one channel: those blocks are refused and counted, not mapped
    assert state["stats"]["blocks_refused"] >= 1
    assert "NaN" in state["stats"]["last_error"]
    assert station.counters.get("acoustics.dead_microphone") == 1


def test_clipped_channel_blocks_are_refused(scene_file: Path, tmp_path: Path) -> None:
    clipped = tmp_path / "clipped.h5"
    with h5py.File(scene_file) as f:
        data = f["time_data"][()]
        fs = f["time_data"].attrs["sample_freq"]
    data[:, 2] = np.clip(data[:, 2] * 50, -5.0, 5.0)  # microphone 3 overdriven
    with h5py.File(clipped, "w") as f:
        f.create_dataset("time_data", data=data).attrs["sample_freq"] = fs
    station = Station(station_config(clipped, full_scale_pa=5.0))
    cam = station.acoustics
    assert cam is not None
    with serve(station) as addr:
        assert wait_until(lambda: cam.stats.blocks_refused >= 3, timeout_s=20)
        state = httpx.get(f"http://{addr}/api/acoustics").json()
    assert "channel(s) [2] are clipped" in state["stats"]["last_error"]
    assert state["stats"]["maps"] == 0  # every block is refused: no map from clipped data
