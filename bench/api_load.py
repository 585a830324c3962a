"""Live latency while the REST API is hammered with heavy requests.

A station replays 64 channels at 51.2 kHz (vibration built from the CWRU recordings) to 20
live WebSocket clients at 30 frames/s, first alone, then while 20 HTTP clients ask, in a loop,
for the heaviest recording query the API allows (every channel of a recorded segment at the
most points ``api.max_query_values`` admits) and for buffer snapshots, and a few ask for
queries beyond the limit.
Reported: the live p99 of both phases, the station's peak memory, and what the API answered
(served, refused busy 503, rate-limited 429, refused too large 422).

    .venv/bin/python bench/api_load.py [--quick]

The last line printed is one JSON object of figures; ``docs/benchmarks.md`` gets the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import machine_line, start_station, update_docs
from acquisition import write_config, ws_clients

CHANNELS = 64
RATE_HZ = 51_200
CLIENTS = 20
HEAVY_CLIENTS = 20
MAX_QUERY_VALUES = 400_000  # the station's default api.max_query_values
MAX_POINTS = MAX_QUERY_VALUES // (2 * CHANNELS)  # the heaviest query allowed on every channel


def first_segment(base: str, timeout_s: float = 60.0) -> str:
    """The name of the first closed segment (waits for the recorder's first rotation)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        files = httpx.get(f"{base}/api/parquet_files", timeout=10).json()["files"]
        segs = [f for f in files if not f["snapshot"] and not f["error"] and f["rows"]]
        if segs:
            return segs[0]["filename"]
        time.sleep(0.5)
    raise RuntimeError("no segment closed")


class Hammer:
    """HTTP clients asking for heavy queries and snapshots until stopped; counts answers."""

    def __init__(self, base: str, segment: str) -> None:
        self.base = base
        self.segment = segment
        self.answers: Counter[str] = Counter()
        self.query_s: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _note(self, what: str, status: int, seconds: float | None = None) -> None:
        with self._lock:
            self.answers[f"{what} {status}"] += 1
            if seconds is not None and status == 200:
                self.query_s.append(seconds)

    def _queries(self, oversized: bool) -> None:
        url = f"{self.base}/api/parquet_data/{self.segment}"
        points = 20_000 if oversized else MAX_POINTS
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                r = client.get(url, params={"max_points": points})
                self._note(
                    "query" if not oversized else "oversized query",
                    r.status_code,
                    time.monotonic() - t0,
                )
                if r.status_code == 503:
                    self._stop.wait(float(r.headers.get("retry-after", "1")) * 0.1)

    def _snapshots(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                r = client.post(f"{self.base}/api/save_sensor_buffer")
                self._note("snapshot", r.status_code)
                self._stop.wait(0.5)

    def start(self) -> None:
        for i in range(HEAVY_CLIENTS):
            t = threading.Thread(target=self._queries, args=(i % 10 == 9,), daemon=True)
            self._threads.append(t)
        self._threads.append(threading.Thread(target=self._snapshots, daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)


def hammer_process(base: str, segment: str, stop: Any, results: Any) -> None:
    """Run a :class:`Hammer` until ``stop`` is set; put its answers and query times."""
    hammer = Hammer(base, segment)
    hammer.start()
    stop.wait()
    hammer.stop()
    results.put((dict(hammer.answers), hammer.query_s))


class MemoryWatch:
    """Peak resident memory of a process, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self._proc = psutil.Process(pid)
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run(seconds: float) -> dict:
    os.sync()
    with tempfile.TemporaryDirectory(prefix="rigwatch-bench-") as tmp:
        folder = Path(tmp)
        cfg = write_config(folder, CHANNELS, RATE_HZ, 1 / 30)
        text = cfg.read_text().replace("segment_duration_s = 10", "segment_duration_s = 5")
        cfg.write_text(text + "\n[api]\nsnapshot_min_interval_s = 2\n")
        station = start_station(cfg)
        try:
            segment = first_segment(station.base_url)
            asyncio.run(ws_clients(station.port, 1, 30, 1.0, 2000))  # warm up
            with MemoryWatch(station.proc.pid) as idle_mem:
                alone = asyncio.run(ws_clients(station.port, CLIENTS, 30, seconds, 2000))
            # the heavy clients run in a process of their own: their threads would otherwise
            # share this process's GIL with the live clients and inflate what they measure
            results: mp.Queue = mp.Queue()
            stop = mp.Event()
            hammer = mp.Process(
                target=hammer_process, args=(station.base_url, segment, stop, results)
            )
            with MemoryWatch(station.proc.pid) as load_mem:
                hammer.start()
                try:
                    loaded = asyncio.run(ws_clients(station.port, CLIENTS, 30, seconds, 2000))
                finally:
                    stop.set()
                    answers, query_s = results.get(timeout=180)
                    hammer.join(60)
            status = httpx.get(f"{station.base_url}/api/status", timeout=10).json()
        finally:
            rc = station.stop()
    q = sorted(query_s)
    return {
        "channels": CHANNELS,
        "rate_hz": RATE_HZ,
        "live_clients": CLIENTS,
        "heavy_clients": HEAVY_CLIENTS,
        "seconds": seconds,
        "alone": {k: round(v, 2) if isinstance(v, float) else v for k, v in alone.items()},
        "loaded": {k: round(v, 2) if isinstance(v, float) else v for k, v in loaded.items()},
        "peak_rss_mb_alone": round(idle_mem.peak / 2**20),
        "peak_rss_mb_loaded": round(load_mem.peak / 2**20),
        "answers": dict(sorted(answers.items())),
        "queries_per_s": round(len(q) / seconds, 1),
        "query_p50_s": round(q[len(q) // 2], 3) if q else None,
        "recorder_missed_rows": status["recorder"]["bench"]["missed_rows"],
        "server_errors": status["errors"].get("http.server_error", 0),
        "exit_code": rc,
    }


def docs(r: dict) -> str:
    head = ["phase", "live p50 ms", "live p99 ms", "live max ms", "missed samples", "seq gaps"]
    head.append("station peak memory MB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key, mem in (
        ("alone", "alone", "peak_rss_mb_alone"),
        ("under load", "loaded", "peak_rss_mb_loaded"),
    ):
        x = r[key]
        cells = [label, x["p50_ms"], x["p99_ms"], x["max_ms"], x["missed_samples"], x["seq_gaps"]]
        lines.append("| " + " | ".join(str(c) for c in [*cells, r[mem]]) + " |")
    table = "\n".join(lines)
    answers = ", ".join(f"{k}: {v}" for k, v in r["answers"].items())
    return f"""## Live latency under heavy API load (`bench/api_load.py`)

Command: `.venv/bin/python bench/api_load.py`. Machine: {machine_line()}.

A station replays {r["channels"]} channels at {r["rate_hz"] / 1000:g} kHz to {r["live_clients"]}
live clients at 30 frames/s, {r["seconds"]:g} s alone, then {r["seconds"]:g} s while
{r["heavy_clients"]} HTTP clients loop on the heaviest query the API allows
(`/api/parquet_data/<segment>?max_points={MAX_POINTS}`, every channel; two of them ask for
`max_points=20000`, beyond the limit) and one asks for a buffer snapshot every 0.5 s (limit:
one per 2 s here). Queries run at most `api.max_concurrent_queries` (2) at a time, on
low-priority worker threads, within a CPU budget (`api.query_cpu_share`, a quarter of a core on
average); the others wait up to `api.query_wait_s` or are told 503 with `Retry-After`.

{table}

Answers during the load: {answers}. Queries served: {r["queries_per_s"]} per second (median
{r["query_p50_s"]} s each). Recorder missed rows: {r["recorder_missed_rows"]}; server errors:
{r["server_errors"]}. Before the bounds, 20 concurrent `max_points=200000` queries took the
station to 1.6 GB and the live p99 from 2 ms to 265 ms; with bounds checked only after a
query ran and snapshots copying the whole ring buffer at once, this benchmark measured a
live p99 of 53 ms and 2.3 GB.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="finish within a minute")
    args = ap.parse_args()
    r = run(8.0 if args.quick else 20.0)
    if not args.quick:
        update_docs("api-load", docs(r))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
