"""Helpers for the pipeline manifest's tests: a controlled clock, PostgreSQL reachability with
the services rule, a unique schema per test, and worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rigwatch.timefmt import NS_PER_S
from support import services

WORKER = Path(__file__).with_name("pipeline_manifest_worker.py")


class FakeClock:
    """A wall clock in ns that moves only when told to."""

    def __init__(self, start_ns: int = 1_700_000_000 * NS_PER_S) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += round(seconds * NS_PER_S)


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a schema of its own for one test, dropped afterwards."""
    with services.pg_schema("rw_manifest_") as found:
        yield found


@dataclass
class WorkerProcess:
    """A manifest worker in a child process (``pipeline_manifest_worker.py``): it prints one
    JSON line when ready, waits for a line on stdin, works, and prints one JSON line."""

    proc: subprocess.Popen[str]

    @classmethod
    def start(cls, args: Sequence[str]) -> WorkerProcess:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return cls(proc)

    def read(self) -> dict[str, Any]:
        """The next JSON line (blocks; the child's stderr in the error if it ended)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"worker ended (rc {self.proc.returncode}): {err}")
        return json.loads(line)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = 60) -> None:
        self.proc.wait(timeout=timeout_s)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
