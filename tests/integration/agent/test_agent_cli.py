"""``rigwatch agent run CONFIG``: end to end from the serial interface (pty emulator) to a real
HTTP server, once and as a long-running process stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigwatch.agent.cli import app
from rigwatch.agent.outbox import Outbox
from support.agent_ingest_stub import IngestStub

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the serial emulator needs a pseudo-terminal (POSIX only)"
)


def _config(tmp_path: Path, url: str, port: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(
        f"""
machine_id = "mill_1"
interval_s = 30
[server]
transport = "http"
url = "{url}"
[key]
env = "TEST_AGENT_KEY"
[outbox]
path = "outbox.sqlite3"
[[sensors]]
kind = "serial"
port = "{port}"
timeout_s = 0.2
[[sensors]]
kind = "disk"
""",
        encoding="utf-8",
    )
    return p


def test_agent_cli_run_once_delivers_one_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.agent_serial_emulator import SensorInterfaceEmulator

    monkeypatch.setenv("TEST_AGENT_KEY", "k-secret")
    with IngestStub("mill_1", "k-secret") as stub, SensorInterfaceEmulator() as emu:
        emu.answers["SPEED?"] = None  # the speed sensor is dead
        assert emu.path is not None
        result = CliRunner().invoke(
            app, ["run", str(_config(tmp_path, stub.url, emu.path)), "--once"]
        )
        assert result.exit_code == 0, result.output
        assert stub.wait_for(1)
    [msg] = stub.record.messages
    assert msg["sensor_data"]["temperature"] == 42.5 and msg["sensor_data"]["pressure"] == 2.1
    assert msg["sensor_data"]["speed"] is None and "SPEED?" in msg["sensor_errors"]["speed"]
    assert 0 <= msg["sensor_data"]["disk_volume"] <= 100
    assert msg["system_info"]["disks"] and msg["backfill"] is False
    counters = json.loads(result.output.strip().splitlines()[-1])
    assert counters["agent.delivered"] == 1
    with Outbox(tmp_path / "outbox.sqlite3", 1 << 20) as box:
        assert len(box) == 0 and box.stats().delivered_messages == 1


def test_agent_cli_run_once_with_server_down_keeps_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AGENT_KEY", "k-secret")
    stub = IngestStub("mill_1", "k-secret")  # never started
    result = CliRunner().invoke(
        app, ["run", str(_config(tmp_path, stub.url, "/dev/nonexistent-rigwatch")), "--once"]
    )
    assert result.exit_code == 0, result.output
    with Outbox(tmp_path / "outbox.sqlite3", 1 << 20) as box:
        [item] = box.peek(5)
    msg = json.loads(item.body)
    assert msg["accessible"] is False and "cannot open serial port" in msg["access_error"]


def test_agent_cli_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    with IngestStub("mill_1", "k-secret") as stub:
        cfg = _config(tmp_path, stub.url, "/dev/nonexistent-rigwatch")
        proc = subprocess.Popen(
            [sys.executable, "-c", "from rigwatch.agent.cli import app; app()", "run", str(cfg)],
            env={**__import__("os").environ, "TEST_AGENT_KEY": "k-secret"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert stub.wait_for(1, timeout_s=30), "the agent sent nothing"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert proc.returncode == 0, err.decode(errors="replace")
