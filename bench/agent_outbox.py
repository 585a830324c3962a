"""Agent outbox figures: durable puts per second, and how fast a backlog drains to a real HTTP
ingest (uvicorn, schema-validating stub) through the batch endpoint.

Run: ``.venv/bin/python bench/agent_outbox.py [--quick]``. The last line printed is one JSON
object: ``outbox_puts_per_s``, ``backlog_drain_messages_per_s``, ``backlog_messages``,
``message_bytes``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import update_docs

from rigwatch.agent.clock import SystemClock
from rigwatch.agent.config import HttpServerConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.sender import HttpTransport, Sender
from rigwatch.agent.system_info import collect_system_info
from support.agent_ingest_stub import IngestStub


def _message(t: float, i: int, system_info: dict[str, object]) -> dict[str, object]:
    return {
        "schema_version": 1,
        "machine_id": "mill_1",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{i % 1000:03d}Z",
        "status": "online",
        "sensor_data": {"temperature": 42.5, "pressure": 2.1, "speed": 1450.0, "disk_volume": 61.0},
        "sensor_errors": {},
        "system_info": system_info,
        "backfill": False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller run (under a minute)")
    args = parser.parse_args()
    n = 2_000 if args.quick else 10_000
    info = collect_system_info().info
    t0 = time.time() - 86400
    with tempfile.TemporaryDirectory() as tmp:
        box = Outbox(Path(tmp) / "outbox.sqlite3", 1 << 30)
        start = time.perf_counter()
        for i in range(n):
            box.enqueue(_message(t0 + i, i, info), created_ns=int((t0 + i) * 1e9))
        puts_per_s = n / (time.perf_counter() - start)
        size = box.stats().pending_bytes // n
        with IngestStub("mill_1", "k") as stub:
            transport = HttpTransport(HttpServerConfig(url=stub.url), "mill_1", "k")
            sender = Sender(box, transport, clock=SystemClock(), batch_max_messages=200)

            async def drain() -> float:
                begin = time.perf_counter()
                result = await sender.drain()
                elapsed = time.perf_counter() - begin
                await transport.aclose()
                assert result.empty and result.delivered == n, result
                return elapsed

            elapsed = asyncio.run(drain())
            assert len(stub.record.messages) == n
        box.close()
    figures = {
        "outbox_puts_per_s": round(puts_per_s, 1),
        "backlog_drain_messages_per_s": round(n / elapsed, 1),
        "backlog_messages": n,
        "message_bytes": size,
    }
    cmd = "`.venv/bin/python bench/agent_outbox.py" + (" --quick`" if args.quick else "`")
    update_docs(
        "agent_outbox",
        "## Agent outbox\n\n"
        f"Command: {cmd}. Messages of {size} bytes (today's payload with system info); the "
        "outbox commits each put with `synchronous=FULL` (WAL); the backlog goes to a "
        "schema-validating uvicorn ingest stub on loopback in batches of 200.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| durable puts into the outbox | {figures['outbox_puts_per_s']:.0f} messages/s |\n"
        f"| backlog of {n} drained over HTTP batches | "
        f"{figures['backlog_drain_messages_per_s']:.0f} messages/s |\n",
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
