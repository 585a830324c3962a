"""Redlines: limits on acquired values that abort a scenario, evaluated on every block.

A redline (:class:`RedlineConfig`) watches one value: one channel, or the vote over redundant
channels (``median`` of N: a single failed sensor can neither trip nor mask a trip when N >= 3;
``any``: the worst sensor decides; ``all``: every sensor must agree). It trips when the value

- is above ``max`` or below ``min`` (a threshold; both: a band), or
- changes faster than ``rate_max`` per second (``|dx/dt|`` between consecutive samples),

continuously for at least ``duration_s`` (0: one sample suffices). ``max_age_s`` is the
staleness watchdog: no finite value for that long trips it too (a redline blind to its sensor
is not a redline). NaN samples (a sensor missing from a line) are ignored by the vote.

The evaluation is vectorised with NumPy per block (a few microseconds per redline for a block
of hundreds of rows); state carried between blocks: the start of a violation run, the last
sample (for the rate), the time of the last finite value.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from rigwatch.config.base import Name, Strict

log = logging.getLogger(__name__)


class RedlineConfig(Strict):
    """One redline (see the module docstring). Units are the channels' calibrated units.

    Attributes:
        always: active during every step of its scenario (else only in steps listing it).
    """

    name: Name
    channels: list[str] = Field(min_length=1)
    vote: Literal["median", "any", "all"] = "median"
    max: float | None = None
    min: float | None = None
    rate_max: float | None = Field(default=None, gt=0, description="|dx/dt| limit, unit/s.")
    duration_s: float = Field(default=0.0, ge=0)
    max_age_s: float | None = Field(default=None, gt=0)
    always: bool = False

    @model_validator(mode="after")
    def _limits(self) -> RedlineConfig:
        if self.max is None and self.min is None and self.rate_max is None:
            raise ValueError(f"redline {self.name!r}: give max, min (a band: both) or rate_max")
        if self.max is not None and self.min is not None and not self.min < self.max:
            raise ValueError(f"redline {self.name!r}: min must be below max")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"redline {self.name!r}: a channel is listed twice")
        return self

    def describe(self) -> str:
        """``"P3 > 25"``, ``"median(P1, P4, P5) outside [2, 30]"``, ``"|dTHRUST/dt| > 5000/s"``."""
        subject = (
            self.channels[0]
            if len(self.channels) == 1
            else (f"{self.vote}({', '.join(self.channels)})")
        )
        parts = []
        if self.max is not None and self.min is not None:
            parts.append(f"{subject} outside [{self.min:g}, {self.max:g}]")
        elif self.max is not None:
            parts.append(f"{subject} > {self.max:g}")
        elif self.min is not None:
            parts.append(f"{subject} < {self.min:g}")
        if self.rate_max is not None:
            parts.append(f"|d{subject}/dt| > {self.rate_max:g}/s")
        text = " or ".join(parts)
        if self.duration_s > 0:
            text += f" for {self.duration_s:g} s"
        return text


@dataclass(frozen=True)
class Trip:
    """A redline that tripped.

    Attributes:
        redline: its name.
        message: what was seen (value, limit, time), for the abort reason and the audit log.
        time_ns: timestamp of the sample that completed the violation (or of the staleness
            check).
        value: the voted value at that sample (NaN for staleness).
    """

    redline: str
    message: str
    time_ns: int
    value: float


def median_vote(values: np.ndarray) -> np.ndarray:
    """One value per row from ``(rows, n)`` redundant readings: the median of the finite ones
    (NaN when a row has none).

    Returns:
        ``(rows,)`` float64.
    """
    if values.shape[1] == 1:
        return values[:, 0].astype(np.float64)
    with warnings.catch_warnings():  # "All-NaN slice": such rows are NaN, as wanted
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values.astype(np.float64), axis=1)


class RedlineState:
    """A redline with the state it carries from block to block."""

    def __init__(self, config: RedlineConfig) -> None:
        self.config = config
        self.run_start_ns: int | None = None
        self.last_value: float = float("nan")
        self.last_ns: int | None = None
        self.last_finite_ns: int | None = None
        self.tripped: Trip | None = None

    def _violations(self, data: np.ndarray, stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(violating (rows,) bool, voted value (rows,))``."""
        cfg = self.config
        with np.errstate(invalid="ignore"):
            if cfg.vote == "median" or data.shape[1] == 1:
                v = median_vote(data)
                bad: np.ndarray = np.zeros(v.shape, bool)
                if cfg.max is not None:
                    bad |= v > cfg.max
                if cfg.min is not None:
                    bad |= v < cfg.min
            else:
                finite = np.isfinite(data)
                over = np.zeros(data.shape, bool)
                if cfg.max is not None:
                    over |= data > cfg.max
                if cfg.min is not None:
                    over |= data < cfg.min
                if cfg.vote == "any":
                    bad = np.asarray(over.any(axis=1))
                else:  # all finite readings must violate (and at least one present)
                    bad = np.asarray((over | ~finite).all(axis=1) & finite.any(axis=1))
                v = median_vote(data)
            if cfg.rate_max is not None:
                prev_v = np.concatenate(([self.last_value], v[:-1]))
                prev_t = np.concatenate(
                    ([self.last_ns if self.last_ns is not None else stamps[0]], stamps[:-1])
                )
                dt = (stamps - prev_t).astype(np.float64) * 1e-9
                rate = np.where(dt > 0, np.abs(v - prev_v) / np.where(dt > 0, dt, 1.0), 0.0)
                bad |= np.nan_to_num(rate, nan=0.0) > cfg.rate_max
        if cfg.max is None and cfg.min is None:
            bad &= np.isfinite(v)
        return bad, v

    def evaluate(self, data: np.ndarray, stamps: np.ndarray) -> Trip | None:
        """Check one block of this redline's channels.

        Args:
            data: ``(rows, len(channels))`` calibrated values (float32 or float64).
            stamps: ``(rows,)`` int64 ns.

        Returns:
            The trip, once (later calls return None until :meth:`reset`).
        """
        if self.tripped is not None or data.shape[0] == 0:
            return None
        cfg = self.config
        bad, v = self._violations(data, stamps)
        finite = np.flatnonzero(np.isfinite(v))
        if finite.size:
            self.last_finite_ns = int(stamps[finite[-1]])
        trip_at: int | None = None
        need_ns = int(cfg.duration_s * 1e9)
        # runs of consecutive violating samples, continuing the run of the previous block
        edges = np.diff(np.concatenate(([0], bad.view(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)  # exclusive
        carried = self.run_start_ns
        last_t0: int | None = None
        for s, e in zip(starts, ends, strict=True):
            run_t0 = carried if (s == 0 and carried is not None) else int(stamps[s])
            last_t0 = run_t0
            if need_ns == 0:
                trip_at = int(s)
                break
            reach = np.flatnonzero(stamps[s:e] - run_t0 >= need_ns)
            if reach.size:
                trip_at = int(s + reach[0])
                break
        if trip_at is None:
            self.run_start_ns = last_t0 if bool(bad[-1]) else None
        self.last_value = float(v[-1])
        self.last_ns = int(stamps[-1])
        if trip_at is None:
            return None
        value = float(v[trip_at])
        self.tripped = Trip(
            cfg.name,
            f"redline {cfg.name!r} tripped: {cfg.describe()} (value {value:.6g})",
            int(stamps[trip_at]),
            value,
        )
        return self.tripped

    def check_stale(self, now_ns: int, active_since_ns: int) -> Trip | None:
        """The staleness trip when no finite value arrived for ``max_age_s`` (counted from
        activation when none ever did)."""
        cfg = self.config
        if cfg.max_age_s is None or self.tripped is not None:
            return None
        last = self.last_finite_ns if self.last_finite_ns is not None else active_since_ns
        age_s = (now_ns - last) / 1e9
        if age_s <= cfg.max_age_s:
            return None
        self.tripped = Trip(
            cfg.name,
            f"redline {cfg.name!r} is stale: no value of {', '.join(cfg.channels)} for "
            f"{age_s:.2f} s (max_age_s {cfg.max_age_s:g})",
            now_ns,
            float("nan"),
        )
        return self.tripped


class RedlineMonitor:
    """The active redlines of a station, fed with every acquired block. Thread-safe.

    Args:
        on_trip: called once per trip (from the thread that fed the block): the runner's
            abort.
    """

    def __init__(self, on_trip: Callable[[Trip], None] | None = None) -> None:
        self.on_trip = on_trip
        self._lock = threading.Lock()
        self._active: dict[str, RedlineState] = {}
        self._since_ns = 0
        self.trips: list[Trip] = []

    def set_active(self, redlines: Sequence[RedlineConfig], now_ns: int) -> None:
        """Watch ``redlines`` from now on (a redline already active keeps its state)."""
        with self._lock:
            keep = {r.name: self._active.get(r.name) for r in redlines}
            self._active = {r.name: (keep[r.name] or RedlineState(r)) for r in redlines}
            if not redlines:
                self._since_ns = 0
            elif not self._since_ns:
                self._since_ns = now_ns

    @property
    def active(self) -> list[str]:
        """Names of the redlines watched now."""
        with self._lock:
            return list(self._active)

    def feed(self, channels: Sequence[str], data: np.ndarray, stamps_ns: np.ndarray) -> list[Trip]:
        """Evaluate one acquired block.

        Args:
            channels: the block's column names.
            data: ``(rows, len(channels))`` calibrated values.
            stamps_ns: ``(rows,)`` int64 ns.

        Returns:
            The trips of this block (each also passed to ``on_trip``).
        """
        index = {c: i for i, c in enumerate(channels)}
        trips = []
        with self._lock:
            states = list(self._active.values())
        for st in states:
            cols = [index[c] for c in st.config.channels if c in index]
            if len(cols) != len(st.config.channels):
                continue  # another device's block
            trip = st.evaluate(np.asarray(data)[:, cols], stamps_ns)
            if trip is not None:
                trips.append(trip)
        self._dispatch(trips)
        return trips

    def check_stale(self, now_ns: int) -> list[Trip]:
        """The staleness watchdog: call it periodically (every 100 ms...)."""
        with self._lock:
            states = list(self._active.values())
            since = self._since_ns
        trips = [t for st in states if (t := st.check_stale(now_ns, since)) is not None]
        self._dispatch(trips)
        return trips

    def _dispatch(self, trips: list[Trip]) -> None:
        for trip in trips:
            log.error("%s", trip.message)
            self.trips.append(trip)
            if self.on_trip is not None:
                self.on_trip(trip)
