"""Replay device: full passes, looping, resampling, timestamps, pacing with an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rigwatch.devices.pacing import Pacer
from rigwatch.devices.protocols import AcquisitionDevice, Block, EndOfStream
from rigwatch.devices.replay import ReplayDevice, ReplayDeviceConfig, resample
from rigwatch.errors import DeviceError, FormatError

CWRU_IR = Path(__file__).resolve().parents[2] / "data" / "cwru" / "1797_IR_7_DE12.npz"


class FakeClock:
    """A monotonic clock that only moves when told; ``sleep`` records and does not advance
    unless ``advance_on_sleep``."""

    def __init__(self, t: float = 1000.0, advance_on_sleep: bool = False) -> None:
        self.t = t
        self.advance_on_sleep = advance_on_sleep
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.advance_on_sleep:
            self.t += seconds


def _config(path: Path, **kw: Any) -> ReplayDeviceConfig:
    base: dict[str, Any] = {
        "name": "rep",
        "driver": "replay",
        "path": path,
        "pace": "fast",
        "block_duration_s": 0.1,
    }
    base.update(kw)
    return ReplayDeviceConfig(**base)


def _npz(tmp_path: Path, n: int = 1005, channels: int = 2, rate: float = 1000.0) -> Path:
    data = np.arange(n * channels, dtype=np.float64).reshape(n, channels) * 0.5 - 7.0
    path = tmp_path / "rec.npz"
    np.savez(path, **{f"c{j}": data[:, j] for j in range(channels)}, fs=np.array(rate))
    return path


def _drain(dev: ReplayDevice, max_blocks: int = 100_000) -> list[Block]:
    blocks: list[Block] = []
    for _ in range(max_blocks):
        try:
            block = dev.read_block(0.0)
        except EndOfStream:
            return blocks
        assert block is not None
        blocks.append(block)
    raise AssertionError("no EndOfStream")


def test_is_an_acquisition_device_and_describes_before_start(tmp_path: Path) -> None:
    path = _npz(tmp_path)
    dev = ReplayDevice(_config(path))
    assert isinstance(dev, AcquisitionDevice)
    info = dev.describe()
    assert info.device == "rep"
    assert info.driver == "replay"
    assert info.sample_rate_hz == 1000.0
    assert info.channel_names == ["c0", "c1"]
    assert all(c.is_identity for c in info.channels)
    assert info.extra["source"] == str(path)
    assert info.extra["format"] == "npz"
    with pytest.raises(DeviceError, match="not started"):
        dev.read_block(0.0)


def test_full_pass_equals_file_then_end_of_stream(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    dev = ReplayDevice(_config(path))
    dev.start()
    blocks = _drain(dev)
    assert [b.rows for b in blocks] == [100] * 10 + [5]
    for b in blocks:
        assert b.data.dtype == np.float32
        assert b.data.flags.c_contiguous
    got = np.concatenate([b.data for b in blocks])
    with np.load(path) as z:
        expected = np.stack([z["c0"], z["c1"]], axis=1).astype(np.float32)
    assert np.array_equal(got, expected)
    with pytest.raises(EndOfStream):
        dev.read_block(0.0)


def test_cwru_full_pass_is_bit_identical() -> None:
    cfg = _config(CWRU_IR, sample_rate_hz=12_000.0, block_duration_s=0.5)
    dev = ReplayDevice(cfg)
    dev.start()
    got = np.concatenate([b.data for b in _drain(dev)])
    with np.load(CWRU_IR) as z:
        for j, k in enumerate(["DE", "FE", "BA"]):
            ref = z[k].astype(np.float32).ravel()
            assert np.array_equal(got[:, j].view(np.uint32), ref.view(np.uint32))


def test_loop_wraps_seamlessly(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    dev = ReplayDevice(_config(path, loop=True))
    dev.start()
    blocks = [dev.read_block(0.0) for _ in range(35)]  # 3500 rows: three passes and a half
    assert all(b is not None and b.rows == 100 for b in blocks)
    got = np.concatenate([b.data for b in blocks if b is not None])
    one = dev.recording.data
    assert np.array_equal(got, np.tile(one, (4, 1))[:3500])
    assert dev.position == 3500


def test_loop_with_block_longer_than_file(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=7, rate=100.0)
    dev = ReplayDevice(_config(path, loop=True, block_duration_s=0.1))  # 10 rows > 7
    dev.start()
    got = np.concatenate([dev.read_block(0.0).data for _ in range(3)])  # type: ignore[union-attr]
    assert np.array_equal(got, np.tile(dev.recording.data, (5, 1))[:30])


def test_blocks_are_fresh_copies(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=10, rate=100.0)
    dev = ReplayDevice(_config(path, loop=True, block_duration_s=0.1))  # one block = the file
    dev.start()
    first = dev.read_block(0.0)
    assert first is not None
    original = first.data.copy()
    first.data[:] = 12345.0
    second = dev.read_block(0.0)
    assert second is not None
    assert np.array_equal(second.data, original)


def test_timestamps_regular_across_blocks_and_loops(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    dev = ReplayDevice(_config(path, loop=True))
    dev.start()
    ts = np.concatenate([dev.read_block(0.0).timestamps_ns for _ in range(25)])  # type: ignore[union-attr]
    assert ts.dtype == np.int64
    steps = np.diff(ts)
    assert np.all(steps > 0)
    assert np.all(steps == 1_000_000)  # 1e9 / 1000 Hz exactly
    # the absolute index keeps growing across the wrap at 1005
    assert ts[-1] - ts[0] == 2499 * 1_000_000


def test_timestamps_spacing_non_integer_period(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=5000, rate=12_000.0)
    dev = ReplayDevice(_config(path, block_duration_s=0.01))
    dev.start()
    ts = np.concatenate([b.timestamps_ns for b in _drain(dev)])
    steps = np.diff(ts)
    assert np.all(steps > 0)
    assert set(np.unique(steps)) <= {83_333, 83_334}
    # no drift: the last stamp is where the nominal period puts it
    assert abs((ts[-1] - ts[0]) - 4999 * 1e9 / 12_000) <= 1


def test_resample_12k_to_48k_keeps_frequency(tmp_path: Path) -> None:
    rate, f, n = 12_000.0, 1_000.0, 12_000
    t = np.arange(n) / rate
    path = tmp_path / "sine.npz"
    np.savez(path, s=np.sin(2 * np.pi * f * t), fs=np.array(rate))
    dev = ReplayDevice(_config(path, resample_hz=48_000.0, block_duration_s=0.25))
    assert dev.describe().sample_rate_hz == 48_000.0
    assert dev.describe().extra["file_sample_rate_hz"] == "12000.0"
    dev.start()
    blocks = _drain(dev)
    assert all(b.rows == 12_000 for b in blocks)
    got = np.concatenate([b.data for b in blocks])[:, 0]
    assert got.shape == (48_000,)
    spec = np.abs(np.fft.rfft(got * np.hanning(got.size)))
    freqs = np.fft.rfftfreq(got.size, 1 / 48_000.0)
    assert freqs[np.argmax(spec)] == pytest.approx(f, abs=1.0)
    # away from the edges the interpolated sine matches the ideal one
    t48 = np.arange(got.size) / 48_000.0
    mid = slice(2_000, -2_000)
    assert np.max(np.abs(got[mid] - np.sin(2 * np.pi * f * t48)[mid])) < 1e-2


def test_resample_reports_exact_achieved_rate() -> None:
    data = np.zeros((1000, 2), dtype=np.float32)
    out, rate = resample(data, 48_000.0, 44_100.0)
    assert rate == 44_100.0  # 147 / 160 exactly
    assert out.shape == (919, 2)  # ceil(1000 * 147 / 160)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    out, rate = resample(data, 12_000.0, 12_345.678)
    from fractions import Fraction

    ratio = Fraction(12_345.678 / 12_000.0).limit_denominator(1000)
    assert rate == 12_000.0 * ratio.numerator / ratio.denominator
    assert out.shape[0] == -(-1000 * ratio.numerator // ratio.denominator)


def test_channels_from_config_carry_calibration_not_applied(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=100)
    cfg = _config(
        path,
        channels=[
            {"name": "DE", "unit": "g", "gain": 2.0, "offset": 1.0},
            {"name": "FE", "unit": "g"},
        ],
    )
    dev = ReplayDevice(cfg)
    info = dev.describe()
    assert info.channel_names == ["DE", "FE"]
    assert [c.unit for c in info.channels] == ["g", "g"]
    assert (info.channels[0].gain, info.channels[0].offset) == (2.0, 1.0)
    assert info.channels[1].is_identity
    dev.start()
    got = np.concatenate([b.data for b in _drain(dev)])
    assert np.array_equal(got, dev.recording.data)  # raw values: the engine calibrates


def test_channel_count_mismatch_names_both_counts(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=100, channels=2)
    cfg = _config(path, channels=[{"name": "only"}])
    with pytest.raises(DeviceError, match=r"1 channels.*has 2"):
        ReplayDevice(cfg)


def test_unreadable_file_is_a_device_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DeviceError, match=r"broken\.npz") as info:
        ReplayDevice(_config(path, sample_rate_hz=10.0))
    assert isinstance(info.value.__cause__, FormatError)


def test_realtime_pacing_with_injected_clock(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)  # 1000 Hz, 100-row blocks
    clock = FakeClock(t=50.0)
    dev = ReplayDevice(_config(path, pace="realtime", loop=True), clock=clock, sleep=clock.sleep)
    dev.start()
    # first block's last sample (index 99) is due at t0 + 0.099 s
    assert dev.read_block(0.5) is None
    assert clock.sleeps == [pytest.approx(0.099)]  # waited until due, not the full timeout
    assert dev.read_block(0.01) is None
    assert clock.sleeps[-1] == pytest.approx(0.01)  # never longer than the timeout
    clock.t = 50.099
    first = dev.read_block(0.5)
    assert first is not None and first.rows == 100
    assert dev.read_block(0.0) is None  # next one due at 50.199
    # a reader late by 10 s gets every due block at once: schedule from the absolute index
    clock.t = 50.0 + 10.0
    n_due = 0
    while (b := dev.read_block(0.0)) is not None:
        n_due += 1
        assert b.rows == 100
    assert n_due == 99  # blocks 2..100 end at samples 199..9999, all due by t0 + 10 s
    assert dev.position == 10_000


def test_realtime_pacing_sleeps_until_due(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    clock = FakeClock(t=0.0, advance_on_sleep=True)
    dev = ReplayDevice(_config(path, pace="realtime"), clock=clock, sleep=clock.sleep)
    dev.start()
    for k in range(1, 6):
        block = dev.read_block(1.0)
        assert block is not None
        assert clock.t == pytest.approx((100 * k - 1) / 1000.0)


def test_fast_pace_never_sleeps(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    clock = FakeClock()
    dev = ReplayDevice(_config(path, pace="fast"), clock=clock, sleep=clock.sleep)
    dev.start()
    assert len(_drain(dev)) == 11
    assert clock.sleeps == []


def test_stop_then_read_is_an_error_and_restart_rewinds(tmp_path: Path) -> None:
    path = _npz(tmp_path, n=1005)
    dev = ReplayDevice(_config(path))
    dev.start()
    first = dev.read_block(0.0)
    dev.read_block(0.0)
    dev.stop()
    dev.stop()  # idempotent
    with pytest.raises(DeviceError):
        dev.read_block(0.0)
    dev.start()
    again = dev.read_block(0.0)
    assert first is not None and again is not None
    assert np.array_equal(first.data, again.data)


def test_pacer_due_times_without_sleeping() -> None:
    clock = FakeClock(t=10.0)
    pacer = Pacer(48_000.0, realtime=True, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError):
        pacer.due_at(1)
    pacer.start()
    assert pacer.due_at(48_000) == pytest.approx(10.0 + 47_999 / 48_000)
    # far into a run the due time is still computed from the absolute index
    assert pacer.due_at(48_000 * 86_400) == pytest.approx(10.0 + 86_400 - 1 / 48_000, abs=1e-6)
    assert not pacer.wait(48_000, 0.0)
    assert clock.sleeps == []  # a zero timeout does not sleep
    clock.t = 11.0
    assert pacer.wait(48_000, 0.0)
    with pytest.raises(ValueError):
        Pacer(0.0)


def test_resampled_loop_has_no_glitch_at_the_wrap(tmp_path: Path) -> None:
    """A sine with a whole number of periods in the file, resampled 1 kHz -> 1.6 kHz and
    looped, stays that sine across the wrap: the filter saw the file as periodic."""
    n, rate, f = 1000, 1000.0, 50.0  # 50 whole periods
    t = np.arange(n) / rate
    path = tmp_path / "sine.npz"
    np.savez(path, s=np.sin(2 * np.pi * f * t), fs=np.array(rate))
    dev = ReplayDevice(_config(path, loop=True, resample_hz=1600.0, block_duration_s=0.25))
    dev.start()
    out = np.concatenate([dev.read_block(0.0).data[:, 0] for _ in range(16)])  # type: ignore[union-attr]
    assert dev.samples == 1600
    expected = np.sin(2 * np.pi * f * np.arange(out.shape[0]) / 1600.0)
    wrap = slice(1600 - 40, 1600 + 40)  # 25 ms either side of the first wrap
    assert np.max(np.abs(out[wrap] - expected[wrap])) < 2e-3
    assert np.max(np.abs(out - expected)) < 2e-3
    # without periodic treatment the edges ring: the check above is able to fail
    plain, _ = resample(np.sin(2 * np.pi * f * t)[:, None], rate, 1600.0)
    assert np.max(np.abs(plain[:40, 0] - expected[:40])) > 10 * 2e-3


def _parquet_with_stamps(tmp_path: Path, stamps: np.ndarray) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "timestamp": pa.array(stamps, pa.timestamp("ns", tz="UTC")),
            "v": pa.array(np.arange(stamps.shape[0], dtype=np.float32)),
        }
    )
    path = tmp_path / "stamped.parquet"
    pq.write_table(table, path)
    return path


def test_file_timestamps_are_kept_and_shifted_on_each_loop(tmp_path: Path) -> None:
    t0 = 1_600_000_000_000_000_000
    stamps = t0 + np.array([0, 10, 20, 31, 40], dtype=np.int64) * 1_000_000  # 100 Hz, jittered
    path = _parquet_with_stamps(tmp_path, stamps)
    dev = ReplayDevice(_config(path, loop=True, timestamps="file", block_duration_s=0.03))
    assert dev.describe().extra["timestamps"] == "file"
    dev.start()
    got = np.concatenate([dev.read_block(0.0).timestamps_ns for _ in range(4)])  # type: ignore[union-attr]
    span = 40_000_000 + 10_000_000  # last - first + one period at the file's 100 Hz
    expected = np.concatenate([stamps, stamps + span, stamps[:2] + 2 * span])
    np.testing.assert_array_equal(got, expected)
    assert np.all(np.diff(got) > 0)


def test_file_timestamps_need_a_file_that_has_them(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="stores no timestamps; use timestamps = 'now'"):
        ReplayDevice(_config(_npz(tmp_path), timestamps="file"))
