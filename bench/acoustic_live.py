"""The live acoustic camera: maps per second and CPU, and acquisition-to-sound latency.

A simulated device delivers 64 microphones (Acoular's ``array_64.xml`` geometry) of noise at
51.2 kHz in real time, in blocks of 20 ms; the station's acoustic camera makes conventional
beamforming maps of the third-octave band at 4 kHz (1024-sample blocks, 50 % overlap,
diagonal removal) on a 41 x 41 plane 1 m in front of the array at ``map_rate_hz``, and focuses
on two selected points for listening. Measured over the run:

- maps per second made, and the CPU time of the map thread per second (cores);
- the CPU of the audio thread;
- acquisition-to-sound latency: from the acquisition time of a frame's first sample to the
  moment its ``audio`` frame is handed to the WebSocket layer, plus the focus's own
  algorithmic latency (delays and filter group delay): what a listener hears late.

    .venv/bin/python bench/acoustic_live.py [--quick]

The last line printed is one JSON object of figures; ``docs/benchmarks.md`` gets the table.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from _common import ROOT, machine_line, update_docs

from rigwatch.acoustics.live import AcousticMap, AudioFrame
from rigwatch.config import StationConfig
from rigwatch.station import Station

RATE_HZ = 51_200
BLOCK_S = 0.02


def config(map_rate_hz: float, tmp: Path) -> StationConfig:
    return StationConfig.from_dict(
        {
            "recorder": {"enabled": False, "directory": str(tmp)},
            "buffer": {"capacity_rows": RATE_HZ * 10},
            "acoustics": {
                "device": "mics",
                "array": {"file": str(ROOT / "data" / "acoustics" / "array_64.xml")},
                "grid": {"kind": "plane", "x_min_m": -1, "x_max_m": 1, "y_min_m": -1,
                         "y_max_m": 1, "z_m": 1, "increment_m": 0.05},
                "band": {"kind": "third_octave", "centre_hz": 4000},
                "map_rate_hz": map_rate_hz,
                "average_s": 0.5,
                "listen": {"low_hz": 200, "high_hz": 8000, "block_s": 0.05},
            },
            "devices": [
                {
                    "name": "mics",
                    "driver": "sim",
                    "sample_rate_hz": RATE_HZ,
                    "channel_count": 64,
                    "block_duration_s": BLOCK_S,
                    "signals": [{"kind": "noise", "amplitude": 0.1}],
                }
            ],
        }
    )  # fmt: skip


def thread_cpu_s(names: set[str]) -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads named in ``names``."""
    by_id = {t.native_id: t.name for t in threading.enumerate() if t.name in names}
    out = dict.fromkeys(names, 0.0)
    for t in psutil.Process().threads():
        if t.id in by_id:
            out[by_id[t.id]] += t.user_time + t.system_time
    return out


def run(duration_s: float, map_rate_hz: float) -> dict[str, float]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        station = Station(config(map_rate_hz, Path(tmp)))
        cam = station.acoustics
        assert cam is not None
        maps: list[AcousticMap] = []
        latencies: list[float] = []
        buf = station.streams["mics"].buffer

        def on_audio(f: AudioFrame) -> None:
            now = time.time_ns()
            got = buf.read_since(f.start_index, max_rows=1)
            if got.start_index == f.start_index and got.data.shape[0]:
                latencies.append((now - int(got.timestamps_ns[0])) / 1e9 + f.latency_s)

        cam.add_map_listener(maps.append)
        cam.add_audio_listener(on_audio)
        station.start()
        try:
            cam.select(10, 10)
            cam.select(30, 25)
            warm = time.monotonic() + 2.0
            while time.monotonic() < warm:
                time.sleep(0.1)
            names = {"acoustic-maps", "acoustic-audio"}
            cpu0, n0, t0 = thread_cpu_s(names), len(maps), time.monotonic()
            lat0 = len(latencies)
            while time.monotonic() < t0 + duration_s:
                time.sleep(0.1)
            cpu1, n1, t1 = thread_cpu_s(names), len(maps), time.monotonic()
        finally:
            station.stop()
        lat = np.array(latencies[lat0:]) * 1e3
        wall = t1 - t0
        return {
            "map_rate_hz": map_rate_hz,
            "maps_per_s": (n1 - n0) / wall,
            "map_thread_cores": (cpu1["acoustic-maps"] - cpu0["acoustic-maps"]) / wall,
            "audio_thread_cores": (cpu1["acoustic-audio"] - cpu0["acoustic-audio"]) / wall,
            "map_compute_ms": float(np.median([m.compute_s for m in maps[n0:n1]]) * 1e3),
            "sound_latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "sound_latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
            "blocks_missed_rows": float(cam.stats.rows_missed),
        }


def docs(rows: list[dict[str, float]], quick: bool) -> str:
    lines = [
        "## Live acoustic camera",
        "",
        f"Machine: {machine_line()}. Command: `.venv/bin/python bench/acoustic_live.py"
        f"{' --quick' if quick else ''}`.",
        "",
        "64 microphones (array_64.xml) at 51.2 kHz in real time (20 ms blocks), conventional "
        "maps of the 4 kHz third-octave band on a 41 x 41 plane (1024-sample blocks, 50 % "
        "overlap, diagonal removal, CSM updated block by block), two points listened to "
        "(delay-and-sum, 200 Hz - 8 kHz, 50 ms frames).",
        "",
        "| maps/s asked | maps/s made | map thread (cores) | map compute (ms) "
        "| audio thread (cores) | sound latency p50 / p99 (ms) | rows missed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['map_rate_hz']:g} | {r['maps_per_s']:.1f} | {r['map_thread_cores']:.2f} "
            f"| {r['map_compute_ms']:.1f} | {r['audio_thread_cores']:.2f} "
            f"| {r['sound_latency_p50_ms']:.0f} / {r['sound_latency_p99_ms']:.0f} "
            f"| {r['blocks_missed_rows']:.0f} |"
        )
    lines += [
        "",
        "Sound latency is measured from the acquisition time of a frame's first sample to the "
        "frame leaving the camera, plus the focus's algorithmic latency; the browser's audio "
        "output buffer (typically 10-50 ms) comes on top.",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one rate, 5 s")
    args = ap.parse_args()
    rates = [10.0] if args.quick else [2.0, 10.0, 20.0]
    rows = [run(5.0 if args.quick else 15.0, r) for r in rates]
    update_docs("acoustic-live", docs(rows, args.quick))
    ten = next(r for r in rows if r["map_rate_hz"] == 10.0)
    print(json.dumps({**ten, "quick": args.quick}))


if __name__ == "__main__":
    main()
