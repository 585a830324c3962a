"""Beamforming benchmark: rigwatch against Acoular on the same map, and live map rates.

Run: ``.venv/bin/python bench/beamforming.py [--quick]``. The last line printed is one JSON
object of figures; the "beamforming" section of ``docs/benchmarks.md`` is rewritten.

1. Side by side with Acoular, same input: 2 s of 64 channels at 51.2 kHz (two white-noise
   sources propagated to ``array_64.xml`` plus sensor noise, float32), a 41 x 41 grid, the
   IEC third-octave band at 4 kHz (Acoular given the same band edges), 1024-sample Hann blocks,
   50 % overlap, CSM diagonal removed, ``true level`` steering; from time data to the band map,
   CSM included. Each repetition builds Acoular's objects afresh with caching off (after one
   warm-up run that compiles its numba kernels). ``speedup_vs_acoular`` is the ratio of the
   median times; ``max_abs_db_diff`` the largest level difference over the grid points above
   -20 dB of the peak.
2. Live maps: per map, 0.1 s of new input (10 new 1024-sample blocks at 50 % overlap) added to
   an incremental CSM of the band's bins, then the band map; maps/s = 1 / time per map, with
   the process CPU time per map. Arrays of 9 to 1 024 microphones (Vogel spirals of 1 m
   aperture), grids of 21 x 21 to 100 x 100 points.

Both run on one core: BLAS is limited to one thread before NumPy is imported, and Acoular turns
numba's parallel execution off when NumPy already uses OpenBLAS.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow the thread settings, which must precede NumPy)
import os
import sys

# ``--acoular-default`` (internal): time Acoular alone in its default configuration, numba's
# parallel execution on (Acoular imported before NumPy, BLAS threads not limited).
ACOULAR_DEFAULT = "--acoular-default" in sys.argv
if ACOULAR_DEFAULT:
    import acoular  # noqa: F401
else:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable

import numpy as np
from _common import ROOT, machine_line, update_docs

from rigwatch.acoustics.bands import Band, union_bins
from rigwatch.acoustics.beamform import beamform_bins, conventional_map
from rigwatch.acoustics.csm import CsmAccumulator
from rigwatch.acoustics.geometry import MicArray, RectGrid
from rigwatch.acoustics.scene import propagate_free_field, white_noise
from rigwatch.acoustics.steering import Steering

FS = 51200.0
C = 343.0
BAND = Band.third_octave(4000)
GRID = RectGrid(-0.4, 0.4, -0.4, 0.4, 0.6, 0.02)  # 41 x 41


def _timed(fn: Callable[[], object], reps: int) -> tuple[float, float, object]:
    """Median wall time, median CPU time, last result."""
    walls, cpus = [], []
    out: object = None
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def _input() -> tuple[MicArray, np.ndarray]:
    """The side-by-side case's array and time data (float32, 2 s x 64 channels)."""
    mics = MicArray.from_acoular_xml(ROOT / "data" / "acoustics" / "array_64.xml")
    n = int(2 * FS)
    sig = white_noise(n + 2000, 2, seed=1) * [1.0, 0.6]
    src = np.array([[0.1, -0.12, 0.6], [-0.16, 0.08, 0.6]])
    x = propagate_free_field(sig, src, mics.positions_m, FS, C)[:n]
    x += 0.02 * np.random.default_rng(2).standard_normal(x.shape)
    return mics, x.astype(np.float32)


def _acoular_map_fn(mics: MicArray, x: np.ndarray) -> Callable[[], np.ndarray]:
    import acoular as ac

    def acoular_map() -> np.ndarray:
        ts = ac.TimeSamples(data=x, sample_freq=FS)
        ps = ac.PowerSpectra(
            source=ts, block_size=1024, window="Hanning", overlap="50%", cached=False
        )
        grid = ac.RectGrid(
            x_min=GRID.x_min, x_max=GRID.x_max, y_min=GRID.y_min, y_max=GRID.y_max,
            z=GRID.z, increment=GRID.increment,
        )  # fmt: skip
        sv = ac.SteeringVector(
            grid=grid, mics=ac.MicGeom(pos_total=mics.positions_m.T), env=ac.Environment(c=C)
        )
        bf = ac.BeamformerBase(freq_data=ps, steer=sv, r_diag=True, cached=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(bf.synthetic(4000, [BAND.f_low_hz, BAND.f_high_hz]))

    return acoular_map


def acoular_default(reps: int) -> dict[str, float]:
    """Acoular alone, default configuration (run in a separate process)."""
    mics, x = _input()
    fn = _acoular_map_fn(mics, x)
    fn()
    wall, cpu, _ = _timed(fn, reps)
    return {"acoular_default_s": wall, "acoular_default_cpu_s": cpu}


def side_by_side(reps: int) -> dict[str, float]:
    mics, x = _input()
    acoular_map = _acoular_map_fn(mics, x)

    def rigwatch_map() -> np.ndarray:
        return conventional_map(x, FS, mics, GRID, BAND, C, remove_diagonal=True).values

    acoular_map()  # warm-up: numba compilation
    rigwatch_map()
    t_ac, cpu_ac, ref = _timed(acoular_map, reps)
    t_rw, cpu_rw, ours = _timed(rigwatch_map, reps)
    l_ref = 10 * np.log10(np.maximum(np.asarray(ref) / 4e-10, 1e-300))
    l_rw = 10 * np.log10(np.maximum(np.asarray(ours) / 4e-10, 1e-300))
    sel = l_ref > l_ref.max() - 20
    return {
        "acoular_s": t_ac,
        "acoular_cpu_s": cpu_ac,
        "rigwatch_s": t_rw,
        "rigwatch_cpu_s": cpu_rw,
        "speedup_vs_acoular": t_ac / t_rw,
        "max_abs_db_diff": float(np.abs(l_rw - l_ref)[sel].max()),
        "points_compared": int(sel.sum()),
    }


def _vogel(n: int, aperture_m: float = 1.0) -> MicArray:
    i = np.arange(n) + 0.5
    r = aperture_m / 2 * np.sqrt(i / n)
    phi = i * np.pi * (3 - np.sqrt(5))
    return MicArray(np.stack([r * np.cos(phi), r * np.sin(phi), np.zeros(n)], axis=1))


def live_rate(n_mics: int, side: int, reps: int) -> dict[str, float]:
    """Time per live map: add 0.1 s of input to the CSM, then the band map."""
    mics = _vogel(n_mics)
    half = 0.5
    grid = RectGrid(-half, half, -half, half, 1.0, 2 * half / (side - 1))
    bins = union_bins([BAND], 1024, FS)
    steering = Steering(mics, grid.points_m, C)
    acc = CsmAccumulator(n_mics, FS, bins, block_size=1024, precision="complex64")
    rng = np.random.default_rng(0)
    chunk = rng.standard_normal((5120, n_mics)).astype(np.float32)
    acc.add(chunk)

    def one_map() -> np.ndarray:
        acc.add(chunk)
        return beamform_bins(acc.csm(), acc.frequencies_hz, steering, sum_bins=True)

    one_map()
    wall, cpu, _ = _timed(one_map, reps)
    return {
        "mics": n_mics,
        "points": grid.shape[0] * grid.shape[1],
        "ms_per_map": wall * 1e3,
        "maps_per_s": 1.0 / wall,
        "cpu_ms_per_map": cpu * 1e3,
        "maps_per_cpu_s": 1.0 / cpu if cpu > 0 else float("inf"),
        "cpu_cores": cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and sizes")
    parser.add_argument("--acoular-default", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    if args.acoular_default:
        print(json.dumps(acoular_default(reps)))
        return
    sbs = side_by_side(reps)
    proc = subprocess.run(
        [sys.executable, __file__, "--acoular-default"] + (["--quick"] if args.quick else []),
        capture_output=True, text=True, check=True, env={
            k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")
        },
    )  # fmt: skip
    sbs.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    sbs["speedup_vs_acoular_default"] = sbs["acoular_default_s"] / sbs["rigwatch_s"]
    print(json.dumps(sbs), flush=True)
    if args.quick:
        sizes = [(9, 21), (16, 21), (64, 41), (128, 41), (1024, 21)]
    else:
        sizes = [(m, s) for m in (9, 16, 64, 128, 1024) for s in (21, 41, 100)]
    rows = []
    for m, s in sizes:
        big = m * s * s > 2_000_000
        row = live_rate(m, s, 1 if big else (3 if args.quick else 5))
        print(json.dumps(row), flush=True)
        rows.append(row)
    cmd = ".venv/bin/python bench/beamforming.py" + (" --quick" if args.quick else "")
    lines = [
        "## Beamforming (`bench/beamforming.py`)",
        "",
        f"Command: `{cmd}`. Machine: {machine_line()}. One core (BLAS 1 thread). Load average "
        f"at the end of the run (other work on the machine): {os.getloadavg()[0]:.1f}.",
        "",
        "Time data to band map, CSM included: 2 s of 64 channels at 51.2 kHz, 41 x 41 grid, "
        "IEC third-octave band at 4 kHz (19 bins), 1024-sample Hann blocks, 50 % overlap, "
        f"diagonal removed, `true level` steering; median of {reps} runs.",
        "",
        "| | time (s) | CPU (s) |",
        "|---|---|---|",
        f"| Acoular {_acoular_version()}, one core | {sbs['acoular_s']:.3f} | "
        f"{sbs['acoular_cpu_s']:.3f} |",
        f"| Acoular {_acoular_version()}, default (numba parallel, all cores) | "
        f"{sbs['acoular_default_s']:.3f} | {sbs['acoular_default_cpu_s']:.3f} |",
        f"| rigwatch (one core) | {sbs['rigwatch_s']:.3f} | {sbs['rigwatch_cpu_s']:.3f} |",
        "",
        f"Speed-up **{sbs['speedup_vs_acoular']:.1f}x** in wall time against Acoular on one "
        "core "
        f"(`speedup_vs_acoular`), **{sbs['speedup_vs_acoular_default']:.1f}x** against "
        "Acoular's default parallel run (target >= 10x); largest level "
        f"difference **{sbs['max_abs_db_diff']:.2e} dB** over the {sbs['points_compared']} "
        "points above -20 dB of the peak (target <= 0.1 dB). CPU-time ratio (one core each): "
        f"{sbs['acoular_cpu_s'] / sbs['rigwatch_cpu_s']:.1f}x.",
        "",
        "Live maps (third-octave 4 kHz, 19 bins): each map adds 0.1 s of new input (10 blocks) "
        "to the incremental CSM, then beamforms; Vogel-spiral arrays, planar grids.",
        "",
        "The machine is shared: when other work holds the cores, wall time grows while CPU "
        "time does not. *maps/s (one core)* = 1 / CPU time per map, the rate on one free core; "
        "*CPU (cores)* = CPU time / wall time of this run.",
        "",
        "| microphones | grid points | wall ms per map | maps/s (wall) | CPU ms per map "
        "| maps/s (one core) | CPU (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['mics']} | {r['points']:,} | {r['ms_per_map']:.1f} | {r['maps_per_s']:.1f} | "
        f"{r['cpu_ms_per_map']:.1f} | {r['maps_per_cpu_s']:.1f} | {r['cpu_cores']:.2f} |"
        for r in rows
    ]
    update_docs("beamforming", "\n".join(lines))
    summary = dict(sbs)
    summary["live"] = [{k: round(float(v), 3) for k, v in r.items()} for r in rows]
    print(json.dumps(summary))


def _acoular_version() -> str:
    import acoular

    return str(acoular.__version__)


if __name__ == "__main__":
    main()
