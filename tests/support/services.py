"""The machine's services for tests (PostgreSQL, Redis, an MQTT broker), with the services rule:
a test that needs one that cannot be reached is skipped, or fails when
``RIGWATCH_REQUIRE_SERVICES=1`` (as CI runs).

URLs come from ``RIGWATCH_TEST_POSTGRES_URL``, ``RIGWATCH_TEST_REDIS_URL`` and
``RIGWATCH_TEST_MQTT_URL`` (``RIGWATCH_MQTT_URL`` is read too), each defaulting to the
service's standard local port.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

POSTGRES_ENV = "RIGWATCH_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_ENV = "RIGWATCH_TEST_REDIS_URL"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"
MQTT_ENV = "RIGWATCH_TEST_MQTT_URL"
MQTT_DEFAULT = "mqtt://127.0.0.1:1883"


def unreachable(reason: str) -> NoReturn:
    """Skip the test, or fail it under ``RIGWATCH_REQUIRE_SERVICES=1``."""
    if os.environ.get("RIGWATCH_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (RIGWATCH_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def postgres_url() -> str:
    """The test PostgreSQL URL, checked with ``SELECT 1``."""
    url = os.environ.get(POSTGRES_ENV, POSTGRES_DEFAULT)
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        unreachable(f"PostgreSQL unreachable at {url} ({POSTGRES_ENV}): {exc}")
    finally:
        engine.dispose()
    return url


def redis_url() -> str:
    """The test Redis URL, checked with ``PING``."""
    import redis

    url = os.environ.get(REDIS_ENV, REDIS_DEFAULT)
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        unreachable(f"Redis unreachable at {url} ({REDIS_ENV}): {exc}")
    finally:
        client.close()
    return url


def configured_mqtt_url() -> str:
    """The test MQTT broker URL (``mqtt://host:port``) as configured, not checked."""
    return os.environ.get(MQTT_ENV) or os.environ.get("RIGWATCH_MQTT_URL") or MQTT_DEFAULT


def mqtt_url() -> str:
    """The test MQTT broker URL (``mqtt://host:port``), checked by a TCP connection."""
    from rigwatch.fleet.mqtt import broker_address

    url = configured_mqtt_url()
    host, port = broker_address(url)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        unreachable(f"MQTT broker unreachable at {url} ({MQTT_ENV}): {exc}")
    return url


@contextmanager
def pg_schema(prefix: str = "rw_test_") -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a PostgreSQL schema name of the test's own (``prefix`` + random),
    dropped with everything in it afterwards."""
    url = postgres_url()
    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        yield url, schema
    finally:
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
