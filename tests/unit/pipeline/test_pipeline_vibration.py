"""Vibration analysis on the CWRU bearing recordings (data/cwru, see data/README.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from rigwatch.errors import AnalysisError
from rigwatch.pipeline.analysis import create_plugin
from rigwatch.pipeline.analysis.bearings import SKF_6205, BearingGeometry
from rigwatch.pipeline.analysis.vibration import (
    BearingConfig,
    VibrationConfig,
    VibrationResult,
    analyse_signal,
    time_features,
)

CWRU = Path(__file__).resolve().parents[3] / "data" / "cwru"
RPM = 1797.0
BPFI_HZ = 162.2  # published by the CWRU Bearing Data Center (5.4152 x 29.95 Hz)
BPFO_HZ = 107.4  # 3.5848 x 29.95 Hz
FAULTS = {
    "inner": "1797_IR_7_DE12.npz",
    "outer": "1797_OR_6_7_DE12.npz",
    "ball": "1797_B_7_DE12.npz",
}
HEALTHY = "1797_Normal_48k.npz"

CONFIG = VibrationConfig(
    bearing=BearingConfig(
        n_elements=9, element_diameter=0.3126, pitch_diameter=1.537, shaft_speed_rpm=RPM
    ),
    search_tolerance=0.10,
)


def _de(name: str) -> np.ndarray:
    return np.load(CWRU / name)["DE"][:, 0]


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, int], VibrationResult]:
    """Each recording at its own rate and at the other one (12 kHz <-> 48 kHz)."""
    out: dict[tuple[str, int], VibrationResult] = {}
    for condition, name in FAULTS.items():
        x = _de(name)
        out[condition, 12_000] = analyse_signal(x, 12_000, CONFIG)
        out[condition, 48_000] = analyse_signal(resample_poly(x, 4, 1), 48_000, CONFIG)
    x = _de(HEALTHY)
    out["healthy", 48_000] = analyse_signal(x, 48_000, CONFIG)
    out["healthy", 12_000] = analyse_signal(resample_poly(x, 1, 4), 12_000, CONFIG)
    return out


def test_defect_frequencies_match_the_published_multiples() -> None:
    d = SKF_6205.defect_frequencies(1.0)
    assert d.bpfi_hz == pytest.approx(5.4152, abs=5e-4)
    assert d.bpfo_hz == pytest.approx(3.5848, abs=5e-4)
    assert 2 * d.bsf_hz == pytest.approx(4.7135, abs=5e-4)  # the data center quotes 2 x BSF
    assert d.ftf_hz == pytest.approx(0.39828, abs=5e-5)
    angled = BearingGeometry(9, 0.3126, 1.537, contact_angle_deg=40).defect_frequencies(10)
    assert angled.bpfi_hz < 10 * 5.4152 and angled.bpfo_hz > 10 * 3.5848


@pytest.mark.parametrize("rate", [12_000, 48_000])
def test_inner_race_fault_line_within_2_percent_of_bpfi(
    results: dict[tuple[str, int], VibrationResult], rate: int
) -> None:
    line = results["inner", rate].lines["bpfi"]
    assert abs(line.frequency_hz - BPFI_HZ) / BPFI_HZ < 0.02
    # it is the strongest line of the whole defect range, not only near BPFI
    env = results["inner", rate].envelope
    sel = (env.frequency_hz > 50) & (env.frequency_hz < 400)
    assert env.frequency_hz[sel][np.argmax(env.amplitude[sel])] == line.frequency_hz


@pytest.mark.parametrize("rate", [12_000, 48_000])
def test_outer_race_fault_line_within_2_percent_of_bpfo(
    results: dict[tuple[str, int], VibrationResult], rate: int
) -> None:
    line = results["outer", rate].lines["bpfo"]
    assert abs(line.frequency_hz - BPFO_HZ) / BPFO_HZ < 0.02
    env = results["outer", rate].envelope
    sel = (env.frequency_hz > 50) & (env.frequency_hz < 400)
    assert env.frequency_hz[sel][np.argmax(env.amplitude[sel])] == line.frequency_hz


@pytest.mark.parametrize("rate", [12_000, 48_000])
def test_features_separate_healthy_from_every_fault(
    results: dict[tuple[str, int], VibrationResult], rate: int
) -> None:
    healthy = results["healthy", rate]
    faults = [results[c, rate] for c in FAULTS]
    # vibration level: every fault at least 1.5 x the healthy RMS and peak
    assert min(f.features.rms for f in faults) > 1.5 * healthy.features.rms
    assert min(f.features.peak for f in faults) > 1.5 * healthy.features.peak

    # envelope: some defect line stands far above the floor for faults, none for healthy
    def prominence(r: VibrationResult) -> float:
        return max(line.prominence for line in r.lines.values())

    assert prominence(healthy) < 7
    assert min(prominence(f) for f in faults) > 2 * 7
    # impulsiveness: race faults are clearly more impulsive than the healthy bearing
    assert results["inner", rate].features.kurtosis > healthy.features.kurtosis + 2
    assert results["outer", rate].features.kurtosis > healthy.features.kurtosis + 2


def test_time_features_of_a_sine() -> None:
    t = np.arange(12_000) / 12_000
    f = time_features(2.0 * np.sin(2 * np.pi * 50 * t) + 5.0)
    assert f.rms == pytest.approx(np.sqrt(2), rel=1e-6)
    assert f.peak == pytest.approx(2.0, rel=1e-6)
    assert f.crest_factor == pytest.approx(np.sqrt(2), rel=1e-6)
    assert f.kurtosis == pytest.approx(1.5, rel=1e-3)


def test_plugin_reads_a_recording_file_and_makes_a_json_record(tmp_path: Path) -> None:
    plugin = create_plugin(
        "vibration",
        {
            "channel": "DE",
            "sample_rate_hz": 12_000,
            "band_hz": [4000, 5600],
            "search_tolerance": 0.1,
            "bearing": {
                "n_elements": 9,
                "element_diameter": 0.3126,
                "pitch_diameter": 1.537,
                "shaft_speed_rpm": RPM,
            },
        },
    )
    record = plugin.analyse(CWRU / FAULTS["outer"]).to_record()
    assert record["envelope_band_hz"] == [4000, 5600]
    assert abs(record["defect_lines"]["bpfo"]["frequency_hz"] - BPFO_HZ) / BPFO_HZ < 0.02
    assert record["defect_frequencies"]["bpfo_hz"] == pytest.approx(3.5848 * RPM / 60, rel=1e-4)


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="NaN"):
        analyse_signal(np.full(4096, np.nan), 12_000)
    with pytest.raises(AnalysisError, match="constant"):
        analyse_signal(np.ones(4096), 12_000)
    with pytest.raises(AnalysisError, match="1-D"):
        analyse_signal(np.zeros((100, 100)), 12_000)
    with pytest.raises(AnalysisError, match="band"):
        analyse_signal(
            np.random.default_rng(0).normal(size=4096),
            12_000,
            VibrationConfig(band_hz=(5000, 7000)),
        )
    with pytest.raises(AnalysisError, match="sample_rate_hz"):
        create_plugin("vibration").analyse(np.zeros(4096))
    with pytest.raises(AnalysisError, match="invalid vibration config"):
        create_plugin("vibration", {"bearing": {"n_elements": 0}})
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes((CWRU / FAULTS["inner"]).read_bytes()[:5000])
    with pytest.raises(AnalysisError, match="cannot read"):
        create_plugin("vibration", {"sample_rate_hz": 12_000}).analyse(truncated)
