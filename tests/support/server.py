"""A real station server (uvicorn on a free loopback port) for tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from rigwatch.station import Station
from rigwatch.web.security import AccessPolicy
from rigwatch.web.station_app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(station: Station, access: AccessPolicy | None = None) -> Iterator[str]:
    """Run ``station`` behind uvicorn in a thread; yield its address; stop it after.

    The listening socket is bound before uvicorn starts, so a client may connect at once: its
    connection waits in the socket's backlog until the app has started (no readiness polling).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(station, access=access),
            log_level="warning",
            ws_max_size=1 << 20,
            ws_per_message_deflate=False,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
