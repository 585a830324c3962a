"""The agent's main loop: sample -> outbox -> sender, every ``interval_s``, until stopped.

One asyncio task does everything in turn, sleeping until its next deadline (the next sample, or
the end of a send backoff), so an injected :class:`~rigwatch.agent.clock.VirtualClock` runs the
very same loop hours ahead in a test. Sensor reads (serial, HTTP) and system-info collection
run in a worker thread; a sample is committed to the outbox before anything is sent, so a
message exists on disk from the moment it is made.

Stopping: SIGINT, SIGTERM and, on Windows, Ctrl-Break (SIGBREAK) set the stop event; the loop
finishes the step it is in (a send in flight is completed or times out) and closes its ports
and connections. Messages not yet delivered stay in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from rigwatch.agent.clock import Clock, SystemClock
from rigwatch.agent.config import AgentConfig, HttpServerConfig
from rigwatch.agent.outbox import Outbox
from rigwatch.agent.sender import HttpTransport, MqttTransport, Sender, Transport
from rigwatch.agent.sensors import PluginResult, Reading, SensorPlugin, build_plugin
from rigwatch.agent.system_info import SystemInfoResult, collect_system_info
from rigwatch.counters import Counters
from rigwatch.errors import AgentError
from rigwatch.wire.status_v1 import ABS_LIMIT, MAX_MESSAGE_BYTES, METRIC_BOUNDS, StatusMessageV1

log = logging.getLogger(__name__)

SystemInfoFn = Callable[[float], SystemInfoResult]


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def check_plausible(metric: str, reading: Reading) -> Reading:
    """A value outside the physical bounds of the wire schema
    (:data:`rigwatch.wire.status_v1.METRIC_BOUNDS`, else ``|v| <= ABS_LIMIT``) becomes a missing
    value with the reason: the server would refuse the whole message for it."""
    if reading.value is None:
        return reading
    low, high = METRIC_BOUNDS.get(metric, (-ABS_LIMIT, ABS_LIMIT))
    if low <= reading.value <= high:
        return reading
    return Reading.missing(f"implausible value {reading.value!r} outside [{low}, {high}]")


@dataclass
class Sample:
    """One sample before it becomes a message: readings of every plug-in, system info."""

    time: float
    results: dict[str, PluginResult]
    system: SystemInfoResult | None


class Agent:
    """The agent: sensor plug-ins, system info, the outbox and the sender.

    Args:
        config: the agent's config.
        outbox: the local outbox.
        transport: HTTP or MQTT towards the server.
        plugins: sensor plug-ins (default: built from ``config.sensors``).
        clock: time source (tests inject a :class:`~rigwatch.agent.clock.VirtualClock`).
        system_info: collects system info at a time (seconds since the epoch).
        counters: named counters (``agent.samples``, ``agent.sensor_errors``...).
        sender: a sender made by the caller (tests: a seeded jitter); by default one is made
            for ``outbox`` and ``transport`` from the config.
    """

    def __init__(
        self,
        config: AgentConfig,
        outbox: Outbox,
        transport: Transport,
        *,
        plugins: Sequence[SensorPlugin] | None = None,
        clock: Clock | None = None,
        system_info: SystemInfoFn | None = None,
        counters: Counters | None = None,
        sender: Sender | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.clock = clock or SystemClock()
        self.counters = counters or Counters()
        self.plugins = list(
            plugins
            if plugins is not None
            else [build_plugin(s, now=self.clock.time) for s in config.sensors]
        )
        self._system_info = system_info or (lambda t: collect_system_info(t))
        server = config.server
        batch_n, batch_b = (
            (server.batch_max_messages, server.batch_max_bytes)
            if isinstance(server, HttpServerConfig)
            else (100, 1_000_000)
        )
        self.sender = sender or Sender(
            outbox,
            transport,
            clock=self.clock,
            backoff=config.backoff,
            batch_max_messages=batch_n,
            batch_max_bytes=batch_b,
            backfill_after_s=config.interval_s,
            counters=self.counters,
        )

    # -- one sample ---------------------------------------------------------------------------

    def _read(self, t: float) -> Sample:
        results: dict[str, PluginResult] = {}
        for plugin in self.plugins:
            try:
                results[plugin.name] = plugin.read()
            except Exception as exc:  # a plug-in bug must not stop the agent
                log.exception("sensor plug-in %s failed", plugin.name)
                error = f"plug-in {plugin.name} failed: {type(exc).__name__}: {exc}"
                # the agent's own fault, not a statement about the machine's interface
                results[plugin.name] = PluginResult(
                    {m: Reading.missing(error) for m in plugin.metrics}
                )
        system = None
        if self.config.system_info:
            try:
                system = self._system_info(t)
            except Exception as exc:
                log.exception("system info failed")
                system = SystemInfoResult({}, [("system_info", f"{type(exc).__name__}: {exc}")])
        return Sample(t, results, system)

    def build_message(self, sample: Sample, seq: int) -> dict[str, Any]:
        """The status message (wire schema v1) of a sample, as JSON-ready data."""
        sensor_data: dict[str, float | None] = {}
        sensor_errors: dict[str, str] = {}
        errors: list[dict[str, Any]] = []
        inaccessible: list[str] = []
        for result in sample.results.values():
            for metric, reading in result.readings.items():
                reading = check_plausible(metric, reading)
                sensor_data[metric] = reading.value
                if reading.error is not None:
                    sensor_errors[metric] = reading.error[:2000]
                    self.counters.inc("agent.sensor_errors", message=reading.error)
            if not result.accessible:
                inaccessible.append(result.access_error or "no answer")
        message: dict[str, Any] = {
            "schema_version": 1,
            "machine_id": self.config.machine_id,
            "timestamp": _iso(sample.time),
            "status": self.config.status,
            "sensor_data": sensor_data,
            "sensor_errors": sensor_errors,
            "seq": seq,
            "backfill": False,
        }
        if self.plugins:
            message["accessible"] = not inaccessible
            if inaccessible:
                message["access_error"] = "; ".join(inaccessible)[:2000]
        if sample.system is not None:
            if sample.system.info:
                message["system_info"] = sample.system.info
            errors.extend(
                {"source": src, "message": msg[:2000]} for src, msg in sample.system.errors
            )
        dropped, dropped_bytes = self.outbox.unreported_drops()
        if dropped:
            errors.append(
                {
                    "source": "outbox",
                    "message": (
                        f"{dropped} older message(s) ({dropped_bytes} bytes) dropped: the "
                        f"outbox reached its bound of {self.outbox.max_bytes} bytes while the "
                        "server was unreachable"
                    ),
                }
            )
        message["errors"] = errors[:64]
        return message

    def _validated(self, message: dict[str, Any], t: float) -> bytes:
        """The message as JSON bytes, checked against the wire schema and its size bound.

        System info the schema refuses (an odd disk) or that makes the message too large is
        left out, with an error saying so, rather than losing the sensor values with it.

        Raises:
            AgentError: the message is invalid even without system info (a bug).
        """
        context = {"now": datetime.fromtimestamp(t, tz=UTC)}
        problem: str | None = None
        try:
            StatusMessageV1.model_validate(message, context=context)
        except ValidationError as exc:
            problem = f"left out, invalid: {exc}"
        body = _dumps(message)
        if problem is None and len(body) > MAX_MESSAGE_BYTES:
            problem = f"left out: the message would be {len(body)} bytes (> {MAX_MESSAGE_BYTES})"
        if problem is None:
            return body
        if "system_info" not in message:
            raise AgentError(f"the agent made an invalid status message: {problem}")
        log.warning("system info %s", problem)
        message = {k: v for k, v in message.items() if k != "system_info"}
        message["errors"] = [
            *message["errors"][:63],
            {"source": "system_info", "message": problem[:2000]},
        ]
        try:
            StatusMessageV1.model_validate(message, context=context)
        except ValidationError as exc:
            raise AgentError(f"the agent made an invalid status message: {exc}") from exc
        return _dumps(message)

    async def sample(self) -> int:
        """Read every plug-in and the system info, make the message and commit it to the
        outbox.

        Returns:
            The message's ``seq``.

        Raises:
            OutboxError: the outbox cannot be written.
        """
        t = self.clock.time()
        sample = await asyncio.to_thread(self._read, t)
        seq = self.outbox.allocate_seq(int(t * 1e9))
        message = self.build_message(sample, seq)
        body = self._validated(message, t)
        dropped, dropped_bytes = self.outbox.unreported_drops()
        self.outbox.put(str(seq), body, int(t * 1e9))
        if dropped:
            self.outbox.mark_drops_reported(dropped, dropped_bytes)
        self.counters.inc("agent.samples")
        return seq

    # -- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, once: bool = False) -> None:
        """Sample every ``interval_s`` and send, until ``stop`` is set (or one round when
        ``once``). Closes plug-ins and the transport on the way out."""
        clock = self.clock
        interval = self.config.interval_s
        next_sample = clock.monotonic()
        try:
            while not stop.is_set():
                if clock.monotonic() >= next_sample:
                    try:
                        await self.sample()
                    except AgentError as exc:
                        self.counters.inc("agent.sample_failures", message=str(exc))
                        log.error("sample lost: %s", exc)
                    next_sample += interval
                    if next_sample <= clock.monotonic():  # fell behind (a suspended computer)
                        next_sample = clock.monotonic() + interval
                if self.sender.ready():
                    await self.sender.drain(stop)
                if once:
                    return
                wake = next_sample
                if len(self.outbox) and self.sender.next_attempt_at < wake:
                    wake = self.sender.next_attempt_at
                if await clock.sleep(wake - clock.monotonic(), stop):
                    return
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close plug-ins and the transport."""
        for plugin in self.plugins:
            try:
                plugin.close()
            except Exception:
                log.exception("closing plug-in %s failed", plugin.name)
        await self.sender.transport.aclose()


def build_transport(config: AgentConfig, clock: Clock | None = None) -> Transport:
    """The transport the config names, with the machine's key.

    Raises:
        ConfigError: the key file or a TLS file cannot be read.
    """
    key = config.key.read()
    if key is None:
        log.warning("no machine key (set %s or key.file); sending without one", config.key.env)
    if isinstance(config.server, HttpServerConfig):
        return HttpTransport(config.server, config.machine_id, key, config.tls, clock=clock)
    return MqttTransport(config.server, config.machine_id, key, config.tls)


def stop_signals() -> list[signal.Signals]:
    """The signals that stop the agent: SIGINT, SIGTERM and, on Windows, SIGBREAK (Ctrl-Break,
    also what a service wrapper sends to stop a console program)."""
    names = ["SIGINT", "SIGTERM", "SIGBREAK"]
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


@contextlib.contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT/SIGTERM/SIGBREAK while inside; restore the handlers after.

    Uses the event loop's signal handlers where it has them (POSIX), else ``signal.signal``
    handing over to the loop thread-safely (Windows)."""
    installed: list[tuple[signal.Signals, Any]] = []
    via_loop: list[signal.Signals] = []
    for sig in stop_signals():
        try:
            loop.add_signal_handler(sig, stop.set)
            via_loop.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            try:
                previous = signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
                installed.append((sig, previous))
            except (OSError, ValueError):  # not the main thread, or not supported here
                log.debug("cannot handle %s here", sig)
    try:
        yield
    finally:
        for sig in via_loop:
            loop.remove_signal_handler(sig)
        for sig, previous in installed:
            signal.signal(sig, previous)


async def run_agent(config: AgentConfig, *, once: bool = False) -> Counters:
    """Open the outbox, build the transport and plug-ins, and run until a stop signal (or one
    round when ``once``).

    Returns:
        The agent's counters.
    """
    outbox = Outbox(
        config.outbox.resolved_path(),
        config.outbox.max_bytes,
        max_refused=config.outbox.max_refused,
    )
    try:
        clock = SystemClock()
        agent = Agent(config, outbox, build_transport(config, clock), clock=clock)
        stop = asyncio.Event()
        stats = outbox.stats()
        log.info(
            "agent %s: every %g s to %s; outbox %s holds %d message(s)",
            config.machine_id,
            config.interval_s,
            getattr(config.server, "url", getattr(config.server, "host", "?")),
            outbox.path,
            stats.pending_messages,
        )
        with stop_on_signals(asyncio.get_running_loop(), stop):
            await agent.run(stop, once=once)
        return agent.counters
    finally:
        outbox.close()


def run_blocking(config: AgentConfig, *, once: bool = False) -> Counters:
    """:func:`run_agent` in a new event loop. On Windows the loop is a selector loop (the MQTT
    client needs one; the default proactor loop lacks ``add_reader``)."""
    factory = asyncio.SelectorEventLoop if sys.platform == "win32" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run_agent(config, once=once))
