"""Ingest: per-key rate limits, the key cache, and the group-commit writer.

**Accepted means committed.** A request handler validates and authorises a message, then hands
it to :class:`IngestWriter` and waits; the writer thread takes every submission waiting (up to
``commit_max_messages``), evaluates the messages in arrival order (status engine and alerts),
and writes them with their metric values and the machines' latest state in **one** transaction.
Only after the commit does each waiting request get its 2xx; if the commit fails, they get a
503 and the agent sends again. So concurrent requests share one commit (group commit) and
every 2xx answer names a message that is in the database.

**Bounded.** The writer holds at most ``queue_max_messages`` messages not yet committed; a
submission beyond it is refused at once (503 with Retry-After), so a 10x overload costs no
memory, only refusals. Each key also has a token bucket (:class:`RateLimiter`; 429 with
Retry-After).

**Live updates** are sent after the commit, one per machine and commit (its newest live
message): a backlog of 500 messages is one update, not 500.

**Duplicates.** A message whose ``seq`` is not greater than the newest stored for its machine
was stored before (the agent's confirmation was lost; agents number their messages increasing
and start a new outbox above any old number): it is answered 2xx and counted as duplicate,
not stored again.

The status engine's state advances before the commit; if a commit fails, the message sent again
arrives as not newer than the newest seen, so it is stored as backfill (its status effect was
already applied).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from rigwatch.counters import Counters
from rigwatch.fleet.alerts import AlertChange
from rigwatch.fleet.monitor import Monitor
from rigwatch.fleet.rules import Colour
from rigwatch.fleet.schemas import IngestResult
from rigwatch.fleet.store import FleetStore, LatestWrite, MessageWrite
from rigwatch.timefmt import iso_utc_datetime, to_ns
from rigwatch.wire import StatusMessage

log = logging.getLogger(__name__)


class RateLimiter:
    """A token bucket per key: ``rate`` tokens per second, at most ``burst`` stored.

    Thread-safe. Remembers at most ``max_keys`` buckets (the least recently used are dropped:
    a dropped bucket starts full again, which only ever errs towards accepting).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 200_000,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, n: int = 1) -> float | None:
        """Take ``n`` tokens for ``key``.

        Returns:
            ``None`` when granted; else the seconds until ``n`` tokens will be there (a batch
            larger than the burst can never pass: the time to a full bucket is returned, and
            the caller should split the batch).
        """
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= n:
                self._buckets[key] = (tokens - n, now)
                granted = True
            else:
                self._buckets[key] = (tokens, now)
                granted = False
            if len(self._buckets) > self._max_keys:
                self._buckets.pop(next(iter(self._buckets)))
        if granted:
            return None
        return (min(float(n), self._burst) - tokens) / self._rate


class KeyCache:
    """Key hash -> machine id (or ``None`` for an unknown or revoked key), each for ``ttl_s``.

    Wrong keys are cached too, so a flood of them does not reach the database; the cache is
    bounded (cleared when full). :meth:`clear` after any key change in this worker.
    """

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: dict[str, tuple[str | None, float]] = {}

    def get(self, key_hash: str) -> tuple[bool, str | None]:
        """``(found, machine_id)``; ``found`` False when not cached or expired."""
        entry = self._entries.get(key_hash)
        if entry is None or entry[1] < time.monotonic():
            return False, None
        return True, entry[0]

    def put(self, key_hash: str, machine_id: str | None) -> None:
        """Remember a lookup."""
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key_hash] = (machine_id, time.monotonic() + self._ttl)

    def clear(self) -> None:
        """Forget every lookup."""
        self._entries.clear()


@dataclass
class Submission:
    """Messages of one request for one machine, and how to answer it.

    ``done`` is called once from the writer thread with the result or the exception.
    """

    machine_id: str
    messages: Sequence[StatusMessage]
    received_at: datetime
    done: Callable[[IngestResult | BaseException], None]
    answered: bool = False

    def answer(self, result: IngestResult | BaseException) -> None:
        """Call ``done`` with the result, the first time only."""
        if not self.answered:
            self.answered = True
            self.done(result)


@dataclass
class _Batch:
    writes: list[MessageWrite] = field(default_factory=list)
    latest: dict[str, LatestWrite] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """machine -> its newest live update in the commit (one per machine and commit)."""
    changes: list[AlertChange] = field(default_factory=list)
    seqs: dict[str, int] = field(default_factory=dict)
    results: list[IngestResult] = field(default_factory=list)
    newest: dict[str, tuple[StatusMessage, str, str]] = field(default_factory=dict)


def _extra(msg: StatusMessage) -> dict[str, Any] | None:
    extra: dict[str, Any] = {}
    if msg.sensor_errors:
        extra["sensor_errors"] = dict(msg.sensor_errors)
    if msg.alarms:
        extra["alarms"] = [a.model_dump(mode="json") for a in msg.alarms]
    if msg.errors:
        extra["errors"] = [e.model_dump(mode="json") for e in msg.errors]
    if msg.access_error:
        extra["access_error"] = msg.access_error
    return extra or None


_INFO_FIELDS = {
    "system_info",
    "status",
    "accessible",
    "access_error",
    "alarms",
    "errors",
    "sensor_errors",
}
"""What of a machine's newest message its latest state keeps as ``info``."""


def _info_json(msg: StatusMessage) -> str:
    """The ``info`` of the latest state as JSON text (one serialisation, in pydantic's core;
    fields that are null are left out: about half the text of today's system info and a
    quarter less time)."""
    return msg.model_dump_json(include=_INFO_FIELDS, exclude_none=True)


def machine_update(
    machine_id: str,
    colour: str,
    data: dict[str, Any] | None,
    timestamp: str | None,
    reason: str,
    accepted_ns: int,
) -> dict[str, Any]:
    """The live update of one machine: today's ``machine_update`` fields (``type``,
    ``machine_id``, ``status`` = colour, ``data`` = sensor values, ``timestamp``) plus
    ``reason`` and ``accepted_ns`` (server wall clock when it was committed). ``data`` None:
    a colour change without a message (the hub fills in the previous data)."""
    return {
        "type": "machine_update",
        "machine_id": machine_id,
        "status": colour,
        "data": data,
        "timestamp": timestamp,
        "reason": reason,
        "accepted_ns": accepted_ns,
    }


class IngestWriter:
    """The group-commit writer thread (see the module's notes).

    Args:
        store: the database.
        monitor: status engine and alert manager.
        queue_max_messages: bound on messages not yet committed.
        commit_max_messages: most messages in one transaction.
        on_committed: called from the writer thread after each commit with the live updates
            and the alert changes (the app hands them to its event loop and notifiers).
        counters: where duplicates, commits and failures are counted.
    """

    def __init__(
        self,
        store: FleetStore,
        monitor: Monitor,
        *,
        queue_max_messages: int,
        commit_max_messages: int,
        on_committed: Callable[[list[dict[str, Any]], list[AlertChange]], None],
        counters: Counters,
    ) -> None:
        self._store = store
        self._monitor = monitor
        self._max_pending = queue_max_messages
        self._commit_max = commit_max_messages
        self._on_committed = on_committed
        self._counters = counters
        self._queue: queue.SimpleQueue[Submission | None] = queue.SimpleQueue()
        self._pending = 0
        self._lock = threading.Lock()
        self._last_seq: dict[str, int] = store.last_seqs()
        self._thread = threading.Thread(target=self._run, name="fleet-writer", daemon=True)
        self._started = False

    @property
    def pending(self) -> int:
        """Messages accepted into the queue and not yet committed."""
        with self._lock:
            return self._pending

    @property
    def full(self) -> bool:
        """True when the queue holds its bound of messages (new submissions are refused)."""
        with self._lock:
            return self._pending >= self._max_pending

    def start(self) -> None:
        """Start the writer thread."""
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Commit what is queued, then stop the thread."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout_s)
            self._started = False

    def try_submit(self, sub: Submission) -> bool:
        """Queue a submission unless that would exceed the bound.

        Returns:
            False when the queue is full (the caller answers 503 with Retry-After).
        """
        n = len(sub.messages)
        with self._lock:
            if self._pending + n > self._max_pending and self._pending > 0:
                return False
            self._pending += n
        self._queue.put(sub)
        return True

    # -- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            size = len(first.messages)
            while size < self._commit_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
                size += len(nxt.messages)
            try:
                self._commit(batch)
            except Exception as exc:  # never let the writer die: answer and go on
                log.exception("fleet writer: batch of %d submissions failed", len(batch))
                for sub in batch:
                    sub.answer(exc)
            finally:
                with self._lock:
                    self._pending -= size

    def _commit(self, subs: list[Submission], retried: bool = False) -> None:
        try:
            batch = self._evaluate(subs)
            self._store.write_batch(batch.writes, list(batch.latest.values()))
        except Exception as exc:
            if (
                len(subs) == 1
                and not retried
                and isinstance(exc, IntegrityError)
                and self._drop_stored(subs[0])
            ):
                return
            if len(subs) > 1:
                # one bad submission (a machine deleted meanwhile) must not sink the others
                self._counters.inc("fleet.batch_split", message=str(exc)[:300])
                for sub in subs:
                    self._commit([sub])
                return
            log.warning("fleet ingest of %s failed: %s", subs[0].machine_id, exc)
            self._counters.inc("fleet.ingest_failed", message=str(exc)[:300])
            subs[0].answer(exc)
            return
        self._last_seq.update(batch.seqs)
        committed_ns = time.time_ns()
        for update in batch.updates.values():
            update["accepted_ns"] = committed_ns
        self._counters.inc("fleet.commits")
        self._counters.inc("fleet.messages_stored", len(batch.writes))
        # live updates are handed over before the answers: a client that sees its 2xx and
        # then connects finds the update in the hub's snapshot
        try:
            self._on_committed(list(batch.updates.values()), batch.changes)
        except Exception:
            log.exception("fleet writer: publishing committed updates failed")
        for sub, result in zip(subs, batch.results, strict=True):
            sub.answer(result)

    def _drop_stored(self, sub: Submission) -> bool:
        """After a unique-key refusal: drop the messages whose seq another worker stored
        already (answered as duplicates) and commit the rest. False when none was stored."""
        seqs = [m.seq for m in sub.messages if m.seq is not None]
        known = self._store.existing_seqs(sub.machine_id, seqs) if seqs else set()
        if not known:
            return False
        newest = max(known)
        self._last_seq[sub.machine_id] = max(self._last_seq.get(sub.machine_id, newest), newest)
        fresh = [m for m in sub.messages if m.seq not in known]

        def done(result: IngestResult | BaseException) -> None:
            if isinstance(result, IngestResult):
                result = result.model_copy(update={"duplicates": result.duplicates + len(known)})
            sub.answer(result)

        self._counters.inc("fleet.duplicates", len(known))
        self._commit([Submission(sub.machine_id, fresh, sub.received_at, done)], retried=True)
        return True

    def _evaluate(self, subs: list[Submission]) -> _Batch:
        b = _Batch()
        for sub in subs:
            accepted = duplicates = backfill = 0
            colour: Colour | None = None
            received_ns = to_ns(sub.received_at)
            for msg in sub.messages:
                mid = msg.machine_id
                last = b.seqs.get(mid, self._last_seq.get(mid))
                if msg.seq is not None and last is not None and msg.seq <= last:
                    duplicates += 1
                    continue
                values = msg.values()
                outcome = self._monitor.on_message(msg, sub.received_at, values)
                ev = outcome.evaluation
                colour = ev.colour
                accepted += 1
                backfill += ev.backfill
                ts_ns = msg.timestamp_ns()
                b.writes.append(
                    MessageWrite(
                        machine_id=mid,
                        seq=msg.seq,
                        ts_ns=ts_ns,
                        received_ns=received_ns,
                        backfill=ev.backfill,
                        status=msg.status,
                        accessible=msg.accessible,
                        extra=_extra(msg),
                        values=values,
                    )
                )
                if msg.seq is not None:
                    b.seqs[mid] = msg.seq
                metrics = ev.metrics  # StrEnum members are their own text, as is the colour
                lw = b.latest.get(mid)
                if lw is None:
                    lw = b.latest[mid] = LatestWrite(mid, ev.colour, ev.reason, metrics, None)
                lw.colour, lw.reason, lw.metrics = ev.colour, ev.reason, metrics
                lw.last_seq = b.seqs.get(mid, self._last_seq.get(mid))
                if not ev.backfill:
                    lw.full = True
                    lw.ts_ns, lw.received_ns, lw.last_fresh_ns = ts_ns, received_ns, received_ns
                    lw.values = values
                    b.newest[mid] = (msg, ev.colour, ev.reason)
                b.changes.extend(outcome.changes)
            if duplicates:
                self._counters.inc("fleet.duplicates", duplicates)
            if colour is None:
                view = self._monitor.engine.view(sub.machine_id, sub.received_at)
                colour = view.colour if view is not None else Colour.GREY
            b.results.append(
                IngestResult(
                    accepted=accepted, duplicates=duplicates, backfill=backfill, colour=colour
                )
            )
        for mid, (msg, colour_now, reason) in b.newest.items():
            # system info and the live update: of each machine's newest message only
            b.latest[mid].info_json = _info_json(msg)
            b.updates[mid] = machine_update(
                mid,
                colour_now,
                dict(msg.sensor_data),
                iso_utc_datetime(msg.timestamp),
                reason,
                0,  # set at commit
            )
        return b


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
