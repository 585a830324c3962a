"""What the control part looks like to clients, built from a station (reads only): the body of
``GET /api/control`` and of the WebSocket's ``control_state`` frames, the runner's and the
authority's parts of it, and the valve bank's bits of ``valve_state`` and ``valve_response``.

Shared by the REST router (:mod:`rigwatch.web.routers.control`), the WebSocket's control
channel (:mod:`rigwatch.web.control_ws`) and the feed that pushes control events
(:mod:`rigwatch.web.control_feed`).
"""

from __future__ import annotations

from rigwatch.control.runner import RunnerStatus, ScenarioRunner
from rigwatch.station import Station
from rigwatch.timefmt import iso_utc
from rigwatch.web.control_schemas import (
    ActuatorOut,
    AuthorityOut,
    ControlOut,
    RedlinesOut,
    RunnerOut,
    TripOut,
)


def runner_out(runner: ScenarioRunner) -> RunnerOut:
    """The runner's status as the API shows it."""
    st: RunnerStatus = runner.status()
    return RunnerOut(
        state=st.state.value,
        since=iso_utc(st.since_ns),
        scenario=st.scenario,
        step_index=st.step_index,
        step=st.step,
        armed_by=st.armed_by,
        hold_message=st.hold_message,
        abort_reason=st.abort_reason,
        abort_by=st.abort_by,
        redline=st.redline,
        safing_failures=list(st.safing_failures),
        allowed=runner.allowed(st.state),
    )


def valve_bits(station: Station) -> tuple[list[int], list[int]]:
    """``(bits, unknown)`` of the station's first 9-output valve bank: one int per output, 1
    energised (as acknowledged; the last commanded when unknown), and the indices of outputs
    whose position is unknown. ``([], [])`` when the station has none."""
    for b in station.control.commander.backends:
        specs = list(b.specs)
        if len(specs) != 9 or not all(s.binary for s in specs):
            continue
        readings = b.read()
        bits, unknown = [], []
        for i, s in enumerate(specs):
            r = readings[s.name]
            pos = r.acknowledged if r.acknowledged is not None else r.commanded
            bits.append(int(pos is not None and s.energised(pos)))
            if r.acknowledged is None:
                unknown.append(i)
        return bits, unknown
    return [], []


def authority_out(station: Station, lease: str | None = None) -> AuthorityOut:
    """Who controls the station (``lease`` only for its holder)."""
    auth = station.control.authority
    return AuthorityOut(
        holder=auth.holder, lease=lease, lease_s=auth.lease_s, expires_in_s=auth.expires_in_s()
    )


def control_out(station: Station) -> ControlOut:
    """What ``GET /api/control`` and the WebSocket's ``control_state`` show: the runner, the
    authority, each actuator's commanded and acknowledged state, the redlines watched and the
    last 50 trips, the scenarios. Reads only (thread-safe snapshots of each part)."""
    control = station.control
    readings = control.commander.read()
    owners = {s.name: b.name for b in control.commander.backends for s in b.specs}
    actuators = []
    for name, spec in control.commander.specs.items():
        r = readings[name]
        actuators.append(
            ActuatorOut(
                name=name,
                backend=owners[name],
                kind=spec.kind,
                safe=spec.safe,
                hot=spec.hot,
                commanded=r.commanded,
                acknowledged=r.acknowledged,
                status=r.status,
                since=iso_utc(r.since_ns),
                message=r.message,
            )
        )
    trips = [
        TripOut(
            redline=t.redline,
            message=t.message,
            time=iso_utc(t.time_ns),
            value=None if t.value != t.value else t.value,
        )
        for t in control.monitor.trips[-50:]
    ]
    return ControlOut(
        runner=runner_out(control.runner),
        authority=authority_out(station),
        actuators=actuators,
        redlines=RedlinesOut(active=control.monitor.active, trips=trips),
        scenarios=sorted(control.runner.scenarios),
    )
