"""The pipeline's config: the example loads, bad keys are named, today's Phorest_config.toml
converts, and the supervisor's up/status/down commands work on a config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rigwatch.errors import ConfigError
from rigwatch.pipeline.config import (
    CsvPlotHandler,
    MqttHandler,
    OpcUaHandler,
    PipelineConfig,
    load_pipeline_config,
)
from rigwatch.pipeline.phorest_import import convert_file, convert_phorest, dump_toml

ROOT = Path(__file__).resolve().parents[3]

PHOREST = """
[Data_Analysis]
method = "fano"
number_of_subROIs = 20

[Paths]
data_dir = "data"
results_dir = "results"
roi_manifest_path = "configs/ROI_manifest.json"
remote_sync_path = "/mnt/nas/phorest"

[Services]
enable_camera = true
enable_temperature = true
enable_syncer = true
enable_compressor = false
enable_file_backup = true

[Timing]
collector_interval_seconds = 30
processor_interval_seconds = 5
communicator_interval_seconds = 60

[Retries]
max_retries = 3
retry_delay_seconds = 2

[Buffer]
image_buffer_size = 1000

[Communication]
method = "OPC_UA"
opcua_server_url = "opc.tcp://plc:4840"

[Camera]
camera_type = "dummy"
camera_index = 1
exposure = 200
transform = "rotate_180"
flux_capacitor = 3

[Temperature]
sensor_ids = ["28-0316a2799cff", "28-0416a2799c11"]

[Development]
debug_mode = true
"""


def test_example_config_loads() -> None:
    cfg = load_pipeline_config(ROOT / "configs" / "phorest.toml")
    assert cfg.manifest_target().endswith("var/phorest/manifest.sqlite")
    assert [type(h) for h in cfg.reporter.handlers] == [CsvPlotHandler, MqttHandler]
    assert cfg.processor.plugins["image"][0].name == "grating"
    assert "syncer" not in cfg.enabled_stages()


def test_bad_key_is_named(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    p.write_text("[retention]\nmax_count = 10\nmax_files = 3\n")
    with pytest.raises(ConfigError, match=r"retention\.max_files: unknown key"):
        load_pipeline_config(p)
    p.write_text(
        '[[reporter.handlers]]\ntype = "opcua"\nendpoint = "http://x"\nnodes = {a = "i=1"}\n'
    )
    with pytest.raises(ConfigError, match="endpoint"):
        load_pipeline_config(p)


def test_phorest_config_converts(tmp_path: Path) -> None:
    out, notes = convert_phorest(tomllib.loads(PHOREST))
    cfg = PipelineConfig.model_validate(out)
    assert cfg.processor.plugins["image"][0].options == {
        "method": "fano",
        "number_of_subROIs": 20,
        "roi_manifest": "configs/ROI_manifest.json",
    }
    assert cfg.collector.interval_s == 30 and cfg.processor.poll_s == 5
    assert cfg.reporter.poll_s == 60
    assert cfg.manifest.max_attempts == 3 and cfg.manifest.backoff_base_s == 2
    assert cfg.retention.max_count == 1000
    assert cfg.sync.enabled and str(cfg.sync.share) == "/mnt/nas/phorest"
    assert not cfg.compressor.enabled
    assert cfg.collector.camera.type == "synthetic" and cfg.collector.camera.index == 1
    assert cfg.collector.camera.usb.exposure == 200 and cfg.collector.camera.usb.transform == (
        "rotate_180"
    )
    assert cfg.collector.temperature.enabled
    assert cfg.collector.temperature.sensors == {
        "sensor1": "28-0316a2799cff",
        "sensor2": "28-0416a2799c11",
    }
    handler = cfg.reporter.handlers[0]
    assert isinstance(handler, OpcUaHandler) and handler.endpoint == "opc.tcp://plc:4840"
    assert any("flux_capacitor" in n for n in notes)
    assert any("OPC_UA without nodes" in n for n in notes)
    assert any("debug_mode" in n for n in notes)
    # written out, the file loads as a rigwatch config
    src = tmp_path / "Phorest_config.toml"
    src.write_text(PHOREST)
    convert_file(src, tmp_path / "converted.toml")
    loaded = load_pipeline_config(tmp_path / "converted.toml")
    assert loaded.retention.max_count == 1000


def test_phorest_importer_refuses_what_it_cannot_convert() -> None:
    with pytest.raises(ConfigError, match="method 'magic'"):
        convert_phorest({"Data_Analysis": {"method": "magic"}})
    with pytest.raises(ConfigError, match="no share"):
        convert_phorest({"Services": {"enable_syncer": True}})


def test_dump_toml_round_trips() -> None:
    data = {"a": 1, "b": {"c": [1, 2], "d": {"e": 'x"y'}}, "t": [{"k": 1.5, "m": {"n": True}}]}
    assert tomllib.loads(dump_toml(data)) == data


def test_up_status_down(tmp_path: Path) -> None:
    from rigwatch.pipeline.stages.worker import wait_until
    from rigwatch.pipeline.supervisor import down, status, up
    from support.pipeline_stages import base_config, write_config

    # two light stages (no analysis plugins to load), waits on the state files with deadlines
    path, _cfg = write_config(
        tmp_path,
        base_config(
            tmp_path, supervisor={"stages": ["reporter", "retention"], "stop_timeout_s": 10.0}
        ),
    )
    pid = up(path)
    try:

        def both_running() -> bool:
            st = status(path, with_counts=False)["stages"]
            return all(s is not None and s["state"] in ("idle", "running") for s in st.values())

        assert wait_until(both_running, 30)
        info = status(path)
        assert info["running"] and info["supervisor"]["pid"] == pid
        assert set(info["stages"]) == {"reporter", "retention"}
        assert {s["pid"] for s in info["stages"].values()} == {
            c["pid"] for c in info["supervisor"]["children"].values()
        }
        assert "process" in info["counts"]
        with pytest.raises(Exception, match="already running"):
            up(path)
    finally:
        assert down(path)
    info = status(path, with_counts=False)
    assert not info["running"]
    states = {name: s["state"] for name, s in info["stages"].items()}
    # every stage recorded its clean stop; if not, say what each process logged
    logs = "\n".join(
        f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}"
        for f in sorted((tmp_path / "state").glob("*.log"))
    )
    assert set(states.values()) == {"stopped"}, f"{states}\n{info['supervisor']}\n{logs}"
