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


def test_recordings_list_and_export_to_csv(tmp_path: Path):
    import numpy as np
    import pyarrow.parquet as pq

    from rigwatch.acquisition.engine import DeviceStream
    from rigwatch.acquisition.recorder import save_buffer_snapshot
    from rigwatch.counters import Counters
    from rigwatch.devices.mock import ListDevice, ramp_block

    stream = DeviceStream(ListDevice(), 1000, Counters())
    stream.ingest(ramp_block(0, 300, 2))
    path = save_buffer_snapshot(stream, tmp_path)
    r = runner.invoke(app, ["recordings", "list", str(tmp_path)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and path.name in r.output and "300" in r.output
    out = tmp_path / "out.csv"
    r = runner.invoke(app, ["recordings", "export", str(path), "--to", "csv", "-o", str(out)])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert len(lines) == 301 and "a" in lines[0] and "b" in lines[0]
    assert lines[1].split(",")[1:] == ["0", "1"]
    out_pq = tmp_path / "out.parquet"
    r = runner.invoke(
        app,
        [
            "recordings",
            "export",
            str(path),
            "--to",
            "parquet",
            "-o",
            str(out_pq),
            "--channels",
            "b",
        ],
    )
    assert r.exit_code == 0, r.output
    assert np.array_equal(
        pq.read_table(out_pq).column("b").to_numpy(), ramp_block(0, 300, 2).data[:, 1]
    )
    r = runner.invoke(app, ["recordings", "export", str(path), "--to", "xlsx", "-o", str(out)])
    assert r.exit_code == 2 and "csv or parquet" in r.output
