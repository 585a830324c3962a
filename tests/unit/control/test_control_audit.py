"""The audit log: durable rows, queries, CSV export."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rigwatch.control.audit import COLUMNS, AuditLog


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
