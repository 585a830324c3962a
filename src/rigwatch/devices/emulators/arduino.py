"""Emulator of the test stand's Arduino Uno driving step motors, on a pseudo-terminal.

It answers ``motor_id:angle`` lines as today's firmware does: ``Motor <id> Yeni Pozisyon:
<angle>`` once the (instant) move is done; anything else ``Hata: gecersiz komut <line>``
("error: invalid command"). Setting :attr:`ArduinoEmulator.silent` makes it stop answering.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import select
import threading
import tty

log = logging.getLogger(__name__)

MOVE_RE = re.compile(r"(\d+):([+-]?\d+(?:\.\d*)?)")


class ArduinoEmulator:
    """A fake Arduino with step motors behind a pty.

    Attributes:
        commands: every line received, in order.
        angles: ``{motor_id: angle}`` after each acknowledged move.
        silent: when True, lines are logged but not answered (a hung board).
    """

    def __init__(self) -> None:
        self.commands: queue.Queue[str] = queue.Queue()
        self.angles: dict[int, float] = {}
        self.silent = False
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Create the pty and start answering; returns the tty path to open."""
        if self.path is not None:
            return self.path
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._closing.clear()
        self._thread = threading.Thread(target=self._serve, name="arduino-emulator", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        """Stop answering and close the pty; safe to call twice."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self.path = None

    def __enter__(self) -> ArduinoEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        buf = b""
        while not self._closing.is_set():
            fd = self._master
            if fd is None:
                return
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(fd, 1024)
            except OSError:
                return
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="backslashreplace").strip()
                if line:
                    self._answer(fd, line)

    def _answer(self, fd: int, line: str) -> None:
        self.commands.put(line)
        if self.silent:
            return
        m = MOVE_RE.fullmatch(line)
        if m is None:
            reply = f"Hata: gecersiz komut {line}"
        else:
            motor, angle = int(m[1]), float(m[2])
            self.angles[motor] = angle
            reply = f"Motor {motor} Yeni Pozisyon: {angle:g}"
        with contextlib.suppress(OSError):
            os.write(fd, (reply + "\r\n").encode("utf-8"))
