"""The typed REST API: every response described in OpenAPI, problem details for every error
(none uncounted), writes guarded by Origin and token, heavy requests bounded."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import httpx
import pytest

from rigwatch.config.station import StationConfig
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.station import Station
from rigwatch.web.security import AccessPolicy
from support.server import serve

TOKEN = "s3cret-token"


def config(tmp_path: Path, **extra: object) -> StationConfig:
    return StationConfig.from_dict(
        {
            "name": "api_test",
            "recorder": {"directory": str(tmp_path / "rec"), "segment_duration_s": 60},
            "api": {"snapshot_min_interval_s": 30, "max_query_values": 4000},
            "devices": [
                {"name": "dev", "driver": "sim", "sample_rate_hz": 1000, "channel_count": 2}
            ],
            **extra,
        }
    )


@pytest.fixture
def served(tmp_path: Path):
    dev = ListDevice("dev", rate_hz=1000.0)
    station = Station(config(tmp_path), devices=[dev])
    with serve(station) as addr:
        yield station, dev, f"http://{addr}"


def test_openapi_describes_every_api_response(served) -> None:
    _, _, base = served
    spec = httpx.get(f"{base}/openapi.json").json()
    api_ops = [
        (path, method, op)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert len(api_ops) >= 9
    for path, method, op in api_ops:
        ok = op["responses"].get("200")
        assert ok is not None, (method, path)
        content = ok.get("content", {})
        schemas = [c.get("schema") for c in content.values()]
        assert schemas and all(schemas), f"{method} {path} has no 200 response schema"
        assert schemas[0] != {}, f"{method} {path} has an empty schema"
    status = spec["paths"]["/api/status"]["get"]["responses"]["200"]["content"]
    assert status["application/json"]["schema"] == {"$ref": "#/components/schemas/StationStatus"}
    rec = spec["components"]["schemas"]["RecorderStatus"]["properties"]
    assert "segment" in rec and "current_segment" not in rec
    problem = spec["paths"]["/api/parquet_data/{filename}"]["get"]["responses"]["400"]
    assert "application/problem+json" in problem["content"]


def test_status_is_the_declared_model(served) -> None:
    _station, _dev, base = served
    body = httpx.get(f"{base}/api/status").json()
    assert body["mode"] == "idle" and body["mode_since"].endswith("Z")
    assert body["simulated"] is False
    assert body["devices"][0]["name"] == "dev" and body["devices"][0]["simulated"] is False
    assert set(body["recorder"]["dev"]) >= {"state", "segment", "rows_recorded", "missed_rows"}
    assert body["live"] == {"clients": 0, "frames_sent": 0, "samples_skipped": 0}


def test_errors_are_problem_details_naming_the_cause(served, tmp_path: Path) -> None:
    _station, _, base = served
    rec = tmp_path / "rec"
    rec.mkdir(exist_ok=True)
    (rec / "loop_a.parquet").symlink_to(rec / "loop_b.parquet")
    (rec / "loop_b.parquet").symlink_to(rec / "loop_a.parquet")
    listing = httpx.get(f"{base}/api/parquet_files")
    assert listing.status_code == 200
    assert {f["filename"]: f["error"] for f in listing.json()["files"]}["loop_a.parquet"] == (
        "symbolic link loop"
    )
    long = httpx.get(f"{base}/api/parquet_data/{'x' * 292}.parquet")
    assert long.status_code == 400
    assert long.headers["content-type"] == "application/problem+json"
    assert "300 bytes is longer than 255 bytes" in long.json()["detail"]
    loop = httpx.get(f"{base}/api/parquet_data/loop_a.parquet")
    assert loop.status_code == 400 and "symbolic link loop" in loop.json()["detail"]
    (rec / "junk.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    junk = httpx.get(f"{base}/api/parquet_data/junk.parquet")
    assert junk.status_code == 422 and "not a readable Parquet" in junk.json()["detail"]
    mode = httpx.post(f"{base}/api/system_mode/safe")  # an abort, with nothing to run here
    assert mode.status_code == 409 and "no safing scenario" in mode.json()["detail"]
    errors = httpx.get(f"{base}/api/status").json()["errors"]
    assert errors["http.rejected_request"] == 4 and errors["http.mode_refused"] == 1


def test_an_unexpected_failure_is_a_counted_500(served, monkeypatch: pytest.MonkeyPatch) -> None:
    from rigwatch.web.routers import recordings

    def broken(_directory: object) -> list[object]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(recordings, "list_recordings", broken)
    _, _, base = served
    r = httpx.get(f"{base}/api/parquet_files")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert "OSError" in r.json()["detail"]
    status = httpx.get(f"{base}/api/status").json()
    assert status["errors"]["http.server_error"] == 1
    assert "Input/output error" in status["error_messages"]["http.server_error"]


def _lease(base: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    r = httpx.post(
        f"{base}/api/control/authority",
        json={"action": "request", "client": "ana"},
        headers=headers or {},
    )
    assert r.status_code == 200, r.text
    return {"X-Control-Lease": r.json()["lease"]}


def test_mode_changes_over_rest_follow_the_runners_table(served) -> None:
    station, _, base = served
    lease = _lease(base)
    r = httpx.post(f"{base}/api/system_mode/armed", headers=lease)
    assert r.status_code == 200 and r.json()["mode"] == "armed"
    r = httpx.post(f"{base}/api/system_mode/holding", headers=lease)
    assert r.status_code == 409 and "cannot hold while armed: nothing is running" in r.text
    assert station.mode == "armed"
    r = httpx.post(f"{base}/api/system_mode/maintenance", headers=lease)
    assert r.status_code == 409 and "unknown mode 'maintenance'" in r.text


def test_writes_from_a_foreign_origin_are_refused(served) -> None:
    station, _dev, base = served
    host = base.removeprefix("http://")
    evil = httpx.post(
        f"{base}/api/control/authority",
        json={"action": "request", "client": "eve"},
        headers={"Origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and "evil.example" in evil.json()["detail"]
    assert station.control.authority.holder == ""
    lease = _lease(base, {"Origin": f"http://{host}"})
    same = httpx.post(
        f"{base}/api/system_mode/armed", headers={"Origin": f"http://{host}", **lease}
    )
    assert same.status_code == 200 and station.mode == "armed"
    # reads stay open to any origin
    assert httpx.get(f"{base}/api/status", headers={"Origin": "https://evil.example"}).is_success
    assert httpx.get(f"{base}/api/status").json()["errors"]["http.forbidden_origin"] == 1


def test_a_station_beyond_localhost_needs_the_token_to_write(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    access = AccessPolicy.from_config(cfg.server, "0.0.0.0", environ={"RIGWATCH_TOKEN": TOKEN})
    assert access.token == TOKEN
    station = Station(cfg, devices=[ListDevice("dev")])
    with serve(station, access=access) as addr:
        base = f"http://{addr}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        lease = _lease(base, auth)
        r = httpx.post(f"{base}/api/system_mode/armed", headers=lease)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        r = httpx.post(
            f"{base}/api/system_mode/armed", headers={"Authorization": "Bearer nope", **lease}
        )
        assert r.status_code == 401
        assert station.mode == "idle"
        r = httpx.post(f"{base}/api/system_mode/armed", headers={**auth, **lease})
        assert r.status_code == 200 and station.mode == "armed"
        assert httpx.get(f"{base}/api/status").json()["errors"]["http.unauthorized"] == 2


def test_token_policy_from_config(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert AccessPolicy.from_config(cfg.server, "127.0.0.1", environ={}).token is None
    generated = AccessPolicy.from_config(cfg.server, "0.0.0.0", environ={})
    assert generated.token is not None and len(generated.token) >= 24
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    cfg2 = config(tmp_path, server={"token_file": str(token_file), "require_token": "always"})
    assert AccessPolicy.from_config(cfg2.server, "127.0.0.1", environ={}).token == "from-file"


def test_snapshots_are_rate_limited(served) -> None:
    station, dev, base = served
    assert httpx.get(f"{base}/api/hello").is_success  # the app (and the station) started
    arrived = threading.Event()
    station.streams["dev"].add_listener(lambda end: arrived.set() if end >= 500 else None)
    dev.blocks.put(ramp_block(0, 500, 2))
    assert arrived.wait(10)  # the engine put the block in the ring buffer
    first = httpx.post(f"{base}/api/save_sensor_buffer")
    assert first.status_code == 200 and len(first.json()["files"]) == 1
    second = httpx.post(f"{base}/api/save_sensor_buffer")
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 25
    assert "one per 30 s" in second.json()["detail"]
    assert httpx.get(f"{base}/api/status").json()["errors"]["http.busy"] == 1


def test_query_replies_are_bounded(served) -> None:
    station, dev, base = served
    dev.blocks.put(ramp_block(0, 5000, 2))
    dev.blocks.put(None)
    assert station.streams["dev"].wait_finished(10)
    station.recorders["dev"].stop()
    name = station.recorders["dev"].segments[0].name
    ok = httpx.get(f"{base}/api/parquet_data/{name}", params={"max_points": 1000})
    assert ok.status_code == 200 and ok.json()["rows_selected"] == 5000
    big = httpx.get(f"{base}/api/parquet_data/{name}", params={"max_points": 1500})
    assert big.status_code == 422 and "exceeds the limit of 4000" in big.json()["detail"]
    too_many = httpx.get(f"{base}/api/parquet_data/{name}", params={"max_points": 10**6})
    assert too_many.status_code == 422


def test_query_gate_refuses_beyond_its_slots() -> None:
    import asyncio

    from rigwatch.web.limits import Busy, QueryGate

    async def scenario() -> list[str]:
        gate = QueryGate(slots=2, wait_s=0.05)
        release = asyncio.Event()
        held = asyncio.Event()
        results: list[str] = []
        count = 0

        async def hold() -> None:
            nonlocal count
            async with gate.slot():
                count += 1
                if count == 2:
                    held.set()
                await release.wait()
            results.append("done")

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await held.wait()
        try:
            async with gate.slot():
                results.append("third got a slot")
        except Busy as exc:
            results.append(f"busy {exc.status} {exc.retry_after_header}")
        release.set()
        await asyncio.gather(*holders)
        async with gate.slot():
            results.append("free again")
        return results

    # a thread of its own: a browser test's event loop may be running in this one
    out: list[list[str]] = []
    t = threading.Thread(target=lambda: out.append(asyncio.run(scenario())))
    t.start()
    t.join(30)
    assert out == [["busy 503 1", "done", "done", "free again"]]


def _recv(ws) -> dict:
    import msgpack

    return msgpack.unpackb(ws.recv(timeout=10), raw=False)


def test_websocket_from_a_foreign_origin_is_refused_at_the_handshake(served) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    _station, _, base = served
    url = base.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as e:
        connect(url, origin="https://evil.example", open_timeout=10)
    assert e.value.response.status_code == 403
    with connect(url, origin=base, open_timeout=10) as ws:  # the station's own page
        ws.send('{"type": "ping"}')
        assert _recv(ws) == {"type": "pong"}
    with connect(url, open_timeout=10) as ws:  # not a browser: no Origin
        ws.send('{"type": "ping"}')
        assert _recv(ws) == {"type": "pong"}
    assert httpx.get(f"{base}/api/status").json()["errors"]["ws.forbidden_origin"] == 1


def test_websocket_commands_need_the_token_beyond_localhost(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    cfg = config(tmp_path)
    access = AccessPolicy.from_config(cfg.server, "0.0.0.0", environ={"RIGWATCH_TOKEN": TOKEN})
    station = Station(cfg, devices=[ListDevice("dev")])
    with serve(station, access=access) as addr:
        with connect(f"ws://{addr}/ws", open_timeout=10) as ws:
            ws.send('{"type": "system_mode"}')  # reading the mode needs nothing
            assert _recv(ws) == {"type": "system_mode", "mode": "idle"}
            ws.send('{"type": "system_mode", "mode": "armed"}')
            e = _recv(ws)
            assert e["code"] == "unauthorized" and "?token=" in e["message"]
            ws.send('{"type": "control_authority", "action": "request", "client": "ana"}')
            assert _recv(ws)["code"] == "unauthorized"
        assert station.mode == "idle"
        with connect(f"ws://{addr}/ws?token={TOKEN}", open_timeout=10) as ws:
            ws.send('{"type": "control_authority", "action": "request", "client": "ana"}')
            lease = _recv(ws)["lease"]
            ws.send('{"type": "system_mode", "mode": "armed"}')
            assert _recv(ws) == {"type": "system_mode", "mode": "armed"}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with connect(f"ws://{addr}/ws", additional_headers=headers, open_timeout=10) as ws:
            ws.send(f'{{"type": "system_mode", "mode": "idle", "lease": "{lease}"}}')
            assert _recv(ws) == {"type": "system_mode", "mode": "idle"}
        assert httpx.get(f"http://{addr}/api/status").json()["errors"]["ws.unauthorized"] == 2


def test_cpu_budget_refuses_while_in_debt_and_recovers_at_its_share() -> None:
    from rigwatch.web.limits import Busy, CpuBudget

    now = [100.0]
    budget = CpuBudget(share=0.25, burst_s=1.0, clock=lambda: now[0])
    budget.check()  # a full bucket
    budget.charge(1.5)  # one expensive query: 0.5 CPU second of debt
    with pytest.raises(Busy) as e:
        budget.check()
    assert e.value.status == 503 and e.value.retry_after_s == pytest.approx(2.0)
    assert "0.25 of a core" in str(e.value)
    now[0] += 1.9  # refilled 0.475 of the 0.5: still in debt
    with pytest.raises(Busy):
        budget.check()
    now[0] += 0.2
    budget.check()  # out of debt
    now[0] += 1000.0
    budget.charge(0.9)  # the bucket never holds more than its burst
    budget.check()
    budget.charge(0.2)
    with pytest.raises(Busy):
        budget.check()
