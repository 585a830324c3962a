"""The agent's SQLite outbox: bound by bytes, drops counted, order, refusals, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rigwatch.agent.outbox import Outbox
from rigwatch.errors import OutboxError


def _body(i: int, size: int = 100) -> bytes:
    head = f'{{"seq":{i},"pad":"'.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_agent_outbox_keeps_order_and_original_times(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", 1_000_000) as box:
        for i in range(50):
            box.put(f"m{i}", _body(i), created_ns=1_000 + i)
        items = box.peek(20)
        assert [i.message_id for i in items] == [f"m{i}" for i in range(20)]
        assert [i.created_ns for i in items] == [1_000 + i for i in range(20)]
        assert items[3].body == _body(3)
        assert box.ack(i.message_id for i in items[:10]) == 10
        assert box.peek(1)[0].message_id == "m10"
        assert box.stats().delivered_messages == 10
        assert box.stats().pending_messages == 40


def test_agent_outbox_peek_respects_byte_limit_but_always_gives_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", 1_000_000) as box:
        for i in range(5):
            box.put(f"m{i}", _body(i, 300), created_ns=i)
        assert len(box.peek(10, max_bytes=650)) == 2
        assert len(box.peek(10, max_bytes=10)) == 1


def test_agent_outbox_drops_oldest_only_past_the_bound_and_counts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_bytes=1000) as box:
        for i in range(10):  # exactly at the bound: nothing dropped
            assert box.put(f"m{i}", _body(i), created_ns=i) == 0
        s = box.stats()
        assert (s.pending_bytes, s.dropped_messages) == (1000, 0)
        assert box.put("m10", _body(10), created_ns=10) == 1
        assert box.put("m11", _body(11, 250), created_ns=11) == 3  # 250 bytes need 3 victims
        s = box.stats()
        assert s.dropped_messages == 4 and s.dropped_bytes == 400
        assert s.pending_bytes <= 1000
        ids = [i.message_id for i in box.peek(100)]
        assert ids == [f"m{i}" for i in range(4, 12)]  # the oldest went, order kept
        assert box.unreported_drops() == (4, 400)
        box.mark_drops_reported(4, 400)
        assert box.unreported_drops() == (0, 0)


def test_agent_outbox_refuses_a_message_larger_than_the_bound(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_bytes=1000) as box:
        box.put("a", _body(0), created_ns=0)
        with pytest.raises(OutboxError, match="exceeds the outbox bound"):
            box.put("big", b"x" * 1001, created_ns=1)
        assert [i.message_id for i in box.peek(5)] == ["a"]
        assert box.stats().dropped_messages == 0


def test_agent_outbox_rejects_a_duplicate_id_without_losing_anything(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", max_bytes=250) as box:
        box.put("a", _body(0), created_ns=0)
        box.put("b", _body(1), created_ns=1)
        with pytest.raises(OutboxError, match="already pending"):
            box.put("a", _body(2), created_ns=2)  # would have dropped "a" first: rolled back
        assert [i.message_id for i in box.peek(5)] == ["a", "b"]
        s = box.stats()
        assert (s.pending_bytes, s.dropped_messages) == (200, 0)


def test_agent_outbox_sets_refused_messages_aside(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", 1_000_000, max_refused=2) as box:
        for i in range(4):
            box.put(f"m{i}", _body(i), created_ns=i)
        for item in box.peek(3):
            box.refuse(item, 422, f"bad field in {item.message_id}")
        s = box.stats()
        assert s.refused_messages == 3 and s.pending_messages == 1
        kept = box.refused()
        assert [r.message_id for r in kept] == ["m1", "m2"]  # newest kept, bounded
        assert kept[0].status == 422 and "m1" in kept[0].reason


def test_agent_outbox_survives_reopen_with_unacknowledged_messages(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, 10_000)
    for i in range(5):
        box.put(f"m{i}", _body(i), created_ns=i)
    sent = box.peek(3)  # handed to the server, confirmation never came
    box.put("drop-me", b"y" * 9_950, created_ns=99)  # forces drops, counted persistently
    seq_before = box.allocate_seq(10**18)
    box.close()
    with Outbox(path, 10_000) as again:
        assert [i.message_id for i in again.peek(10)] == ["drop-me"]
        assert again.stats().dropped_messages == 5
        assert again.allocate_seq(0) == seq_before + 1  # never goes back
    with Outbox(tmp_path / "o2.sqlite3", 10_000) as other:
        for i in range(3):
            other.put(f"m{i}", _body(i), created_ns=i)
        first = other.peek(3)
        other.close()
    with Outbox(tmp_path / "o2.sqlite3", 10_000) as other:
        assert other.peek(3) == first  # at-least-once: the same ids again after a restart
    assert [i.message_id for i in sent] == ["m0", "m1", "m2"]


def test_agent_outbox_sequence_starts_at_the_clock_in_ms(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", 10_000) as box:
        assert box.allocate_seq(1_700_000_000_123_456_789) == 1_700_000_000_123
        assert box.allocate_seq(1_700_000_000_123_456_789) == 1_700_000_000_124


def test_agent_outbox_lower_bound_at_reopen_drops_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path, 10_000) as box:
        for i in range(10):
            box.put(f"m{i}", _body(i), created_ns=i)
    with Outbox(path, 500) as box:
        s = box.stats()
        assert s.pending_bytes <= 500 and s.dropped_messages == 5
        assert box.peek(1)[0].message_id == "m5"


def test_agent_outbox_uses_wal_and_refuses_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    Outbox(path, 10_000).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    bad = tmp_path / "not-a-db.sqlite3"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OutboxError, match="not a usable SQLite outbox"):
        Outbox(bad, 10_000)


def test_agent_outbox_enqueue_gives_each_message_its_seq(tmp_path: Path) -> None:
    import json

    with Outbox(tmp_path / "o.sqlite3", 100_000) as box:
        a = box.enqueue({"machine_id": "m1", "timestamp": "2026-01-01T00:00:00Z"}, 5_000_000)
        b = box.enqueue({"machine_id": "m1", "timestamp": "2026-01-01T00:00:30Z"}, 6_000_000)
        assert b == a + 1
        items = box.peek(5)
        assert [i.message_id for i in items] == [str(a), str(b)]
        assert json.loads(items[1].body) == {
            "machine_id": "m1",
            "timestamp": "2026-01-01T00:00:30Z",
            "seq": b,
        }
