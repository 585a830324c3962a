"""The control part's watchdogs: what aborts a hot sequence besides a redline tripping on a
block.

Run every ``watchdog_interval_s`` by the control thread (:mod:`rigwatch.control.service`), and
at once after each completed command:

- **staleness**: :meth:`RedlineMonitor.check_stale` (a redline's sensor silent for its
  ``max_age_s`` trips it: abort);
- **operator**: the authority's lease lapsed (no heartbeat) while the stand is armed, running
  or holding: abort (armed with no abort sequence to run: disarm);
- **device loss**, while armed, running or holding: a device carrying actuators or a
  redline's sensors fails (a read error, a stream no longer running), or an actuator known a
  moment ago becomes ``unknown``: abort.

"Hot" is :data:`~rigwatch.control.states.HOT_STATES`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from rigwatch.acquisition.engine import DeviceStream
from rigwatch.control.actuators import ActuatorReading
from rigwatch.control.audit import AuditLog
from rigwatch.control.authority import ControlAuthority
from rigwatch.control.commander import Commander
from rigwatch.control.redlines import RedlineMonitor
from rigwatch.control.runner import RunnerStatus, ScenarioRunner
from rigwatch.control.states import HOT_STATES, RunnerState
from rigwatch.errors import TransitionRefused

log = logging.getLogger(__name__)

S = RunnerState


def abort_or_disarm(runner: ScenarioRunner, reason: str, who: str, source: str) -> None:
    """Start the runner's abort sequence; armed with no abort sequence to run, disarm instead
    (at least leave nothing armed). A refusal otherwise (nothing hot) is only logged.

    Args:
        reason: why (audited).
        who: the author, e.g. ``watchdog:operator`` (audited as ``abort_by``).
        source: ``watchdog``, ``station``, ``signal``... (audited).
    """
    log.error("control: abort (%s): %s", who, reason)
    try:
        runner.abort(reason, who, source=source)
    except TransitionRefused as exc:
        if runner.state is S.ARMED:
            with contextlib.suppress(TransitionRefused):
                runner.disarm(who)
        else:
            log.info("control: abort not started: %s", exc)


class Watchdogs:
    """The staleness, operator and device-loss watchdogs of one station (see the module
    docstring). Not thread-safe: one thread calls :meth:`check` and :meth:`baseline`.

    Args:
        runner: the scenario runner they abort.
        authority: the control authority whose lease they expire.
        monitor: the redline monitor whose staleness they check.
        commander: reads the actuators (one ``unknown`` while hot is a device loss).
        audit: records an expired lease (None: no audit log).
        streams: the station's device streams by name.
        watched: names of the streams whose loss aborts (actuator carriers, redline sensors).
        notify: told ``"authority"`` when a lease expired, ``"runner"`` when the runner's
            status (state, scenario, step, hold message, abort) changed since the last pass,
            ``"readings"`` when an actuator's reading (commanded, acknowledged, status,
            message) did.
    """

    def __init__(
        self,
        runner: ScenarioRunner,
        authority: ControlAuthority,
        monitor: RedlineMonitor,
        commander: Commander,
        audit: AuditLog | None,
        streams: Mapping[str, DeviceStream],
        watched: Sequence[str],
        notify: Callable[[str], None],
    ) -> None:
        self.runner = runner
        self.authority = authority
        self.monitor = monitor
        self.commander = commander
        self.audit = audit
        self.streams = streams
        self.watched = list(watched)
        self._notify = notify
        self._known: set[str] = set()
        self._errors_seen: dict[str, int] = {}
        self._last_status: RunnerStatus | None = None
        self._last_readings: dict[str, ActuatorReading] | None = None

    def baseline(self) -> None:
        """Take the watched streams' device error counts as the ones already seen."""
        self._errors_seen = {n: self.streams[n].stats.device_errors for n in self.watched}

    def check(self) -> None:
        """One pass of every watchdog; aborts through :func:`abort_or_disarm`."""
        self.monitor.check_stale(time.time_ns())
        self._check_operator()
        if self.runner.state in HOT_STATES:
            lost = self._device_loss()
            if lost is not None:
                abort_or_disarm(self.runner, f"device loss: {lost}", "watchdog:device", "watchdog")
        else:
            self.baseline()
        readings = self.commander.read()
        if self.runner.state not in HOT_STATES:
            self._known = {n for n, r in readings.items() if r.status != "unknown"}
        else:
            self._known |= {n for n, r in readings.items() if r.status != "unknown"}
        if readings != self._last_readings:
            self._last_readings = readings
            self._notify("readings")
        status = self.runner.status()
        if status != self._last_status:
            self._last_status = status
            self._notify("runner")

    def _check_operator(self) -> None:
        lapsed = self.authority.expire()
        if lapsed is None:
            return
        lease_s = self.authority.lease_s
        if self.audit is not None:
            self.audit.record(
                who=lapsed.holder,
                source="watchdog",
                action="authority",
                result="expired",
                reason=f"no heartbeat for {lease_s:g} s",
            )
        self._notify("authority")
        if self.runner.state in HOT_STATES:
            abort_or_disarm(
                self.runner,
                f"operator watchdog: no heartbeat from {lapsed.holder!r} for {lease_s:g} s",
                "watchdog:operator",
                "watchdog",
            )

    def _device_loss(self) -> str | None:
        for name in self.watched:
            stream = self.streams[name]
            if stream.state not in ("running", "starting"):
                return f"device {name!r} is {stream.state}: {stream.stats.last_error}"
            if stream.stats.device_errors > self._errors_seen.get(name, 0):
                return f"device {name!r} failed: {stream.stats.last_error}"
        for n, r in self.commander.read().items():
            if n in self._known and r.status == "unknown":
                return f"actuator {n} is unknown: {r.message}"
        return None
