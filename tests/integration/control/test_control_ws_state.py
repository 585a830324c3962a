"""``subscribe_control`` on the live WebSocket of a served station (the simulated rocket stand):
the answer is the state ``GET /api/control`` shows, and every change made through the REST API
(authority, a valve command, arming) reaches the subscribed client as a ``control_state``
frame with a greater ``seq``; clients that did not subscribe, or unsubscribed, get none."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from rigwatch.station import Station
from support.control_station import served_rocket_stand

WAIT_S = 10.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Station, str]]:
    with served_rocket_stand(tmp_path) as served_station:
        yield served_station


def recv(ws: Any, timeout_s: float = WAIT_S) -> dict[str, Any]:
    return msgpack.unpackb(ws.recv(timeout=timeout_s), raw=False)  # type: ignore[no-any-return]


def recv_until(ws: Any, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Messages received up to and including the first for which ``done`` is true."""
    deadline = time.monotonic() + WAIT_S
    out: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"not received within {WAIT_S} s; got {[m['type'] for m in out]}"
        out.append(recv(ws, left))
        if done(out[-1]):
            return out


def state_where(ws: Any, check: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """``control_state`` frames received until one whose state passes ``check``."""
    msgs = recv_until(ws, lambda m: m["type"] == "control_state" and check(m["state"]))
    return [m for m in msgs if m["type"] == "control_state"]


def without_countdown(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "authority": {**state["authority"], "expires_in_s": None}}


def actuator(state: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in state["actuators"] if a["name"] == name)


def test_control_ws_state_follows_changes_made_through_rest(
    served: tuple[Station, str],
) -> None:
    from websockets.sync.client import connect

    _station, addr = served
    base = f"http://{addr}"
    with (
        connect(f"ws://{addr}/ws") as watcher,
        connect(f"ws://{addr}/ws") as witness,
        connect(f"ws://{addr}/ws") as plain,
    ):
        plain.send(json.dumps({"type": "ping"}))
        assert recv(plain) == {"type": "pong"}  # registered for valve_state only
        watcher.send(json.dumps({"type": "subscribe_control"}))
        first = recv(watcher)
        assert first["type"] == "control_state"
        rest = httpx.get(f"{base}/api/control", timeout=10).json()
        assert without_countdown(first["state"]) == without_countdown(rest)
        assert first["state"]["authority"]["holder"] == ""
        witness.send(json.dumps({"type": "subscribe_control"}))
        assert recv(witness)["seq"] > first["seq"]

        r = httpx.post(f"{base}/api/control/authority", json={"action": "request", "client": "ana"})
        assert r.status_code == 200, r.text
        lease = {"X-Control-Lease": r.json()["lease"]}
        frames = state_where(watcher, lambda s: s["authority"]["holder"] == "ana")
        seqs = [first["seq"]] + [f["seq"] for f in frames]
        assert seqs == sorted(set(seqs)), seqs

        word = [0, 0, 1, 0, 0, 0, 0, 0, 0]  # PURGE1 energised: open
        r = httpx.post(f"{base}/api/valves", json={"valves": word}, headers=lease)
        assert r.status_code == 200, r.text
        frames = state_where(watcher, lambda s: actuator(s, "PURGE1")["acknowledged"] == "open")
        purge = actuator(frames[-1]["state"], "PURGE1")
        assert purge["commanded"] == "open" and purge["status"] == "acknowledged"
        assert actuator(frames[-1]["state"], "GOX1")["acknowledged"] == "closed"
        # the client that did not subscribe gets valve_state, never control_state
        msgs = recv_until(plain, lambda m: m["type"] == "valve_state")
        assert msgs[-1]["valves"] == word
        plain.send(json.dumps({"type": "ping"}))
        msgs += recv_until(plain, lambda m: m["type"] == "pong")
        assert "control_state" not in {m["type"] for m in msgs}

        r = httpx.post(f"{base}/api/control/arm", headers=lease)
        assert r.status_code == 200, r.text
        frames = state_where(watcher, lambda s: s["runner"]["state"] == "armed")
        assert frames[-1]["state"]["runner"]["armed_by"] == "ana"

        watcher.send(json.dumps({"type": "unsubscribe_control"}))
        recv_until(watcher, lambda m: m["type"] == "control_unsubscribed")
        r = httpx.post(f"{base}/api/control/disarm", headers=lease)
        assert r.status_code == 200, r.text
        # the witness, still subscribed, gets the change; the frames of that broadcast were
        # queued to every subscriber before the ping below is answered
        state_where(witness, lambda s: s["runner"]["state"] == "idle")
        watcher.send(json.dumps({"type": "ping"}))
        msgs = recv_until(watcher, lambda m: m["type"] == "pong")
        assert "control_state" not in {m["type"] for m in msgs}


def test_control_ws_state_subscribe_refuses_unknown_fields(served: tuple[Station, str]) -> None:
    from websockets.sync.client import connect

    _station, addr = served
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(json.dumps({"type": "subscribe_control", "every_s": 1}))
        e = recv(ws)
        assert e["type"] == "error" and e["code"] == "invalid_field", e
