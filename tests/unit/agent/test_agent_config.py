"""The agent's config: the example loads, mistakes are named, the key is not in the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from rigwatch.agent.config import (
    AgentConfig,
    HttpServerConfig,
    SerialSensorConfig,
    load_agent_config,
)
from rigwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_agent_example_config_loads() -> None:
    cfg = load_agent_config(ROOT / "configs" / "agent.toml")
    assert cfg.interval_s == 30
    assert isinstance(cfg.server, HttpServerConfig)
    serial = cfg.sensors[0]
    assert isinstance(serial, SerialSensorConfig)
    assert (serial.port, serial.baudrate, serial.timeout_s, serial.line_ending) == (
        "COM1",
        9600,
        1.0,
        "\r\n",
    )
    assert serial.queries == {"temperature": "TEMP?", "pressure": "PRESSURE?", "speed": "SPEED?"}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = 'machine_id = "m1"\n[server]\ntransport = "http"\nurl = "http://x"\n'


def test_agent_config_names_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_agent_config(_write(tmp_path, BASE + "[[sensors]]\nkind = 'serial'\nbaud = 9600\n"))
    assert "sensors[0].baud: unknown key" in str(err.value)
    with pytest.raises(ConfigError, match=r"server\.api_key: unknown key"):
        load_agent_config(_write(tmp_path, BASE + 'api_key = "plain-text"\n'))


def test_agent_config_refuses_a_metric_read_twice(tmp_path: Path) -> None:
    text = BASE + "[[sensors]]\nkind = 'serial'\n[[sensors]]\nkind = 'simulated'\n"
    with pytest.raises(ConfigError, match="more than one plug-in: pressure, speed, temperature"):
        load_agent_config(_write(tmp_path, text))


def test_agent_key_comes_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "machine.key"
    key_file.write_text("from-file\n", encoding="utf-8")
    cfg = load_agent_config(
        _write(tmp_path, BASE + '[key]\nenv = "MY_KEY"\nfile = "machine.key"\n')
    )
    monkeypatch.delenv("MY_KEY", raising=False)
    assert cfg.key.read() == "from-file"
    monkeypatch.setenv("MY_KEY", "from-env")
    assert cfg.key.read() == "from-env"


def test_agent_default_outbox_on_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setenv("PROGRAMDATA", str(tmp_path / "ProgramData"))
    cfg = AgentConfig.model_validate(
        {"machine_id": "m1", "server": {"transport": "http", "url": "http://x"}}
    )
    assert cfg.outbox.resolved_path() == tmp_path / "ProgramData" / "rigwatch" / "agent" / (
        "outbox.sqlite3"
    )


def test_agent_cli_reports_a_bad_config_and_shows_the_outbox(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from rigwatch.agent.cli import app

    bad = CliRunner().invoke(app, ["run", str(_write(tmp_path, BASE + "intervall_s = 5\n"))])
    assert bad.exit_code == 2 and "intervall_s: unknown key" in bad.output
    good = _write(tmp_path, BASE + '[outbox]\npath = "box.sqlite3"\n')
    shown = CliRunner().invoke(app, ["outbox", str(good)])
    assert shown.exit_code == 0, shown.output
    stats = json.loads(shown.output)
    assert stats["pending_messages"] == 0 and stats["path"] == str(tmp_path / "box.sqlite3")
