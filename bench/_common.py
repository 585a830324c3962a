"""Helpers shared by benchmarks: run a station process, update docs/benchmarks.md."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StationProcess:
    """``rigwatch station run CONFIG`` in a child process, on a free loopback port."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
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
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.base}/api/hello", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"station did not start; see {log}") from None
                time.sleep(0.1)

    def status(self) -> dict:
        return httpx.get(f"{self.base}/api/status", timeout=10).json()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc


def update_docs(section: str, markdown: str) -> None:
    """Replace the block between ``<!-- section:begin -->`` and ``<!-- section:end -->``."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text:
        text = re.sub(
            re.escape(begin) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def machine_line() -> str:
    import platform

    import psutil

    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
