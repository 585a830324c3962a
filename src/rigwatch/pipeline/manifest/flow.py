"""Stages, per-stage statuses and the flow that orders the stages of an artifact.

Each artifact has one status per stage of the flow. A stage becomes ``pending`` (ready to be
claimed) once every stage it depends on is ``done``; until then it is ``blocked``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from rigwatch.errors import ManifestError


class Stage(StrEnum):
    """The pipeline's stages, in the order an artifact usually passes them."""

    COLLECT = "collect"
    PROCESS = "process"
    REPORT = "report"
    COMPRESS = "compress"
    SYNC = "sync"
    RETENTION = "retention"


class Status(StrEnum):
    """The state of one (artifact, stage) pair.

    ``blocked``: a prerequisite stage is not done yet. ``pending``: ready, to be claimed once
    ``next_attempt_ns`` is reached. ``leased``: a worker holds it until ``lease_expires_ns``.
    ``done``: completed (exactly once). ``failed``: out of attempts; the error is kept.
    """

    BLOCKED = "blocked"
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"
    FAILED = "failed"


MAX_STAGE_NAME = 16
"""Length of the ``stage`` column; a stage name must fit."""


@dataclass(frozen=True)
class Flow:
    """Which stages an artifact goes through and what each waits for.

    Attributes:
        prerequisites: ``stage -> stages that must be done first`` for every stage in the flow,
            in a topological order (a stage's prerequisites come before it).

    Every worker of one manifest must use the same flow (the pipeline's configuration gives
    it): stage rows are created from the flow when an artifact is added, and the worker that
    completes a stage unblocks the stages depending on it.
    """

    prerequisites: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, prerequisites: Mapping[str, Sequence[str]]) -> Flow:
        """A validated flow.

        Raises:
            ManifestError: a stage name too long or empty, a prerequisite that is not a stage
                of the flow, or a cycle.
        """
        ordered: dict[str, tuple[str, ...]] = {}
        remaining = {str(k): tuple(str(p) for p in v) for k, v in prerequisites.items()}
        for name, deps in remaining.items():
            if not name or len(name) > MAX_STAGE_NAME:
                raise ManifestError(f"stage name {name!r} must have 1..{MAX_STAGE_NAME} chars")
            unknown = [d for d in deps if d not in remaining]
            if unknown:
                raise ManifestError(f"stage {name!r} waits for unknown stages {unknown}")
        while remaining:
            ready = [n for n, deps in remaining.items() if all(d in ordered for d in deps)]
            if not ready:
                raise ManifestError(f"the flow has a cycle among stages {sorted(remaining)}")
            for n in ready:
                ordered[n] = remaining.pop(n)
        return cls(prerequisites=ordered)

    @classmethod
    def standard(cls, *, compress: bool = True, sync: bool = True) -> Flow:
        """rigwatch's flow: collect -> process -> report; process -> compress -> sync;
        retention after report and after sync (or compress, or process, whichever is last).

        The retention stage becomes ready when the artifact may be deleted locally: processed,
        reported, and synced when sync is on.
        """
        flow: dict[str, list[str]] = {
            Stage.COLLECT: [],
            Stage.PROCESS: [Stage.COLLECT],
            Stage.REPORT: [Stage.PROCESS],
        }
        last = Stage.PROCESS
        if compress:
            flow[Stage.COMPRESS] = [last]
            last = Stage.COMPRESS
        if sync:
            flow[Stage.SYNC] = [last]
            last = Stage.SYNC
        flow[Stage.RETENTION] = sorted({Stage.REPORT, last})
        return cls.of(flow)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages in topological order."""
        return tuple(self.prerequisites)

    def dependents(self, stage: str) -> tuple[str, ...]:
        """The stages that wait for ``stage``."""
        return tuple(s for s, deps in self.prerequisites.items() if stage in deps)

    def check(self, stage: str) -> str:
        """``stage`` as a string, after checking it is in the flow.

        Raises:
            ManifestError: ``stage`` is not a stage of this flow.
        """
        name = str(stage)
        if name not in self.prerequisites:
            raise ManifestError(f"unknown stage {name!r}; the flow has {list(self.stages)}")
        return name

    def initial_statuses(self, completed: Iterable[str]) -> dict[str, Status]:
        """The status of every stage of a new artifact whose ``completed`` stages are done.

        Raises:
            ManifestError: a completed stage is not in the flow.
        """
        done = {self.check(s) for s in completed}
        statuses: dict[str, Status] = {}
        for stage, deps in self.prerequisites.items():
            if stage in done:
                statuses[stage] = Status.DONE
            elif all(d in done for d in deps):
                statuses[stage] = Status.PENDING
            else:
                statuses[stage] = Status.BLOCKED
        return statuses
