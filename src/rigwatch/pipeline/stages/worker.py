"""The loop every stage process runs: claim a batch with a lease, heartbeat it, handle each
item, record the outcomes; on SIGINT/SIGTERM finish the current item, record what is done and
give the rest back.

Two kinds of stage share it:

- :class:`ClaimingStage` (processor, reporter, compressor, syncer, retention) works on items
  of one manifest stage: :meth:`ClaimingStage.handle` returns the result to record (and, for
  the compressor, the artifact's new path, size and checksum); it raises
  :class:`~rigwatch.errors.BadItem` for an item no retry will fix (the stage ends ``failed``
  at once with the reason), :class:`~rigwatch.errors.StageWaiting` when something outside the
  stage is missing (the items go back, the stage waits and says why), and anything else for a
  failure worth retrying (the manifest's backoff).
- :class:`StageLoop` (the collector) runs a cycle at an interval.

An idle worker asks the manifest, with a read, when its stage next has an item due
(:func:`~rigwatch.pipeline.stages.queries.next_due_ns`) and claims only then: claiming is a
write transaction, and on SQLite idle workers claiming in a loop would queue for the one
write lock ahead of the workers that have work to record.

Crash safety: a worker killed at any point leaves leased rows that another worker reclaims
when their lease expires (at once under the supervisor, which ends a dead process's leases);
the work of a stage is idempotent (a file rewritten whole under a temporary name, a copy
verified, a deletion of a missing file accepted, deliveries checked against a ledger), so
doing it twice records it once.

Completions of one batch are recorded in one transaction after the batch (at most one batch of
work is redone after a crash); work that must follow the commit (deleting a compressed file's
original) runs in :attr:`Handled.after_commit`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rigwatch.errors import BadItem, LeaseLost, PipelineError, StageWaiting
from rigwatch.pipeline.manifest import ArtifactChanges, Lease, Manifest, worker_id
from rigwatch.pipeline.stages.queries import next_due_ns
from rigwatch.pipeline.stages.status import StatusFile
from rigwatch.recordings.files import fsync_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker claims.

    Attributes:
        batch: items per claim; lease_s: lease duration; heartbeat_s: renewal interval (well
            within the lease); poll_s: wait after an empty claim or while waiting.
    """

    batch: int = 8
    lease_s: float = 60.0
    heartbeat_s: float = 20.0
    poll_s: float = 1.0


@dataclass
class Handled:
    """What handling an item produced.

    Attributes:
        result: the stage's result (JSON object), recorded with the completion.
        changes: changes to the artifact's own fields, in the same transaction.
        after_commit: run once the completion is recorded (not when the lease was lost).
    """

    result: Mapping[str, Any] = field(default_factory=dict)
    changes: ArtifactChanges | None = None
    after_commit: Callable[[], None] | None = None


class StageLoop:
    """A stage process's main loop with a status file and a stop event.

    Subclasses implement :meth:`cycle` (one round of work, returning how long to wait before
    the next) and may override :meth:`close`.
    """

    name = "stage"

    def __init__(self, status: StatusFile | None = None) -> None:
        self.status = status or StatusFile(None, self.name)

    def cycle(self, stop: threading.Event) -> float:
        """One round of work; returns the seconds to wait before the next round."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (connections, files)."""

    def run(self, stop: threading.Event) -> None:
        """Run cycles until ``stop`` is set; the current cycle always finishes."""
        try:
            while not stop.is_set():
                wait_s = self.cycle(stop)
                if wait_s > 0:
                    stop.wait(wait_s)
        finally:
            self.status.set("stopping")
            try:
                self.close()
            finally:
                self.status.set("stopped")


class ClaimingStage(StageLoop):
    """A worker of one manifest stage (see the module docstring).

    Args:
        manifest: the manifest (shared with the other stages).
        settings: batch, lease, heartbeat and poll times.
        status: the status file.
        owner: the lease owner id (default: a new :func:`worker_id` of :attr:`name`).
    """

    stage = "process"

    def __init__(
        self,
        manifest: Manifest,
        settings: WorkerSettings | None = None,
        status: StatusFile | None = None,
        owner: str | None = None,
    ) -> None:
        self.owner = owner or worker_id(self.name)
        super().__init__(status or StatusFile(None, self.name, self.owner))
        self.status.data["owner"] = self.owner
        self.manifest = manifest
        self.settings = settings or WorkerSettings()
        self._held: dict[int, Lease] = {}
        self._lost: set[int] = set()
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()

    # -- to implement ---------------------------------------------------------------------

    def ready(self) -> str | None:
        """``None`` when the stage can work now, else why it waits (checked before claiming)."""
        return None

    def claim_limit(self) -> int:
        """How many items to claim now (0: claim nothing this round)."""
        return self.settings.batch

    def handle(self, lease: Lease) -> Handled:
        """Do the stage's work on one item (see the module docstring for what to raise)."""
        raise NotImplementedError

    def after_batch(self) -> None:
        """Called after each batch's outcomes are recorded (the reporter redraws its plot)."""

    def sync_dir_before_commit(self, folder: Path) -> None:
        """Flush ``folder`` (the renames and deletions of a batch in it) once, before the
        batch's completions are recorded, instead of once per item."""
        self._dirs.add(folder)

    def _sync_dirs(self) -> None:
        for folder in sorted(self._dirs):
            fsync_dir(folder)
        self._dirs.clear()

    # -- the loop ---------------------------------------------------------------------------

    def cycle(self, stop: threading.Event) -> float:
        reason = self.ready()
        if reason is not None:
            self.status.set("waiting", reason)
            return self.settings.poll_s
        due_ns = next_due_ns(self.manifest, self.stage)
        if due_ns is None or due_ns > time.time_ns():
            # nothing to claim: ask again after the poll interval, or when an item is due
            # (a backoff ending) if that is sooner
            self.status.set("idle")
            if due_ns is None:
                return self.settings.poll_s
            return min(self.settings.poll_s, max(0.0, (due_ns - time.time_ns()) / 1e9))
        limit = min(self.claim_limit(), self.settings.batch)
        if limit <= 0:
            self.status.set("idle")
            return self.settings.poll_s
        leases = self.manifest.claim(self.stage, self.owner, limit, self.settings.lease_s)
        if not leases:
            self.status.set("idle")
            return self.settings.poll_s
        self.status.set("running")
        waiting = self.work_batch(leases, stop)
        if waiting is not None:
            self.status.set("waiting", waiting)
            return self.settings.poll_s
        return 0.0

    def work_batch(self, leases: list[Lease], stop: threading.Event) -> str | None:
        """Handle a claimed batch; returns why the stage must wait, if it must."""
        with self._lock:
            self._held = {x.artifact_id: x for x in leases}
            self._lost.clear()
        done: list[tuple[Lease, Handled]] = []
        waiting: str | None = None
        try:
            with self._heartbeats():
                for lease in leases:
                    if stop.is_set() or waiting is not None:
                        break
                    with self._lock:
                        if lease.artifact_id in self._lost:
                            continue
                        current = self._held[lease.artifact_id]
                    try:
                        done.append((current, self.handle(current)))
                    except StageWaiting as exc:
                        waiting = str(exc)
                    except BadItem as exc:
                        self._fail(current, str(exc), retry=False)
                    except PipelineError as exc:
                        self._fail(current, f"{type(exc).__name__}: {exc}", retry=True)
                    except Exception as exc:  # a bug or an unexpected OS error: retried
                        log.exception("%s of %s failed", self.stage, current.artifact.path)
                        self._fail(current, f"{type(exc).__name__}: {exc}", retry=True)
        finally:
            self._record(done)
            self._release_rest()
        self.after_batch()
        return waiting

    def run(self, stop: threading.Event) -> None:
        try:
            super().run(stop)
        finally:
            try:
                n = self.manifest.release_owner(self.owner)
                if n:
                    self.status.count("released", n)
            except PipelineError as exc:  # the manifest is away: the leases expire instead
                log.warning("%s: could not release leases: %s", self.name, exc)
            self.status.flush()

    # -- internals ----------------------------------------------------------------------------

    def _fail(self, lease: Lease, reason: str, retry: bool) -> None:
        with self._lock:
            self._held.pop(lease.artifact_id, None)
        try:
            status = self.manifest.fail(lease, reason, retry=retry)
        except LeaseLost:
            log.warning(
                "%s of %s: lease lost before its failure was recorded",
                self.stage,
                lease.artifact.path,
            )
            return
        log.warning("%s of %s: %s (%s)", self.stage, lease.artifact.path, reason, status)
        self.status.count("failed" if status == "failed" else "retried", error=reason)

    def _record(self, done: list[tuple[Lease, Handled]]) -> None:
        self._sync_dirs()
        if not done:
            return
        with self._lock:
            items = [
                (self._held.get(lease.artifact_id, lease), h.result, h.changes) for lease, h in done
            ]
            for lease, _h in done:
                self._held.pop(lease.artifact_id, None)
        outcome = self.manifest.complete_many(items)
        ok = set(outcome.done)
        for lease, handled in done:
            if lease.artifact_id in ok and handled.after_commit is not None:
                try:
                    handled.after_commit()
                except OSError as exc:
                    log.warning("%s of %s: after commit: %s", self.stage, lease.artifact.path, exc)
        if outcome.refused:
            log.warning("%s: %d completions refused (leases lost)", self.name, len(outcome.refused))
        self.status.count("done", len(ok))

    def _release_rest(self) -> None:
        with self._lock:
            rest = [x for aid, x in self._held.items() if aid not in self._lost]
            self._held = {}
        if rest:
            n = self.manifest.release(rest)
            self.status.count("released", n)

    @contextmanager
    def _heartbeats(self) -> Iterator[None]:
        """Renew the batch's leases every ``heartbeat_s`` while it is worked on."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.settings.heartbeat_s):
                with self._lock:
                    held = list(self._held.values())
                if not held:
                    continue
                try:
                    renewed = self.manifest.heartbeat(held, self.settings.lease_s)
                except PipelineError as exc:
                    log.warning("%s: heartbeat failed: %s", self.name, exc)
                    continue
                with self._lock:
                    got = {x.artifact_id for x in renewed}
                    for x in renewed:
                        if x.artifact_id in self._held:
                            self._held[x.artifact_id] = x
                    for x in held:
                        if x.artifact_id not in got and x.artifact_id in self._held:
                            self._lost.add(x.artifact_id)
                            self._held.pop(x.artifact_id)

        thread = threading.Thread(target=beat, name=f"{self.name}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGINT and SIGTERM (the stage finishes its item, then exits); a second
    signal exits at once. Call from the main thread."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("signal %d: finishing the current item, then stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passed; returns the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def data_path(lease: Lease) -> Path:
    """The artifact's file as a path."""
    return Path(lease.artifact.path)
