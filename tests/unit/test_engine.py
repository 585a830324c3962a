import threading

import numpy as np

from rigwatch.acquisition.engine import AcquisitionEngine
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import Block, ChannelInfo
from rigwatch.errors import DeviceError


def test_blocks_reach_buffer_calibrated_and_listeners_notified():
    dev = ListDevice(channels=[ChannelInfo("p", "bar", gain=46.18, offset=-25.7)])
    counters = Counters()
    engine = AcquisitionEngine([dev], capacity_rows=100, counters=counters)
    stream = engine.streams["dev"]
    seen: list[int] = []
    done = threading.Event()

    def listener(end: int) -> None:
        seen.append(end)
        if end >= 4:
            done.set()

    stream.add_listener(listener)
    engine.start()
    volts = np.array([[0.0], [1.0], [2.0], [0.5]], dtype=np.float32)
    dev.blocks.put(Block(volts, np.arange(4, dtype=np.int64)))
    assert done.wait(5)
    engine.stop()
    got = stream.buffer.snapshot(10).data[:, 0]
    expected = (volts[:, 0] * np.float32(46.18) + np.float32(-25.7)).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    assert seen[0] == 4 and stream.stats.rows == 4 and dev.stopped


def test_end_of_stream_finishes_and_wrong_channel_count_is_counted():
    dev = ListDevice()
    counters = Counters()
    engine = AcquisitionEngine([dev], capacity_rows=100, counters=counters)
    dev.blocks.put(ramp_block(0, 5, 2))
    dev.blocks.put(ramp_block(5, 5, 3))  # wrong width: rejected, counted
    dev.blocks.put(ramp_block(5, 5, 2))
    dev.blocks.put(None)
    engine.start()
    stream = engine.streams["dev"]
    assert stream.wait_finished(5)
    engine.stop()
    assert stream.state == "finished"
    r = stream.buffer.read_since(0)
    np.testing.assert_array_equal(r.data, ramp_block(0, 10, 2).data)
    assert counters.get("device.dev.wrong_channel_count") == 1


def test_device_errors_are_counted_and_acquisition_continues():
    dev = ListDevice()
    counters = Counters()
    engine = AcquisitionEngine([dev], capacity_rows=100, counters=counters)
    dev.blocks.put(DeviceError("cable unplugged"))
    dev.blocks.put(ramp_block(0, 3, 2))
    dev.blocks.put(None)
    engine.start()
    assert engine.streams["dev"].wait_finished(5)
    engine.stop()
    assert counters.get("device.dev.read_error") == 1
    assert "cable unplugged" in counters.last_messages()["device.dev.read_error"]
    assert engine.streams["dev"].stats.rows == 3


def test_persistent_failure_stops_the_device():
    dev = ListDevice()
    engine = AcquisitionEngine([dev], 100, Counters(), max_consecutive_errors=3)
    for _ in range(3):
        dev.blocks.put(DeviceError("dead"))
    engine.start()
    assert engine.streams["dev"].wait_finished(10)
    engine.stop()
    assert engine.streams["dev"].state == "failed"


def test_a_blocking_listener_cannot_be_installed_to_slow_others_by_exception():
    dev = ListDevice()
    counters = Counters()
    engine = AcquisitionEngine([dev], 100, counters)
    engine.streams["dev"].add_listener(lambda end: 1 / 0)
    dev.blocks.put(ramp_block(0, 2, 2))
    dev.blocks.put(None)
    engine.start()
    assert engine.streams["dev"].wait_finished(5)
    engine.stop()
    assert engine.streams["dev"].stats.rows == 2
    assert counters.get("engine.listener_error") >= 1


class FlakyStartDevice(ListDevice):
    """Fails to start ``failures`` times (a serial port not plugged in yet), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky")
        self.failures = failures
        self.attempts = 0
        self.tried = threading.Event()

    def start(self) -> None:
        self.attempts += 1
        self.tried.set()
        if self.attempts <= self.failures:
            raise DeviceError(f"cannot open /dev/ttyACM0 (attempt {self.attempts})")
        super().start()


def test_a_device_that_fails_to_start_is_retried_while_others_run():
    flaky, good = FlakyStartDevice(failures=2), ListDevice("good")
    counters = Counters()
    engine = AcquisitionEngine([flaky, good], 100, counters, start_retry_s=0.01)
    good.blocks.put(ramp_block(0, 4, 2))
    good.blocks.put(None)
    flaky.blocks.put(ramp_block(0, 3, 2))
    flaky.blocks.put(None)
    engine.start()
    assert engine.streams["good"].wait_finished(5)
    assert engine.streams["flaky"].wait_finished(5)
    engine.stop()
    assert flaky.attempts == 3
    assert counters.get("device.flaky.start_error") == 2
    assert "attempt 2" in counters.last_messages()["device.flaky.start_error"]
    assert engine.streams["flaky"].stats.rows == 3 and engine.streams["good"].stats.rows == 4


def test_stop_ends_a_device_that_never_starts():
    never = FlakyStartDevice(failures=10**9)
    engine = AcquisitionEngine([never], 100, Counters(), start_retry_s=0.01)
    engine.start()
    assert never.tried.wait(5)
    engine.stop()
    assert engine.streams["flaky"].state == "stopped"
    assert engine.streams["flaky"].stats.last_error.startswith("cannot open")
