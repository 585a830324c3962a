"""The audit log: durable rows, queries, CSV export."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from pathlib import Path

import pytest

from rigwatch.control.audit import COLUMNS, AuditLog, record_refusal
from rigwatch.counters import Counters
from rigwatch.errors import ControlError


def test_control_audit_rows_survive_reopening_and_filter(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "audit.sqlite"
    log = AuditLog(db)
    log.record(
        who="ana",
        source="api",
        action="set",
        target="GOX1",
        value={"GOX1": "open"},
        result="refused",
        reason="arm first",
        interlock="arming",
        time_ns=1000,
    )
    log.record(
        who="redline:over",
        source="redline",
        action="abort",
        result="ok",
        redline="over",
        scenario="burning",
        time_ns=2000,
    )
    log.close()
    again = AuditLog(db)
    rows = again.query()
    assert [r.action for r in rows] == ["set", "abort"]
    assert rows[0].value == '{"GOX1": "open"}' and rows[0].interlock == "arming"
    assert rows[0].time == "1970-01-01T00:00:00.000001Z" or rows[0].time.startswith("1970-01-01")
    assert [r.who for r in again.query(result="refused")] == ["ana"]
    assert [r.action for r in again.query(since_ns=1500)] == ["abort"]
    assert again.query(scenario="burning", limit=1)[0].redline == "over"
    again.close()


def test_control_audit_exports_csv(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.sqlite")
    log.record(who="op, with comma", source="ws", action="arm", result="ok")
    out = tmp_path / "a.csv"
    text = log.to_csv(out)
    assert out.read_text() == text
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1][COLUMNS.index("who")] == "op, with comma"
    log.close()


def test_control_audit_csv_is_the_query_with_the_same_filters(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.sqlite")
    log.record(who="ana", source="api", action="set", result="refused", reason='a "b"\nc')
    log.record(who="bob", source="ws", action="set", result="ok", value={"GOX1": "open"})
    log.record(who="cy", source="api", action="arm", result="refused", reason="armed")
    text = log.to_csv(result="refused", limit=1)
    rows = list(csv.DictReader(io.StringIO(text)))
    (want,) = log.query(result="refused", limit=1)
    assert len(rows) == 1
    assert rows[0] == {c: str(getattr(want, c)) for c in COLUMNS}  # quoting round-trips
    assert text.startswith(",".join(COLUMNS) + "\n") and "\r" not in text
    assert log.to_csv(source="nowhere") == ",".join(COLUMNS) + "\n"
    log.close()


def test_control_audit_record_refusal_writes_one_row_and_counts_once(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.sqlite")
    counters = Counters()
    row_id = record_refusal(
        log,
        counters,
        who="ws-client",
        source="ws",
        target="valve_command",
        reason="no client holds control authority",
        counter="control.no_authority",
    )
    (row,) = log.query()
    assert row.id == row_id
    assert (row.who, row.source, row.action, row.target, row.value, row.result, row.reason) == (
        "ws-client",
        "ws",
        "command",
        "valve_command",
        "",
        "refused",
        "no client holds control authority",
    )
    assert (row.interlock, row.redline, row.scenario) == ("", "", "")
    assert counters.snapshot() == {"control.no_authority": 1}
    assert counters.last_messages() == {"control.no_authority": "no client holds control authority"}
    record_refusal(
        log,
        counters,
        who="ana",
        source="api",
        action="set",
        target="GOX1",
        value={"GOX1": "open"},
        reason="arm first",
        interlock="arming",
        scenario="burn",
    )
    second = log.query(who="ana")
    assert [(r.action, r.value, r.interlock, r.scenario) for r in second] == [
        ("set", '{"GOX1": "open"}', "arming", "burn")
    ]
    assert counters.snapshot() == {"control.no_authority": 1, "control.refused": 1}
    log.close()


def test_control_audit_record_refusal_without_a_log_or_counters(tmp_path: Path) -> None:
    counters = Counters()
    args = {"who": "a", "source": "api", "target": "POST /api/valves", "reason": "no token"}
    assert record_refusal(None, counters, **args) == -1  # counted, no row
    assert counters.snapshot() == {"control.refused": 1}
    log = AuditLog(tmp_path / "a.sqlite")
    assert record_refusal(log, None, **args) > 0  # a row, counted elsewhere
    assert [r.reason for r in log.query()] == ["no token"]
    log.close()


def test_control_audit_uses_the_storage_engine_wal_full_and_reads_beside_a_writer(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.sqlite"
    log = AuditLog(db)
    log.record(who="ana", source="api", action="set", result="ok")
    with log._engine.connect() as conn:  # the engine rigwatch.storage built
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with sqlite3.connect(db) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # another process holds the write lock: a query (a deferred, read-only transaction)
    # still answers at once instead of waiting for the lock
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(
            "INSERT INTO control_audit (time_ns, time, who, source, action, target, value, "
            "result, reason, interlock, redline, scenario) "
            "VALUES (5, 't', 'bob', 'ws', 'arm', '', '', 'ok', '', '', '', '')"
        )
        assert [r.who for r in log.query()] == ["ana"]  # the uncommitted row is not seen
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert [r.who for r in log.query()] == ["ana", "bob"]
    log.close()


def test_control_audit_filters_by_source(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.sqlite")
    log.record(who="ana", source="api", action="set", result="ok", time_ns=1)
    log.record(who="ana", source="ws", action="set", result="ok", time_ns=2)
    log.record(who="redline:p", source="redline", action="abort", result="ok", time_ns=3)
    assert [r.time_ns for r in log.query(source="ws")] == [2]
    assert [r.time_ns for r in log.query(source="api", who="ana")] == [1]
    assert log.query(source="scenario") == []
    log.close()


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("sqlite://", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
        ("mysql://u@localhost/audit", "unsupported audit log database 'mysql'"),
        ("sqlite:////nonexistent-rigwatch-folder/audit.sqlite", "folder"),
        ("://audit", "malformed audit log URL"),
        ("postgresql+psycopg://u@localhost:port/audit", "malformed audit log URL"),
    ],
)
def test_control_audit_refuses_what_it_cannot_keep(target: str, reason: str) -> None:
    with pytest.raises(ControlError, match=re.escape(reason)):
        AuditLog(target)
