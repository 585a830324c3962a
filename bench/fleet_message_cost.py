"""Fleet ingest: the CPU our own code spends on one status message, step by step.

Times, in one process and without I/O, what the fleet server does with each message besides
HTTP and the database: validating today's payload with 10 metrics against the wire model (and,
for comparison, against a plain pydantic model of its top level), evaluating it with the
default rules, and serialising the machine's info for its latest state. Each figure is the best
of 5 repeats of many calls, in µs per message.

    .venv/bin/python bench/fleet_message_cost.py

The last line printed is one JSON object of the figures; ``docs/benchmarks.md`` gets the section
``fleet_message_cost``.
"""

from __future__ import annotations

import json
import tempfile
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import machine_line, update_docs
from fleet_ingest import _message_parts
from fleet_reference_app import MinimalStatus

from rigwatch.fleet.alert_store import SqlAlertStore
from rigwatch.fleet.alerts import AlertManager
from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.ingest import _info_json
from rigwatch.fleet.monitor import Monitor
from rigwatch.fleet.rules import load_rules
from rigwatch.fleet.status import StatusEngine
from rigwatch.wire.parse import validate_status

CALLS = 20_000
MACHINES = 256


def best_us(fn: Callable[[], object], number: int = CALLS) -> float:
    """Best of 5 repeats of ``number`` calls of ``fn``, µs per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    now = datetime.now(tz=UTC)
    body = _message_parts("m0000") + now.isoformat().encode() + b'","seq":1}'
    figures = {
        "validate_wire_model_us": best_us(lambda: validate_status(body, now=now)),
        "validate_plain_model_us": best_us(lambda: MinimalStatus.model_validate_json(body)),
    }
    msg = validate_status(body, now=now)
    figures["info_json_us"] = best_us(lambda: _info_json(msg))

    # the rules: fresh messages of 256 machines, each newer than the last of its machine
    engine = create_fleet_engine(Path(tempfile.mkdtemp(prefix="fleet-cost-")) / "f.sqlite3")
    migrate(engine)
    monitor = Monitor(StatusEngine(load_rules(None)), AlertManager(SqlAlertStore(engine)))
    n = 6 * CALLS
    msgs = [
        validate_status(
            _message_parts(f"m{i % MACHINES:04d}")
            + (now + timedelta(milliseconds=i)).isoformat().encode()
            + f'","seq":{i + 1}}}'.encode(),
            now=now + timedelta(days=0.5),
        )
        for i in range(n)
    ]
    values = [m.values() for m in msgs]
    arrivals = [now + timedelta(milliseconds=i + 1) for i in range(n)]
    runs = []
    for r in range(5):
        part = range(r * n // 6, (r + 1) * n // 6)  # each repeat its own fresh messages
        t = timeit.default_timer()
        for i in part:
            monitor.on_message(msgs[i], arrivals[i], values[i])
        runs.append((timeit.default_timer() - t) / len(part) * 1e6)
    figures["rules_us"] = min(runs)
    engine.dispose()

    rows = "\n".join(
        f"| {label} | {figures[key]:.1f} µs |"
        for label, key in (
            (
                "validate today's message, fleet wire model (`validate_status`)",
                "validate_wire_model_us",
            ),
            ("validate it, plain pydantic model of the top level", "validate_plain_model_us"),
            ("evaluate it, default rules (`Monitor.on_message`, 4 rules)", "rules_us"),
            ("serialise the machine's info for its latest state", "info_json_us"),
        )
    )
    update_docs(
        "fleet_message_cost",
        f"""## Fleet ingest, our code per message (`bench/fleet_message_cost.py`)

`.venv/bin/python bench/fleet_message_cost.py` on {machine_line()}; one process, no I/O; today's
payload with 10 metrics; best of 5 repeats.

| step | CPU per message |
|---|---:|
{rows}

The rest of a message's cost in `bench/fleet_ingest.py` (server CPU per message there) is
uvicorn's HTTP handling, asyncio, the writer thread, the database and the live updates.
""",
    )
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
