"""The sender's answer handling, against a scripted HTTP server (httpx mock transport)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from rigwatch.agent.clock import VirtualClock
from rigwatch.agent.config import BackoffConfig, HttpServerConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.sender import HttpTransport, Sender, mark_backfill, parse_retry_after

Handler = Callable[[httpx.Request], httpx.Response]


def _msg(i: int, bad: bool = False) -> bytes:
    return json.dumps({"seq": i, "bad": bad, "backfill": False}).encode()


def _setup(
    tmp_path: Path, handler: Handler, n: int, *, bad: frozenset[int] = frozenset()
) -> tuple[Sender, Outbox, VirtualClock, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    clock = VirtualClock(start=1_800_000_000.0)
    box = Outbox(tmp_path / "o.sqlite3", 10_000_000)
    for i in range(n):
        box.put(str(i), _msg(i, i in bad), created_ns=int((clock.time() - n + i) * 1e9))
    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    cfg = HttpServerConfig(url="http://fleet.test")
    transport = HttpTransport(cfg, "mill_1", "k-1", client=client, clock=clock)
    sender = Sender(
        box,
        transport,
        clock=clock,
        backoff=BackoffConfig(initial_s=2.0, max_s=60.0),
        batch_max_messages=10,
        rng=random.Random(3),
    )
    return sender, box, clock, seen


def _bodies(request: httpx.Request) -> list[dict[str, object]]:
    data = json.loads(request.content)
    return data.get("messages", [data])  # type: ignore[no-any-return]


def test_agent_sender_posts_single_and_batch_with_key(tmp_path: Path) -> None:
    sender, box, _, seen = _setup(tmp_path, lambda r: httpx.Response(200), 11)
    result = asyncio.run(sender.drain())
    assert result.delivered == 11 and result.empty and len(box) == 0
    assert [r.url.path for r in seen] == [
        "/api/machines/mill_1/status/batch",
        "/api/machines/mill_1/status",
    ]  # 10 in a batch, then the last one alone
    assert len(_bodies(seen[0])) == 10
    assert all(r.headers["authorization"] == "Bearer k-1" for r in seen)
    assert [m["seq"] for r in seen for m in _bodies(r)] == list(range(11))


def test_agent_sender_sets_a_refused_message_aside_and_goes_on(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if any(m["bad"] for m in _bodies(request)):
            return httpx.Response(422, json={"title": "invalid", "detail": "sensor_data.x"})
        return httpx.Response(200)

    sender, box, _, seen = _setup(tmp_path, handler, 5, bad=frozenset({2}))
    result = asyncio.run(sender.drain())
    assert result.delivered == 4 and result.refused == 1 and len(box) == 0
    [refused] = box.refused()
    assert refused.message_id == "2" and refused.status == 422
    assert "sensor_data.x" in refused.reason
    assert box.stats().refused_messages == 1
    delivered = [m["seq"] for r in seen if r.url.path.endswith("/status") for m in _bodies(r)]
    assert delivered == [0, 1, 2, 3, 4]  # the batch went again one by one, in order
    asyncio.run(sender.drain())
    assert len(seen) == 6  # never sent again


@pytest.mark.parametrize("status", [429, 503])
def test_agent_sender_honours_retry_after(tmp_path: Path, status: int) -> None:
    sender, box, clock, seen = _setup(
        tmp_path, lambda r: httpx.Response(status, headers={"Retry-After": "120"}), 3
    )
    result = asyncio.run(sender.drain())
    assert result.delivered == 0 and len(box) == 3
    assert sender.next_attempt_at == pytest.approx(clock.monotonic() + 120)
    clock.advance(119)
    asyncio.run(sender.drain())
    assert len(seen) == 1  # not before Retry-After
    clock.advance(1)
    asyncio.run(sender.drain())
    assert len(seen) == 2


def test_agent_sender_backs_off_exponentially_with_a_cap(tmp_path: Path) -> None:
    sender, box, clock, seen = _setup(tmp_path, lambda r: httpx.Response(500), 1)
    waits = []
    for _ in range(8):
        asyncio.run(sender.drain())
        waits.append(sender.next_attempt_at - clock.monotonic())
        clock.advance(waits[-1])
    ceilings = [min(60.0, 2.0 * 2**k) for k in range(8)]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(seen) == 8 and len(box) == 1


def test_agent_sender_keeps_messages_when_the_key_is_refused(tmp_path: Path) -> None:
    sender, box, clock, _ = _setup(tmp_path, lambda r: httpx.Response(401), 4)
    asyncio.run(sender.drain())
    assert len(box) == 4 and box.stats().refused_messages == 0
    assert sender.next_attempt_at == pytest.approx(clock.monotonic() + 60.0)


def test_agent_sender_halves_a_batch_the_server_finds_too_large(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(413 if len(_bodies(request)) > 3 else 200)

    sender, box, _, seen = _setup(tmp_path, handler, 10)
    result = asyncio.run(sender.drain())
    assert result.delivered == 10 and len(box) == 0
    sizes = [len(_bodies(r)) for r in seen]
    assert sizes[:3] == [10, 5, 2] and sum(s for s in sizes if s <= 3) == 10


def test_agent_sender_network_error_keeps_everything(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender, box, _, _ = _setup(tmp_path, handler, 3)
    result = asyncio.run(sender.drain())
    assert result.delivered == 0 and len(box) == 3
    assert result.last_outcome is not None and result.last_outcome.kind == "retry"


def test_agent_sender_marks_late_messages_as_backfill(tmp_path: Path) -> None:
    sender, box, clock, seen = _setup(tmp_path, lambda r: httpx.Response(200), 0)
    box.put("old", _msg(1), created_ns=int((clock.time() - 3600) * 1e9))
    box.put("new", _msg(2), created_ns=int(clock.time() * 1e9))
    asyncio.run(sender.drain())
    [old, new] = _bodies(seen[0])
    assert old["backfill"] is True and new["backfill"] is False
    assert mark_backfill(b"[1]") == b"[1]"


def test_agent_retry_after_forms() -> None:
    now = 1_800_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 90, tz=UTC), usegmt=True)
    assert parse_retry_after("30", now) == 30.0
    assert parse_retry_after(date, now) == pytest.approx(90.0)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
