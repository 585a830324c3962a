"""A station run as a child process (``python -m rigwatch station run``), for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from support.server import free_port

READY_LINE = "Uvicorn running on"  # printed once the socket listens
ROOT = Path(__file__).resolve().parents[2]


class StationProcess:
    """Start a station process on a free port and wait for uvicorn's readiness line.

    The process's output is read line by line by a thread (so the pipe never fills) and kept
    in :attr:`lines`; readiness is an event set when the line appears, not a polling loop.

    Args:
        config: the station's TOML file.
        timeout_s: how long to wait for readiness.
        args: more arguments of ``rigwatch station run`` (``--simulate``...).

    Raises:
        RuntimeError: the process exited or was not ready within ``timeout_s``; the message
            holds its output.
    """

    def __init__(self, config: Path, timeout_s: float = 60.0, args: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._ended = threading.Event()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rigwatch",
                "station",
                "run",
                str(config),
                "--port",
                str(self.port),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._watch, daemon=True).start()
        if not self._ready.wait(timeout_s) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(f"station not ready within {timeout_s} s:\n{self.output()}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY_LINE in line:
                self._ready.set()

    def _watch(self) -> None:
        self.proc.wait()
        self._ended.set()
        self._ready.set()  # wake a waiter: the process is gone

    def output(self, last: int = 40) -> str:
        """The last ``last`` lines the process printed."""
        return "".join(self.lines[-last:])

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGINT (a clean shutdown: open segments are closed), then wait; kill if stuck."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: nothing is flushed or closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
