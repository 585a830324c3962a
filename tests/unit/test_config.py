from pathlib import Path

import pytest

from rigwatch.config import StationConfig, load_config
from rigwatch.devices.nidaq import NidaqDeviceConfig
from rigwatch.devices.replay import ReplayDeviceConfig
from rigwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "configs").glob("*.toml"))


def _load_fleet_rules(path: Path) -> object:
    from rigwatch.fleet.rules import load_rules

    rules = load_rules(path)
    assert rules.rules
    return rules


def _load_agent(path: Path) -> object:
    from rigwatch.agent.config import load_agent_config

    return load_agent_config(path)


def _load_fleet(path: Path) -> object:
    from rigwatch.fleet.config import load_fleet_config

    return load_fleet_config(path)


def _load_pipeline(path: Path) -> object:
    from rigwatch.pipeline.config import load_pipeline_config

    cfg = load_pipeline_config(path)
    assert cfg.enabled_stages()
    return cfg


OTHER_PARTS = {
    "fleet_rules.toml": _load_fleet_rules,
    "agent.toml": _load_agent,
    "fleet.toml": _load_fleet,
    "phorest.toml": _load_pipeline,
}
"""Example configs of the other parts (fleet, agent, pipeline) and the loader of each: every
file in configs/ is either a station config or listed here."""
STATION_EXAMPLES = [p for p in EXAMPLES if p.name not in OTHER_PARTS]


def test_there_are_example_configs():
    assert {p.name for p in EXAMPLES} >= {"demo.toml", "ball_mill.toml", "rocket_stand.toml"}


@pytest.mark.parametrize("name", sorted(OTHER_PARTS))
def test_every_other_part_example_loads(name: str):
    OTHER_PARTS[name](ROOT / "configs" / name)


@pytest.mark.parametrize("path", STATION_EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_loads(path: Path):
    cfg = load_config(path)
    assert isinstance(cfg, StationConfig)
    for dev in cfg.devices:
        if isinstance(dev, ReplayDeviceConfig):
            assert dev.path.is_absolute() and dev.path.is_file(), dev.path


def test_ball_mill_pressure_calibration():
    cfg = load_config(ROOT / "configs" / "ball_mill.toml")
    pressure = next(d for d in cfg.devices if d.name == "pressure")
    assert isinstance(pressure, NidaqDeviceConfig)
    assert pressure.sample_rate_hz == 2
    ch = pressure.channels[0]
    assert (ch.gain, ch.offset, ch.unit) == (46.18, -25.7, "bar")
    assert cfg.pressure_push is not None and cfg.pressure_push.channel == "pressure"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "station.toml"
    p.write_text(text)
    return p


SIM = '[[devices]]\nname = "g"\ndriver = "sim"\nsample_rate_hz = 1000\nchannel_count = 2\n'


def test_unknown_key_names_file_key_and_reason(tmp_path: Path):
    p = write(tmp_path, "[recorder]\nsegment_duraton_s = 5\n" + SIM)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "recorder.segment_duraton_s" in msg and "unknown key" in msg


def test_wrong_type_and_value_are_named(tmp_path: Path):
    p = write(tmp_path, '[server]\nport = "high"\n[buffer]\ncapacity_rows = 5\n' + SIM)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "server.port" in msg and "'high'" in msg
    assert "buffer.capacity_rows" in msg and "greater than or equal to 1000" in msg


def test_wrong_driver_value_and_duplicate_devices(tmp_path: Path):
    p = write(tmp_path, '[[devices]]\nname = "x"\ndriver = "modbus"\n')
    with pytest.raises(ConfigError, match=r"devices\[0\]"):
        load_config(p)
    p = write(tmp_path, SIM + SIM)
    with pytest.raises(ConfigError, match="device names must be unique"):
        load_config(p)


def test_invalid_toml_and_missing_file(tmp_path: Path):
    p = write(tmp_path, "[server\nport = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


def test_pressure_push_must_name_a_real_channel(tmp_path: Path):
    p = write(tmp_path, SIM + '[pressure_push]\ndevice = "g"\nchannel = "nope"\n')
    cfg_text = p.read_text().replace("channel_count = 2", 'channels = [{name = "a"}, {name = "b"}]')
    p.write_text(cfg_text)
    with pytest.raises(ConfigError, match=r"pressure_push\.channel 'nope'"):
        load_config(p)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path):
    p = write(tmp_path, '[recorder]\ndirectory = "rec"\n' + SIM)
    assert load_config(p).recorder.directory == (tmp_path / "rec").resolve()


def test_compression_level_needs_a_codec_that_has_levels(tmp_path: Path):
    p = write(tmp_path, '[recorder]\ncodec = "snappy"\ncompression_level = 3\n' + SIM)
    with pytest.raises(ConfigError, match=r"recorder: .*compression_level cannot be set"):
        load_config(p)
    p = write(tmp_path, '[recorder]\ncodec = "zstd"\ncompression_level = 9\n' + SIM)
    assert load_config(p).recorder.compression_level == 9
