"""Alert lifecycle: one open alert per (machine, rule), repeats, escalation, ack and clear."""

from __future__ import annotations

import pytest

from rigwatch.errors import AlertError
from rigwatch.fleet.alerts import (
    RULES_ACTOR,
    Alert,
    AlertManager,
    AlertQuery,
    AlertState,
    ChangeKind,
    InMemoryAlertStore,
)
from rigwatch.fleet.signals import Severity, Signal
from support.fleet_clock import at

W, C = Severity.WARNING, Severity.CRITICAL


def sig(
    t: float, severity: Severity | None, rule: str = "temperature", machine: str = "m1"
) -> Signal:
    return Signal(machine, rule, severity, at(t), f"{rule} at {t}", "temperature", 70.0)


def manager() -> AlertManager:
    ids = iter(f"a{i}" for i in range(1000))
    return AlertManager(InMemoryAlertStore(), new_id=lambda: next(ids))


def test_fleet_one_open_alert_per_machine_and_rule_with_repeat_count() -> None:
    m = manager()
    changes = m.apply([sig(0, W), sig(30, W), sig(60, W)])
    assert [c.kind for c in changes] == [
        ChangeKind.OPENED,
        ChangeKind.REPEATED,
        ChangeKind.REPEATED,
    ]
    assert [c.notify for c in changes] == [True, False, False]
    open_alerts = m.store.query(AlertQuery(states=frozenset({AlertState.ACTIVE})))
    assert len(open_alerts) == 1
    (alert,) = open_alerts
    assert alert.count == 3 and alert.opened_at == at(0) and alert.last_seen_at == at(60)
    # other rules and other machines get their own alerts
    m.apply([sig(0, W, rule="pressure"), sig(0, W, machine="m2")])
    assert len(m.store.query(AlertQuery())) == 3


def test_fleet_store_refuses_a_second_open_alert_for_the_same_key() -> None:
    store = InMemoryAlertStore()
    first = Alert(
        id="x",
        machine_id="m",
        rule_id="r",
        severity=W,
        peak_severity=W,
        opened_at=at(0),
        last_seen_at=at(0),
    )
    store.save(first)
    with pytest.raises(AlertError, match="already has open alert x"):
        store.save(first.model_copy(update={"id": "y"}))
    store.save(first.model_copy(update={"state": AlertState.CLEARED}))
    store.save(first.model_copy(update={"id": "y"}))  # allowed once the first is cleared
    assert store.find_open("m", "r").id == "y"  # type: ignore[union-attr]


def test_fleet_escalation_notifies_once_and_needs_a_new_ack() -> None:
    m = manager()
    (opened,) = m.apply([sig(0, W)])
    ack = m.acknowledge(opened.alert.id, "ana", "looking", at=at(10))
    assert ack.alert.state is AlertState.ACKNOWLEDGED
    changes = m.apply([sig(30, C), sig(60, C), sig(90, W), sig(120, C)])
    assert [(c.kind, c.notify) for c in changes] == [
        (ChangeKind.ESCALATED, True),
        (ChangeKind.REPEATED, False),
        (ChangeKind.DEESCALATED, False),
        (ChangeKind.ESCALATED, False),  # critical was already notified for this alert
    ]
    alert = m.store.get(opened.alert.id)
    assert alert is not None
    assert alert.state is AlertState.ACTIVE and alert.peak_severity is C and alert.count == 5
    assert alert.notified == ["open:warning", "escalate:critical"]


def test_fleet_ack_then_clear_by_the_rules_records_who_when_comment() -> None:
    m = manager()
    (opened,) = m.apply([sig(0, C)])
    m.acknowledge(opened.alert.id, "ana", "valve replaced soon", at=at(5))
    (cleared,) = m.apply([sig(60, None)])
    a = cleared.alert
    assert cleared.kind is ChangeKind.CLEARED and a.state is AlertState.CLEARED
    assert (a.acknowledged_by, a.acknowledged_at, a.acknowledged_comment) == (
        "ana",
        at(5),
        "valve replaced soon",
    )
    assert (a.cleared_by, a.cleared_at) == (RULES_ACTOR, at(60))
    # the condition coming back opens a new alert
    (again,) = m.apply([sig(90, W)])
    assert again.kind is ChangeKind.OPENED and again.alert.id != a.id and again.notify


def test_fleet_human_clear_and_refused_transitions() -> None:
    m = manager()
    (opened,) = m.apply([sig(0, W)])
    alert_id = opened.alert.id
    with pytest.raises(AlertError, match="needs the name"):
        m.acknowledge(alert_id, "  ")
    done = m.clear(alert_id, "bob", "sensor unplugged for service", at=at(20))
    assert (done.alert.cleared_by, done.alert.cleared_comment) == (
        "bob",
        "sensor unplugged for service",
    )
    with pytest.raises(AlertError, match="cleared; it cannot become acknowledged"):
        m.acknowledge(alert_id, "ana")
    with pytest.raises(AlertError, match="cannot become cleared"):
        m.clear(alert_id, "ana")
    with pytest.raises(AlertError, match="no alert with id"):
        m.acknowledge("nope", "ana")
    (ack,) = m.apply([sig(30, W)])
    m.acknowledge(ack.alert.id, "ana")
    with pytest.raises(AlertError, match="acknowledged; it cannot become acknowledged"):
        m.acknowledge(ack.alert.id, "ana")
    # a recovery with no open alert changes nothing
    m.clear(ack.alert.id, "ana")
    assert m.apply([sig(40, None)]) == []


def test_fleet_alert_query_filters() -> None:
    m = manager()
    m.apply([sig(0, W), sig(1, C, rule="pressure"), sig(2, W, machine="m2")])
    m.apply([sig(3, None, machine="m2")])
    assert {a.rule_id for a in m.store.query(AlertQuery(machine_id="m1"))} == {
        "temperature",
        "pressure",
    }
    assert [a.rule_id for a in m.store.query(AlertQuery(severity=C))] == ["pressure"]
    cleared = m.store.query(AlertQuery(states=frozenset({AlertState.CLEARED})))
    assert [a.machine_id for a in cleared] == ["m2"]
    assert len(m.store.query(AlertQuery(limit=1))) == 1
    newest_first = [a.opened_at for a in m.store.query(AlertQuery())]
    assert newest_first == sorted(newest_first, reverse=True)
