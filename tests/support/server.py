"""A real station server (uvicorn on a free loopback port) for tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from rigwatch.station import Station
from rigwatch.web.station_app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(station: Station) -> Iterator[str]:
    """Run ``station`` behind uvicorn in a thread; yield its base URL; stop it after."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(station),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            ws_max_size=1 << 20,
            ws_per_message_deflate=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()

    def wait_started() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.01)

    waiter = threading.Thread(target=wait_started)
    waiter.start()
    waiter.join(20)
    assert server.started, "server did not start"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
