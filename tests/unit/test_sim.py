"""Simulated device: signal shapes, phase continuity, noise statistics, channels, pacing."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.devices.sim import SimDevice, SimDeviceConfig


def _config(**kw: Any) -> SimDeviceConfig:
    base: dict[str, Any] = {
        "name": "sim",
        "driver": "sim",
        "sample_rate_hz": 10_000.0,
        "channel_count": 1,
        "pace": "fast",
        "block_duration_s": 0.05,
    }
    base.update(kw)
    return SimDeviceConfig(**base)


def _run(dev: SimDevice, blocks: int) -> np.ndarray:
    dev.start()
    out = []
    for _ in range(blocks):
        b = dev.read_block(0.0)
        assert b is not None
        assert b.data.dtype == np.float32 and b.data.flags.c_contiguous
        out.append(b.data)
    return np.concatenate(out)


def test_channels_from_count() -> None:
    dev = SimDevice(_config(channel_count=64))
    assert isinstance(dev, AcquisitionDevice)
    info = dev.describe()
    assert info.driver == "sim"
    assert info.channel_names == [f"ch{i}" for i in range(64)]
    assert {c.unit for c in info.channels} == {"V"}
    data = _run(dev, 1)
    assert data.shape == (500, 64)


def test_channels_from_config() -> None:
    cfg = _config(
        channel_count=None,
        channels=[{"name": "P1", "unit": "bar", "gain": 3.0}, {"name": "T1", "unit": "degC"}],
    )
    info = SimDevice(cfg).describe()
    assert info.channel_names == ["P1", "T1"]
    assert [c.unit for c in info.channels] == ["bar", "degC"]
    assert info.channels[0].gain == 3.0


def test_sine_frequency_and_amplitude() -> None:
    cfg = _config(signals=[{"kind": "sine", "frequency_hz": 1234.0, "amplitude": 2.5}])
    x = _run(SimDevice(cfg), 20)[:, 0]  # 1 s at 10 kHz: 1 Hz bins
    spec = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.size, 1 / 10_000.0)
    assert freqs[np.argmax(spec)] == 1234.0
    assert np.max(np.abs(x)) == pytest.approx(2.5, rel=1e-3)


def test_sine_phase_continuous_across_blocks() -> None:
    f, phase, amp, off = 437.3, 0.7, 1.5, -0.25
    sig = {"kind": "sine", "frequency_hz": f, "phase_rad": phase, "amplitude": amp, "offset": off}
    cfg = _config(signals=[sig], block_duration_s=0.0123)  # 123-row blocks, not a period
    x = _run(SimDevice(cfg), 40)[:, 0]
    n = np.arange(x.size)
    expected = amp * np.sin(2 * np.pi * f * n / 10_000.0 + phase) + off
    assert np.max(np.abs(x - expected)) < 2e-6 * amp


def test_sine_precise_far_into_a_run() -> None:
    f, rate = 1000.0 / 3.0, 51_200.0
    dev = SimDevice(_config(sample_rate_hz=rate, signals=[{"kind": "sine", "frequency_hz": f}]))
    dev.start()
    start = 51_200 * 86_400 * 7  # a week of samples
    x = dev.generate(start)[:, 0]
    # exact phase from rational arithmetic
    cps = Fraction(f) / Fraction(rate)
    expected = [math.sin(2 * math.pi * float((cps * (start + k)) % 1)) for k in range(x.size)]
    assert np.max(np.abs(x - np.array(expected))) < 1e-5


def test_signals_repeat_over_channels() -> None:
    sigs = [
        {"kind": "sine", "frequency_hz": 100.0},
        {"kind": "sine", "frequency_hz": 200.0},
        {"kind": "chirp", "frequency_hz": 10.0, "f1_hz": 500.0},
    ]
    x = _run(SimDevice(_config(channel_count=5, signals=sigs)), 4)
    assert np.array_equal(x[:, 3], x[:, 0])
    assert np.array_equal(x[:, 4], x[:, 1])
    assert not np.array_equal(x[:, 0], x[:, 1])
    assert not np.allclose(x[:, 2], x[:, 0])


def test_chirp_matches_linear_sweep_and_repeats() -> None:
    f0, f1, sweep = 100.0, 2_000.0, 0.5
    sig = {"kind": "chirp", "frequency_hz": f0, "f1_hz": f1, "sweep_s": sweep, "amplitude": 1.0}
    x = _run(SimDevice(_config(signals=[sig], block_duration_s=0.037)), 41)[:, 0]  # ~1.5 s
    rate = 10_000.0
    tau = np.mod(np.arange(x.size) / rate, sweep)
    expected = np.sin(2 * np.pi * (f0 * tau + (f1 - f0) * tau**2 / (2 * sweep)))
    assert np.max(np.abs(x - expected)) < 1e-5
    per = int(sweep * rate)
    np.testing.assert_allclose(x[per : 2 * per], x[:per], atol=1e-5)  # the sweep repeats
    # the dominant frequency rises: near f0 early in the sweep, near f1 at its end
    seg = 500  # 50 ms windows: 20 Hz bins
    freqs = np.fft.rfftfreq(seg, 1 / rate)
    early = freqs[np.argmax(np.abs(np.fft.rfft(x[:seg] * np.hanning(seg))))]
    late = freqs[np.argmax(np.abs(np.fft.rfft(x[per - seg : per] * np.hanning(seg))))]
    assert early == pytest.approx(f0 + (f1 - f0) * 0.05 / sweep / 2, abs=40)
    assert late == pytest.approx(f1 - (f1 - f0) * 0.05 / sweep / 2, abs=40)


def test_noise_std_mean_and_seeding() -> None:
    sig = {"kind": "noise", "amplitude": 0.3, "offset": 1.0}
    cfg = _config(channel_count=3, signals=[sig], seed=42)
    x = _run(SimDevice(cfg), 20)  # 10 000 samples per channel
    assert np.allclose(x.std(axis=0), 0.3, rtol=0.03)
    assert np.allclose(x.mean(axis=0), 1.0, atol=0.02)
    # channel j draws from default_rng(seed + j), in float32
    for j in range(3):
        ref = np.random.default_rng(42 + j).standard_normal(500, dtype=np.float32)
        assert np.allclose(x[:500, j], ref * np.float32(0.3) + np.float32(1.0), atol=1e-6)
    # same seed -> same data (restart re-seeds); different seed -> different data
    assert np.array_equal(_run(SimDevice(cfg), 20), x)
    other = _run(SimDevice(_config(channel_count=3, signals=[sig], seed=7)), 20)
    assert not np.allclose(other, x)


def test_timestamps_regular() -> None:
    dev = SimDevice(_config(sample_rate_hz=51_200.0))
    dev.start()
    ts = np.concatenate([dev.read_block(0.0).timestamps_ns for _ in range(10)])  # type: ignore[union-attr]
    steps = np.diff(ts)
    assert np.all(steps > 0)
    assert set(np.unique(steps)) <= {19_531, 19_532}  # 1e9 / 51 200 = 19 531.25 ns
    assert abs((ts[-1] - ts[0]) - (ts.size - 1) * 1e9 / 51_200.0) <= 1


def test_realtime_pacing_with_injected_clock() -> None:
    t = [5.0]
    sleeps: list[float] = []
    dev = SimDevice(
        _config(pace="realtime", block_duration_s=0.1, sample_rate_hz=1_000.0),
        clock=lambda: t[0],
        sleep=sleeps.append,
    )
    dev.start()
    assert dev.read_block(0.2) is None
    assert sleeps == [pytest.approx(0.099)]
    t[0] = 5.099
    assert dev.read_block(0.2) is not None
    assert dev.read_block(0.0) is None
    t[0] = 5.199
    assert dev.read_block(0.0) is not None
    assert dev.position == 200


def test_blocks_are_new_arrays() -> None:
    dev = SimDevice(_config(signals=[{"kind": "sine", "frequency_hz": 200.0}]))
    dev.start()
    a = dev.read_block(0.0)
    b = dev.read_block(0.0)
    assert a is not None and b is not None
    assert not np.shares_memory(a.data, b.data)
