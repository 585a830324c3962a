"""The agent's configuration (TOML, validated by pydantic; unknown keys are errors).

Example: ``configs/agent.toml``. The machine's key is never written in the file (today's agents
keep it as plain text in their config): it comes from an environment variable
(``RIGWATCH_AGENT_KEY`` by default) or from a key file readable only by the service account.
"""

from __future__ import annotations

import os
import ssl
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from rigwatch.config.base import NAME_PATTERN, ResolvedPath, Strict
from rigwatch.errors import ConfigError

KEY_ENV = "RIGWATCH_AGENT_KEY"
"""Default environment variable holding the machine's API key."""

DEFAULT_QUERIES: dict[str, str] = {
    "temperature": "TEMP?",
    "pressure": "PRESSURE?",
    "speed": "SPEED?",
}
"""Today's serial interface: metric -> query (answers: degC, bar, rpm)."""

MetricName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]


def default_data_dir() -> Path:
    """Where the agent keeps its outbox when the config does not say:
    ``%PROGRAMDATA%\\rigwatch\\agent`` on Windows, ``$STATE_DIRECTORY`` under systemd,
    ``/var/lib/rigwatch-agent`` when writable (root), else ``~/.local/state/rigwatch-agent``."""
    if sys.platform == "win32":
        base = (
            os.environ.get("PROGRAMDATA") or os.environ.get("ALLUSERSPROFILE") or r"C:\ProgramData"
        )
        return Path(base) / "rigwatch" / "agent"
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    system = Path("/var/lib/rigwatch-agent")
    if os.access(system.parent, os.W_OK):
        return system
    return Path.home() / ".local" / "state" / "rigwatch-agent"


class TlsConfig(Strict):
    """TLS towards the server (HTTPS or MQTT over TLS).

    Attributes:
        ca_file: PEM bundle of the certificate authorities to trust (default: the system's).
        verify: check the server's certificate and name (turn off only for tests).
        cert_file, key_file: client certificate and key (PEM) for mutual TLS.
    """

    ca_file: ResolvedPath | None = None
    verify: bool = True
    cert_file: ResolvedPath | None = None
    key_file: ResolvedPath | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        """An SSL context following these settings.

        Raises:
            ConfigError: a file cannot be read or is not PEM.
        """
        try:
            ctx = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.cert_file is not None:
                ctx.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"tls: cannot load certificates: {exc}") from exc
        return ctx

    def verify_arg(self) -> ssl.SSLContext | bool:
        """What httpx takes as ``verify``: False, or a context with the CA file."""
        if not self.verify and self.cert_file is None:
            return False
        if self.ca_file is None and self.cert_file is None:
            return True
        return self.ssl_context()


class SerialSensorConfig(Strict):
    """Today's serial sensor interface (``kind = "serial"``).

    Attributes:
        port: ``COM1`` on Windows, ``/dev/ttyUSB0`` on Linux, or a pyserial URL.
        baudrate: 9 600 today. timeout_s: per answer (1 s today).
        line_ending: appended to each query (CR LF today).
        queries: metric -> query text; answers are one number per line.
        max_line_bytes: longest answer line read.
    """

    kind: Literal["serial"]
    name: str = Field(default="serial", pattern=NAME_PATTERN, max_length=64)
    port: str = Field(default="COM1", min_length=1, max_length=256)
    baudrate: int = Field(default=9600, gt=0, le=10_000_000)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    line_ending: Literal["\r\n", "\n", "\r"] = "\r\n"
    queries: dict[MetricName, Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=lambda: dict(DEFAULT_QUERIES), min_length=1
    )
    max_line_bytes: int = Field(default=256, ge=8, le=65536)

    @field_validator("queries")
    @classmethod
    def _ascii(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, query in value.items():
            if not query.isascii() or not query.isprintable():
                raise ValueError(f"query of {metric} must be printable ASCII, got {query!r}")
        return value


class StationSensorConfig(Strict):
    """A rigwatch station's newest values (``kind = "station"``).

    Attributes:
        url: the station's base URL (``http://127.0.0.1:8000``).
        channels: metric -> ``"device/channel"`` on the station.
        max_age_s: a value older than this is reported missing (stale); None: no check.
        token_env, token_file: where the station's token is (when it requires one).
    """

    kind: Literal["station"]
    name: str = Field(default="station", pattern=NAME_PATTERN, max_length=64)
    url: str = Field(pattern=r"^https?://", max_length=2048)
    channels: dict[MetricName, Annotated[str, Field(pattern=r"^[^/]+/[^/]+$")]] = Field(
        min_length=1
    )
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    max_age_s: float | None = Field(default=60.0, gt=0)
    token_env: str | None = None
    token_file: ResolvedPath | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)

    def read_token(self) -> str | None:
        """The station's token from ``token_env`` or ``token_file`` (None when neither)."""
        if self.token_env and os.environ.get(self.token_env):
            return os.environ[self.token_env].strip()
        if self.token_file is not None:
            try:
                return self.token_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"sensors.token_file: cannot read {self.token_file}: {exc}"
                ) from exc
        return None


class DiskSensorConfig(Strict):
    """Used percentage of a file system (``kind = "disk"``; today's ``disk_volume``)."""

    kind: Literal["disk"]
    name: str = Field(default="disk", pattern=NAME_PATTERN, max_length=64)
    metric: MetricName = "disk_volume"
    path: str | None = Field(default=None, description="Default: the system drive.")


class SimulatedSensorConfig(Strict):
    """Deterministic values for demonstrations (``kind = "simulated"``)."""

    kind: Literal["simulated"]
    name: str = Field(default="simulated", pattern=NAME_PATTERN, max_length=64)
    metrics: dict[MetricName, float] = Field(
        default_factory=lambda: {"temperature": 45.0, "pressure": 2.0, "speed": 1450.0},
        min_length=1,
    )
    amplitude: float = Field(default=0.1, ge=0, le=1)
    period_s: float = Field(default=600.0, gt=0)


SensorConfig = Annotated[
    SerialSensorConfig | StationSensorConfig | DiskSensorConfig | SimulatedSensorConfig,
    Field(discriminator="kind"),
]


class HttpServerConfig(Strict):
    """The fleet server over HTTP(S) (``transport = "http"``).

    Attributes:
        url: base URL (``https://fleet.example.com``); messages go to
            ``{url}/api/machines/{machine_id}/status`` and backlogs to ``.../status/batch``.
        timeout_s: per request.
        batch_max_messages, batch_max_bytes: size of one batch of a backlog.
    """

    transport: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", max_length=2048)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    batch_max_messages: int = Field(default=200, ge=1, le=500)
    batch_max_bytes: int = Field(default=1_000_000, ge=1024, le=8 * 1024 * 1024)


class MqttServerConfig(Strict):
    """The fleet server through an MQTT broker (``transport = "mqtt"``).

    Attributes:
        host, port: the broker (1883 plain, 8883 with TLS).
        tls_enabled: connect with TLS (settings in ``[tls]``).
        topic: per-machine topic; ``{machine_id}`` is replaced.
        username: broker user (default: the machine id); the password is the machine's key.
        qos: 1 (at least once: each publish waits for the broker's PUBACK) or 2.
    """

    transport: Literal["mqtt"]
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(default=1883, gt=0, lt=65536)
    tls_enabled: bool = False
    topic: str = Field(default="rigwatch/machines/{machine_id}/status", max_length=255)
    username: str | None = None
    qos: Literal[1, 2] = 1
    keepalive_s: int = Field(default=60, ge=5, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("a publish topic must not contain the wildcards + or #")
        return value


ServerConfig = Annotated[HttpServerConfig | MqttServerConfig, Field(discriminator="transport")]


class KeyConfig(Strict):
    """Where the machine's API key is: ``env`` (an environment variable) first, then ``file``."""

    env: str | None = KEY_ENV
    file: ResolvedPath | None = None

    def read(self) -> str | None:
        """The key, or None when neither source has one.

        Raises:
            ConfigError: ``file`` is set but cannot be read.
        """
        if self.env and os.environ.get(self.env):
            return os.environ[self.env].strip()
        if self.file is not None:
            try:
                return self.file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(f"key.file: cannot read {self.file}: {exc}") from exc
        return None


class OutboxConfig(Strict):
    """The local outbox (see :mod:`rigwatch.agent.outbox`).

    Attributes:
        path: the SQLite file (default: ``outbox.sqlite3`` in :func:`default_data_dir`).
        max_bytes: bound on the bytes of waiting messages (default 64 MiB: about 10 days of
            2 KiB messages every 30 s).
        max_refused: refused messages kept for inspection.
    """

    path: ResolvedPath | None = None
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    max_refused: int = Field(default=1000, ge=0)

    def resolved_path(self) -> Path:
        """``path``, or the default file."""
        return self.path if self.path is not None else default_data_dir() / "outbox.sqlite3"


class BackoffConfig(Strict):
    """Waits between failed sends: exponential from ``initial_s`` doubling up to ``max_s``, each
    drawn uniformly in [50 %, 100 %] of its value (jitter, so a fleet coming back does not send
    in lockstep). A server's Retry-After is honoured instead, up to ``max_retry_after_s``."""

    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=120.0, gt=0)
    max_retry_after_s: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> BackoffConfig:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) is below initial_s ({self.initial_s})")
        return self


class AgentConfig(Strict):
    """The whole agent config.

    Attributes:
        machine_id: the machine's id at the fleet server.
        interval_s: seconds between samples (and sends); 30 by default.
        system_info: send the machine computer's system info with each message.
        status: the agent's word for the machine's state in each message (today ``online``).
        server: where messages go (HTTP or MQTT).
        key: where the machine's key is.
        tls: TLS settings towards the server.
        outbox: the local outbox.
        backoff: waits after failures.
        sensors: the sensor plug-ins (``[[sensors]]`` entries, by ``kind``).
    """

    machine_id: str = Field(pattern=NAME_PATTERN, max_length=64)
    interval_s: float = Field(default=30.0, gt=0, le=86400)
    system_info: bool = True
    status: str = Field(default="online", max_length=32)
    server: ServerConfig
    key: KeyConfig = Field(default_factory=KeyConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    sensors: list[SensorConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> AgentConfig:
        names = [s.name for s in self.sensors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sensor plug-in names must be unique, repeated: {', '.join(dup)}")
        metrics: list[str] = []
        for s in self.sensors:
            metrics.extend(_metrics_of(s))
        dup = sorted({m for m in metrics if metrics.count(m) > 1})
        if dup:
            raise ValueError(f"a metric is read by more than one plug-in: {', '.join(dup)}")
        return self


def _metrics_of(s: Any) -> list[str]:
    if isinstance(s, SerialSensorConfig):
        return list(s.queries)
    if isinstance(s, StationSensorConfig):
        return list(s.channels)
    if isinstance(s, DiskSensorConfig):
        return [s.metric]
    if isinstance(s, SimulatedSensorConfig):
        return list(s.metrics)
    return []


_UNION_TAGS = frozenset({"serial", "station", "disk", "simulated", "http", "mqtt"})


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        # a discriminated union's tag (after a list index or "server"): not written by the user
        if (
            i > 0
            and part in _UNION_TAGS
            and (isinstance(loc[i - 1], int) or loc[i - 1] == "server")
        ):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and validate an agent config file.

    Relative paths inside it are resolved against its folder.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML or invalid; the message names
            the file, the key and the reason (one line per problem).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc
    try:
        return AgentConfig.model_validate(data, context={"base_dir": p.resolve().parent})
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            reason = err["msg"]
            if err["type"] == "extra_forbidden":
                reason = "unknown key (not allowed here; check its spelling)"
            got = ""
            if err["type"] != "missing" and not isinstance(err.get("input"), dict):
                got = f" (got {err.get('input')!r})"
            lines.append(f"{p}: {_format_loc(tuple(err['loc']))}: {reason}{got}")
        raise ConfigError("\n".join(lines)) from None
