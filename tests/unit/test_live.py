import msgpack
import numpy as np
import pytest

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.live import LiveHub, SubscriptionError, decimate_minmax
from rigwatch.config.station import LiveConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import Block


def make_hub(rate_hz: float = 1000.0, capacity: int = 10_000, **live):
    counters = Counters()
    stream = DeviceStream(ListDevice(rate_hz=rate_hz), capacity, counters)
    hub = LiveHub({"dev": stream}, LiveConfig(**live), counters)
    return hub, stream


def decode(frame: bytes) -> dict:
    m = msgpack.unpackb(frame, raw=False)
    nb, nc = m["shape"]
    for key in ("data", "min", "max"):
        if key in m:
            m[key] = np.frombuffer(m[key], "<f4").reshape(nb, nc)
    m["t_ns"] = np.frombuffer(m["t_ns"], "<i8")
    return m


def test_minmax_keeps_a_single_sample_spike():
    x = np.zeros((1000, 2), np.float32)
    x[537, 1] = 9.5
    x[12, 0] = -3.0
    lo, hi = decimate_minmax(x, 100)
    assert lo.shape == (10, 2)
    assert hi[5, 1] == 9.5 and lo[0, 0] == -3.0
    assert np.count_nonzero(hi) == 1


def test_minmax_ignores_nan_unless_whole_bucket():
    x = np.array([[np.nan], [2.0], [np.nan], [np.nan]], np.float32)
    lo, hi = decimate_minmax(x, 2)
    assert lo[0, 0] == 2.0 and hi[0, 0] == 2.0 and np.isnan(hi[1, 0])


def test_frames_are_aligned_decimated_and_sequenced():
    hub, stream = make_hub(rate_hz=1000.0)
    sub = hub.make_subscription("dev", ["b"], display_rate_hz=100, fps=30)
    assert sub.bucket_size == 10
    stream.ingest(ramp_block(0, 25, 2))
    frame, skipped = sub.build_frame(max_backlog_rows=10_000)
    m = decode(frame)
    assert skipped == 0 and m["seq"] == 0 and m["channels"] == ["b"]
    assert (m["start_index"], m["end_index"]) == (0, 20)  # only whole buckets
    np.testing.assert_array_equal(m["min"][:, 0], [1, 101])
    np.testing.assert_array_equal(m["max"][:, 0], [91, 191])
    stream.ingest(ramp_block(25, 15, 2))
    m2 = decode(sub.build_frame(10_000)[0])
    assert m2["seq"] == 1 and m2["start_index"] == 20 and m2["end_index"] == 40
    assert m2["missed"] == 0
    assert m2["t_ns"][0] == ramp_block(20, 1, 2).timestamps_ns[0]


def test_raw_frames_when_display_rate_exceeds_sample_rate():
    hub, stream = make_hub(rate_hz=100.0)
    sub = hub.make_subscription("dev", None, display_rate_hz=1000)
    stream.ingest(ramp_block(0, 7, 2))
    m = decode(sub.build_frame(1000)[0])
    assert m["bucket_size"] == 1 and "min" not in m
    np.testing.assert_array_equal(m["data"], ramp_block(0, 7, 2).data)


def test_slow_client_skips_ahead_and_reports_missed():
    hub, stream = make_hub(rate_hz=1000.0, capacity=100_000)
    sub = hub.make_subscription("dev", None, display_rate_hz=1000)
    for i in range(0, 5000, 100):
        stream.ingest(ramp_block(i, 100, 2))
    frame, skipped = sub.build_frame(max_backlog_rows=2000)
    m = decode(frame)
    assert skipped == 4500 and m["missed"] == 4500
    assert m["start_index"] == 4500 and m["end_index"] == 5000


def test_buffer_overrun_is_reported_as_missed():
    hub, stream = make_hub(rate_hz=1000.0, capacity=1000)
    sub = hub.make_subscription("dev", None, display_rate_hz=100)
    stream.ingest(Block(np.zeros((1500, 2), np.float32), np.arange(1500, dtype=np.int64)))
    m = decode(sub.build_frame(max_backlog_rows=10_000)[0])
    assert m["missed"] == 500 and m["start_index"] == 500


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"device": "nope"}, "unknown_device"),
        ({"device": "dev", "channels": ["a", "zz"]}, "unknown_channel"),
        ({"device": "dev", "fps": 5000}, "invalid_field"),
        ({"device": "dev", "display_rate_hz": float("nan")}, "invalid_field"),
    ],
)
def test_bad_subscriptions_name_the_problem(kwargs, code):
    hub, _ = make_hub()
    with pytest.raises(SubscriptionError) as e:
        hub.make_subscription(**kwargs)
    assert e.value.code == code and e.value.message


def test_identical_subscriptions_share_one_encoding_but_keep_their_own_seq():
    hub, stream = make_hub(rate_hz=1000.0)
    cache = hub._caches["dev"]
    a = hub.make_subscription("dev", ["a"], display_rate_hz=100)
    b = hub.make_subscription("dev", ["a"], display_rate_hz=100)
    c = hub.make_subscription("dev", ["b"], display_rate_hz=100)
    stream.ingest(ramp_block(0, 40, 2))
    a.build_frame(10_000, cache)  # a is one frame ahead of b from now on
    assert len(cache._items) == 1
    stream.ingest(ramp_block(40, 40, 2))
    raw_a = a.build_frame(10_000, cache)[0]
    raw_b = b.build_frame(10_000, cache)[0]  # rows 0..80: not what a was sent, encoded anew
    assert len(cache._items) == 3
    stream.ingest(ramp_block(80, 40, 2))
    raw_a2 = a.build_frame(10_000, cache)[0]
    raw_b2 = b.build_frame(10_000, cache)[0]  # both at 80: the same rows, encoded once
    assert len(cache._items) == 4
    fa, fb, fa2, fb2 = map(decode, (raw_a, raw_b, raw_a2, raw_b2))
    assert (fa["seq"], fb["seq"], fa2["seq"], fb2["seq"]) == (1, 0, 2, 1)
    assert fb["start_index"] == 0 and fb["end_index"] == 80
    assert fa2["end_index"] == fb2["end_index"] == 120
    np.testing.assert_array_equal(fa2["max"], fb2["max"])
    np.testing.assert_array_equal(fb["max"][:, 0], ramp_block(0, 80, 2).data[9::10, 0])
    fc = decode(c.build_frame(10_000, cache)[0])  # other columns: its own encoding
    np.testing.assert_array_equal(fc["max"][:, 0], ramp_block(0, 120, 2).data[9::10, 1])


def test_frames_are_capped_in_bytes_and_the_rest_follows_in_the_next_frame():
    hub, stream = make_hub(rate_hz=1_000_000.0, capacity=200_000, max_frame_bytes=64 * 1024)
    sub = hub.make_subscription("dev", None, display_rate_hz=1_000_000)
    assert sub.bucket_size == 1 and sub.max_buckets == 64 * 1024 // (8 + 2 * 4)
    stream.ingest(ramp_block(0, 10_000, 2))
    ends = []
    while sub.index < 10_000:
        raw, skipped = sub.build_frame(max_backlog_rows=1_000_000)
        assert skipped == 0 and len(raw) <= 64 * 1024 + 512
        ends.append(decode(raw)["end_index"])
    assert ends == [4096, 8192, 10_000]
