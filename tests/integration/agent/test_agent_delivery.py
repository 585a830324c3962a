"""Delivery details against a real HTTP(S) server: TLS settings, and at-least-once delivery
across a crash between the server's confirmation and the outbox's acknowledgement."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from rigwatch.agent.clock import VirtualClock
from rigwatch.agent.config import HttpServerConfig, TlsConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.sender import HttpTransport, Sender
from support.agent_ingest_stub import IngestStub
from support.agent_tls import make_tls_files


def _fill(box: Outbox, n: int) -> None:
    t0 = time.time() - 600
    for i in range(n):
        box.enqueue(
            {
                "machine_id": "mill_1",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + i)),
                "sensor_data": {"temperature": 40.0 + i},
            },
            created_ns=int((t0 + i) * 1e9),
        )


def _drain(box: Outbox, url: str, tls: TlsConfig | None = None) -> Sender:
    clock = VirtualClock(start=time.time())
    transport = HttpTransport(HttpServerConfig(url=url), "mill_1", "k-secret", tls, clock=clock)
    sender = Sender(box, transport, clock=clock, batch_max_messages=4)

    async def go() -> None:
        try:
            await sender.drain()
        finally:
            await transport.aclose()

    asyncio.run(go())
    return sender


@pytest.mark.parametrize("mode", ["ca_file", "no_verify", "untrusted"])
def test_agent_tls_settings(tmp_path: Path, mode: str) -> None:
    files = make_tls_files(tmp_path)
    tls = {
        "ca_file": TlsConfig(ca_file=files.ca_file),
        "no_verify": TlsConfig(verify=False),
        "untrusted": TlsConfig(),  # the system's CAs do not know the test CA
    }[mode]
    box = Outbox(tmp_path / "o.sqlite3", 1 << 20)
    _fill(box, 3)
    with IngestStub(
        "mill_1", "k-secret", ssl_certfile=str(files.cert_file), ssl_keyfile=str(files.key_file)
    ) as stub:
        assert stub.url.startswith("https://")
        sender = _drain(box, stub.url, tls)
    if mode == "untrusted":
        assert len(box) == 3 and not stub.record.messages
        assert "CERTIFICATE_VERIFY_FAILED" in str(sender.counters.last_messages())
    else:
        assert len(box) == 0 and len(stub.record.messages) == 3
    box.close()


def test_agent_at_least_once_across_a_crash_before_the_ack(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, 1 << 20)
    _fill(box, 10)

    def crash(ids: object) -> int:  # the process dies right after the server said 200
        raise SystemExit("killed")

    with IngestStub("mill_1", "k-secret") as stub:
        box.ack = crash  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            _drain(box, stub.url)
        box.close()
        assert len(stub.record.messages) == 4  # the first batch arrived, unacknowledged
        again = Outbox(path, 1 << 20)  # the restarted agent
        _drain(again, stub.url)
    assert len(again) == 0
    seqs = [m["seq"] for m in stub.record.messages]
    assert seqs == sorted(seqs) and len(seqs) == 10  # each once, in order
    assert stub.record.duplicates == 4  # resent with the same seq, dropped by the server
    temps = [m["sensor_data"]["temperature"] for m in stub.record.messages]
    assert temps == [40.0 + i for i in range(10)]
    assert all(m["backfill"] is True for m in stub.record.messages[:-1])
    again.close()
