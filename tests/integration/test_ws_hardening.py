"""The live WebSocket against hostile or broken clients, over a real server.

Each bad message gets an ``error`` frame with its code, is counted in ``GET /api/status``, and
the same connection still answers ``ping``; a message beyond the server's WebSocket size limit
closes the connection and is counted; a client that never reads is evicted while another client
keeps receiving every frame; connections beyond ``live.max_clients`` are refused.
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from rigwatch.acquisition import live
from rigwatch.config.station import StationConfig
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import ChannelInfo
from rigwatch.station import Station
from support.server import serve

RATE_HZ = 1000.0
CAPACITY = 10_000
MIN_DISPLAY_HZ = RATE_HZ / CAPACITY  # a display bucket of the whole ring buffer


def make_station(
    tmp_path: Path, rate_hz: float = RATE_HZ, capacity: int = CAPACITY, **live_cfg: Any
) -> tuple[Station, ListDevice]:
    cfg = StationConfig.from_dict(
        {
            "recorder": {"directory": str(tmp_path / "rec"), "segment_duration_s": 3600},
            "buffer": {"capacity_rows": capacity},
            "live": live_cfg,
            "devices": [
                {
                    "name": "dev",
                    "driver": "sim",
                    "sample_rate_hz": rate_hz,
                    "channels": [{"name": "a"}, {"name": "b"}],
                }
            ],
        }
    )
    dev = ListDevice("dev", [ChannelInfo("a"), ChannelInfo("b")], rate_hz=rate_hz)
    return Station(cfg, devices=[dev]), dev


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Station, ListDevice, str]]:
    station, dev = make_station(tmp_path)
    with serve(station) as addr:
        yield station, dev, addr


def recv(ws: ClientConnection) -> dict:
    return msgpack.unpackb(ws.recv(timeout=10), raw=False)


def recv_type(ws: ClientConnection, mtype: str) -> dict:
    for _ in range(1000):
        m = recv(ws)
        if m["type"] == mtype:
            return m
    raise AssertionError(f"no {mtype} frame")


def assert_pong(ws: ClientConnection) -> None:
    ws.send(msgpack.packb({"type": "ping"}))
    assert recv_type(ws, "pong") == {"type": "pong"}


def status(addr: str) -> dict:
    return httpx.get(f"http://{addr}/api/status").json()


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not true within {timeout_s} s"
        time.sleep(0.002)


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def ping_with(extra: Any) -> dict:
    return {"type": "ping", "x": extra}


# (message, error code, words of the error message)
BAD_MESSAGES = {
    "list as map key": (
        b"\x82\xa4type\xa4ping\x91\x01\x02",  # {"type": "ping", [1]: 2}
        "malformed",
        ["map keys must be strings; one is an array"],
    ),
    "map as map key": (
        b"\x82\xa4type\xa4ping\x81\xa1k\x01\x02",  # {"type": "ping", {"k": 1}: 2}
        "malformed",
        ["map keys must be strings; one is a map"],
    ),
    "int as map key": (
        b"\x81\x01\xa4ping",
        "malformed",
        ["map keys must be strings; one is an integer"],
    ),
    "truncated msgpack": (msgpack.packb({"type": "ping"})[:-2], "malformed", ["MessagePack"]),
    "JSON 60 000 deep": ("[" * 60_000, "too_deep", ["nested deeper than 32 levels"]),
    "JSON 33 deep": (json.dumps(ping_with(nested(32))), "too_deep", ["32 levels"]),
    "msgpack 60 000 deep": (b"\x91" * 60_000 + b"\xc0", "too_deep", ["32 levels"]),
    "msgpack 33 deep": (msgpack.packb(ping_with(nested(32))), "too_deep", ["32 levels"]),
    "display rate 1e-300": (
        msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 1e-300}),
        "invalid_field",
        ["display_rate_hz", f">= {MIN_DISPLAY_HZ:g}", f"{CAPACITY} rows", "1e-300"],
    ),
    "display rate 5e-324": (
        json.dumps({"type": "subscribe", "device": "dev", "display_rate_hz": 5e-324}),
        "invalid_field",
        ["display_rate_hz", f">= {MIN_DISPLAY_HZ:g}"],
    ),
    "display rate just below one bucket of the whole buffer": (
        msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 0.099}),
        "invalid_field",
        ["display_rate_hz", f">= {MIN_DISPLAY_HZ:g}"],
    ),
    "display rate infinite": (
        '{"type": "subscribe", "device": "dev", "display_rate_hz": 1e400}',
        "invalid_field",
        ["subscribe.display_rate_hz", "finite"],
    ),
    "display rate NaN": (
        '{"type": "subscribe", "device": "dev", "display_rate_hz": NaN}',
        "invalid_field",
        ["subscribe.display_rate_hz", "finite"],
    ),
    "fps 1e-300": (
        msgpack.packb({"type": "subscribe", "device": "dev", "fps": 1e-300}),
        "invalid_field",
        ["fps must be in [0.1, 120]", "1e-300"],
    ),
    "fps infinite": (
        msgpack.packb({"type": "subscribe", "device": "dev", "fps": float("inf")}),
        "invalid_field",
        ["subscribe.fps", "finite"],
    ),
    "message over the protocol limit": (
        msgpack.packb({"type": "ping", "pad": b"x" * 70_000}),
        "oversized",
        ["exceeds the limit of 65536 bytes"],
    ),
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_bad_message_gets_its_error_frame_is_counted_and_the_connection_goes_on(server, case):
    _, _, addr = server
    message, code, words = BAD_MESSAGES[case]
    with connect(f"ws://{addr}/ws", max_size=None) as ws:
        ws.send(message)
        e = recv(ws)
        assert e["type"] == "error" and e["code"] == code, e
        for word in words:
            assert word in e["message"], e["message"]
        assert_pong(ws)
        ws.send(message)  # and again: each one is answered and counted
        assert recv(ws)["code"] == code
        assert_pong(ws)
    st = status(addr)
    assert st["errors"][f"ws.{code}"] == 2
    assert st["error_messages"][f"ws.{code}"] == e["message"]
    assert "ws.internal_error" not in st["errors"]


def test_nesting_up_to_the_limit_and_a_whole_buffer_bucket_are_accepted(server):
    _, dev, addr = server
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb(ping_with(nested(31))))  # 32 levels with the message's map
        assert recv(ws) == {"type": "pong"}
        ws.send(json.dumps(ping_with(nested(31))))
        assert recv(ws) == {"type": "pong"}
        ws.send(
            msgpack.packb(
                {
                    "type": "subscribe",
                    "device": "dev",
                    "display_rate_hz": MIN_DISPLAY_HZ,
                    "fps": 0.1,
                }
            )
        )
        sub = recv(ws)
        assert sub["type"] == "subscribed" and 1 <= sub["bucket_size"] <= CAPACITY
        assert sub["bucket_size"] >= CAPACITY - 1 and sub["fps"] == pytest.approx(0.1)
        ws.send(msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 1e300}))
        assert recv(ws)["bucket_size"] == 1  # beyond the sample rate: raw samples
        dev.blocks.put(ramp_block(0, 10, 2))
        assert recv_type(ws, "data")["end_index"] == 10


def test_an_internal_fault_in_a_handler_is_answered_counted_and_the_connection_goes_on(
    server, monkeypatch
):
    _station, _, addr = server

    from rigwatch.web import views

    def broken_sensors(_station: object) -> dict:
        raise KeyError("sensor table")

    monkeypatch.setattr(views, "sensors", broken_sensors)
    with connect(f"ws://{addr}/ws") as ws:
        ws.send(msgpack.packb({"type": "get_sensors"}))
        e = recv(ws)
        assert e["type"] == "error" and e["code"] == "internal"
        assert "'get_sensors'" in e["message"] and "sensor table" not in e["message"]
        assert_pong(ws)
    st = status(addr)
    assert st["errors"]["ws.internal_error"] == 1
    assert "KeyError" in st["error_messages"]["ws.internal_error"]


def test_an_internal_fault_while_streaming_ends_that_subscription_only(server, monkeypatch):
    _, dev, addr = server

    def broken_build_frame(self, *_args, **_kwargs):
        raise ZeroDivisionError("bucket")

    with connect(f"ws://{addr}/ws") as ws:
        monkeypatch.setattr(live.Subscription, "build_frame", broken_build_frame)
        ws.send(msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 1000}))
        assert recv(ws)["type"] == "subscribed"
        dev.blocks.put(ramp_block(0, 10, 2))
        e = recv(ws)
        assert e["type"] == "error" and e["code"] == "internal" and e["device"] == "dev"
        assert_pong(ws)
        monkeypatch.undo()
        ws.send(msgpack.packb({"type": "subscribe", "device": "dev", "display_rate_hz": 1000}))
        assert recv(ws)["type"] == "subscribed"
        dev.blocks.put(ramp_block(10, 10, 2))
        m = recv_type(ws, "data")
        assert (m["seq"], m["start_index"], m["end_index"]) == (0, 10, 20)
    assert status(addr)["errors"]["ws.internal_error"] == 1


def send_10_mb(addr: str) -> None:
    with connect(f"ws://{addr}/ws") as ws:
        assert_pong(ws)
        with pytest.raises(ConnectionClosed):  # beyond the server's limit of 1 MiB
            ws.send(b"\x00" * (10 << 20))
            ws.recv(timeout=10)


def send_text_not_utf8(addr: str) -> None:
    with connect(f"ws://{addr}/ws") as ws:
        assert_pong(ws)
        ws.send(b"\xff\xfe{", text=True)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007


def send_unmasked_frame(addr: str) -> None:
    host, port = addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = s.recv(4096)
            assert chunk, "no handshake response"
            received += chunk
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        s.sendall(b"\x81\x04ping")  # a client frame must be masked (RFC 6455 5.1)
        while chunk := s.recv(4096):
            rest += chunk
        assert rest[0] == 0x88 and int.from_bytes(rest[2:4], "big") == 1002  # close frame


@pytest.mark.parametrize(
    ("probe", "counter", "code"),
    [
        (send_10_mb, "ws.closed_oversized", 1009),
        (send_text_not_utf8, "ws.closed_invalid_data", 1007),
        (send_unmasked_frame, "ws.closed_protocol_error", 1002),
    ],
)
def test_input_the_websocket_layer_refuses_closes_the_connection_and_is_counted(
    server, probe, counter, code
):
    station, _, addr = server
    probe(addr)
    wait_until(lambda: station.counters.get(counter) == 1)
    st = status(addr)
    assert st["errors"][counter] == 1
    assert f"closed with code {code}" in st["error_messages"][counter]
    assert "ws.internal_error" not in st["errors"]
    wait_until(lambda: status(addr)["live"]["clients"] == 0)
    with connect(f"ws://{addr}/ws") as ws:  # the server goes on
        assert_pong(ws)


def test_connections_beyond_max_clients_are_refused_and_counted(tmp_path: Path):
    station, _ = make_station(tmp_path, max_clients=2)
    with serve(station) as addr:
        url = f"ws://{addr}/ws"
        with connect(url) as a, connect(url) as b:
            assert_pong(a)
            assert_pong(b)
            with connect(url) as c, pytest.raises(ConnectionClosed) as refused:
                c.recv(timeout=10)
            assert refused.value.rcvd is not None and refused.value.rcvd.code == 1013
            assert "2 live clients" in refused.value.rcvd.reason
            assert_pong(a)
            assert_pong(b)
            a.close()
            wait_until(lambda: status(addr)["live"]["clients"] == 1)
            with connect(url) as d:  # a freed place is taken again
                assert_pong(d)
        st = status(addr)
    assert st["errors"]["ws.refused_max_clients"] == 1
    assert "2 live clients" in st["error_messages"]["ws.refused_max_clients"]


FAST_RATE_HZ = 1_000_000.0
BLOCK = 20_000  # rows of 2 channels: a 320 kB raw frame


def test_a_client_that_never_reads_is_evicted_while_another_keeps_every_frame(tmp_path: Path):
    station, dev = make_station(
        tmp_path,
        rate_hz=FAST_RATE_HZ,
        capacity=1_000_000,
        send_timeout_s=1.0,
        max_frame_bytes=1 << 20,
    )
    sub = msgpack.packb(
        {"type": "subscribe", "device": "dev", "display_rate_hz": FAST_RATE_HZ, "fps": 100}
    )
    with serve(station) as addr:
        url = f"ws://{addr}/ws"
        # the stalled client buffers at most one message of its own, then TCP pushes back
        with connect(url, max_size=None, max_queue=1) as stalled, connect(url) as fast:
            stalled.send(sub)
            fast.send(sub)
            assert recv(fast)["type"] == "subscribed"
            pushed = got = seq = 0
            evicted_at: int | None = None
            evicted_after_s = math.inf
            close_seen = None
            started = time.monotonic()
            while evicted_at is None or pushed < evicted_at + 20 * BLOCK:
                dev.blocks.put(ramp_block(pushed, BLOCK, 2))
                pushed += BLOCK
                while got < pushed:  # the other client receives every row, in order
                    m = recv_type(fast, "data")
                    assert (m["seq"], m["start_index"], m["missed"]) == (seq, got, 0)
                    seq += 1
                    got = m["end_index"]
                if evicted_at is None and station.counters.get("ws.evicted_slow_client"):
                    evicted_at = pushed
                    evicted_after_s = time.monotonic() - started
                    # the stalled client now reads: what was buffered, then the close frame
                    with pytest.raises(ConnectionClosed) as closed:
                        while True:
                            stalled.recv(timeout=10)
                    close_seen = closed.value.rcvd
                assert time.monotonic() - started < 30, "the stalled client was never evicted"
            assert_pong(fast)
        assert evicted_after_s < 15
        assert close_seen is not None and close_seen.code == 1008
        assert "did not read" in close_seen.reason and "1 s" in close_seen.reason
        assert station.streams["dev"].stats.rows == pushed
        wait_until(lambda: status(addr)["live"]["clients"] == 0)
        st = status(addr)
    assert st["errors"]["ws.evicted_slow_client"] == 1
    assert "ws.internal_error" not in st["errors"]
