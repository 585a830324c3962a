"""Sensor plug-ins other than serial (station over HTTP, disk, simulated) and how readings
become a message: a failed read is null with its reason, never 0.0."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rigwatch.agent.clock import VirtualClock
from rigwatch.agent.config import (
    AgentConfig,
    DiskSensorConfig,
    SimulatedSensorConfig,
    StationSensorConfig,
)
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.run import Agent, Sample
from rigwatch.agent.sender import HttpTransport
from rigwatch.agent.sensors import (
    DiskVolumeSensor,
    PluginResult,
    Reading,
    SimulatedSensors,
    StationSensors,
)
from rigwatch.timefmt import iso_utc
from rigwatch.web.schemas import DeviceSensors, Sensors
from rigwatch.wire.status_v1 import StatusMessageV1

NOW = 1_800_000_000.0


def _station_reply(values: dict[str, float | None], age_s: float = 1.0) -> dict[str, Any]:
    """A reply built with the station's own response model (same shape as GET /api/sensors)."""
    stamp = iso_utc(int((NOW - age_s) * 1e9))
    return Sensors(
        timestamp=iso_utc(int(NOW * 1e9)),
        devices={"stm32": DeviceSensors(timestamp=stamp, values=values, units={})},
    ).model_dump(mode="json")


def _station(handler: Any, **extra: Any) -> StationSensors:
    cfg = StationSensorConfig(
        kind="station",
        url="http://station.local:8000",
        channels={"thrust": "stm32/THRUST", "temperature": "stm32/T1", "missing": "stm32/NOPE"},
        **extra,
    )
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return StationSensors(cfg, client=client, now=lambda: NOW)


def test_agent_station_plugin_reads_newest_values() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_station_reply({"THRUST": 1510.5, "T1": None}))

    result = _station(handler).read()
    assert seen[0].url.path == "/api/sensors" and seen[0].method == "GET"
    assert result.accessible
    assert result.readings["thrust"] == Reading(1510.5)
    t1 = result.readings["temperature"]
    assert t1.value is None and t1.error is not None and "no finite value" in t1.error
    missing = result.readings["missing"]
    assert missing.value is None and missing.error is not None and "NOPE" in missing.error


def test_agent_station_plugin_stale_values_are_missing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_station_reply({"THRUST": 1.0, "T1": 2.0}, age_s=300))

    result = _station(handler, max_age_s=60).read()
    for metric in ("thrust", "temperature"):
        r = result.readings[metric]
        assert r.value is None and r.error is not None and "stale" in r.error


@pytest.mark.parametrize("failure", ["refused", "500", "garbage"])
def test_agent_station_plugin_unreachable_is_not_accessible(failure: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        if failure == "500":
            return httpx.Response(500, text="boom")
        return httpx.Response(200, text="<html>")

    result = _station(handler).read()
    assert not result.accessible and result.access_error
    assert all(r.value is None and r.error for r in result.readings.values())


def test_agent_disk_plugin_reads_disk_usage(tmp_path: Path) -> None:
    result = DiskVolumeSensor(DiskSensorConfig(kind="disk", path=str(tmp_path))).read()
    value = result.readings["disk_volume"].value
    assert value is not None and 0.0 <= value <= 100.0
    bad = DiskVolumeSensor(DiskSensorConfig(kind="disk", path=str(tmp_path / "gone"))).read()
    assert bad.readings["disk_volume"].value is None


def test_agent_reading_has_a_value_or_an_error() -> None:
    with pytest.raises(ValueError):
        Reading(None)
    with pytest.raises(ValueError):
        Reading(1.0, "and an error")


class _Fixed:
    def __init__(self, name: str, result: PluginResult) -> None:
        self.name = name
        self.metrics = tuple(result.readings)
        self._result = result

    def read(self) -> PluginResult:
        return self._result

    def close(self) -> None:
        pass


def _agent(tmp_path: Path, plugins: list[Any]) -> tuple[Agent, Outbox]:
    cfg = AgentConfig.model_validate(
        {
            "machine_id": "mill_1",
            "server": {"transport": "http", "url": "http://127.0.0.1:9"},
            "outbox": {"path": str(tmp_path / "o.sqlite3")},
        }
    )
    box = Outbox(tmp_path / "o.sqlite3", cfg.outbox.max_bytes)
    clock = VirtualClock(start=time.time() - 60)
    transport = HttpTransport(cfg.server, "mill_1", None)  # type: ignore[arg-type]
    return Agent(cfg, box, transport, plugins=plugins, clock=clock), box


def test_agent_message_carries_missing_values_as_null_with_reason(tmp_path: Path) -> None:
    serial = _Fixed(
        "serial",
        PluginResult(
            {
                "temperature": Reading(42.5),
                "pressure": Reading.missing("no answer to PRESSURE? within 1 s"),
                "speed": Reading(9.9e9),  # garbage on the line: physically impossible
            }
        ),
    )
    agent, box = _agent(tmp_path, [serial])
    seq = asyncio.run(agent.sample())
    [item] = box.peek(5)
    msg = json.loads(item.body)
    StatusMessageV1.model_validate(msg)  # the server's schema takes it
    assert msg["seq"] == seq and msg["machine_id"] == "mill_1"
    assert msg["sensor_data"]["temperature"] == 42.5
    assert msg["sensor_data"]["pressure"] is None  # never 0.0
    assert "PRESSURE?" in msg["sensor_errors"]["pressure"]
    assert msg["sensor_data"]["speed"] is None and "implausible" in msg["sensor_errors"]["speed"]
    assert msg["accessible"] is True
    assert msg["system_info"]["system"]["processors"] >= 1
    box.close()


def test_agent_message_says_not_accessible_when_the_interface_is_silent(tmp_path: Path) -> None:
    silent = _Fixed(
        "serial",
        PluginResult(
            {"temperature": Reading.missing("no answer"), "speed": Reading.missing("no answer")},
            accessible=False,
            access_error="sensor interface on COM1 does not answer",
        ),
    )
    agent, box = _agent(tmp_path, [silent])
    msg = agent.build_message(Sample(NOW, {"serial": silent.read()}, None), seq=7)
    assert msg["accessible"] is False and "COM1" in msg["access_error"]
    assert msg["sensor_data"] == {"temperature": None, "speed": None}
    box.close()


def test_agent_message_reports_outbox_drops_once(tmp_path: Path) -> None:
    agent, box = _agent(tmp_path, [])
    small = Outbox(tmp_path / "small.sqlite3", 64 * 1024)
    agent.outbox = small
    for i in range(100):
        small.put(f"x{i}", b"y" * 1000, created_ns=i)
    assert small.stats().dropped_messages == 35  # 65 of 1000 bytes fit in 64 KiB
    asyncio.run(agent.sample())
    dropped_by_first = small.stats().dropped_messages - 35  # room for the first report
    asyncio.run(agent.sample())
    items = small.peek(500)
    first, second = json.loads(items[-2].body), json.loads(items[-1].body)
    [entry] = [e for e in first["errors"] if e["source"] == "outbox"]
    assert entry["message"].startswith("35 older message(s) (35000 bytes) dropped")
    later = [e["message"] for e in second["errors"] if e["source"] == "outbox"]
    if dropped_by_first:  # each drop is reported exactly once
        assert len(later) == 1 and later[0].startswith(f"{dropped_by_first} older message(s)")
    else:
        assert later == []
    small.close()
    box.close()


def test_agent_simulated_plugin_is_deterministic() -> None:
    cfg = SimulatedSensorConfig(kind="simulated")
    a = SimulatedSensors(cfg, now=lambda: 100.0).read()
    b = SimulatedSensors(cfg, now=lambda: 100.0).read()
    assert a == b and set(a.readings) == {"temperature", "pressure", "speed"}
