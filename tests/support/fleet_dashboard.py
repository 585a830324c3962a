"""Helpers for the fleet dashboard's browser tests and benchmark: a fleet server in a thread
with an admin token, machines registered through the API, statuses posted with their keys,
and tens of thousands of machines written straight into the store (one transaction)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from rigwatch.fleet.config import FleetConfig
from support.fleet_payloads import payload
from support.fleet_server import ADMIN, add_admin, fleet_config, open_store, serve_fleet

DASHBOARD_INDEX = Path(__file__).resolve().parents[2] / "src/rigwatch/fleet/static/index.html"
BULK_COLOURS = ("green",) * 90 + ("yellow",) * 6 + ("grey",) * 2 + ("black",) + ("red",)
"""Colour mix of bulk machines that all report: mostly green, a few of every other colour."""
SILENT_COLOURS = ("grey",) * 90 + ("green",) * 6 + ("yellow",) * 2 + ("black",) + ("red",)
"""Mostly machines that never reported (grey: no latest state to load at start, quick)."""


@dataclass
class DashboardFleet:
    """A running fleet server: its base URL, an admin token and the machines' keys."""

    base_url: str
    token: str
    keys: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def page_url(self, hash_: str = "#/map", **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in {"token": self.token, **query}.items())
        return f"{self.base_url}/?{q}{hash_}"

    def add_machine(self, machine_id: str, name: str, lat: float, lon: float, **fields: Any) -> str:
        body = {"id": machine_id, "name": name, "latitude": lat, "longitude": lon, **fields}
        r = httpx.post(f"{self.base_url}/api/machines", json=body, headers=self.auth, timeout=10)
        assert r.status_code == 201, r.text
        key = str(r.json()["key"]["api_key"])
        self.keys[machine_id] = key
        return key

    def post_status(self, machine_id: str, **sensors: float) -> dict[str, Any]:
        """Today's payload, timestamped now, with ``sensors`` replacing its sensor values."""
        data = {**payload()["sensor_data"], **sensors}
        stamp = datetime.now(tz=UTC).isoformat()
        body = payload(machine_id=machine_id, timestamp=stamp, sensor_data=data)
        r = httpx.post(
            f"{self.base_url}/api/machines/{machine_id}/status",
            json=body,
            headers={"Authorization": f"Bearer {self.keys[machine_id]}"},
            timeout=10,
        )
        assert r.status_code in (200, 201, 202), r.text
        result: dict[str, Any] = r.json()
        return result


def dashboard_config(tmp_path: Path) -> FleetConfig:
    """A SQLite fleet config whose rules timer stays out of the way (ticks every 10 min)."""
    return fleet_config(tmp_path, rules={"tick_s": 600})


@contextmanager
def running_fleet(config: FleetConfig) -> Iterator[DashboardFleet]:
    """Serve ``config`` (admin created) and log the admin in."""
    add_admin(config)
    with serve_fleet(config) as (host, _app):
        base = f"http://{host}"
        r = httpx.post(
            f"{base}/api/auth/login",
            json={"username": ADMIN[0], "password": ADMIN[1]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        yield DashboardFleet(base, str(r.json()["token"]), {})


def insert_bulk_machines(
    config: FleetConfig, n: int, colours: tuple[str, ...] = BULK_COLOURS, seed: int = 7
) -> dict[str, int]:
    """Write ``n`` machines (ids ``bulk-000000``...) at random positions (latitudes -55..70)
    straight into a SQLite store, in one transaction: a machine drawn grey gets no latest
    state (it never reported), any other a latest state of its colour. ``colours`` is the
    mix drawn from. Returns the number of machines per colour."""
    rng = random.Random(seed)
    now = time.time_ns()
    machines: list[tuple[Any, ...]] = []
    latest: list[tuple[Any, ...]] = []
    counts: dict[str, int] = {}
    for i in range(n):
        mid = f"bulk-{i:06d}"
        colour = rng.choice(colours)
        counts[colour] = counts.get(colour, 0) + 1
        lat, lon = rng.uniform(-55.0, 70.0), rng.uniform(-179.0, 179.0)
        machines.append((mid, f"Machine {i}", "press", "", lat, lon, "{}", now))
        if colour != "grey":
            latest.append((mid, colour, "", now, now, now, None, "{}", "{}", None))
    store = open_store(config)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO machines (id, name, type, site, latitude, longitude, tags, "
                "created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                machines,
            )
            conn.exec_driver_sql(
                "INSERT INTO latest_state (machine_id, colour, reason, ts_ns, received_ns, "
                'last_fresh_ns, last_seq, "values", metrics, info) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                latest,
            )
    finally:
        store.engine.dispose()
    return counts
