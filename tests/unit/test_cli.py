from pathlib import Path

from typer.testing import CliRunner

from rigwatch.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_config_check_accepts_the_demo_config():
    r = runner.invoke(app, ["config", "check", str(ROOT / "configs" / "demo.toml")])
    assert r.exit_code == 0, r.output
    assert "motor_ir_fault" in r.output and "replay" in r.output


def test_config_check_names_file_key_and_reason(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[devices]]\nname = "g"\ndriver = "sim"\nsample_rate_hz = -5\nchannel_count = 1\n'
    )
    r = runner.invoke(app, ["config", "check", str(bad)])
    assert r.exit_code == 2
    out = " ".join(r.output.split())
    assert "bad.toml" in out and "devices[0].sample_rate_hz" in out and "greater than 0" in out
