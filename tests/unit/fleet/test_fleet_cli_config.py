"""The fleet's config (the example loads; unknown keys refused) and its CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rigwatch.errors import ConfigError
from rigwatch.fleet.cli import app
from rigwatch.fleet.config import load_fleet_config
from rigwatch.fleet.db import create_fleet_engine
from rigwatch.fleet.store import FleetStore

ROOT = Path(__file__).resolve().parents[3]


def test_fleet_cli_config_example_loads() -> None:
    config = load_fleet_config(ROOT / "configs" / "fleet.toml")
    # outside the source tree's configs/, in the ignored var/ beside it
    assert config.database.url == str((ROOT / "var" / "fleet" / "fleet.sqlite3").resolve())
    assert config.mqtt.topic == "rigwatch/machines/+/status"
    assert config.rules.tick_s == 5


def test_fleet_cli_config_refuses_unknown_keys(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.toml"
    bad.write_text('[ingest]\nqueue_max = 5\n[mqtt]\ntopic = "a/#"\n')
    with pytest.raises(ConfigError) as err:
        load_fleet_config(bad)
    text = str(err.value)
    assert "ingest.queue_max" in text
    assert "mqtt" in text


def test_fleet_cli_machines_and_users(tmp_path: Path) -> None:
    cfg = tmp_path / "fleet.toml"
    cfg.write_text(
        'database.url = "var/db/fleet.sqlite3"\n'
        "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 8192\n"
    )
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "machines",
            "add",
            "-c",
            str(cfg),
            "m1",
            "--name",
            "<b>Mill</b>",
            "--lat",
            "52.5",
            "--lon",
            "13.4",
            "--tag",
            "line=3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "var" / "db" / "fleet.sqlite3").is_file()  # its folder was created
    key = r.output.strip().splitlines()[-1]
    assert key.startswith("rwk_")
    r = runner.invoke(app, ["machines", "list", "-c", str(cfg)])
    assert "<b>Mill</b>" in r.output
    r = runner.invoke(app, ["machines", "rotate-key", "-c", str(cfg), "m1"])
    new_key = r.output.strip().splitlines()[-1]
    assert new_key.startswith("rwk_") and new_key != key
    engine = create_fleet_engine(tmp_path / "var" / "db" / "fleet.sqlite3")
    store = FleetStore(engine, lambda: 0)
    assert store.machine_for_key(key) is None
    assert store.machine_for_key(new_key) == "m1"
    r = runner.invoke(app, ["machines", "revoke", "-c", str(cfg), "m1"])
    assert "1 key(s)" in r.output
    assert store.machine_for_key(new_key) is None
    r = runner.invoke(app, ["machines", "rotate-key", "-c", str(cfg), "nope"])
    assert r.exit_code == 2
    r = runner.invoke(
        app,
        ["users", "add", "-c", str(cfg), "ann", "--role", "operator"],
        env={"RIGWATCH_FLEET_PASSWORD": "long-password"},
    )
    assert r.exit_code == 0, r.output
    assert store.login("ann", "long-password", 60)[1] == "operator"
    r = runner.invoke(
        app,
        ["users", "add", "-c", str(cfg), "bob", "--role", "king"],
        env={"RIGWATCH_FLEET_PASSWORD": "long-password"},
    )
    assert r.exit_code == 2
    actors = {e.actor for e in store.list_audit()}
    assert all(a.startswith("cli") for a in actors - {"ann"})
    engine.dispose()


def test_fleet_serving_process_collects_cycles_less_often() -> None:
    # in a process of its own: the collector's settings are global
    code = (
        "import gc\n"
        "from rigwatch.fleet.app import GC_GEN0_THRESHOLD, tune_gc_for_serving\n"
        "before = gc.get_threshold()\n"
        "tune_gc_for_serving()\n"
        "after = gc.get_threshold()\n"
        "print(after[0] == GC_GEN0_THRESHOLD, after[1:] == before[1:], gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["True", "True", "True"]
