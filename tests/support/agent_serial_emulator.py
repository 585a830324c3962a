"""Emulator of today's machine sensor interface on the master side of a pseudo-terminal (POSIX).

The interface answers text queries terminated by CR LF (``TEMP?``, ``PRESSURE?``, ``SPEED?``)
with one number per line. The emulator answers from :attr:`answers` (query -> text sent back,
``None``: stay silent, so the reader times out), optionally after :attr:`delays_s` (query ->
seconds; an answer later than the reader's timeout arrives as stale input).

The slave path (``start()`` returns it) is opened with pyserial like ``COM1``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import tty


class SensorInterfaceEmulator:
    """A fake sensor interface behind a pty.

    Attributes:
        answers: query -> answer text (without line ending) or None (no answer).
        delays_s: query -> delay before answering.
        queries: every query received, in order (a queue, to wait on with a timeout).
    """

    def __init__(self, answers: dict[str, str | None] | None = None) -> None:
        self.answers: dict[str, str | None] = dict(
            answers or {"TEMP?": "42.5", "PRESSURE?": "2.1", "SPEED?": "1450"}
        )
        self.delays_s: dict[str, float] = {}
        self.queries: queue.Queue[str] = queue.Queue()
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the pty and start answering; returns the slave's path."""
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._thread = threading.Thread(target=self._serve, name="sensor-emulator", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        """Stop answering and close the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> SensorInterfaceEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        assert self._master is not None
        pending = b""
        timers: list[threading.Timer] = []
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 1024)
            except OSError:
                break
            pending += chunk
            while b"\r\n" in pending:
                line, pending = pending.split(b"\r\n", 1)
                query = line.decode("ascii", errors="replace")
                self.queries.put(query)
                answer = self.answers.get(query)
                if answer is None:
                    continue
                data = answer.encode("ascii") + b"\r\n"
                delay = self.delays_s.get(query, 0.0)
                if delay > 0:
                    t = threading.Timer(delay, self._write, args=(data,))
                    t.daemon = True
                    timers.append(t)
                    t.start()
                else:
                    self._write(data)
        for t in timers:
            t.cancel()

    def _write(self, data: bytes) -> None:
        if self._master is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):
                os.write(self._master, data)
