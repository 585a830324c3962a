"""The control part of a station, assembled from its ``[control]`` table: actuator backends
(with their simulated twins under ``--simulate``), the command path, the scenario runner, the
redline monitor fed with every acquired block, the system mode, the control authority, and
the watchdogs (:mod:`rigwatch.control.watchdogs`), run by one control thread.

The station (:mod:`rigwatch.station`) builds one :class:`StationControl`, starts it after
acquisition and stops it first: an abort sequence during a hot sequence still reaches the
valves through the acquisition device's port.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from rigwatch.acquisition.engine import AcquisitionEngine
from rigwatch.config.control import (
    ActuatorBackendConfig,
    ArduinoMotorsConfig,
    GpioValvesConfig,
    S7Config,
    StationControlConfig,
    Stm32ValvesConfig,
)
from rigwatch.control.actuators import ActuatorBackend, Status
from rigwatch.control.audit import AuditLog
from rigwatch.control.authority import ControlAuthority
from rigwatch.control.backends.build import build_backend
from rigwatch.control.backends.pi_valves import PiValves
from rigwatch.control.backends.s7 import simulated_plc
from rigwatch.control.commander import Commander
from rigwatch.control.interlocks import Interlocks
from rigwatch.control.redlines import RedlineMonitor
from rigwatch.control.runner import ScenarioRunner
from rigwatch.control.scenarios import Scenario, load_scenarios
from rigwatch.control.states import HOT_STATES, RunnerState
from rigwatch.control.system_mode import SystemMode
from rigwatch.control.values import LatestValues
from rigwatch.control.watchdogs import Watchdogs, abort_or_disarm
from rigwatch.counters import Counters
from rigwatch.devices.stm32.codec import SCENARIO_WORDS
from rigwatch.devices.stm32.link import CommandLink
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)


ControlListener = Callable[[str], None]
"""Called with ``"actuators"`` after a command completed, ``"readings"`` after an actuator's
reading changed (a command sent or answered, a device lost: seen by the watchdogs' pass),
``"runner"`` after the runner's status changed (state, step, hold, abort: seen by the same
pass, at most ``watchdog_interval_s`` late), ``"authority"`` after the control authority
changed; from the control part's threads: it must return at once (hand the event over to its
own thread or loop)."""

S = RunnerState


@dataclass(frozen=True)
class _SignalAbort:
    signal: str


_STOP = object()
_CHECK = object()


class _NotifyingCommander(Commander):
    """A :class:`Commander` that tells the station when each command completed."""

    def __init__(self, *args: Any, on_done: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_done = on_done

    def command(self, changes: Mapping[str, Any], **kwargs: Any) -> Status:
        status = super().command(changes, **kwargs)
        status.add_callback(lambda _st: self._on_done())
        return status


class StationControl:
    """The control part of a station: its actuator backends (with their simulated twins under
    ``--simulate``), the command path, the scenario runner, the redline monitor fed with every
    acquired block, the system mode, the control authority, and the watchdogs.

    Blocks reach the control part without blocking acquisition: a listener on each stream
    whose channels a scenario uses puts the stream's name on a queue; the control thread reads
    the new rows from the ring buffer and feeds the latest values and the redlines. The same
    thread runs the watchdogs (staleness, operator, device loss: :class:`Watchdogs`) every
    ``watchdog_interval_s`` and after each completed command, and starts the abort sequence
    asked for by :meth:`abort_on_signal`.

    Attributes:
        commander, runner, monitor, values, audit: the command path, the scenario runner, the
            redline monitor and the latest values it reads, the audit log (None without
            ``[control]``).
        system_mode: ``system_mode`` requests mapped onto the runner.
        authority: which client may command.
        watchdogs: the staleness, operator and device-loss watchdogs.
        twins: the simulated stand-ins started for ``--simulate`` (emulators, PLC server).

    A station without ``[control]`` has the same part with no actuators and no scenarios:
    its system mode is still the runner's state (``idle``/``armed``).

    Args:
        config: the ``[control]`` table, or None.
        engine: the station's acquisition engine (devices with a command port, streams).
        counters: shared counters (``control.*``).
        simulate: build each backend's simulated twin.

    Raises:
        ConfigError: a scenario does not fit the station (unknown actuator or channel...).
        ControlError: the audit log cannot be opened.
    """

    def __init__(
        self,
        config: StationControlConfig | None,
        engine: AcquisitionEngine,
        counters: Counters,
        *,
        simulate: bool = False,
    ) -> None:
        self.config = config
        self.engine = engine
        self.counters = counters
        self.simulated = simulate
        self.values = LatestValues()
        self.monitor = RedlineMonitor()
        self.twins: list[Any] = []
        self._listeners: list[ControlListener] = []
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._read_index: dict[str, int] = {}
        self._channels: dict[str, list[str]] = {}
        """stream -> its channel names (fixed while it runs)"""
        self._block_listeners: dict[str, Callable[[int], None]] = {}
        self.audit: AuditLog | None = None
        try:
            self._build(config)
        except BaseException:
            self.close()
            raise

    def _build(self, config: StationControlConfig | None) -> None:
        links: dict[str, CommandLink] = {
            n: s.device for n, s in self.engine.streams.items() if isinstance(s.device, CommandLink)
        }
        backends: list[ActuatorBackend] = []
        rules = []
        if config is not None:
            self.audit = AuditLog(config.audit)
            backends = [self._backend(b, links) for b in config.actuators]
            rules = list(config.interlocks)
        specs = {s.name: s for b in backends for s in b.specs}
        self.commander = _NotifyingCommander(
            backends,
            Interlocks(rules, specs),
            self.audit,
            counters=self.counters,
            on_done=self._command_done,
        )
        bank_devices = [
            b.device
            for b in (config.actuators if config is not None else [])
            if isinstance(b, Stm32ValvesConfig)
        ]
        firmware_name = bank_devices[0] if bank_devices else None
        if firmware_name is None and len(links) == 1:
            firmware_name = next(iter(links))
        firmware = links.get(firmware_name) if firmware_name is not None else None
        channel_device = {
            c.name: n for n, s in self.engine.streams.items() for c in s.info.channels
        }
        scenarios: dict[str, Scenario] = {}
        if config is not None and config.scenarios:
            scenarios = load_scenarios(
                config.scenarios,
                specs,
                list(channel_device),
                SCENARIO_WORDS if firmware is not None else None,
            )
        self.runner = ScenarioRunner(
            self.commander,
            scenarios,
            firmware=firmware,
            values=self.values,
            monitor=self.monitor,
            audit=self.audit,
            safing_scenario=config.safing_scenario if config is not None else "emergency",
        )
        self.system_mode = SystemMode(self.runner)
        self.authority = ControlAuthority(config.operator_timeout_s if config is not None else 5.0)
        used: set[str] = set()
        redline_channels: set[str] = set()
        for sc in scenarios.values():
            for r in sc.redlines:
                redline_channels.update(r.channels)
            for st in [*sc.steps, *sc.abort_steps]:
                if st.wait_until is not None:
                    used.add(st.wait_until.channel)
        used |= redline_channels
        self.fed_streams = sorted({channel_device[c] for c in used if c in channel_device})
        self.watched_streams = sorted(
            {channel_device[c] for c in redline_channels if c in channel_device} | set(bank_devices)
        )
        self.watchdogs = Watchdogs(
            self.runner,
            self.authority,
            self.monitor,
            self.commander,
            self.audit,
            self.engine.streams,
            self.watched_streams,
            self.notify,
        )

    def _backend(self, cfg: ActuatorBackendConfig, links: Mapping[str, CommandLink]) -> Any:
        if isinstance(cfg, GpioValvesConfig):
            return PiValves(cfg, simulate=self.simulated)
        if self.simulated and isinstance(cfg, ArduinoMotorsConfig):
            from rigwatch.devices.emulators.arduino import ArduinoEmulator

            arduino = ArduinoEmulator()
            self.twins.append(arduino)
            cfg = cfg.model_copy(update={"port": arduino.start()})
        elif self.simulated and isinstance(cfg, S7Config):
            plc = simulated_plc(cfg)
            self.twins.append(plc)
            cfg = cfg.model_copy(update={"host": "127.0.0.1", "tcp_port": plc.port})
        return build_backend(cfg, links)

    # -- events ------------------------------------------------------------------------------

    def add_listener(self, listener: ControlListener) -> None:
        """Be told of control events (see :data:`ControlListener`)."""
        self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: ControlListener) -> None:
        """Stop telling ``listener``; unknown ones are ignored."""
        self._listeners = [x for x in self._listeners if x is not listener]

    def notify(self, event: str) -> None:
        """Tell every listener of ``event``."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("control listener failed on %s", event)

    def _command_done(self) -> None:
        self.notify("actuators")
        self._queue.put(_CHECK)  # an actuator may have become unknown: check at once

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect the backends (a backend that cannot connect is logged and counted; its
        actuators stay ``unknown``), attach to the streams, start the control thread."""
        for b in self.commander.backends:
            try:
                b.connect()
            except DeviceError as exc:
                log.error("control: %s", exc)
                self.counters.inc("control.connect_error", message=str(exc))
        for name in self.fed_streams:
            stream = self.engine.streams[name]
            self._read_index[name] = stream.buffer.write_index
            self._channels[name] = [c.name for c in stream.info.channels]
            listener = partial(self._on_block, name)
            self._block_listeners[name] = listener
            stream.add_listener(listener)
        self.watchdogs.baseline()
        self._thread = threading.Thread(target=self._run, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Run the abort sequence when the stand is armed, running or holding and wait (at most
        ``shutdown_abort_s``) for ``safe``; then stop the control thread and release the
        backends. Idempotent."""
        if self._thread is not None:
            if self.runner.state in HOT_STATES:
                abort_or_disarm(
                    self.runner, "the station is stopping during a hot sequence", "station", "stop"
                )
            self.wait_safe()
            self._queue.put(_STOP)
            self._thread.join(5.0)
            self._thread = None
        for name, listener in self._block_listeners.items():
            self.engine.streams[name].remove_listener(listener)
        self._block_listeners.clear()
        self.runner.close()
        self.close()

    def wait_safe(self) -> RunnerState:
        """While an abort sequence runs, wait (at most ``shutdown_abort_s``) for ``safe``."""
        limit = self.config.shutdown_abort_s if self.config is not None else 30.0
        if self.runner.state is S.ABORTING:
            return self.runner.wait_state(S.SAFE, limit)
        return self.runner.state

    def close(self) -> None:
        """Release backends, simulated twins and the audit log; safe to call twice."""
        commander = getattr(self, "commander", None)
        for b in commander.backends if commander is not None else ():
            try:
                b.close()
            except Exception:
                log.exception("closing actuator backend %s failed", b.name)
        for twin in self.twins:
            with contextlib.suppress(Exception):
                twin.stop()
        self.twins.clear()
        if self.audit is not None:
            self.audit.close()

    def abort_on_signal(self, signal_name: str) -> None:
        """Ask the control thread to abort if the stand is hot, because the process received
        ``signal_name``. Safe to call from a signal handler (it only queues the request)."""
        self._queue.put(_SignalAbort(signal_name))

    # -- the control thread --------------------------------------------------------------------

    def _on_block(self, name: str, _end: int) -> None:
        self._queue.put(name)  # the acquisition thread only queues the stream's name

    def _run(self) -> None:
        interval = self.config.watchdog_interval_s if self.config is not None else 0.1
        next_watch = time.monotonic()
        while True:
            try:
                items = [self._queue.get(timeout=max(0.0, next_watch - time.monotonic()))]
            except queue.Empty:
                items = []
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                return
            try:
                for name in {i for i in items if isinstance(i, str)}:
                    self._feed(name)
                for item in items:
                    if isinstance(item, _SignalAbort) and self.runner.state in HOT_STATES:
                        abort_or_disarm(
                            self.runner,
                            f"{item.signal}: the station is stopping during a hot sequence",
                            "station",
                            "signal",
                        )
                now = time.monotonic()
                if now >= next_watch or _CHECK in items:
                    self.watchdogs.check()
                    if now >= next_watch:
                        next_watch = now + interval
            except Exception:  # the watchdogs must outlive a bug in one pass
                log.exception("control thread pass failed")
                self.counters.inc("control.internal_error")

    def _feed(self, name: str) -> None:
        stream = self.engine.streams[name]
        r = stream.buffer.read_since(self._read_index[name])
        self._read_index[name] = r.end_index
        if r.missed:
            self.counters.inc(f"control.{name}.missed_rows", n=r.missed)
        if r.data.shape[0] == 0:
            return
        channels = self._channels[name]
        self.values.feed(channels, r.data, r.timestamps_ns)
        self.monitor.feed(channels, r.data, r.timestamps_ns)
