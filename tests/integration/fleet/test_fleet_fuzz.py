"""The fleet server's OpenAPI fuzzed by schemathesis, in process over ASGI (SQLite and
PostgreSQL).

Every operation of ``/openapi.json`` gets schema-valid and schema-invalid data, each request
with one of several credentials: the right one (the machine's own key on its ingest path, an
admin token elsewhere), none, a made-up one, a revoked key or logged-out token, the key of
another machine replayed on this machine's path, or the right secret under the wrong scheme.

For every request: no 5xx; status code, content type and body as the schema documents them;
a refusal (any 4xx) is counted in the server's counters; an ingest answer that is not 2xx
leaves the stored messages as they were, and a 2xx one stored exactly the messages it says it
accepted. Afterwards the database holds exactly the machines (field for field), users and
messages that the API's answers said it created.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from rigwatch.fleet.app import create_fleet_app
from rigwatch.fleet.config import FleetConfig
from rigwatch.fleet.schemas import MachineIn
from rigwatch.fleet.services import FleetServices
from support.fleet_server import ADMIN, FleetClock, add_admin, fleet_config, open_store, pg_schema

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

EXAMPLES = 25
"""Generated requests per operation and generation mode (positive, negative)."""

AUTH = ("valid", "none", "wrong", "revoked", "replayed", "scheme")
"""The credentials a request is sent with (see the module's notes)."""

INGEST = {"/api/machines/{machine_id}/status", "/api/machines/{machine_id}/status/batch"}
"""The ingest paths (a machine's key, not a login token)."""

PUBLIC = {("GET", "/api/health"), ("POST", "/api/auth/login")}
"""Operations that need no credentials."""

DESTRUCTIVE = {
    ("DELETE", "/api/machines/{machine_id}"),
    ("POST", "/api/machines/{machine_id}/keys"),
    ("DELETE", "/api/machines/{machine_id}/keys"),
}
"""Operations that would take m1's or m2's key away: they act on m3 (or a generated id)."""


@dataclass
class Target:
    """A fleet app on its database, its OpenAPI loaded, and the credentials of the fuzz."""

    schema: Any
    services: FleetServices
    clock: FleetClock
    token: str
    gone_token: str
    key_m1: str
    revoked_key_m1: str
    key_m2: str

    def credentials(self, auth: str, ingest: bool, logout: bool) -> str | None:
        """The ``Authorization`` header of a request sent with credentials ``auth``."""
        right = self.key_m1 if ingest else self.token
        if auth == "valid" and logout:  # logging out must not end the token of the fuzz
            right = self.services.store.login(ADMIN[0], ADMIN[1], 3600)[0]
        return {
            "valid": f"Bearer {right}",
            "none": None,
            "wrong": "Bearer rwk_" + "A" * 43 if ingest else "Bearer rwt_" + "A" * 43,
            "revoked": f"Bearer {self.revoked_key_m1 if ingest else self.gone_token}",
            "replayed": f"Bearer {self.key_m2 if ingest else self.key_m1}",
            "scheme": f"Basic {right}",
        }[auth]


@dataclass
class Ledger:
    """What the API's answers said they did, to compare with the database afterwards."""

    machines: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    accepted: int = 0
    ingest_refused: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    no_negative: set[str] = field(default_factory=set)


@contextmanager
def _target(config: FleetConfig) -> Iterator[Target]:
    add_admin(config)
    store = open_store(config)
    try:
        token = store.login(ADMIN[0], ADMIN[1], 3600)[0]
        gone_token = store.login(ADMIN[0], ADMIN[1], 3600)[0]
        store.logout(gone_token)
        revoked = store.add_machine(MachineIn(id="m1", name="M1"), "test")[1].api_key
        key_m1 = store.rotate_key("m1", "test").api_key
        key_m2 = store.add_machine(MachineIn(id="m2", name="M2"), "test")[1].api_key
        store.add_machine(MachineIn(id="m3", name="M3"), "test")
    finally:
        store.engine.dispose()
    clock = FleetClock()
    app = create_fleet_app(config, clock=clock)
    try:
        # /openapi.json read through the app itself, which starts the app's lifespan (kept
        # by schemathesis for every later call, until shut down)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        services: FleetServices = app.state.fleet
        yield Target(schema, services, clock, token, gone_token, key_m1, revoked, key_m2)
    finally:
        asgi.shutdown_lifespans()


def _has_body(operation: Any) -> bool:
    return operation.body is not None and len(operation.body) > 0


def _modes(operation: Any) -> list[GenerationMode]:
    """Positive data always; negative data where the operation has something to get wrong."""
    negatable = _has_body(operation) or any(
        len(p) for p in (operation.path_parameters, operation.query, operation.headers)
    )
    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE][: 2 if negatable else 1]


def _fix_ingest_body(body: Any, machine_id: str, target: Target, batch: bool) -> None:
    """Make a generated message acceptable where it can be: the URL's machine and a recent
    timestamp (the rest as generated)."""
    messages = body.get("messages") if batch and isinstance(body, dict) else [body]
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        if isinstance(message, dict):
            message["machine_id"] = machine_id
            when = target.clock() - timedelta(seconds=len(messages) - i)
            message["timestamp"] = when.isoformat()


def _fuzz_operation(target: Target, ledger: Ledger, operation: Any, mode: GenerationMode) -> None:
    method, path = operation.method.upper(), operation.path
    ingest = path in INGEST
    own = "m3" if (method, path) in DESTRUCTIVE else "m1"
    store, counters = target.services.store, target.services.counters

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(mode),
        auth=st.sampled_from(AUTH),
        generated_machine=st.booleans(),
        generated_body=st.booleans(),
    )
    def fuzz(case: Any, auth: str, generated_machine: bool, generated_body: bool) -> None:
        if case.path_parameters and "machine_id" in case.path_parameters and not generated_machine:
            case.path_parameters["machine_id"] = own
        machine_id = (case.path_parameters or {}).get("machine_id")
        if ingest and not generated_body and isinstance(machine_id, str):
            _fix_ingest_body(case.body, machine_id, target, path.endswith("/batch"))
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        header = target.credentials(auth, ingest, path == "/api/auth/logout")
        if header is not None:
            headers["Authorization"] = header
        case.headers = headers
        stored_before = store.message_count() if ingest else 0
        counted_before = sum(counters.snapshot().values())

        response = case.call()

        status = response.status_code
        what = f"{method} {path} ({mode.value}, auth {auth}) -> {status}: {response.text[:300]}"
        ledger.calls[f"{method} {path}"] += 1
        assert status < 500, what
        if auth != "valid" and (method, path) not in PUBLIC:
            assert 400 <= status < 500, what
        if status >= 400:
            assert sum(counters.snapshot().values()) > counted_before, f"not counted: {what}"
        if ingest:
            stored = store.message_count() - stored_before
            if 200 <= status < 300:
                ledger.accepted += response.json()["accepted"]
                assert stored == response.json()["accepted"], what
            else:
                ledger.ingest_refused[auth] += 1
                assert stored == 0, f"stored {stored} messages: {what}"
        elif (method, path) == ("POST", "/api/machines") and status == 201:
            machine = response.json()["machine"]
            ledger.machines[machine["id"]] = machine
        elif (method, path) == ("PATCH", "/api/machines/{machine_id}") and status == 200:
            ledger.machines[response.json()["id"]] = response.json()
        elif (method, path) == ("DELETE", "/api/machines/{machine_id}") and status == 204:
            del ledger.machines[str(machine_id)]
        elif (method, path) == ("POST", "/api/users") and status == 201:
            ledger.users.add(response.json()["username"])
        case.validate_response(response, checks=CHECKS)

    try:
        fuzz()
    except Unsatisfiable:
        # only a path of free strings (an alert id) has no invalid value to generate
        assert mode is GenerationMode.NEGATIVE and not _has_body(operation), (method, path)
        ledger.no_negative.add(f"{method} {path}")


def _fuzz(config: FleetConfig) -> None:
    with _target(config) as target:
        store = target.services.store
        ledger = Ledger(
            machines={m.id: m.model_dump(mode="json") for m in store.list_machines()},
            users={u.username for u in store.list_users()},
        )
        operations = [result.ok() for result in target.schema.get_all_operations()]
        for operation in operations:
            for mode in _modes(operation):
                _fuzz_operation(target, ledger, operation, mode)

        # every operation was called; ingest both stored and refused under every credential
        assert len(ledger.calls) == len(operations) > 20
        # (an operation without parameters has 24 distinct requests: credentials x flags)
        assert min(ledger.calls.values()) >= min(EXAMPLES, 24) // 2, ledger.calls
        assert len(ledger.no_negative) <= 2, ledger.no_negative
        assert ledger.accepted > 0, "no generated message was ever stored"
        assert set(ledger.ingest_refused) == set(AUTH), ledger.ingest_refused
        # the database holds exactly what the answers said
        assert store.message_count() == ledger.accepted
        stored = {m.id: m.model_dump(mode="json") for m in store.list_machines()}
        assert stored == ledger.machines
        assert {u.username for u in store.list_users()} == ledger.users
        for machine in stored.values():  # no garbage: texts as answered, finite numbers
            texts = [machine["name"], machine["type"], machine["site"], *machine["tags"].items()]
            assert machine["name"] and not any("\x00" in str(t) for t in texts), machine
            for number in (machine["latitude"], machine["longitude"]):
                assert number is None or math.isfinite(number), machine


def test_fleet_fuzz_openapi_on_sqlite(tmp_path: Path) -> None:
    _fuzz(fleet_config(tmp_path, rules={"tick_s": 600}))


@pytest.mark.services
def test_fleet_fuzz_openapi_on_postgres(tmp_path: Path) -> None:
    with pg_schema() as (url, schema):
        database = {"url": url, "schema_name": schema}
        _fuzz(fleet_config(tmp_path, rules={"tick_s": 600}, database=database))
