"""Helpers for the fleet server's tests: a clock that moves when told, configs, service URLs
(with the services rule), admin set-up, and a fleet app served by uvicorn in a thread."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.config import FleetConfig
from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.security import password_hasher
from rigwatch.fleet.store import FleetStore

POSTGRES_ENV = "RIGWATCH_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_ENV = "RIGWATCH_TEST_REDIS_URL"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
MQTT_ENV = "RIGWATCH_TEST_MQTT_URL"
MQTT_DEFAULT = "mqtt://127.0.0.1:1883"

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


def _unreachable(reason: str) -> None:
    if os.environ.get("RIGWATCH_REQUIRE_SERVICES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def postgres_url() -> str:
    """The test PostgreSQL URL; skips (fails with RIGWATCH_REQUIRE_SERVICES=1) if unreachable."""
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        _unreachable(f"PostgreSQL unreachable at {url} ({POSTGRES_ENV}): {exc}")
    finally:
        engine.dispose()
    return url


def redis_url() -> str:
    """The test Redis URL; skips (or fails) when unreachable."""
    import redis

    url = os.environ.get(REDIS_ENV, REDIS_DEFAULT)
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        _unreachable(f"Redis unreachable at {url} ({REDIS_ENV}): {exc}")
    finally:
        client.close()
    return url


def mqtt_url() -> str:
    """The test MQTT broker URL; skips (or fails) when unreachable."""
    from rigwatch.fleet.mqtt import broker_address

    url = os.environ.get(MQTT_ENV, MQTT_DEFAULT)
    host, port = broker_address(url)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        _unreachable(f"MQTT broker unreachable at {url} ({MQTT_ENV}): {exc}")
    return url


@contextmanager
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a PostgreSQL schema of its own, dropped afterwards."""
    url = postgres_url()
    schema = f"fleet_test_{uuid.uuid4().hex[:12]}"
    try:
        yield url, schema
    finally:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


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
