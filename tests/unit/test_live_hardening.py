"""Bounds of the live WebSocket: message decoding, subscription rates, client admission and
eviction of a client that does not read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pydantic
import pytest

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.acquisition.live import LiveHub, SubscriptionError
from rigwatch.config.station import LiveConfig, StationConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.station import Station
from rigwatch.web.live_ws import MAX_DEPTH, LiveSession, MessageRejected, decode_message

CODES = {"malformed", "too_deep", "oversized"}

SAMPLES: list[dict[str, Any]] = [
    {"type": "ping"},
    {"type": "subscribe", "device": "dev", "channels": ["a", "b"], "display_rate_hz": 100.5},
    {"type": "system_mode", "mode": "test"},
    {"type": "subscribe", "device": "dev", "fps": 30, "x": {"y": [1, [2, [3]]]}},
]


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def check_decoded_or_rejected(raw: bytes | None, text: str | None) -> None:
    try:
        obj = decode_message(raw, text, 4096)
    except MessageRejected as exc:
        assert exc.code in CODES and exc.message
    else:
        assert isinstance(obj, dict) and isinstance(obj["type"], str)
        assert all(isinstance(k, str) for k in obj)


def test_any_bytes_decode_to_a_message_or_a_rejection():
    rng = np.random.default_rng(7)
    packed = [msgpack.packb(m) for m in SAMPLES]
    for i in range(30_000):
        if i % 3 == 0:
            raw = rng.bytes(int(rng.integers(0, 48)))
        else:
            buf = bytearray(packed[i % len(packed)])
            for _ in range(int(rng.integers(1, 4))):  # overwrite a few bytes at random
                buf[int(rng.integers(0, len(buf)))] = int(rng.integers(0, 256))
            raw = bytes(buf[: int(rng.integers(1, len(buf) + 1))] if i % 3 == 2 else buf)
        check_decoded_or_rejected(raw, None)


def test_any_text_decodes_to_a_message_or_a_rejection():
    rng = np.random.default_rng(11)
    texts = [json.dumps(m) for m in SAMPLES]
    alphabet = list('{}[]":,0123456789eE.-+ntfalsNIiy\\u')
    for i in range(20_000):
        chars = list(texts[i % len(texts)])
        for _ in range(int(rng.integers(1, 4))):
            chars[int(rng.integers(0, len(chars)))] = alphabet[int(rng.integers(len(alphabet)))]
        check_decoded_or_rejected(None, "".join(chars))


@pytest.mark.parametrize("encode", [msgpack.packb, lambda m: json.dumps(m)])
def test_nesting_is_accepted_up_to_the_limit_and_refused_beyond(encode):
    def decode(m: dict) -> dict:
        data = encode(m)
        return decode_message(data if isinstance(data, bytes) else None, data, 1 << 20)

    assert decode({"type": "ping", "x": nested(MAX_DEPTH - 1)})["type"] == "ping"
    with pytest.raises(MessageRejected) as e:
        decode({"type": "ping", "x": nested(MAX_DEPTH)})
    assert e.value.code == "too_deep" and f"deeper than {MAX_DEPTH} levels" in e.value.message
    with pytest.raises(MessageRejected) as e:  # maps count like arrays
        decode({"type": "ping", "x": {"k": nested(MAX_DEPTH - 1)}})
    assert e.value.code == "too_deep"


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\x82\xa4type\xa4ping\x91\x01\x02", "an array"),
        (b"\x82\xa4type\xa4ping\x80\x02", "a map"),
        (b"\x82\xa4type\xa4ping\xc4\x01k\x02", "binary"),
        (b"\x82\xa4type\xa4ping\xc3\x02", "a boolean"),
        (b"\x82\xa4type\xa4ping\xc0\x02", "nil"),
        (b"\x82\xa4type\xa4ping\xd4\x05\x00\x02", "an extension type"),
        (b"\x81\xa1x\x81\x01\x02", "an integer"),  # in a nested map too
    ],
)
def test_map_keys_other_than_strings_are_named(raw, kind):
    with pytest.raises(MessageRejected) as e:
        decode_message(raw, None, 4096)
    assert e.value.code == "malformed"
    assert e.value.message == f"map keys must be strings; one is {kind}"


def test_size_is_checked_first_and_counts_utf8_bytes():
    text = json.dumps({"type": "ping", "pad": "é" * 100}, ensure_ascii=False)
    assert len(text) < 150 < len(text.encode())
    with pytest.raises(MessageRejected) as e:
        decode_message(None, text, 150)
    assert e.value.code == "oversized"
    assert (
        e.value.message == f"message of {len(text.encode())} bytes exceeds the limit of 150 bytes"
    )
    with pytest.raises(MessageRejected) as e:
        decode_message(b"\x91" * 5000, None, 4096)
    assert e.value.code == "oversized"


def test_json_error_says_where():
    with pytest.raises(MessageRejected) as e:
        decode_message(None, '{"type": "ping",}', 4096)
    assert e.value.code == "malformed" and "not valid JSON" in e.value.message
    assert "line 1 column" in e.value.message


# -- subscriptions -------------------------------------------------------------------------------
def make_hub(rate_hz: float = 1000.0, capacity: int = 10_000, **live: Any) -> LiveHub:
    counters = Counters()
    stream = DeviceStream(ListDevice(rate_hz=rate_hz), capacity, counters)
    return LiveHub({"dev": stream}, LiveConfig(**live), counters)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"display_rate_hz": 1e-300}, ["display_rate_hz", ">= 0.1", "10000 rows", "1e-300"]),
        ({"display_rate_hz": 5e-324}, ["display_rate_hz", ">= 0.1"]),
        ({"display_rate_hz": 0.0999}, ["display_rate_hz", ">= 0.1"]),
        ({"display_rate_hz": -1.0}, ["display_rate_hz"]),
        ({"display_rate_hz": float("inf")}, ["display_rate_hz"]),
        ({"fps": 1e-300}, ["fps must be in [0.1, 120]"]),
        ({"fps": 0.09}, ["fps must be in [0.1, 120]"]),
        ({"fps": 121.0}, ["fps must be in [0.1, 120]"]),
        ({"fps": float("nan")}, ["fps"]),
    ],
)
def test_rates_out_of_range_are_refused_with_the_range(kwargs, words):
    hub = make_hub()
    with pytest.raises(SubscriptionError) as e:
        hub.make_subscription("dev", **kwargs)
    assert e.value.code == "invalid_field"
    for word in words:
        assert word in e.value.message


def test_bucket_size_stays_within_one_and_the_buffer_capacity():
    hub = make_hub(rate_hz=1000.0, capacity=10_000)
    assert 9_999 <= hub.make_subscription("dev", display_rate_hz=0.1).bucket_size <= 10_000
    assert hub.make_subscription("dev", display_rate_hz=1e300).bucket_size == 1
    assert hub.make_subscription("dev", display_rate_hz=100, fps=0.1).frame_interval_s == 10.0


def test_a_default_display_rate_below_the_minimum_is_raised_to_it():
    hub = make_hub(rate_hz=1_000_000.0, capacity=1_000, default_display_rate_hz=10.0)
    assert hub.make_subscription("dev").bucket_size == 1_000


def test_admission_stops_at_max_clients_and_a_release_frees_a_place():
    hub = make_hub(max_clients=2)
    assert hub.admit() and hub.admit()
    assert not hub.admit() and hub.stats.clients == 2
    hub.release()
    assert hub.admit() and hub.stats.clients == 2


@pytest.mark.parametrize(
    "live",
    [
        {"default_fps": 200.0, "max_fps": 100.0},
        {"min_fps": 40.0},
        {"max_message_bytes": 2 << 20},
        {"send_timeout_s": 0},
        {"max_clients": 0},
    ],
)
def test_live_config_bounds(live):
    with pytest.raises(pydantic.ValidationError):
        LiveConfig(**live)


# -- sessions against a connection that stops taking frames --------------------------------------
class StalledWebSocket:
    """A connection whose client sends ``incoming`` and takes ``takes`` messages, then none."""

    def __init__(self, takes: int, close_taken: bool = True) -> None:
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.sent: list[dict] = []
        self.takes = takes
        self.close_taken = close_taken
        self.closed: tuple[int, str | None] | None = None

    async def receive(self) -> dict:
        return await self.incoming.get()

    async def send_bytes(self, data: bytes) -> None:
        if len(self.sent) >= self.takes:
            await asyncio.Event().wait()
        self.sent.append(msgpack.unpackb(data))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if not self.close_taken:
            await asyncio.Event().wait()
        self.closed = (code, reason)

    def put(self, message: dict) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "bytes": msgpack.packb(message)})


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout_s} s"
        await asyncio.sleep(0.001)


def make_station(**live: Any) -> Station:
    cfg = StationConfig.from_dict(
        {
            "recorder": {"enabled": False},
            "live": {"send_timeout_s": 0.05, **live},
            "devices": [
                {
                    "name": "dev",
                    "driver": "sim",
                    "sample_rate_hz": 1000,
                    "channels": [{"name": "a"}, {"name": "b"}],
                }
            ],
        }
    )
    return Station(cfg, devices=[ListDevice("dev")])


def test_a_client_that_sends_but_never_reads_its_replies_is_evicted():
    station = make_station()
    hub = LiveHub(station.streams, station.config.live, station.counters)

    async def scenario() -> StalledWebSocket:
        ws = StalledWebSocket(takes=1)
        ws.put({"type": "ping"})
        ws.put({"type": "ping"})  # its pong is never taken
        await asyncio.wait_for(LiveSession(ws, hub, station).run(), 10)
        return ws

    ws = asyncio.run(scenario())
    assert ws.sent == [{"type": "pong"}]
    assert ws.closed == (1008, "client did not read: a frame waited 0.05 s to be sent")
    assert station.counters.get("ws.evicted_slow_client") == 1
    assert hub.stats.clients == 0


def test_a_subscriber_that_stops_reading_is_evicted_while_the_session_waits_for_messages():
    station = make_station()
    hub = LiveHub(station.streams, station.config.live, station.counters)
    stream = station.streams["dev"]

    async def scenario() -> StalledWebSocket:
        hub.attach(asyncio.get_running_loop())
        ws = StalledWebSocket(takes=2, close_taken=False)
        ws.put({"type": "subscribe", "device": "dev", "display_rate_hz": 1000, "fps": 100})
        session = asyncio.create_task(LiveSession(ws, hub, station).run())
        await until(lambda: len(ws.sent) == 1)  # "subscribed"
        stream.ingest(ramp_block(0, 10, 2))
        await until(lambda: len(ws.sent) == 2)  # a data frame, taken
        stream.ingest(ramp_block(10, 10, 2))  # its frame is never taken
        await asyncio.wait_for(session, 10)
        hub.detach()
        return ws

    ws = asyncio.run(scenario())
    assert [m["type"] for m in ws.sent] == ["subscribed", "data"]
    assert ws.closed is None  # the close frame was not taken either: the session ended anyway
    assert station.counters.get("ws.evicted_slow_client") == 1
    assert hub.stats.clients == 0


def test_a_connection_beyond_max_clients_is_closed_with_1013():
    station = make_station(max_clients=1)
    hub = LiveHub(station.streams, station.config.live, station.counters)

    async def scenario() -> tuple[StalledWebSocket, StalledWebSocket]:
        first, second = StalledWebSocket(takes=10), StalledWebSocket(takes=10)
        serving = asyncio.create_task(LiveSession(first, hub, station).run())
        first.put({"type": "ping"})
        await until(lambda: len(first.sent) == 1)
        await asyncio.wait_for(LiveSession(second, hub, station).run(), 10)
        first.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(serving, 10)
        return first, second

    first, second = asyncio.run(scenario())
    assert second.closed == (1013, "the station serves at most 1 live clients; try again later")
    assert first.closed is None and first.sent == [{"type": "pong"}]
    assert station.counters.get("ws.refused_max_clients") == 1
    assert hub.stats.clients == 0
