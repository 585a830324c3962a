"""Starting stage processes cheaply: forked from the supervisor, which imported the modules
every stage shares (configuration, manifest, SQLAlchemy, Alembic, the stage loop) once.

A stage process started as a new interpreter spends seconds of CPU importing those modules
before it claims anything, and keeps its own private copy of them (about 55 MB on x86_64);
on a Raspberry Pi, or with a stage restarted after every crash, both matter. Forked from the
supervisor, a stage starts in milliseconds and shares those pages with the supervisor and
every other stage (copy-on-write): it pays only for the pages it writes to and for what it
imports itself. A separate fork server (``multiprocessing``'s ``forkserver``) would hold a
second copy of the same modules next to the supervisor's, so there is none.

What only one stage needs is imported after the fork, by that stage, when it needs it:
Pillow and NumPy in the processor's grating analysis (SciPy only for rotated images,
SciPy's signal processing and PyArrow only for the vibration analysis), matplotlib in the
reporter only when it draws its plot, asyncua and aiomqtt only when those handlers are
configured, zstandard in the compressor. A module imported before the fork would sit in
every stage process; imported after it, it costs the same once and nothing elsewhere. The
supervisor imports none of them (``tests/unit/pipeline/test_pipeline_lean_imports.py``).

Forking is safe here because:

- the supervisor runs one thread (a fork copies only the calling thread, so a lock held by
  another thread would stay locked in the child): :meth:`Launcher.start` warns otherwise;
- it holds no database connection when it forks (the supervisor closes the manifest's
  pooled connections first, :meth:`rigwatch.pipeline.supervisor.Supervisor._start`), so no
  stage inherits a connection it could use or close under the supervisor;
- SIGINT and SIGTERM are blocked across the fork; the child restores their default action
  before it unblocks them, so a stop signal that comes before the stage installed its own
  handlers ends it at once (it holds no lease yet) instead of reaching the supervisor's
  handler copied into it;
- the child first freezes the garbage collector's view of the inherited objects
  (:func:`gc.freeze`): its collections never walk them, so they do not write to (and copy)
  the shared pages; the supervisor freezes its own after the imports for the same reason.

Each stage is still its own process, with its own connections, log file and signal handlers,
killed and restarted alone. :class:`StageProcess` offers the part of
:class:`subprocess.Popen` the supervisor uses.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import subprocess
import threading
from multiprocessing.context import ForkContext
from pathlib import Path
from typing import Any

from rigwatch.pipeline.config import StageName

log = logging.getLogger(__name__)

COMMON_MODULES = (
    "rigwatch.pipeline.stages.run",
    "rigwatch.pipeline.stages.build",
    "rigwatch.pipeline.stages.worker",
    "rigwatch.pipeline.manifest",
    "sqlalchemy.dialects.sqlite",
)
"""What the supervisor imports before it forks: what every stage process uses."""

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
"""Blocked across a fork (see the module docstring)."""


def _stage_main(stage: StageName, config_path: str, name: str, log_path: str) -> None:
    """A forked stage process: output to its log file, then the stage until a stop signal."""
    import sys

    gc.freeze()  # the inherited objects: never walked by this process's collections
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    root = logging.getLogger()
    for handler in list(root.handlers):  # the supervisor's: the stage configures its own
        root.removeHandler(handler)
    from rigwatch.pipeline.stages.run import main

    main([stage, config_path, "--name", name])


class StageProcess:
    """A stage process forked from the supervisor (the subset of ``Popen`` it uses)."""

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
    """Starts stage processes forked from the calling process (the supervisor)."""

    def __init__(self) -> None:
        self._ctx: ForkContext = multiprocessing.get_context("fork")
        self._prepared = False

    def prepare(self) -> None:
        """Import :data:`COMMON_MODULES` and freeze the garbage collector's view of what the
        process holds so far (once; :meth:`start` does it when not done yet)."""
        if self._prepared:
            return
        for module in COMMON_MODULES:
            importlib.import_module(module)
        gc.collect()
        gc.freeze()
        self._prepared = True

    def start(self, stage: StageName, config_path: Path, name: str, log_path: Path) -> StageProcess:
        """Start stage ``stage`` as process ``name``, its output appended to ``log_path``.

        The caller holds no database connection (see the module docstring).
        """
        self.prepare()
        if threading.active_count() > 1:
            log.warning(
                "forking %s from a process with %d threads: a lock another thread holds "
                "stays locked in the stage process",
                name,
                threading.active_count(),
            )
        process = self._ctx.Process(
            target=_stage_main,
            args=(stage, str(config_path), name, str(log_path)),
            name=name,
            daemon=False,
        )
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return StageProcess(process)
