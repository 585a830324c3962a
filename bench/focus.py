"""Listening-to-a-point benchmark: the live focused beamformer against real time.

Run: ``.venv/bin/python bench/focus.py [--quick]``. The last line printed is one JSON object of
figures; the "focus" section of ``docs/benchmarks.md`` is rewritten.

The 64-microphone array of ``data/acoustics/array_64.xml`` at 51.2 kHz; white noise blocks
(float32, the acquisition's format) go through :class:`rigwatch.acoustics.focus.FocusedBeam`
with a 1-7 kHz Butterworth band-pass (order 4), for 1, 4 and 8 selected points and block
lengths of 1 024, 2 048 and 5 120 samples (20, 40 and 100 ms). Figures per configuration:
CPU seconds per second of input (process time, the beam is single-threaded), the real-time
factor (seconds of input per CPU second: > 1 keeps up, 10 uses a tenth of a core) and the
latency from a sample's acquisition to its sound leaving the beam (block length + the beam's
algorithmic latency). ``realtime_factor`` is the headline configuration: 4 selections,
2 048-sample blocks.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import ROOT, machine_line, update_docs

from rigwatch.acoustics.focus import BandFilter, FocusedBeam
from rigwatch.acoustics.geometry import MicArray

FS = 51_200.0
C = 343.0
BAND = BandFilter("bandpass", low_hz=1000.0, high_hz=7000.0, order=4)
HEADLINE = (4, 2048)


def run(mics: np.ndarray, n_sel: int, block: int, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    points = np.c_[rng.uniform(-0.5, 0.5, (n_sel, 2)), np.full(n_sel, 1.5)]
    beam = FocusedBeam(mics, points, FS, C, band=BAND)
    # one second of noise reused (the cost does not depend on the values)
    noise = rng.standard_normal((int(FS), mics.shape[0])).astype(np.float32)
    n_blocks = int(seconds * FS) // block
    beam.process(noise[:block])  # warm-up: filter spectra for this block length
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(n_blocks):
        start = (i * block) % (noise.shape[0] - block)
        beam.process(noise[start : start + block])
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    data_s = n_blocks * block / FS
    return {
        "selections": n_sel,
        "block": block,
        "cpu_s_per_s": cpu / data_s,
        "realtime_factor": data_s / cpu,
        "wall_realtime_factor": data_s / wall,
        "latency_ms": (block / FS + beam.latency_s) * 1e3,
        "algorithmic_latency_ms": beam.latency_s * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s of input per configuration")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 20.0
    mics = MicArray.from_acoular_xml(ROOT / "data" / "acoustics" / "array_64.xml").positions_m
    rows = []
    for n_sel in (1, 4, 8):
        for block in (1024, 2048, 5120):
            r = run(mics, n_sel, block, seconds)
            rows.append(r)
            print(json.dumps(r), flush=True)
    head = next(r for r in rows if (r["selections"], r["block"]) == HEADLINE)
    lines = [
        "Live focused delay-and-sum (listening to a point): 64 microphones (`array_64.xml`) at "
        "51.2 kHz, float32 blocks, 1-7 kHz Butterworth band-pass (order 4), "
        f"{seconds:g} s of input per row. CPU = process time per second of input (one thread); "
        "real-time factor = seconds of input per CPU second; latency = block + algorithmic "
        "(aperture delay + fractional-delay FIR + filter group delay).",
        "",
        f"Machine: {machine_line()}. Reproduce: `.venv/bin/python bench/focus.py"
        f"{' --quick' if args.quick else ''}`.",
        "",
        "| selections | block (samples) | CPU s / s | real-time factor | latency (ms) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['selections']} | {r['block']} | {r['cpu_s_per_s']:.3f} | "
            f"{r['realtime_factor']:.1f} | {r['latency_ms']:.1f} |"
        )
    lines += [
        "",
        f"Headline (4 selections, 2 048-sample blocks): real-time factor "
        f"{head['realtime_factor']:.1f} ({100 * head['cpu_s_per_s']:.1f} % of one core), "
        f"latency {head['latency_ms']:.1f} ms of which {head['algorithmic_latency_ms']:.1f} ms "
        "algorithmic (target: acquisition to sound < 250 ms).",
    ]
    update_docs("focus", "## Listening to a point (focus)\n\n" + "\n".join(lines))
    print(
        json.dumps(
            {
                "realtime_factor": round(head["realtime_factor"], 2),
                "cpu_fraction": round(head["cpu_s_per_s"], 4),
                "latency_ms": round(head["latency_ms"], 2),
                "algorithmic_latency_ms": round(head["algorithmic_latency_ms"], 2),
                "quick": args.quick,
            }
        )
    )


if __name__ == "__main__":
    main()
