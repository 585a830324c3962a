"""Starting stage processes cheaply: forked from a server process that imported the stages'
modules once (:mod:`multiprocessing`'s ``forkserver``).

A stage process started as a new interpreter spends seconds of CPU importing SQLAlchemy,
Alembic, NumPy, SciPy and the analysis plugins before it claims anything; on a Raspberry Pi,
or with a stage restarted after every crash, that dominates. Forked from the server, a stage
process starts in milliseconds and shares the imported modules' memory (copy-on-write). Each
stage is still its own process, with its own connections and signal handlers, killed and
restarted alone. The server holds no database connection or open file of the pipeline.

:class:`StageProcess` offers the part of :class:`subprocess.Popen` the supervisor uses.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import subprocess
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from rigwatch.pipeline.config import StageName

log = logging.getLogger(__name__)

COMMON_MODULES = (
    "rigwatch.pipeline.stages.run",
    "rigwatch.pipeline.stages.build",
    "rigwatch.pipeline.manifest",
    "sqlalchemy.dialects.sqlite",
)
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "collector": ("rigwatch.pipeline.stages.collector", "PIL.Image", "PIL.PngImagePlugin"),
    "processor": ("rigwatch.pipeline.stages.processor", "rigwatch.pipeline.analysis"),
    "reporter": (
        "rigwatch.pipeline.stages.reporter",
        "rigwatch.pipeline.stages.handlers.csv_plot",
    ),
    "compressor": ("rigwatch.pipeline.stages.compressor", "gzip", "zstandard"),
    "syncer": ("rigwatch.pipeline.stages.syncer",),
    "retention": ("rigwatch.pipeline.stages.retention",),
}
"""What the server imports for each stage it will start."""


def _stage_main(stage: StageName, config_path: str, name: str, log_path: str) -> None:
    """A forked stage process: output to its log file, then the stage until a stop signal."""
    import sys

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    from rigwatch.pipeline.stages.run import main

    main([stage, config_path, "--name", name])


class StageProcess:
    """A stage process forked from the server (the subset of ``Popen`` the supervisor uses)."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code (``-N`` for signal N), ``None`` while it runs."""
        code = self._process.exitcode
        return None if code is None else int(code)

    def poll(self) -> int | None:
        """The exit code once it exited, else ``None``."""
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit.

        Raises:
            subprocess.TimeoutExpired: still running after ``timeout`` seconds.
        """
        self._process.join(timeout)
        code = self.returncode
        if code is None:
            raise subprocess.TimeoutExpired(f"stage process {self.pid}", timeout or 0.0)
        return code

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` (nothing when it already exited)."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL it."""
        self.send_signal(signal.SIGKILL)


class Launcher:
    """Starts stage processes forked from a server that imported ``stages``' modules."""

    def __init__(self, stages: list[StageName]) -> None:
        self._ctx: ForkServerContext = multiprocessing.get_context("forkserver")
        modules = list(COMMON_MODULES)
        for stage in dict.fromkeys(stages):
            modules += STAGE_MODULES.get(stage, ())
        self._ctx.set_forkserver_preload(modules)

    def prepare(self) -> None:
        """Start the server now (it imports the modules while the caller does other work)."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def start(self, stage: StageName, config_path: Path, name: str, log_path: Path) -> StageProcess:
        """Start stage ``stage`` as process ``name``, its output appended to ``log_path``."""
        process = self._ctx.Process(
            target=_stage_main,
            args=(stage, str(config_path), name, str(log_path)),
            name=name,
            daemon=False,
        )
        process.start()
        return StageProcess(process)
