"""Acquisition benchmark: sustained rate, live latency, Parquet size and speed.

Run: ``.venv/bin/python bench/acquisition.py [--quick]``. The last line printed is one JSON
object of figures; the table in ``docs/benchmarks.md`` is rewritten.

1. Sustained acquisition. A real station process (``rigwatch station run``) replays a looped
   recording at real-time pace through the engine, ring buffer, recorder and live hub (one
   WebSocket client subscribed to every channel). A configuration *holds* when, over the run,
   the device is never more than two blocks behind real time, the recorder misses no row, the
   live client is never skipped ahead, every acquired row is in the Parquet segments after
   stop, and the station process uses at most one core. The signal is the CWRU 48 kHz drive-
   and fan-end recording resampled to the target rate and spread over the channels with
   per-channel gain and delay, so Parquet sees realistic vibration data.
2. Live latency: 20 WebSocket clients at 30 frames/s at 64 x 51.2 kHz; latency is the
   client's clock after decoding a frame minus the frame's ``ingest_ns`` (when the newest
   block in it entered the engine); same machine, same clock. The clients share one process
   whose garbage collector is paused during the measurement (see ``ws_clients``).
3. Parquet: bytes per sample and write speed relative to real time of the recorder on the
   CWRU recordings, beside ``pyarrow.parquet.write_table`` with its defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import msgpack
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
from _common import ROOT, machine_line, start_station, station_status, update_docs
from scipy.signal import resample_poly

CWRU = ROOT / "data" / "cwru"
TODAY_SAMPLES_PER_S = {
    "ball mill (9 x 48 kHz)": 9 * 48_000,
    "test stand (22 x 10 kHz)": 22 * 10_000,
}


def make_signal(channels: int, rate_hz: int, seconds: float) -> np.ndarray:
    """``(rows, channels)`` float32 vibration built from the CWRU 48 kHz recording."""
    src = np.load(CWRU / "1797_Normal_48k.npz")
    base = np.stack([src["DE"][:, 0], src["FE"][:, 0]], axis=1)
    from fractions import Fraction

    frac = Fraction(rate_hz, 48_000).limit_denominator(1000)
    base = resample_poly(base, frac.numerator, frac.denominator, axis=0)
    rows = int(seconds * rate_hz)
    out = np.empty((rows, channels), np.float32)
    for c in range(channels):
        col = base[:, c % 2]
        shift = (c * 977) % max(1, col.shape[0] - rows)
        out[:, c] = col[shift : shift + rows] * (0.5 + 0.03 * c)
    return out


def write_config(folder: Path, channels: int, rate_hz: int, block_s: float) -> Path:
    data = make_signal(channels, rate_hz, 4.0)
    np.savez(folder / "signal.npz", data=data)
    cfg = folder / "station.toml"
    cfg.write_text(
        f"""
name = "bench"
[buffer]
capacity_rows = {int(rate_hz * 40)}
[recorder]
directory = "rec"
segment_duration_s = 10
[live]
max_fps = 60
[[devices]]
name = "bench"
driver = "replay"
path = "signal.npz"
sample_rate_hz = {rate_hz}
pace = "realtime"
loop = true
block_duration_s = {block_s}
"""
    )
    return cfg


async def ws_clients(port: int, n: int, fps: float, seconds: float, display_rate_hz: float) -> dict:
    import websockets

    latencies: list[float] = []
    frames = 0
    missed = 0
    gaps = 0

    async def client() -> None:
        nonlocal frames, missed, gaps
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=1 << 24) as ws:
            await ws.send(
                msgpack.packb(
                    {
                        "type": "subscribe",
                        "device": "bench",
                        "fps": fps,
                        "display_rate_hz": display_rate_hz,
                    }
                )
            )
            deadline = time.monotonic() + seconds
            last_seq = -1
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(
                        ws.recv(), timeout=max(0.01, deadline - time.monotonic())
                    )
                except TimeoutError:
                    break
                m = msgpack.unpackb(raw, raw=False)
                if m["type"] != "data":
                    continue
                nb, nc = m["shape"]
                key = "data" if "data" in m else "max"
                arr = np.frombuffer(m[key], "<f4").reshape(nb, nc)
                assert arr.shape == (nb, nc)
                latencies.append((time.time_ns() - m["ingest_ns"]) / 1e6)
                frames += 1
                missed += m["missed"]
                if last_seq >= 0 and m["seq"] != last_seq + 1:
                    gaps += 1
                last_seq = m["seq"]

    # the 20 clients share this one process; its garbage collector would pause all of them at
    # once (measured: one 40-50 ms stall per ~20 s). Browsers are separate processes, so the
    # harness's own pauses are kept out of the station's figure.
    gc.disable()
    try:
        await asyncio.gather(*(client() for _ in range(n)))
    finally:
        gc.enable()
    lat = np.asarray(latencies[n * 3 :] or latencies)  # leave out the first frames of each
    return {
        "frames": frames,
        "frames_per_client_per_s": frames / n / seconds,
        "missed_samples": missed,
        "seq_gaps": gaps,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "max_ms": float(lat.max()) if lat.size else float("nan"),
    }


def run_station(channels: int, rate_hz: int, seconds: float, clients: int, block_s: float) -> dict:
    os.sync()  # previous runs' files are written back now, not during this run
    with tempfile.TemporaryDirectory(prefix="rigwatch-bench-") as tmp:
        folder = Path(tmp)
        cfg = write_config(folder, channels, rate_hz, block_s)
        station = start_station(cfg)
        try:
            proc = psutil.Process(station.proc.pid)
            warm = asyncio.run(ws_clients(station.port, 1, 30, 1.0, 2000))  # warm up
            del warm
            cpu0 = proc.cpu_times()
            t0 = time.monotonic()
            live = asyncio.run(ws_clients(station.port, clients, 30, seconds, 2000))
            wall = time.monotonic() - t0
            cpu1 = proc.cpu_times()
            status = station_status(station)
        finally:
            rc = station.stop()
        cpu_cores = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall
        dev = status["devices"][0]
        rec = status["recorder"]["bench"]
        lag_rows = status["uptime_s"] * rate_hz - dev["rows"]
        recorded = 0
        for f in sorted((folder / "rec").glob("bench_*.parquet")):
            recorded += pq.ParquetFile(f).metadata.num_rows
        final_rows = recorded  # after stop the recorder drained everything acquired
        bytes_on_disk = sum(f.stat().st_size for f in (folder / "rec").glob("*.parquet"))
        held = (
            lag_rows <= 2 * block_s * rate_hz + 0.2 * rate_hz
            and rec["missed_rows"] == 0
            and live["missed_samples"] == 0
            and live["seq_gaps"] == 0
            and final_rows >= dev["rows"]
            and cpu_cores <= 1.0
            and rc in (0, 130)  # uvicorn re-raises SIGINT after a clean shutdown
        )
        return {
            "channels": channels,
            "rate_hz": rate_hz,
            "samples_per_s": channels * rate_hz,
            "clients": clients,
            "seconds": round(wall, 1),
            "cpu_cores": round(cpu_cores, 3),
            "lag_rows": round(lag_rows),
            "recorder_missed_rows": rec["missed_rows"],
            "rows_acquired_at_status": dev["rows"],
            "rows_recorded_after_stop": final_rows,
            "parquet_bytes_per_sample": round(bytes_on_disk / max(1, final_rows * channels), 3),
            "live": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in live.items()},
            "exit_code": rc,
            "held": held,
        }


def parquet_figures() -> list[dict]:
    """Recorder output vs pyarrow defaults on the CWRU recordings."""
    from rigwatch.acquisition.engine import DeviceStream
    from rigwatch.acquisition.recorder import SegmentRecorder
    from rigwatch.config.station import RecorderConfig
    from rigwatch.counters import Counters
    from rigwatch.devices.protocols import Block, ChannelInfo, StreamInfo, regular_timestamps_ns

    rows_out = []
    for name, keys, rate in (
        ("1797_IR_7_DE12.npz", ["DE", "FE", "BA"], 12_000),
        ("1797_Normal_48k.npz", ["DE", "FE"], 48_000),
    ):
        src = np.load(CWRU / name)
        data = np.ascontiguousarray(np.concatenate([src[k] for k in keys], axis=1), np.float32)
        n = data.shape[0]
        ts = regular_timestamps_ns(time.time_ns(), 0, n, rate)
        samples = data.size
        duration_s = n / rate

        info = StreamInfo("cwru", "bench", rate, tuple(ChannelInfo(k, "g") for k in keys))

        class _Dev:
            def describe(self, info: StreamInfo = info) -> StreamInfo:
                return info

        with tempfile.TemporaryDirectory() as tmp:
            table = pa.table(
                {
                    "timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                    **{k: data[:, i] for i, k in enumerate(keys)},
                }
            )
            t0 = time.perf_counter()
            pq.write_table(table, f"{tmp}/default.parquet")
            t_default = time.perf_counter() - t0
            b_default = Path(f"{tmp}/default.parquet").stat().st_size

            stream = DeviceStream(_Dev(), n + 1, Counters())  # type: ignore[arg-type]
            cfg = RecorderConfig(directory=Path(tmp) / "rec", segment_duration_s=3600, fsync=False)
            rec = SegmentRecorder(stream, cfg, Counters(), start_index=0)
            block = int(rate * 0.05)
            t0 = time.perf_counter()
            rec.start()
            for i in range(0, n, block):
                stream.ingest(Block(data[i : i + block], ts[i : i + block]))
            rec.stop()
            t_rec = time.perf_counter() - t0
            b_rec = sum(p.stat().st_size for p in (Path(tmp) / "rec").glob("*.parquet"))
        rows_out.append(
            {
                "file": name,
                "samples": samples,
                "raw_bytes_per_sample": 4.0 + 8.0 / len(keys),
                "default_bytes_per_sample": round(b_default / samples, 3),
                "default_x_realtime": round(duration_s / t_default, 1),
                "recorder_bytes_per_sample": round(b_rec / samples, 3),
                "recorder_x_realtime": round(duration_s / t_rec, 1),
            }
        )
    return rows_out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="finish within a minute")
    args = ap.parse_args()
    seconds = 6.0 if args.quick else 20.0
    # the tail of a 20 s run varies from run to run on a shared 2-core machine: repeat it
    lat_runs = []
    for _ in range(1 if args.quick else 5):
        lat_runs.append(run_station(64, 51_200, seconds, clients=20, block_s=1 / 30))
        print(json.dumps(lat_runs[-1]), flush=True)
    lat_runs.sort(key=lambda r: r["live"]["p99_ms"])
    lat = lat_runs[len(lat_runs) // 2]  # the run with the median p99
    ladder = (
        [(64, 51_200)] if args.quick else [(16, 51_200), (64, 51_200), (128, 51_200), (256, 51_200)]
    )
    sustained = []
    for ch, rate in ladder:
        r = run_station(ch, rate, seconds, clients=1, block_s=0.05)
        print(json.dumps(r), flush=True)
        sustained.append(r)
        if not r["held"]:
            break
    best = max((r for r in sustained if r["held"]), key=lambda r: r["samples_per_s"], default=None)
    pq_rows = parquet_figures()
    for r in pq_rows:
        print(json.dumps(r), flush=True)

    best_sps = best["samples_per_s"] if best else 0
    cmd = ".venv/bin/python bench/acquisition.py" + (" --quick" if args.quick else "")
    lines = [
        "## Acquisition (`bench/acquisition.py`)",
        "",
        f"Command: `{cmd}`. Machine: {machine_line()}.",
        "",
        "Sustained acquisition through engine + ring buffer + recorder + live hub (station "
        "process, real-time replay, one WebSocket client):",
        "",
        "| channels x rate | samples/s | station CPU (cores) | device lag (rows) | recorder "
        "missed | live missed | rows recorded / acquired | Parquet B/sample | holds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sustained:
        lines.append(
            f"| {r['channels']} x {r['rate_hz'] / 1000:g} kHz | {r['samples_per_s']:,} | "
            f"{r['cpu_cores']} | {r['lag_rows']} | {r['recorder_missed_rows']} | "
            f"{r['live']['missed_samples']} | {r['rows_recorded_after_stop']:,} / "
            f"{r['rows_acquired_at_status']:,} (at status) | {r['parquet_bytes_per_sample']} | "
            f"{'yes' if r['held'] else 'no'} |"
        )
    lines += [
        "",
        f"Largest held: **{best_sps:,} samples/s**"
        + (f" ({best['channels']} x {best['rate_hz'] / 1000:g} kHz)" if best else "")
        + "; "
        + ", ".join(f"{v and best_sps / v:.0f}x {k}" for k, v in TODAY_SAMPLES_PER_S.items())
        + " (today's systems). Target: >= 3 276 800 (64 x 51.2 kHz) on at most one core."
        + (
            " Every step of the ladder held; larger ones were not tried."
            if all(r["held"] for r in sustained)
            else ""
        ),
        "",
        f"Live latency, 20 clients at 30 frames/s, 64 x 51.2 kHz, blocks of 1/30 s, display "
        f"2 000 points/s per channel (min/max), {len(lat_runs)} run(s) of {seconds:g} s; the "
        f"run with the median p99: p50 **{lat['live']['p50_ms']:.2f} ms**, p99 "
        f"**{lat['live']['p99_ms']:.2f} ms** (target p99 < 10 ms), max "
        f"{lat['live']['max_ms']:.1f} ms; "
        f"{lat['live']['frames_per_client_per_s']:.1f} frames/s per client, "
        f"{lat['live']['missed_samples']} samples skipped, {lat['live']['seq_gaps']} sequence "
        f"gaps; station CPU {lat['cpu_cores']} cores. p99 of every run (ms): "
        + ", ".join(f"{r['live']['p99_ms']:.1f}" for r in lat_runs)
        + ". The 20 clients share one Python "
        "process whose garbage collector is paused while measuring (with it on, one 40-50 ms "
        "collection every ~20 s stalls all of them at once: a harness pause, not the "
        "station's).",
        "",
        "Parquet on the CWRU recordings (float32 samples; timestamps included in the bytes):",
        "",
        "| file | raw B/sample | pyarrow defaults B/sample | x real time | rigwatch recorder "
        "B/sample | x real time |",
        "|---|---|---|---|---|---|",
    ]
    for r in pq_rows:
        lines.append(
            f"| {r['file']} | {r['raw_bytes_per_sample']:.2f} | {r['default_bytes_per_sample']} |"
            f" {r['default_x_realtime']} | {r['recorder_bytes_per_sample']} | "
            f"{r['recorder_x_realtime']} |"
        )
    lines.append("")
    lines.append(
        "The recorder's speed includes its crash journal (every row is also appended "
        "to an Arrow IPC journal each second) and runs in a thread beside the writer."
    )
    update_docs("acquisition", "\n".join(lines))
    print(
        json.dumps(
            {
                "samples_per_s": best_sps,
                "ws_p50_ms": round(lat["live"]["p50_ms"], 3),
                "ws_p99_ms": round(lat["live"]["p99_ms"], 3),
                "ws_p99_ms_runs": [round(r["live"]["p99_ms"], 3) for r in lat_runs],
                "cpu_cores_at_best": best["cpu_cores"] if best else None,
                "parquet_bytes_per_sample": pq_rows[0]["recorder_bytes_per_sample"],
                "parquet_default_bytes_per_sample": pq_rows[0]["default_bytes_per_sample"],
                "parquet_x_realtime": pq_rows[0]["recorder_x_realtime"],
            }
        )
    )


if __name__ == "__main__":
    main()
