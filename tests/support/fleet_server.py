"""Helpers for the fleet server's tests: a clock that moves when told, configs, a PostgreSQL
schema of the test's own, admin set-up, and a fleet app served by uvicorn in a thread (the
services themselves: :mod:`support.services`)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.config import FleetConfig
from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.security import password_hasher
from rigwatch.fleet.store import FleetStore
from support import services

ADMIN = ("admin", "admin-password-1")


class FleetClock:
    """The server's clock in tests: aware UTC, moves only when told (thread-safe enough:
    one writer, the test)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(tz=UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now = self.now + timedelta(seconds=seconds)


@contextmanager
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a PostgreSQL schema of its own, dropped afterwards."""
    with services.pg_schema("fleet_test_") as found:
        yield found


def fleet_config(tmp_path: Path, **sections: dict[str, Any]) -> FleetConfig:
    """A config on a SQLite file in ``tmp_path``; ``sections`` override (``ingest={...}``)."""
    data: dict[str, Any] = {
        "database": {"url": str(tmp_path / "fleet.sqlite3")},
        # cheap password hashes: tests log in often (the defaults take ~1 s on a busy machine)
        "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 8192},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return FleetConfig.model_validate(data)


def add_admin(config: FleetConfig) -> None:
    """Create the admin user (:data:`ADMIN`) in the config's database (migrating it)."""
    store = open_store(config)
    store.add_user(ADMIN[0], ADMIN[1], "admin", "test")
    store.engine.dispose()


def open_store(config: FleetConfig) -> FleetStore:
    """A store on the config's database, migrated (the caller disposes ``store.engine``)."""
    engine = create_fleet_engine(config.database.url, schema=config.database.schema_name)
    migrate(engine)
    auth = config.auth
    return FleetStore(
        engine, time.time_ns, password_hasher(auth.argon2_time_cost, auth.argon2_memory_kib)
    )


@contextmanager
def serve_fleet(config: FleetConfig, clock: Any = None) -> Iterator[tuple[str, FastAPI]]:
    """Run a fleet app behind uvicorn in a thread; yield ``("127.0.0.1:port", app)`` once its
    lifespan has started; stop it after."""
    app = create_fleet_app(config, clock=clock) if clock else create_fleet_app(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", ws_per_message_deflate=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        # connections wait in the socket's backlog until the lifespan has started
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
