"""The fleet server's running parts, assembled from a :class:`FleetConfig`: database, status
engine and alerts, group-commit writer, live hub (and Redis), timer and retention tasks, MQTT
ingest. :func:`rigwatch.fleet.app.create_fleet_app` starts and stops them in its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from rigwatch.counters import Counters
from rigwatch.errors import WireError
from rigwatch.fleet.alert_store import SqlAlertStore
from rigwatch.fleet.alerts import AlertChange, AlertManager
from rigwatch.fleet.config import FleetConfig
from rigwatch.fleet.db import create_fleet_engine, migrate
from rigwatch.fleet.hub import LiveHub, RedisBridge
from rigwatch.fleet.ingest import (
    IngestWriter,
    KeyCache,
    RateLimiter,
    Submission,
    machine_update,
)
from rigwatch.fleet.monitor import Monitor
from rigwatch.fleet.mqtt import run_mqtt_ingest
from rigwatch.fleet.notify import Dispatcher, EmailNotifier, Notifier, WebhookNotifier
from rigwatch.fleet.rules import Colour, load_rules
from rigwatch.fleet.schemas import IngestResult
from rigwatch.fleet.security import password_hasher
from rigwatch.fleet.status import Evaluation, StatusEngine
from rigwatch.fleet.store import FleetStore
from rigwatch.timefmt import from_ns, iso_utc, to_ns
from rigwatch.wire import StatusMessage, validate_status

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The server's clock: aware UTC now."""
    return datetime.now(tz=UTC)


def _notifiers(config: FleetConfig) -> list[Notifier]:
    out: list[Notifier] = [
        WebhookNotifier(w.url, headers=w.headers, timeout_s=w.timeout_s)
        for w in config.notify.webhooks
    ]
    e = config.notify.email
    if e is not None:
        out.append(
            EmailNotifier(
                host=e.host,
                port=e.port,
                sender=e.sender,
                recipients=e.recipients,
                starttls=e.starttls,
                username=e.username,
                password=e.password,
            )
        )
    return out


class FleetServices:
    """Every running part of one fleet server worker.

    Args:
        config: the configuration.
        clock: the server clock (tests inject one that moves only when told).
        counters: where refusals and events are counted (shared with the app's handlers).
    """

    def __init__(
        self, config: FleetConfig, clock: Clock = wall_clock, counters: Counters | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.counters = counters or Counters()
        self.engine = create_fleet_engine(
            config.database.url,
            synchronous=config.database.synchronous,
            schema=config.database.schema_name,
        )
        migrate(self.engine)
        self.store = FleetStore(
            self.engine,
            lambda: to_ns(self.clock()),
            password_hasher(config.auth.argon2_time_cost, config.auth.argon2_memory_kib),
        )
        self.status = StatusEngine(load_rules(config.rules.path))
        for machine_id, fresh_ns in self.store.last_fresh().items():
            self.status.add_machine(machine_id, from_ns(fresh_ns) if fresh_ns else None)
        self.alerts = AlertManager(SqlAlertStore(self.engine))
        self.monitor = Monitor(self.status, self.alerts)
        self.dispatcher = Dispatcher(_notifiers(config), self.counters)
        self.key_cache = KeyCache(config.ingest.key_cache_s)
        limit = config.ingest.rate_limit
        self.limiter = RateLimiter(limit.messages_per_s, limit.burst)
        self.hub = LiveHub(config.live.client_queue, self.counters)
        self.redis: RedisBridge | None = None
        self.writer = IngestWriter(
            self.store,
            self.monitor,
            queue_max_messages=config.ingest.queue_max_messages,
            commit_max_messages=config.ingest.commit_max_messages,
            on_committed=self._committed,
            counters=self.counters,
        )
        self._notify_pool = ThreadPoolExecutor(1, thread_name_prefix="fleet-notify")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._mqtt_allowed = KeyCache(config.ingest.key_cache_s)
        """machine -> itself when it has a valid key, else None (MQTT carries no key)"""
        self._in_flight = 0
        self._answers: _Answers | None = None
        self._mqtt_slots: asyncio.Semaphore | None = None
        self.mqtt_subscribed = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Seed the live hub, connect Redis, start the writer and the background tasks."""
        self._loop = asyncio.get_running_loop()
        latest = await asyncio.to_thread(self.store.all_latest)
        self.hub.seed(
            [
                machine_update(
                    s.machine_id,
                    s.colour.value,
                    dict(s.values),
                    iso_utc(to_ns(s.timestamp)) if s.timestamp else None,
                    s.reason,
                    0,
                )
                for s in latest
            ]
        )
        if self.config.live.redis_url:
            live = self.config.live
            assert live.redis_url is not None
            self.redis = RedisBridge(
                self.hub, live.redis_url, live.channel, live.key_prefix, self.counters
            )
            await self.redis.start()
        self.writer.start()
        self._tasks.append(asyncio.create_task(self._timer(), name="fleet-timer"))
        self._tasks.append(asyncio.create_task(self._retention(), name="fleet-retention"))
        if self.config.mqtt.enabled:
            self._mqtt_slots = asyncio.Semaphore(1000)
            self._tasks.append(
                asyncio.create_task(
                    run_mqtt_ingest(
                        self.config.mqtt, self.mqtt_message, self.counters, self.mqtt_subscribed
                    ),
                    name="fleet-mqtt",
                )
            )

    async def stop(self) -> None:
        """Stop tasks, commit what is queued, close connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await asyncio.to_thread(self.writer.stop)
        if self.redis is not None:
            await self.redis.close()
        self._notify_pool.shutdown(wait=True)
        self.engine.dispose()

    # -- publishing ----------------------------------------------------------------------

    def _committed(self, updates: list[dict[str, Any]], changes: list[AlertChange]) -> None:
        """Writer thread: hand updates to the loop and notifications to their thread."""
        self._notify(changes)
        if updates and self._loop is not None:
            self._loop.call_soon_threadsafe(self.publish, updates)

    def _notify(self, changes: list[AlertChange]) -> None:
        """Hand alert changes that notify to the notification thread (any thread)."""
        if any(c.notify for c in changes):
            self._notify_pool.submit(self.dispatcher.dispatch, changes)

    def publish(self, updates: list[dict[str, Any]]) -> None:
        """On the loop: send updates to this worker's clients, and through Redis (when
        configured) to those of the other workers."""
        for u in updates:
            self.hub.publish(u)
        if self.redis is not None:
            self.redis.send(updates)

    # -- ingest --------------------------------------------------------------------------

    def reserve_body(self, size: int) -> bool:
        """On the loop: reserve ``size`` bytes of request bodies in progress; False when that
        would exceed ``max_in_flight_bytes`` (one body is always allowed)."""
        if self._in_flight and self._in_flight + size > self.config.ingest.max_in_flight_bytes:
            self.counters.inc("fleet.in_flight_full")
            return False
        self._in_flight += size
        return True

    def release_body(self, size: int) -> None:
        """On the loop: release a reservation of :meth:`reserve_body`."""
        self._in_flight -= size

    async def submit(self, machine_id: str, messages: Sequence[StatusMessage]) -> IngestResult:
        """Queue messages for the group commit and wait for their commit.

        Raises:
            OverflowError: the queue is full (answer 503 with Retry-After).
            Exception: the commit failed (answer 503: send again).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        if self._answers is None:
            self._answers = _Answers(loop)
        answers = self._answers

        def resolve(result: IngestResult | BaseException) -> None:
            answers.put(future, result)

        sub = Submission(machine_id, messages, self.clock(), resolve)
        if not self.writer.try_submit(sub):
            self.counters.inc("fleet.overload")
            raise OverflowError("ingest queue full")
        return await future

    async def mqtt_message(self, machine_id: str, payload: bytes) -> None:
        """Validate and queue one MQTT message (see :mod:`rigwatch.fleet.mqtt`)."""
        try:
            msg = validate_status(payload, now=self.clock())
        except WireError as exc:
            self.counters.inc("fleet.mqtt_invalid", message=str(exc)[:300])
            return
        if msg.machine_id != machine_id:
            self.counters.inc(
                "fleet.mqtt_refused",
                message=f"machine_id {msg.machine_id!r} on the topic of {machine_id!r}",
            )
            return
        if not await self._mqtt_machine_allowed(machine_id):
            self.counters.inc("fleet.mqtt_refused", message=f"{machine_id!r}: no valid key")
            return
        assert self._mqtt_slots is not None
        await self._mqtt_slots.acquire()
        slots = self._mqtt_slots
        loop = asyncio.get_running_loop()

        def release(result: IngestResult | BaseException) -> None:
            if isinstance(result, BaseException):
                self.counters.inc("fleet.mqtt_store_failed", message=str(result)[:300])
            loop.call_soon_threadsafe(slots.release)

        sub = Submission(machine_id, [msg], self.clock(), release)
        while not self.writer.try_submit(sub):  # back-pressure: the broker holds the rest
            await asyncio.sleep(0.01)

    async def _mqtt_machine_allowed(self, machine_id: str) -> bool:
        found, allowed = self._mqtt_allowed.get(machine_id)
        if found:
            return allowed is not None
        ok = await asyncio.to_thread(self.store.machine_has_key, machine_id)
        self._mqtt_allowed.put(machine_id, machine_id if ok else None)
        return ok

    def keys_changed(self) -> None:
        """Forget cached key lookups (after a rotate or revoke in this worker)."""
        self.key_cache.clear()
        self._mqtt_allowed.clear()

    # -- timer and retention -------------------------------------------------------------

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(self.config.rules.tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("fleet timer tick failed")

    async def tick(self, now: datetime | None = None) -> list[Evaluation]:
        """Evaluate every machine at ``now`` (default: the clock): silence turns machines
        grey, delayed breaches fire; colour changes are stored and published.

        A machine turning grey here is checked against the database first: when another
        worker received fresh data from it, or it was deleted, this worker's verdict is
        dropped.
        """
        at = now or self.clock()
        evaluations = await asyncio.to_thread(self.status.evaluate, at)
        turning_grey = {
            e.machine_id
            for e in evaluations
            if e.colour is Colour.GREY and e.previous_colour is not Colour.GREY
        }
        if turning_grey:
            fresh = await asyncio.to_thread(self.store.last_fresh)
            kept = []
            for e in evaluations:
                if e.machine_id in turning_grey:
                    if e.machine_id not in fresh:
                        continue  # deleted meanwhile
                    view = self.status.view(e.machine_id, at)
                    mine = to_ns(view.last_fresh_at) if view and view.last_fresh_at else 0
                    if (fresh.get(e.machine_id) or 0) > mine:
                        continue
                kept.append(e)
            evaluations = kept
        changes = await asyncio.to_thread(self._apply_alerts, evaluations)
        self._notify(changes)
        colour_changes = [e for e in evaluations if e.changed]
        if colour_changes:
            await asyncio.to_thread(
                self.store.set_colours,
                [
                    (
                        e.machine_id,
                        e.colour.value,
                        e.reason,
                        {k: v.value for k, v in e.metrics.items()},
                    )
                    for e in colour_changes
                ],
            )
            self.publish(
                [
                    machine_update(
                        e.machine_id, e.colour.value, None, None, e.reason, to_ns(wall_clock())
                    )
                    for e in colour_changes
                ]
            )
        return evaluations

    def _apply_alerts(self, evaluations: list[Evaluation]) -> list[AlertChange]:
        """The alert changes of a tick's evaluations (one thread hop for all of them)."""
        return [change for e in evaluations for change in self.alerts.apply(e.signals)]

    async def _retention(self) -> None:
        db = self.config.database
        while True:
            try:
                await asyncio.to_thread(
                    self.store.rollup_and_prune,
                    to_ns(self.clock()),
                    db.raw_retention_days * 86400.0,
                )
            except Exception:
                log.exception("fleet retention failed")
            await asyncio.sleep(db.retention_every_s)


class _Answers:
    """Answers from the writer thread to waiting requests, handed to the loop in one wake-up
    per commit rather than one per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: list[tuple[asyncio.Future[IngestResult], IngestResult | BaseException]] = []

    def put(
        self, future: asyncio.Future[IngestResult], result: IngestResult | BaseException
    ) -> None:
        """Writer thread: queue an answer; the first one queued wakes the loop."""
        with self._lock:
            wake = not self._pending
            self._pending.append((future, result))
        if wake:
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for future, result in pending:
            _settle(future, result)


def _settle(future: asyncio.Future[IngestResult], result: IngestResult | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
