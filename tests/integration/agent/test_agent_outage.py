"""A server outage of 10 minutes at one message per second, with time compressed: the agent
runs its real loop against a real HTTP server (uvicorn) whose port is closed for the first
600 s of virtual time; nothing may be lost, and everything arrives in order with its original
timestamp."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime
from pathlib import Path

from rigwatch.agent.clock import VirtualClock
from rigwatch.agent.config import AgentConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.run import Agent
from rigwatch.agent.sender import HttpTransport, Sender
from rigwatch.agent.sensors import PluginResult, Reading
from support.agent_ingest_stub import IngestStub

OUTAGE_S = 600
RUN_S = 700


class RampSensor:
    """temperature = 20 + elapsed virtual seconds / 100: each message's value names its time."""

    name = "ramp"
    metrics = ("temperature",)

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def read(self) -> PluginResult:
        return PluginResult({"temperature": Reading(20.0 + self.clock.elapsed / 100.0)})

    def close(self) -> None:
        pass


def _config(url: str, tmp_path: Path) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "machine_id": "mill_1",
            "interval_s": 1.0,
            "system_info": False,
            "server": {"transport": "http", "url": url, "batch_max_messages": 200},
            "outbox": {"path": str(tmp_path / "outbox.sqlite3"), "max_bytes": 16 * 1024 * 1024},
            "backoff": {"initial_s": 1.0, "max_s": 30.0},
        }
    )


def test_agent_outage_of_ten_minutes_loses_nothing(tmp_path: Path) -> None:
    stub = IngestStub("mill_1", "k-secret")  # not started: the server is down from t = 0
    clock = VirtualClock(start=float(int(time.time())) - 3 * 3600)
    clock.call_at(OUTAGE_S, stub.up)
    cfg = _config(stub.url, tmp_path)
    outbox = Outbox(tmp_path / "outbox.sqlite3", cfg.outbox.max_bytes)
    transport = HttpTransport(cfg.server, "mill_1", "k-secret", clock=clock)  # type: ignore[arg-type]
    sender = Sender(
        outbox,
        transport,
        clock=clock,
        backoff=cfg.backoff,
        batch_max_messages=200,
        backfill_after_s=cfg.interval_s,
        rng=random.Random(1),
    )
    agent = Agent(cfg, outbox, transport, plugins=[RampSensor(clock)], clock=clock, sender=sender)

    async def scenario() -> None:
        stop = asyncio.Event()
        clock.call_at(RUN_S - 0.5, stop.set)
        await agent.run(stop)

    try:
        asyncio.run(scenario())
        assert stub.wait_for(RUN_S, timeout_s=10)
    finally:
        stub.down()

    got = stub.record.messages
    stats = outbox.stats()
    outbox.close()
    assert len(got) == RUN_S, f"{RUN_S - len(got)} message(s) lost"
    assert stats.pending_messages == 0 and stats.dropped_messages == 0
    assert stats.refused_messages == 0
    # in order, consecutive, each with the time it was made and the value read then
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + RUN_S))
    stamps = [
        datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp() for m in got
    ]
    assert stamps == [clock.start + i for i in range(RUN_S)]
    temps = [m["sensor_data"]["temperature"] for m in got]
    assert temps == [20.0 + i / 100.0 for i in range(RUN_S)]
    # the backlog went in batches and is marked as backfill; live messages after it are not
    assert stub.record.batches >= OUTAGE_S // 200
    assert all(m["backfill"] for m in got[:OUTAGE_S])
    assert not any(m["backfill"] for m in got[-50:])
    assert stub.record.duplicates == 0
