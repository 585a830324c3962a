"""The supervisor: runs every stage as its own process, restarts a crashed one with backoff,
and stops them all gracefully; ``up``, ``down`` and ``status`` for the command line.

``up`` starts the supervisor in the background (a new session, so closing the terminal or the
SSH session leaves it running, as today's pipeline) and returns once it runs. The supervisor
writes ``supervisor.pid`` and ``supervisor.json`` in ``state_dir``; every stage writes its
own ``<name>.status.json`` there, and its output goes to ``<name>.log``.

Stage processes are forked from the supervisor, which imported the modules they all share
once (:mod:`.launcher`), so starting or restarting one costs milliseconds and the stages share
those modules' memory; what only one stage needs it imports itself, after the fork. The
supervisor holds no database connection when it forks: it closes the manifest's pooled
connections before every start.

A stage that exits (crash, SIGKILL, an error at start) is started again after a backoff that
doubles from ``restart_min_s`` to ``restart_max_s`` and falls back to the minimum once the
stage ran ``stable_s`` without exiting. Once it is reaped, its leases end at once (the next
claimer of its stage takes the items over, the attempt counted) and the results lines it
recorded in the manifest but did not append to the JSONL log are appended
(:mod:`.recovery`). ``down`` sends SIGTERM to the supervisor, which sends SIGTERM to every stage
(each finishes its current item and releases its leases), waits ``stop_timeout_s``, then
SIGKILLs what is left.

Works wherever Python's ``subprocess`` and POSIX signals do (Linux, Raspberry Pi OS).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil  # type: ignore[import-untyped]

from rigwatch.errors import PipelineError, RigwatchError
from rigwatch.pipeline.config import PipelineConfig, StageName, load_pipeline_config
from rigwatch.pipeline.stages.status import read_status, status_path, write_json_atomically
from rigwatch.pipeline.stages.worker import stop_on_signals, wait_until
from rigwatch.timefmt import iso_utc

if TYPE_CHECKING:
    from rigwatch.pipeline.launcher import Launcher, StageProcess
    from rigwatch.pipeline.manifest import Manifest

log = logging.getLogger(__name__)

PID_FILE = "supervisor.pid"
STATE_FILE = "supervisor.json"
POLL_S = 0.2
MODULE = "rigwatch.pipeline.supervisor"


@dataclass
class Child:
    """One stage process under the supervisor."""

    stage: StageName
    name: str
    proc: subprocess.Popen[bytes] | StageProcess | None = None
    restarts: int = 0
    backoff_s: float = 0.0
    next_start: float = 0.0
    started_at: float = 0.0
    last_exit: int | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return None if self.proc is None else self.proc.pid

    def state(self) -> dict[str, Any]:
        """What ``supervisor.json`` says about it."""
        running = self.proc is not None and self.proc.poll() is None
        return {
            "stage": self.stage,
            "pid": self.pid if running else None,
            "state": "running" if running else "restarting",
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "restart_in_s": (
                None if running else round(max(0.0, self.next_start - time.monotonic()), 2)
            ),
        }


def stage_command(stage: StageName, config_path: Path, name: str) -> list[str]:
    """The command line of a stage process."""
    return [
        sys.executable,
        "-m",
        "rigwatch.pipeline.stages",
        stage,
        str(config_path),
        "--name",
        name,
    ]


def process_names(config: PipelineConfig) -> list[tuple[StageName, str]]:
    """``(stage, process name)`` of every stage process: ``processor``, ``processor-2``..."""
    out: list[tuple[StageName, str]] = []
    for stage in config.enabled_stages():
        n = config.processor.workers if stage == "processor" else 1
        out += [(stage, stage if i == 0 else f"{stage}-{i + 1}") for i in range(n)]
    return out


class Supervisor:
    """Runs the stage processes of one pipeline config (see the module docstring).

    Args:
        config_path: the pipeline's TOML config; config: it, already loaded.
        fork_stages: start stage processes forked from this process, which imported the
            modules they share once (:mod:`.launcher`: a start or restart costs
            milliseconds, not seconds of imports, and the stages share those pages); false:
            each as a new interpreter (``python -m rigwatch.pipeline.stages``). Forking needs
            this process to run one thread (as ``python -m rigwatch.pipeline.supervisor``).
    """

    def __init__(
        self, config_path: Path, config: PipelineConfig | None = None, fork_stages: bool = True
    ) -> None:
        self.config_path = Path(config_path).resolve()
        self.config = config or load_pipeline_config(self.config_path)
        self.state_dir = Path(self.config.paths.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        sup = self.config.supervisor
        self.children = [
            Child(stage, name, backoff_s=sup.restart_min_s)
            for stage, name in process_names(self.config)
        ]
        self.state = "starting"
        self._manifest: Manifest | None = None
        self._launcher: Launcher | None = None
        if fork_stages:
            from rigwatch.pipeline.launcher import Launcher

            self._launcher = Launcher()

    # -- children -----------------------------------------------------------------------------

    def _start(self, child: Child) -> None:
        log_path = self.state_dir / f"{child.name}.log"
        if self._launcher is not None:
            self._close_connections()  # a forked stage must not inherit one
            child.proc = self._launcher.start(child.stage, self.config_path, child.name, log_path)
        else:
            if child.log_file is None:
                child.log_file = open(log_path, "ab")  # noqa: SIM115
            child.proc = subprocess.Popen(
                stage_command(child.stage, self.config_path, child.name),
                stdin=subprocess.DEVNULL,
                stdout=child.log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def _check(self, child: Child) -> bool:
        """Restart ``child`` when it exited and its backoff passed; True when changed."""
        now = time.monotonic()
        if child.proc is not None:
            code = child.proc.poll()
            if code is None:
                if now - child.started_at >= self.config.supervisor.stable_s:
                    child.backoff_s = self.config.supervisor.restart_min_s
                return False
            child.last_exit = code
            child.proc = None
            self._recover(child)
            child.next_start = now + child.backoff_s
            log.warning(
                "%s exited with %s; restarting in %.1f s", child.name, code, child.backoff_s
            )
            child.backoff_s = min(child.backoff_s * 2, self.config.supervisor.restart_max_s)
            return True
        if now >= child.next_start:
            child.restarts += 1
            self._start(child)
            return True
        return False

    def _stop_children(self) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.supervisor.stop_timeout_s
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time: killed", child.name)
                child.proc.kill()
                child.proc.wait()
            child.last_exit = child.proc.returncode
            child.proc = None
        for child in self.children:
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None

    # -- state ---------------------------------------------------------------------------------

    def write_state(self) -> None:
        """Write ``supervisor.json`` (atomically, as the stages' status files).

        Raises:
            OSError: it cannot be written.
        """
        data = {
            "pid": os.getpid(),
            "config": str(self.config_path),
            "state": self.state,
            "updated": iso_utc(time.time_ns()),
            "children": {c.name: c.state() for c in self.children},
        }
        write_json_atomically(self.state_dir / STATE_FILE, data, indent=1)

    def _open_manifest(self) -> Manifest | None:
        from rigwatch.pipeline.stages.build import open_manifest

        if self._manifest is None:
            try:
                self._manifest = open_manifest(self.config)
            except PipelineError as exc:
                log.warning("cannot open the manifest: %s", exc)
        return self._manifest

    def _close_connections(self) -> None:
        """Close the manifest's pooled database connections (it reconnects when used)."""
        if self._manifest is not None:
            self._manifest.close()

    def _catch_up_log(self) -> None:
        manifest = self._open_manifest()
        if manifest is None:
            return
        try:
            n = manifest.catch_up_log()
        except PipelineError as exc:
            log.warning("cannot catch the results log up: %s", exc)
            return
        if n:
            log.info("results log: %d lines caught up from the manifest", n)

    def _recover(self, child: Child) -> None:
        """End the leases of a stage process that exited and append the results lines it did
        not (see :mod:`.recovery`)."""
        from sqlalchemy.exc import SQLAlchemyError

        from rigwatch.pipeline.recovery import catch_up_lines_of, expire_leases_of

        st = read_status(status_path(self.state_dir, child.name)) or {}
        owner = st.get("owner")
        manifest = self._open_manifest()
        if not owner or manifest is None:
            return
        try:
            n = expire_leases_of(manifest, str(owner))
            if n:
                log.info("%s: %d leases of %s ended", child.name, n, owner)
            catch_up_lines_of(manifest, str(owner), last=4 * self.config.manifest.batch)
        except (PipelineError, SQLAlchemyError, OSError) as exc:
            log.warning("%s: recovery after its exit failed: %s", child.name, exc)
        except Exception:  # a bug here must not take the supervisor (and restarts) down
            log.exception("%s: recovery after its exit failed", child.name)

    def run(self, stop: threading.Event) -> None:
        """Start the stages and keep them running until ``stop`` is set, then stop them."""
        pid_file = self.state_dir / PID_FILE
        pid_file.write_text(str(os.getpid()))
        try:
            self._catch_up_log()
            if self._launcher is not None:
                self._launcher.prepare()  # after the catch-up: what it loaded is shared too
            for child in self.children:
                self._start(child)
            self.state = "running"
            self.write_state()
            while not stop.wait(POLL_S):
                if any([self._check(c) for c in self.children]):
                    self.write_state()
        finally:
            # also when the loop failed: no stage process outlives its supervisor
            self.state = "stopping"
            self.write_state()
            self._stop_children()
            if self._manifest is not None:
                self._manifest.close()
            self.state = "stopped"
            self.write_state()
            pid_file.unlink(missing_ok=True)


# -- up, down, status ------------------------------------------------------------------------


def _running_pid(state_dir: Path) -> int | None:
    """The pid of a live supervisor of ``state_dir``, or ``None``."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmd = " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return pid if MODULE in cmd else None


def up(config_path: Path, timeout_s: float = 30.0) -> int:
    """Start the supervisor in the background; returns its pid once its stages run.

    Raises:
        PipelineError: already running, or it did not come up (the message points at its log).
    """
    config = load_pipeline_config(config_path)
    state_dir = Path(config.paths.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    running = _running_pid(state_dir)
    if running is not None:
        raise PipelineError(f"the pipeline is already running (supervisor pid {running})")
    log_path = state_dir / "supervisor.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, str(Path(config_path).resolve())],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def came_up() -> bool:
        state = read_status(state_dir / STATE_FILE)
        return bool(state and state.get("pid") == proc.pid and state.get("state") == "running")

    if not wait_until(lambda: came_up() or proc.poll() is not None, timeout_s, 0.1) or (
        proc.poll() is not None
    ):
        raise PipelineError(f"the supervisor did not start; see {log_path}")
    return proc.pid


def down(config_path: Path, timeout_s: float | None = None) -> bool:
    """Stop a running supervisor (and its stages). Returns False when none was running.

    Raises:
        PipelineError: it did not stop within the timeout.
    """
    config = load_pipeline_config(config_path)
    state_dir = Path(config.paths.state_dir)
    pid = _running_pid(state_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    limit = timeout_s if timeout_s is not None else config.supervisor.stop_timeout_s + 10

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    if not wait_until(gone, limit, 0.1):
        raise PipelineError(f"the supervisor (pid {pid}) did not stop within {limit} s")
    return True


def status(config_path: Path, with_counts: bool = True) -> dict[str, Any]:
    """The supervisor's state, every stage's status file and the manifest's counts per stage
    and status (JSON-ready) of the config at ``config_path`` (see :func:`status_of`).

    Raises:
        ConfigError: the config cannot be read.
    """
    return status_of(load_pipeline_config(config_path), with_counts)


def status_of(config: PipelineConfig, with_counts: bool = True) -> dict[str, Any]:
    """:func:`status` of a config already loaded: reads the state files (and the manifest),
    never the config file.

    Returns:
        ``{"running": bool, "supervisor": {...}, "stages": {process name: {...} | None}}``
        (``supervisor``: ``supervisor.json``, ``{}`` when missing; ``stages``: each process's
        status file, ``None`` when missing) plus, with ``with_counts``, ``"counts": {stage:
        {status: n}}`` or ``"counts_error": reason``.
    """
    state_dir = Path(config.paths.state_dir)
    sup = read_status(state_dir / STATE_FILE) or {}
    running = _running_pid(state_dir) is not None
    stages = {
        name: read_status(status_path(state_dir, name)) for _stage, name in process_names(config)
    }
    out: dict[str, Any] = {
        "running": running,
        "supervisor": sup,
        "stages": stages,
    }
    if with_counts:
        from rigwatch.pipeline.stages.build import open_manifest

        try:
            manifest = open_manifest(config)
            try:
                out["counts"] = manifest.counts()
            finally:
                manifest.close()
        except RigwatchError as exc:
            out["counts_error"] = str(exc)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m rigwatch.pipeline.supervisor CONFIG``: run the supervisor in the
    foreground until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("config", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` writes every thread's stack to the log
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        Supervisor(args.config).run(stop)
    except RigwatchError as exc:
        log.error("supervisor cannot run: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
