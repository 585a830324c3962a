"""Sensor plug-ins of the agent: each reads some metrics and says, per metric, either a value or
why there is none.

A plug-in is anything with the :class:`SensorPlugin` shape (a structural Protocol, no base
class). Reads are blocking (serial, HTTP); the agent runs them in a worker thread.

A failed read is a :class:`Reading` with ``value=None`` and an ``error`` — never 0.0 (today's
agent reports a dead sensor as 0.0, a real-looking value). A plug-in also says whether the
interface behind it answered at all (:attr:`PluginResult.accessible`): when nothing answers,
the fleet shows the machine as *not accessible* (black) instead of guessing from the values.

Plug-ins here:

- :class:`SerialSensors`: today's serial interface: ``TEMP?``, ``PRESSURE?``, ``SPEED?``, each
  terminated by CR LF and answered by one number per line (COM1, 9 600 baud, 1 s timeout);
  pyserial.
- :class:`StationSensors`: the newest values of a rigwatch station (``GET {url}/api/sensors``);
  httpx.
- :class:`DiskVolumeSensor`: used percentage of one file system (``disk_volume``); psutil.
- :class:`SimulatedSensors`: smooth deterministic values, for demonstrations without hardware.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import psutil  # type: ignore[import-untyped]

from rigwatch.agent.config import (
    DiskSensorConfig,
    SensorConfig,
    SerialSensorConfig,
    SimulatedSensorConfig,
    StationSensorConfig,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reading:
    """One metric's outcome: a finite ``value``, or ``value=None`` with an ``error``."""

    value: float | None
    error: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.error is None):
            raise ValueError("a Reading has either a value or an error, not both or neither")

    @classmethod
    def missing(cls, error: str) -> Reading:
        """A metric that could not be read, and why."""
        return cls(None, error)


@dataclass(frozen=True, slots=True)
class PluginResult:
    """What one plug-in read.

    Attributes:
        readings: metric name -> reading (one entry per metric the plug-in is configured for).
        accessible: False when the interface did not answer at all (port missing, every query
            timed out, station unreachable); True otherwise.
        access_error: why it is not accessible (None when accessible).
    """

    readings: dict[str, Reading]
    accessible: bool = True
    access_error: str | None = None


class SensorPlugin(Protocol):
    """A source of metrics.

    Attributes:
        name: the plug-in's name (for errors and logs).
        metrics: the metric names it reads.
    """

    name: str
    metrics: tuple[str, ...]

    def read(self) -> PluginResult:
        """Read every metric once (blocking; may take up to the plug-in's timeouts).

        Never raises for a read problem: the problem becomes the readings' errors.
        """
        ...

    def close(self) -> None:
        """Release the port or connection (the plug-in may be read again after)."""
        ...


def _all_missing(metrics: tuple[str, ...], error: str) -> dict[str, Reading]:
    return {m: Reading.missing(error) for m in metrics}


# -- serial ---------------------------------------------------------------------------------


SerialFactory = Callable[..., Any]
"""Opens a serial port: ``factory(port, baudrate=..., timeout=..., write_timeout=...)``
returning an object with ``write``, ``read_until``, ``reset_input_buffer`` and ``close``
(``serial.serial_for_url`` by default)."""


def _default_serial_factory(port: str, **kwargs: Any) -> Any:
    import serial  # imported here: pyserial picks its platform backend on import

    return serial.serial_for_url(port, **kwargs)


class SerialSensors:
    """Today's serial sensor interface: one text query per metric, one number per answer line.

    Each query is written with the configured line ending (CR LF); the answer is read up to
    ``\\n`` within ``timeout_s`` in total. After a timeout the reader waits one more timeout
    for a late answer and discards it, and input left over is discarded before each query, so a
    late answer is not taken for the next metric's value.

    Per metric, the reading is missing with an error when there is no complete answer within
    the timeout, when the answer is not a number, or when it is not finite. When every query
    fails for lack of an answer, or the port cannot be opened, the interface is reported not
    accessible. A port that fails (unplugged adapter) is closed and opened again at the next
    read.

    Args:
        config: port (``COM1``, ``/dev/ttyUSB0`` or a pyserial URL), baud rate, timeout, line
            ending and the query of each metric.
        factory: opens the port (tests pass a fake; default: ``serial.serial_for_url``).
    """

    def __init__(
        self, config: SerialSensorConfig, factory: SerialFactory = _default_serial_factory
    ) -> None:
        self.config = config
        self.name = config.name
        self.metrics = tuple(config.queries)
        self._factory = factory
        self._port: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        if self._port is None:
            self._port = self._factory(
                self.config.port,
                baudrate=self.config.baudrate,
                timeout=self.config.timeout_s,
                write_timeout=self.config.timeout_s,
            )
        return self._port

    def close(self) -> None:
        """Close the port (opened again by the next :meth:`read`)."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a failed port: nothing more to do
                log.debug("closing serial port %s failed", self.config.port, exc_info=True)

    def read(self) -> PluginResult:
        """Query every metric in turn; see the class docstring for the errors."""
        with self._lock:
            try:
                port = self._open()
            except Exception as exc:
                error = f"cannot open serial port {self.config.port}: {exc}"
                log.warning("%s: %s", self.name, error)
                return PluginResult(_all_missing(self.metrics, error), False, error)
            readings: dict[str, Reading] = {}
            silent = 0
            for metric, query in self.config.queries.items():
                try:
                    readings[metric], answered = self._query(port, query)
                except Exception as exc:
                    error = f"serial port {self.config.port} failed during {query}: {exc}"
                    log.warning("%s: %s", self.name, error)
                    self._close_locked()
                    for m in self.metrics:
                        readings.setdefault(m, Reading.missing(error))
                    return PluginResult(readings, False, error)
                if not answered:
                    silent += 1
            if silent == len(self.metrics):
                error = (
                    f"sensor interface on {self.config.port} does not answer "
                    f"({', '.join(self.config.queries.values())} timed out)"
                )
                return PluginResult(readings, False, error)
            return PluginResult(readings)

    def _query(self, port: Any, query: str) -> tuple[Reading, bool]:
        """One query; returns the reading and whether a complete line came back."""
        ending = self.config.line_ending.encode("ascii")
        port.reset_input_buffer()
        port.write(query.encode("ascii") + ending)
        raw: bytes = port.read_until(b"\n", self.config.max_line_bytes)
        if not raw.endswith(b"\n"):
            got = f" (partial answer {raw[:40]!r})" if raw else ""
            # a late answer must not be taken for the next query's: wait one more timeout for
            # it and discard it (a line protocol has no way to tell answers apart)
            late: bytes = port.read_until(b"\n", self.config.max_line_bytes)
            if late:
                log.debug("%s: discarded late answer %r to %s", self.name, late[:40], query)
            return (
                Reading.missing(f"no answer to {query} within {self.config.timeout_s:g} s{got}"),
                False,
            )
        text = raw.decode("ascii", errors="replace").strip()
        try:
            value = float(text)
        except ValueError:
            return Reading.missing(f"answer to {query} is not a number: {text[:40]!r}"), True
        if not math.isfinite(value):
            return Reading.missing(f"answer to {query} is not finite: {text[:40]!r}"), True
        return Reading(value), True


# -- station over HTTP ----------------------------------------------------------------------


class StationSensors:
    """The newest values of a rigwatch station, read from ``GET {url}/api/sensors``.

    The reply is ``{"timestamp", "devices": {device: {"timestamp", "values": {channel: value
    or null}, "units"}}}``. Each metric maps to ``device/channel``. A metric is missing with an
    error when its device or channel is unknown, its value is null (no row yet, NaN), or the
    device's newest row is older than ``max_age_s``. When the station cannot be reached or
    answers with an error status, every metric is missing and the station is reported not
    accessible.

    Args:
        config: the station's URL, the metric map, timeouts, TLS and the optional token.
        client: an ``httpx.Client`` to use (tests pass one with a mock transport); by default
            one is made from the config.
        now: wall clock in seconds since the epoch (for the age check).
    """

    def __init__(
        self,
        config: StationSensorConfig,
        client: httpx.Client | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.metrics = tuple(config.channels)
        self._now = now
        self._owns_client = client is None
        headers = {}
        token = config.read_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = client or httpx.Client(
            timeout=config.timeout_s, verify=config.tls.verify_arg(), headers=headers
        )
        if client is not None and token:
            self._client.headers.update(headers)

    def close(self) -> None:
        """Close the HTTP client (when this plug-in made it)."""
        if self._owns_client:
            self._client.close()

    def read(self) -> PluginResult:
        """One ``GET /api/sensors``; see the class docstring for the errors."""
        url = self.config.url.rstrip("/") + "/api/sensors"
        try:
            reply = self._client.get(url)
        except httpx.HTTPError as exc:
            error = f"station {self.config.url} unreachable: {type(exc).__name__}: {exc}"
            return PluginResult(_all_missing(self.metrics, error), False, error)
        if reply.status_code != 200:
            error = f"station {self.config.url} answered {reply.status_code} to GET /api/sensors"
            return PluginResult(_all_missing(self.metrics, error), False, error)
        try:
            body = reply.json()
            devices = body["devices"]
            if not isinstance(devices, Mapping):
                raise TypeError("devices is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            error = f"station {self.config.url}: unexpected /api/sensors reply: {exc}"
            return PluginResult(_all_missing(self.metrics, error), False, error)
        readings = {m: self._pick(devices, m, ref) for m, ref in self.config.channels.items()}
        return PluginResult(readings)

    def _pick(self, devices: Mapping[str, Any], metric: str, ref: str) -> Reading:
        device, _, channel = ref.partition("/")
        dev = devices.get(device)
        if not isinstance(dev, Mapping):
            return Reading.missing(f"station has no device {device!r}")
        values = dev.get("values")
        if not isinstance(values, Mapping) or channel not in values:
            return Reading.missing(f"station device {device!r} has no channel {channel!r}")
        value = values[channel]
        if value is None:
            return Reading.missing(f"station has no finite value yet for {ref}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Reading.missing(f"station value of {ref} is not a number: {value!r:.40}")
        if not math.isfinite(value):
            return Reading.missing(f"station value of {ref} is not finite")
        if self.config.max_age_s is not None:
            age = self._age_s(dev.get("timestamp"))
            if age is None:
                return Reading.missing(f"station gives no valid timestamp for device {device!r}")
            if age > self.config.max_age_s:
                return Reading.missing(
                    f"station value of {ref} is stale: {age:.1f} s old "
                    f"(limit {self.config.max_age_s:g} s)"
                )
        return Reading(float(value))

    def _age_s(self, stamp: object) -> float | None:
        if not isinstance(stamp, str):
            return None
        try:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return self._now() - t.timestamp()


# -- disk ------------------------------------------------------------------------------------


def system_drive() -> str:
    """The file system of the operating system: ``%SystemDrive%\\`` (``C:\\``) on Windows,
    ``/`` elsewhere."""
    if sys.platform == "win32":
        return os.environ.get("SYSTEMDRIVE", "C:") + "\\"  # Windows names are case-blind
    return "/"


class DiskVolumeSensor:
    """Used percentage of one file system (``psutil.disk_usage(path).percent``, in %).

    Args:
        config: the metric name (``disk_volume``) and the path (default: the system drive).
    """

    def __init__(self, config: DiskSensorConfig) -> None:
        self.config = config
        self.name = config.name
        self.metrics: tuple[str, ...] = (config.metric,)
        self.path = config.path or system_drive()

    def close(self) -> None:
        """Nothing to release."""

    def read(self) -> PluginResult:
        """One ``disk_usage`` call; an OS error becomes the reading's error."""
        try:
            percent = float(psutil.disk_usage(self.path).percent)
        except OSError as exc:
            return PluginResult({self.config.metric: Reading.missing(f"{self.path}: {exc}")})
        return PluginResult({self.config.metric: Reading(percent)})


# -- simulated -------------------------------------------------------------------------------


@dataclass
class SimulatedSensors:
    """Smooth deterministic values around a base per metric (for demonstrations and tests).

    ``value = base * (1 + amplitude * sin(2 pi t / period_s + k))`` for the ``k``-th metric.
    """

    config: SimulatedSensorConfig
    now: Callable[[], float] = time.time
    name: str = field(init=False)
    metrics: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.config.name
        self.metrics = tuple(self.config.metrics)

    def close(self) -> None:
        """Nothing to release."""

    def read(self) -> PluginResult:
        """The values at ``now()``."""
        t = self.now()
        out = {}
        for k, (metric, base) in enumerate(self.config.metrics.items()):
            phase = 2.0 * math.pi * t / self.config.period_s + k
            out[metric] = Reading(base * (1.0 + self.config.amplitude * math.sin(phase)))
        return PluginResult(out)


# -- construction ----------------------------------------------------------------------------


def build_plugin(config: SensorConfig, now: Callable[[], float] = time.time) -> SensorPlugin:
    """The plug-in for one ``[[sensors]]`` entry of the agent's config."""
    if isinstance(config, SerialSensorConfig):
        return SerialSensors(config)
    if isinstance(config, StationSensorConfig):
        return StationSensors(config, now=now)
    if isinstance(config, DiskSensorConfig):
        return DiskVolumeSensor(config)
    if isinstance(config, SimulatedSensorConfig):
        return SimulatedSensors(config, now=now)
    raise ValueError(f"unknown sensor plug-in config {type(config).__name__}")
