"""NI-DAQmx driver with the fake task: blocks, timestamps, calibration, errors; no NI software."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rigwatch.acquisition.engine import AcquisitionEngine, DeviceStream
from rigwatch.config.base import ChannelConfig
from rigwatch.counters import Counters
from rigwatch.devices.nidaq import (
    INSTALL_HINT,
    AnalogInputTask,
    FakeAnalogInputTask,
    NidaqDevice,
    NidaqDeviceConfig,
    NidaqmxTask,
    count_physical_channels,
)
from rigwatch.devices.protocols import AcquisitionDevice, EndOfStream
from rigwatch.errors import DeviceError


def mill_config(**overrides: object) -> NidaqDeviceConfig:
    """The ball mill's 9 vibration channels: Dev1/ai1:9, RSE, 48 kHz."""
    values: dict[str, object] = {
        "name": "mill",
        "driver": "nidaq",
        "physical_channels": "Dev1/ai1:9",
        "terminal_config": "RSE",
        "sample_rate_hz": 48_000.0,
        "block_duration_s": 0.05,
        "channels": [ChannelConfig(name=f"ai{i}", unit="V") for i in range(1, 10)],
    }
    values.update(overrides)
    return NidaqDeviceConfig.model_validate(values)


def pressure_config() -> NidaqDeviceConfig:
    """The ball mill's pressure: Dev2/ai1 at 2 Hz, 46.18 x V - 25.7."""
    return NidaqDeviceConfig(
        name="pressure",
        driver="nidaq",
        physical_channels="Dev2/ai1",
        sample_rate_hz=2.0,
        channels=[ChannelConfig(name="pressure", unit="bar", gain=46.18, offset=-25.7)],
    )


def test_fake_and_real_tasks_have_our_interface() -> None:
    assert isinstance(FakeAnalogInputTask(), AnalogInputTask)
    assert isinstance(NidaqDevice(mill_config(), FakeAnalogInputTask), AcquisitionDevice)


@pytest.mark.parametrize(
    ("spec", "count"),
    [("Dev1/ai1:9", 9), ("Dev2/ai1", 1), ("Dev1/ai0, Dev1/ai4:5", 3), ("Dev1/ai9:1", 9)],
)
def test_count_physical_channels(spec: str, count: int) -> None:
    assert count_physical_channels(spec) == count


def test_start_configures_the_task_from_the_config() -> None:
    fake = FakeAnalogInputTask()
    dev = NidaqDevice(mill_config(min_val_v=-5.0, max_val_v=5.0), lambda: fake)
    dev.start()
    try:
        assert fake.configured == {
            "physical_channels": "Dev1/ai1:9",
            "sample_rate_hz": 48_000.0,
            "samples_per_block": 2400,
            "terminal_config": "RSE",
            "min_val_v": -5.0,
            "max_val_v": 5.0,
        }
        assert fake.started
    finally:
        dev.stop()
    assert fake.closed and not fake.started


def test_blocks_are_samples_by_channels_float32_with_the_task_values() -> None:
    fake = FakeAnalogInputTask()
    dev = NidaqDevice(mill_config(), lambda: fake)
    dev.start()
    try:
        blocks = [dev.read_block(1.0) for _ in range(3)]
    finally:
        dev.stop()
    for i, block in enumerate(blocks):
        assert block is not None
        assert block.data.shape == (2400, 9)
        assert block.data.dtype == np.float32
        assert block.data.flags.c_contiguous
        expected = fake.values(i * 2400, 2400).T.astype(np.float32)
        np.testing.assert_array_equal(block.data, expected)
    # channels differ (each column is its own signal, not a copy or a transpose mix-up)
    assert not np.allclose(blocks[0].data[:, 0], blocks[0].data[:, 1])


def test_timestamps_are_regular_and_continue_across_blocks() -> None:
    dev = NidaqDevice(mill_config(), FakeAnalogInputTask)
    dev.start()
    try:
        first = dev.read_block(1.0)
        second = dev.read_block(1.0)
    finally:
        dev.stop()
    assert first is not None and second is not None
    ts = np.concatenate([first.timestamps_ns, second.timestamps_ns])
    assert ts.dtype == np.int64
    step = np.diff(ts)
    assert set(step.tolist()) <= {20_833, 20_834}  # 1e9 / 48 000 = 20 833.3 ns
    # computed from the absolute index: no drift accumulates across blocks
    assert ts[-1] - ts[0] == round(4799 * 1e9 / 48_000)


def test_describe_carries_the_calibration_from_the_config() -> None:
    info = NidaqDevice(pressure_config(), FakeAnalogInputTask).describe()
    assert info.device == "pressure"
    assert info.driver == "nidaq"
    assert info.sample_rate_hz == 2.0
    (chan,) = info.channels
    assert (chan.name, chan.unit, chan.gain, chan.offset) == ("pressure", "bar", 46.18, -25.7)
    assert info.extra["physical_channels"] == "Dev2/ai1"


def test_engine_calibration_turns_volts_into_bar() -> None:
    dev = NidaqDevice(pressure_config(), lambda: FakeAnalogInputTask(constant_v=1.5))
    dev.start()
    try:
        block = dev.read_block(1.0)
    finally:
        dev.stop()
    assert block is not None
    assert block.data.shape == (1, 1)  # 2 Hz x 0.05 s rounds to 0: one sample per block
    assert block.data[0, 0] == np.float32(1.5)  # the driver delivers volts
    stream = DeviceStream(dev, capacity_rows=1000, counters=Counters())
    bar = stream.calibrate(block.data)
    assert bar[0, 0] == pytest.approx(46.18 * 1.5 - 25.7, rel=1e-6)


def test_channel_count_mismatch_names_both_and_releases_the_task() -> None:
    fake = FakeAnalogInputTask(channel_count=8)
    dev = NidaqDevice(mill_config(), lambda: fake)
    with pytest.raises(DeviceError) as err:
        dev.start()
    message = str(err.value)
    assert "9 channels configured" in message and "ai1, ai2" in message
    assert "'Dev1/ai1:9' has 8" in message
    assert fake.closed
    with pytest.raises(DeviceError, match="not started"):
        dev.read_block(0.1)


def test_refused_configuration_is_a_device_error_and_releases_the_task() -> None:
    fake = FakeAnalogInputTask(fail_on_configure=DeviceError("NI-DAQmx refused 'Dev9/ai0'"))
    dev = NidaqDevice(mill_config(), lambda: fake)
    with pytest.raises(DeviceError, match="Dev9/ai0"):
        dev.start()
    assert fake.closed


def test_short_read_keeps_its_samples_and_the_timeline() -> None:
    fake = FakeAnalogInputTask(short_reads={1: 100, 2: 0})
    dev = NidaqDevice(mill_config(), lambda: fake)
    dev.start()
    try:
        short = dev.read_block(0.01)
        empty = dev.read_block(0.01)
        full = dev.read_block(1.0)
    finally:
        dev.stop()
    assert short is not None and short.rows == 100
    assert empty is None
    assert full is not None and full.rows == 2400
    np.testing.assert_array_equal(full.data, fake.values(100, 2400).T.astype(np.float32))
    assert full.timestamps_ns[0] - short.timestamps_ns[0] == round(100 * 1e9 / 48_000)


def test_failed_read_raises_and_the_next_read_restarts_the_task() -> None:
    counters = Counters()
    fake = FakeAnalogInputTask(fail_on_read={2: DeviceError("buffer overflow (-200279)")})
    dev = NidaqDevice(mill_config(), lambda: fake, counters=counters)
    dev.start()
    try:
        before = dev.read_block(1.0)
        with pytest.raises(DeviceError, match="-200279"):
            dev.read_block(1.0)
        after = dev.read_block(1.0)
    finally:
        dev.stop()
    assert before is not None and after is not None
    assert fake.starts == 2
    assert counters.get("nidaq.mill.restart") == 1
    # the restarted task starts again from its sample 0, with a new t0 (a counted gap)
    np.testing.assert_array_equal(after.data, fake.values(0, 2400).T.astype(np.float32))
    assert after.timestamps_ns[0] > before.timestamps_ns[-1]


def test_unexpected_exception_from_the_task_becomes_a_device_error() -> None:
    fake = FakeAnalogInputTask(fail_on_read={1: RuntimeError("driver crashed")})
    dev = NidaqDevice(mill_config(), lambda: fake)
    dev.start()
    try:
        with pytest.raises(DeviceError, match="driver crashed"):
            dev.read_block(1.0)
    finally:
        dev.stop()


def test_engine_counts_a_failed_read_and_keeps_acquiring() -> None:
    counters = Counters()
    fake = FakeAnalogInputTask(
        fail_on_read={3: DeviceError("device removed")}, end_after_reads=6, constant_v=2.0
    )
    dev = NidaqDevice(mill_config(), lambda: fake, counters=counters)
    engine = AcquisitionEngine([dev], capacity_rows=100_000, counters=counters)
    engine.start()
    try:
        stream = engine.streams["mill"]
        assert stream.wait_finished(5.0)
    finally:
        engine.stop()
    assert stream.state == "finished"
    assert counters.get("device.mill.read_error") == 1
    assert "device removed" in counters.last_messages()["device.mill.read_error"]
    assert counters.get("nidaq.mill.restart") == 1
    assert stream.stats.rows == 5 * 2400  # reads 1, 2, 4, 5, 6
    assert fake.closed


def test_stop_is_idempotent() -> None:
    fake = FakeAnalogInputTask()
    dev = NidaqDevice(mill_config(), lambda: fake)
    dev.start()
    dev.stop()
    dev.stop()
    assert fake.closed


def test_fake_realtime_read_returns_what_is_due_at_the_timeout() -> None:
    fake = FakeAnalogInputTask(realtime=True)
    fake.configure("Dev1/ai0:1", 1000.0, 10, "RSE", -10.0, 10.0)
    fake.start()
    early = fake.read(1000, 0.0)  # 1 s of samples asked, no time given
    assert early.shape[0] == 2 and early.shape[1] < 1000
    full = fake.read(5, 1.0)
    assert full.shape == (2, 5)
    fake.close()


def test_fake_can_end_the_stream() -> None:
    fake = FakeAnalogInputTask(end_after_reads=1)
    dev = NidaqDevice(mill_config(), lambda: fake)
    dev.start()
    try:
        assert dev.read_block(1.0) is not None
        with pytest.raises(EndOfStream):
            dev.read_block(1.0)
    finally:
        dev.stop()


def test_importing_the_driver_does_not_import_nidaqmx() -> None:
    code = (
        "import sys, rigwatch.devices.nidaq as m; "
        "dev = m.NidaqDevice.__name__; "
        "print('nidaqmx' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "False"


def test_real_task_without_nidaqmx_explains_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "nidaqmx", None)  # import nidaqmx -> ImportError
    with pytest.raises(DeviceError) as err:
        NidaqmxTask()
    assert INSTALL_HINT in str(err.value)
    assert "pip install 'rigwatch[nidaq]'" in str(err.value)
    dev = NidaqDevice(mill_config())  # default factory: the real task
    with pytest.raises(DeviceError, match=r"rigwatch\[nidaq\]"):
        dev.start()


def test_simulated_twin_plays_a_recording_through_the_inverse_calibration(tmp_path) -> None:
    """``[devices.simulation] recording``: calibrated values in the file, volts from the task,
    the same values again after the engine's calibration."""
    import h5py

    from rigwatch.devices.registry import DriverContext, build_device

    rng = np.random.default_rng(3)
    pa = rng.standard_normal((1000, 2)).astype(np.float32)
    path = tmp_path / "scene.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("time_data", data=pa).attrs["sample_freq"] = 48_000.0
    cfg = mill_config(
        physical_channels="Dev1/ai1:2",
        block_duration_s=0.01,
        channels=[ChannelConfig(name="m1", unit="Pa", gain=20.0, offset=1.0),
                  ChannelConfig(name="m2", unit="Pa", gain=-4.0)],
        simulation={"recording": path},
    )  # fmt: skip
    dev = build_device(cfg, DriverContext(), simulate=True)
    stream = DeviceStream(dev, 4096, Counters())
    dev.start()
    try:
        blocks = [dev.read_block(5.0) for _ in range(2)]
    finally:
        dev.stop()
    raw = np.concatenate([b.data for b in blocks if b is not None])
    assert raw.shape == (960, 2)
    np.testing.assert_allclose(raw[:, 0], (pa[:960, 0] - 1.0) / 20.0, rtol=1e-6)
    np.testing.assert_allclose(stream.calibrate(raw), pa[:960], rtol=1e-5, atol=1e-6)


def test_simulation_recording_at_another_rate_is_refused(tmp_path) -> None:
    import h5py

    from rigwatch.devices.registry import DriverContext, build_device

    path = tmp_path / "scene.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("time_data", data=np.zeros((10, 9), np.float32)).attrs["sample_freq"] = (
            44_100.0
        )
    with pytest.raises(DeviceError, match=r"sampled at 44100 Hz, the device at 48000 Hz"):
        build_device(mill_config(simulation={"recording": path}), DriverContext(), simulate=True)
