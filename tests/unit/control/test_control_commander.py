"""The commander: the one place a command is checked, refused, audited and counted. A malformed
command raises InvalidCommand, a rule's refusal a plain CommandRefused; either writes exactly
one audit row and one count, and nothing is sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rigwatch.control.actuators import ActuatorSpec
from rigwatch.control.audit import AuditLog
from rigwatch.control.commander import Commander
from rigwatch.control.interlocks import ARMING_RULE
from rigwatch.errors import CommandRefused, InvalidCommand
from support.control_fakes import AckBank

SPECS = (
    ActuatorSpec("GOX1", "valve", "closed", hot=True),
    ActuatorSpec("PURGE1", "valve", "closed"),
    ActuatorSpec("MOTOR1", "position", None, minimum=0, maximum=180, unit="deg"),
)


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Commander, AckBank, AuditLog]]:
    bank = AckBank(SPECS)
    audit = AuditLog(tmp_path / "audit.sqlite")
    yield Commander([bank], audit=audit), bank, audit
    audit.close()


@pytest.mark.parametrize(
    ("changes", "message", "value"),
    [
        ({}, "the command names no actuator", "{}"),
        (
            {"GOX9": "open"},
            "unknown actuator(s) 'GOX9'; actuators: GOX1, PURGE1, MOTOR1",
            '{"GOX9": "open"}',
        ),
        (
            {"PURGE1": "ajar"},
            "valve PURGE1: 'ajar' is not a position; use 'open' or 'closed'",
            '{"PURGE1": "ajar"}',
        ),
        ({"MOTOR1": 200}, "MOTOR1: 200 deg is out of range [0, 180]", '{"MOTOR1": 200}'),
    ],
)
def test_control_malformed_command_is_invalid_audited_once_and_counted_once(
    parts: tuple[Commander, AckBank, AuditLog], changes: dict[str, Any], message: str, value: str
) -> None:
    commander, bank, audit = parts
    with pytest.raises(InvalidCommand) as info:
        commander.command(changes, who="ana", source="api")
    assert str(info.value) == message
    assert isinstance(info.value, CommandRefused)  # callers catching the family still do
    assert bank.sent == []
    rows = audit.query()
    assert len(rows) == 1
    row = rows[0]
    assert (row.who, row.source, row.action, row.result, row.reason) == (
        "ana",
        "api",
        "set",
        "refused",
        message,
    )
    assert (row.target, row.value, row.interlock, row.scenario) == (
        ", ".join(changes),
        value,
        "",
        "",
    )
    assert commander.counters.snapshot() == {"control.refused": 1}
    assert commander.counters.last_messages()["control.refused"] == message


def test_control_normalise_raises_invalid_command_and_records_nothing(
    parts: tuple[Commander, AckBank, AuditLog],
) -> None:
    commander, _bank, audit = parts
    assert commander.normalise({"PURGE1": 1, "MOTOR1": "45"}) == {"PURGE1": "open", "MOTOR1": 45.0}
    with pytest.raises(InvalidCommand, match="unknown actuator"):
        commander.normalise({"NOPE": 1})
    assert audit.query() == [] and commander.counters.snapshot() == {}


def test_control_interlock_refusal_is_not_invalid_and_is_audited_once(
    parts: tuple[Commander, AckBank, AuditLog],
) -> None:
    commander, bank, audit = parts
    with pytest.raises(CommandRefused) as info:
        commander.command({"GOX1": "open"}, who="ana", source="ws", scenario="burn")
    assert not isinstance(info.value, InvalidCommand)
    assert "arm first" in str(info.value)
    assert bank.sent == []
    rows = audit.query()
    assert len(rows) == 1
    row = rows[0]
    assert (row.who, row.source, row.action, row.target, row.value, row.result) == (
        "ana",
        "ws",
        "set",
        "GOX1",
        '{"GOX1": "open"}',
        "refused",
    )
    assert (row.reason, row.interlock, row.scenario) == (str(info.value), ARMING_RULE, "burn")
    assert commander.counters.snapshot() == {"control.refused": 1}


def test_control_accepted_command_is_audited_ok_with_canonical_values(
    parts: tuple[Commander, AckBank, AuditLog],
) -> None:
    commander, bank, audit = parts
    status = commander.command({"PURGE1": True, "MOTOR1": 45}, who="ana", source="api")
    status.wait(1.0)
    assert bank.sent == [{"PURGE1": "open", "MOTOR1": 45.0}]
    rows = audit.query()
    assert [(r.result, r.target, r.value) for r in rows] == [
        ("ok", "PURGE1, MOTOR1", '{"PURGE1": "open", "MOTOR1": 45.0}')
    ]
    assert commander.counters.snapshot() == {}
