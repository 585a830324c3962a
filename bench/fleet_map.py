"""Fleet map: first paint of 50 000 machines in headless Chromium.

A fleet server (uvicorn in this process's thread, SQLite in a temporary folder) holds N
machines written straight into its store, every one with a latest state (90 % green, the
rest yellow, grey, black and red) at random positions. The dashboard is opened on its map in
headless Chromium (the Debian package, through Playwright) with a login token, and the
figures are read from the page:

- ``first_paint_ms``: navigation start to the first canvas frame showing every machine
  (clusters coloured by their worst member), as the page records it (``performance.now()``);
- ``wall_ms``: the same as seen from outside (``goto`` to the page reporting it);
- ``map_fetch_ms``: the ``GET /api/fleet/map`` request (Resource Timing);
- ``cluster_ms``: building the cluster index of N points (supercluster);
- ``live_red_ms``: a status with a critical temperature posted to a drawn machine until its
  cluster is red on the canvas, without reload.

    .venv/bin/python bench/fleet_map.py [--quick] [--machines N]

``--quick`` loads once; without it the median of 3 page loads is kept. The last line printed
is one JSON object; ``docs/benchmarks.md`` gets the section ``fleet-map``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

CHROMIUM = "/usr/bin/chromium"


def _load(browser: Any, url: str, n: int) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_function(
            "(n) => window.__rigwatch?.map?.drawnMachines === n"
            " && !Number.isNaN(window.__rigwatch.map.firstPaintMs)",
            arg=n,
            timeout=120_000,
            polling=20,
        )
        wall_ms = (time.perf_counter() - t0) * 1000
        figures: dict[str, float] = page.evaluate(
            """() => {
              const m = window.__rigwatch.map;
              const r = performance.getEntriesByType('resource')
                .find((e) => e.name.includes('/api/fleet/map'));
              return { first_paint_ms: m.firstPaintMs, cluster_ms: m.lastRebuildMs,
                       map_fetch_ms: r ? r.duration : NaN };
            }"""
        )
        figures["wall_ms"] = wall_ms
        return figures
    finally:
        context.close()


def _live_red(browser: Any, fleet: Any, url: str, n: int) -> float:
    """ms from posting a critical temperature for a fresh machine to a red canvas pixel."""
    fleet.add_machine("bench-live", "Bench live", -40.0, 150.0)
    fleet.post_status("bench-live", temperature=42.5)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(
            "(n) => window.__rigwatch?.map?.drawnMachines >= n", arg=n + 1, timeout=120_000
        )
        from test_fleet_dashboard import IS_RED

        t0 = time.perf_counter()
        fleet.post_status("bench-live", temperature=85.0)
        page.wait_for_function(IS_RED, arg="bench-live", timeout=10_000, polling=10)
        return (time.perf_counter() - t0) * 1000
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one page load")
    parser.add_argument("--machines", type=int, default=50_000)
    args = parser.parse_args()
    from _common import machine_line, update_docs
    from playwright.sync_api import sync_playwright

    from support.fleet_dashboard import (
        DASHBOARD_INDEX,
        dashboard_config,
        insert_bulk_machines,
        running_fleet,
    )

    if not DASHBOARD_INDEX.is_file():
        sys.exit(f"the dashboard is not built ({DASHBOARD_INDEX}): cd frontend && npm run build")
    n = args.machines
    runs = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        config = dashboard_config(Path(tmp))
        insert_bulk_machines(config, n)
        with running_fleet(config) as fleet, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                url = fleet.page_url("#/map")
                loads = [_load(browser, url, n) for _ in range(runs)]
                live_ms = _live_red(browser, fleet, url, n)
            finally:
                browser.close()

    def med(key: str) -> float:
        return round(statistics.median(x[key] for x in loads), 1)

    out = {
        "machines": n,
        "runs": runs,
        "first_paint_ms": med("first_paint_ms"),
        "wall_ms": med("wall_ms"),
        "map_fetch_ms": med("map_fetch_ms"),
        "cluster_ms": med("cluster_ms"),
        "live_red_ms": round(live_ms, 1),
    }
    cmd = "bench/fleet_map.py" + (" --quick" if args.quick else "")
    text = f"""## Fleet map (`fleet-map`)

`.venv/bin/python {cmd}` on {machine_line()}; fleet server on SQLite in the same process,
dashboard in headless Chromium (software rendering), viewport 1400x900, {n:,} machines with a
latest state, median of {runs} page load(s). Target: first paint < 2 s.

| figure | value |
| --- | --- |
| first paint (navigation start to every machine drawn) | {out["first_paint_ms"]:.0f} ms |
| the same, seen from outside (`goto` to drawn) | {out["wall_ms"]:.0f} ms |
| of which `GET /api/fleet/map` ({n:,} machines, columnar JSON) | {out["map_fetch_ms"]:.0f} ms |
| of which the cluster index (supercluster, {n:,} points) | {out["cluster_ms"]:.0f} ms |
| critical temperature posted until red on the open map | {out["live_red_ms"]:.0f} ms |
"""
    update_docs("fleet-map", text)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
