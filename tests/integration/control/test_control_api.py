"""The control API of a served station (the simulated rocket stand): today's endpoints with
their bodies, control authority, the runner's typed endpoints, the system mode mapped onto the
runner, the WebSocket commands with their valve_state broadcast, the audit log (filters, CSV)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from rigwatch.control.states import RunnerState as S
from rigwatch.station import Station
from rigwatch.web.security import AccessPolicy
from support.control_station import emulator, rocket_station, served_rocket_stand, wait_acquiring
from support.server import serve

TOKEN = "op-token"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Station, str]]:
    with served_rocket_stand(tmp_path) as served_station:
        yield served_station


def take(base: str, client: str = "ana") -> dict[str, str]:
    r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": client})
    assert r.status_code == 200, r.text
    return {"X-Control-Lease": r.json()["lease"]}


def recv(ws: Any) -> dict[str, Any]:
    return msgpack.unpackb(ws.recv(timeout=10), raw=False)  # type: ignore[no-any-return]


def recv_type(ws: Any, mtype: str) -> dict[str, Any]:
    for _ in range(50):
        m = recv(ws)
        if m["type"] == mtype:
            return m
    raise AssertionError(f"no {mtype} message")


def test_control_api_valves_need_authority_and_nine_bits(served: tuple[Station, str]) -> None:
    station, addr = served
    base = f"http://{addr}"
    body = {"valves": [0, 0, 1, 1, 0, 0, 0, 0, 0]}
    r = httpx.post(f"{base}/api/valves", json=body)
    assert r.status_code == 403 and "no client holds control authority" in r.json()["detail"]
    lease = take(base)
    r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "bob"})
    assert r.status_code == 409 and "held by 'ana'" in r.json()["detail"]
    r = httpx.post(f"{base}/api/valves", json=body, headers={"X-Control-Lease": "forged"})
    assert r.status_code == 409
    short = httpx.post(f"{base}/api/valves", json={"valves": [1, 0, 1]}, headers=lease)
    assert short.status_code == 422 and "valves" in short.json()["detail"]
    assert short.headers["content-type"] == "application/problem+json"
    r = httpx.post(f"{base}/api/valves", json=body, headers=lease)
    assert r.status_code == 200 and r.json() == {"success": True, "valves": body["valves"]}
    assert emulator(station).valves == "001100000"
    hot = {"valves": [0, 1, 0, 0, 0, 0, 0, 0, 0]}  # GOX1 open while idle
    r = httpx.post(f"{base}/api/valves", json=hot, headers=lease)
    assert r.status_code == 409 and "arm first" in r.json()["detail"]
    assert emulator(station).valves == "001100000"  # a refused command moved nothing
    audit = station.control.audit
    assert audit is not None
    refused = audit.query(result="refused")
    assert [e.who for e in refused] == ["anonymous@127.0.0.1", "bob", "anonymous@127.0.0.1", "ana"]
    assert [e.target for e in refused[:3]] == [
        "POST /api/valves",
        "authority request",
        "POST /api/valves",
    ]
    assert refused[-1].interlock == "arming"
    assert station.counters.get("control.no_authority") == 3  # one per refusal


def test_control_api_step_motor_and_scenario_replies(served: tuple[Station, str]) -> None:
    station, addr = served
    base = f"http://{addr}"
    lease = take(base)
    r = httpx.post(f"{base}/api/step_motor", json={"motor_id": 1, "angle": 45.5}, headers=lease)
    body = r.json()
    assert r.status_code == 200 and (body["success"], body["motor_id"], body["angle"]) == (
        True,
        1,
        45.5,
    )
    assert "Yeni Pozisyon" in body["response"]
    audit = station.control.audit
    assert audit is not None
    refused_before = len(audit.query(result="refused"))
    counted = station.counters.get("control.refused")
    r = httpx.post(f"{base}/api/step_motor", json={"motor_id": 1, "angle": 200}, headers=lease)
    assert r.status_code == 422 and "out of range [0, 180]" in r.json()["detail"]
    # checked once (by the commander): exactly one audit row and one count for the refusal
    refused = audit.query(result="refused")
    assert len(refused) == refused_before + 1
    assert (refused[-1].who, refused[-1].action, refused[-1].target, refused[-1].value) == (
        "ana",
        "set",
        "MOTOR1",
        '{"MOTOR1": 200.0}',
    )
    assert refused[-1].reason == r.json()["detail"] and refused[-1].interlock == ""
    assert station.counters.get("control.refused") == counted + 1
    r = httpx.post(f"{base}/api/step_motor", json={"motor_id": 7, "angle": 1}, headers=lease)
    assert r.status_code == 422 and "unknown motor_id 7; motors: 1 (MOTOR1)" in r.json()["detail"]
    r = httpx.post(f"{base}/api/scenario/burning", headers=lease)
    assert r.status_code == 409 and "requires arming" in r.json()["detail"]
    r = httpx.post(f"{base}/api/scenario/warp", headers=lease)
    assert r.status_code == 404 and "scenarios: burning" in r.json()["detail"]
    # emergency needs no authority and keeps today's reply, with the board's feedback
    r = httpx.post(f"{base}/api/scenario/emergency", timeout=15)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ok",
        "message": "scenario emergency started",
        "feedback": "ACK: emergency",
        "state": "done",
    }


def test_control_api_runner_endpoints_and_system_mode(served: tuple[Station, str]) -> None:
    station, addr = served
    base = f"http://{addr}"
    assert httpx.post(f"{base}/api/control/arm").status_code == 403
    lease = take(base)
    r = httpx.post(f"{base}/api/control/arm", headers=lease)
    assert r.status_code == 200 and r.json()["state"] == "armed"
    assert r.json()["allowed"] == ["disarm", "start", "abort"]
    r = httpx.post(f"{base}/api/control/hold", headers=lease)
    assert r.status_code == 409 and "cannot hold while armed: nothing is running" in r.text
    r = httpx.post(f"{base}/api/control/authority", json={"action": "release"}, headers=lease)
    assert r.status_code == 409 and "disarm or abort first" in r.json()["detail"]
    r = httpx.post(f"{base}/api/system_mode/idle", headers=lease)  # disarm
    assert r.status_code == 200 and r.json()["mode"] == "idle"
    r = httpx.post(f"{base}/api/system_mode/test", headers=lease)
    assert r.status_code == 409 and "unknown mode 'test'" in r.json()["detail"]
    assert httpx.post(f"{base}/api/system_mode/armed").status_code == 409  # ana controls
    httpx.post(f"{base}/api/system_mode/armed", headers=lease)
    # an abort needs no authority
    r = httpx.post(f"{base}/api/system_mode/safe")
    assert r.status_code == 200 and r.json()["mode"] in ("aborting", "safe")
    assert station.control.runner.wait_state(S.SAFE, 10) is S.SAFE
    status = httpx.get(f"{base}/api/status").json()
    assert status["mode"] == "safe"
    ctl = httpx.get(f"{base}/api/control").json()
    assert ctl["runner"]["abort_by"] == "anonymous@127.0.0.1"
    assert ctl["runner"]["allowed"] == ["reset", "abort"]
    assert ctl["authority"]["holder"] == "ana" and ctl["authority"]["lease"] is None
    gox = next(a for a in ctl["actuators"] if a["name"] == "GOX1")
    assert (gox["commanded"], gox["acknowledged"], gox["status"], gox["hot"]) == (
        "closed",
        "closed",
        "acknowledged",
        True,
    )
    assert len(ctl["scenarios"]) == 6
    r = httpx.post(f"{base}/api/control/reset", headers=lease)
    assert r.json()["state"] == "idle"
    r = httpx.post(f"{base}/api/control/authority", json={"action": "renew"}, headers=lease)
    assert r.json()["holder"] == "ana" and r.json()["expires_in_s"] > 29
    r = httpx.post(f"{base}/api/control/authority", json={"action": "release"}, headers=lease)
    assert r.status_code == 200 and r.json()["holder"] == ""


def test_control_api_websocket_commands_and_valve_state_broadcast(
    served: tuple[Station, str],
) -> None:
    from websockets.sync.client import connect

    station, addr = served
    with connect(f"ws://{addr}/ws") as operator, connect(f"ws://{addr}/ws") as watcher:
        watcher.send(json.dumps({"type": "ping"}))
        assert recv(watcher) == {"type": "pong"}  # registered for broadcasts
        cmd = {"type": "valve_command", "valves": [0, 0, 1, 0, 0, 0, 0, 0, 0]}
        operator.send(json.dumps(cmd))
        e = recv(operator)
        assert e["type"] == "error" and e["code"] == "no_authority"
        operator.send(
            json.dumps({"type": "control_authority", "action": "request", "client": "ana"})
        )
        granted = recv(operator)
        assert granted["type"] == "control_authority" and granted["holder"] == "ana"
        operator.send(json.dumps({"type": "heartbeat"}))
        assert recv_type(operator, "heartbeat")["holder"] == "ana"
        operator.send(json.dumps({**cmd, "valves": [1, 0]}))
        assert recv(operator)["code"] == "invalid_field"
        operator.send(json.dumps(cmd))
        reply = recv_type(operator, "valve_response")
        assert reply == {"type": "valve_response", "success": True, "valves": cmd["valves"]}
        state = recv_type(watcher, "valve_state")
        assert state["valves"] == cmd["valves"]
        operator.send(json.dumps({"type": "step_motor_command", "motor_id": 1, "angle": 30}))
        moved = recv_type(operator, "step_motor_response")
        assert moved["success"] and "Yeni Pozisyon" in moved["response"]
        operator.send(json.dumps({"type": "system_mode", "mode": "armed"}))
        assert recv_type(operator, "system_mode") == {"type": "system_mode", "mode": "armed"}
        watcher.send(json.dumps({"type": "system_mode", "mode": "idle"}))
        assert recv_type(watcher, "error")["code"] == "no_authority"  # it watches only
        emulator(station).refusing = "board in safe mode"
        operator.send(json.dumps({**cmd, "valves": [0, 0, 0, 1, 0, 0, 0, 0, 0]}))
        failed = recv_type(operator, "valve_response")
        assert failed["success"] is False and "NACK: board in safe mode" in failed["message"]
    assert station.mode == "armed"


def test_control_api_audit_log_filters_and_csv(served: tuple[Station, str]) -> None:
    station, addr = served
    base = f"http://{addr}"
    lease = take(base)
    body = {"valves": [0, 0, 1, 0, 0, 0, 0, 0, 0]}
    assert httpx.post(f"{base}/api/valves", json=body, headers=lease).status_code == 200
    assert httpx.post(f"{base}/api/valves", json=body).status_code == 409  # ana controls
    r = httpx.get(f"{base}/api/control/audit", params={"source": "api", "result": "ok"})
    entries = r.json()["entries"]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("authority", "request"),
        ("set", "RELIEF1, GOX1, PURGE1, PURGE2, FUEL1, RELIEF2, GOX2, FUEL2, IGNITION"),
    ]
    first = entries[0]["time"]
    r = httpx.get(f"{base}/api/control/audit", params={"since": entries[1]["time"]})
    assert all(e["time"] >= first for e in r.json()["entries"])
    r = httpx.get(f"{base}/api/control/audit", params={"until": "2000-01-01T00:00:00Z"})
    assert r.json()["entries"] == []
    r = httpx.get(f"{base}/api/control/audit", params={"result": "refused", "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and rows[0]["who"] == "anonymous@127.0.0.1"
    assert "no client holds" not in rows[0]["reason"] and "held by 'ana'" in rows[0]["reason"]
    audit = station.control.audit
    assert audit is not None
    # the export is the audit log's own CSV of the same rows, byte for byte
    assert r.content == audit.to_csv(result="refused", limit=1000).encode()
    csv_filters = {"source": "api", "who": "ana", "limit": 2}
    r = httpx.get(f"{base}/api/control/audit", params={**csv_filters, "format": "csv"})
    assert r.content == audit.to_csv(**csv_filters).encode()
    assert [row["action"] for row in csv.DictReader(io.StringIO(r.text))] == ["authority", "set"]
    r = httpx.get(f"{base}/api/control/audit", params={"format": "xml"})
    assert r.status_code == 422


def test_control_api_abort_is_recorded_under_the_holder_or_the_anonymous_client(
    served: tuple[Station, str],
) -> None:
    from websockets.sync.client import connect

    station, addr = served
    base = f"http://{addr}"
    runner = station.control.runner
    audit = station.control.audit
    assert audit is not None
    lease = take(base)
    anon = "anonymous@127.0.0.1"

    def abort_by(send: Callable[[], object]) -> str:
        """Arm, abort with ``send``, wait for safe, reset: who the abort is recorded under."""
        assert httpx.post(f"{base}/api/control/arm", headers=lease).status_code == 200
        send()
        assert runner.wait_state(S.SAFE, 10) is S.SAFE
        who = runner.status().abort_by
        assert audit.query(action="abort", source="abort")[-1].who == who
        assert httpx.post(f"{base}/api/control/reset", headers=lease).status_code == 200
        return who

    def ws_safe(lease_token: str | None) -> None:
        with connect(f"ws://{addr}/ws") as ws:
            ws.send(json.dumps({"type": "system_mode", "mode": "safe", "lease": lease_token}))
            assert recv_type(ws, "system_mode")["mode"] in ("aborting", "safe")

    # the holder's lease: the holder; a lease that is not the current one: the client
    assert abort_by(lambda: httpx.post(f"{base}/api/control/abort", headers=lease)) == "ana"
    stale = {"X-Control-Lease": "stale"}
    assert abort_by(lambda: httpx.post(f"{base}/api/system_mode/safe", headers=stale)) == anon
    assert abort_by(lambda: ws_safe(None)) == "ws-client"
    assert abort_by(lambda: ws_safe(lease["X-Control-Lease"])) == "ana"
    # the safing scenario started from idle by the holder is recorded under the holder
    r = httpx.post(f"{base}/api/scenario/emergency", headers=lease, timeout=15)
    assert r.status_code == 200 and r.json()["state"] == "done"
    assert audit.query(action="start", scenario="emergency")[-1].who == "ana"
    assert audit.query(result="refused") == []  # an abort needs no authority: nothing refused


def test_control_api_commands_need_the_token_beyond_localhost(tmp_path: Path) -> None:
    station = rocket_station(tmp_path, operator_timeout_s=30.0)
    access = AccessPolicy.from_config(
        station.config.server, "0.0.0.0", environ={"RIGWATCH_TOKEN": TOKEN}
    )
    with serve(station, access=access) as addr:
        base = f"http://{addr}"
        httpx.get(f"{base}/api/hello", timeout=30)
        wait_acquiring(station)
        r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "a"})
        assert r.status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = httpx.post(
            f"{base}/api/control/authority",
            json={"action": "request", "client": "a"},
            headers=auth,
        )
        lease = {"X-Control-Lease": r.json()["lease"]}
        body = {"valves": [0, 0, 1, 0, 0, 0, 0, 0, 0]}
        assert httpx.post(f"{base}/api/valves", json=body, headers=lease).status_code == 401
        assert httpx.post(f"{base}/api/control/abort").status_code == 401
        r = httpx.post(f"{base}/api/valves", json=body, headers={**lease, **auth})
        assert r.status_code == 200
        assert httpx.get(f"{base}/api/control").status_code == 200  # reading stays open
        audit = station.control.audit
        assert audit is not None
        refused = audit.query(result="refused")
        assert [e.target for e in refused] == [
            "POST /api/control/authority",
            "POST /api/valves",
            "POST /api/control/abort",
        ]
        assert all("requires a token" in e.reason for e in refused)


def test_control_api_operator_watchdog_follows_websocket_heartbeats(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    station = rocket_station(tmp_path, operator_timeout_s=0.4)
    with serve(station) as addr:
        httpx.get(f"http://{addr}/api/hello", timeout=30)
        wait_acquiring(station)
        runner = station.control.runner
        with connect(f"ws://{addr}/ws") as ws:
            ws.send(json.dumps({"type": "control_authority", "action": "request", "client": "ana"}))
            assert recv(ws)["lease_s"] == 0.4
            ws.send(json.dumps({"type": "system_mode", "mode": "armed"}))
            assert recv(ws)["mode"] == "armed"
            for _ in range(6):  # heartbeats for longer than the lease: still armed
                assert runner.wait_state(S.SAFE, 0.15) is S.ARMED
                ws.send(json.dumps({"type": "heartbeat"}))
                assert recv(ws)["type"] == "heartbeat"
            # the page stops sending heartbeats (frozen, unplugged...): the stand aborts
            assert runner.wait_state(S.SAFE, 10) is S.SAFE
            ws.send(json.dumps({"type": "heartbeat"}))
            assert recv_type(ws, "error")["code"] == "no_authority"
        st = runner.status()
        assert st.abort_by == "watchdog:operator" and "'ana'" in st.abort_reason
