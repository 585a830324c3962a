"""The fleet server's configuration (``configs/fleet.toml``), validated with unknown keys refused.

Sections: ``[server]`` (listen address, body limits), ``[database]`` (URL, retention),
``[ingest]`` (queue bound, group commit, per-key rate limit), ``[live]`` (WebSocket queues,
Redis), ``[mqtt]`` (broker ingest), ``[auth]`` (tokens, anonymous reading), ``[rules]``
(the rule-set file, timer period) and ``[notify]`` (webhooks, e-mail).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator

from rigwatch.config.base import ResolvedPath, Strict
from rigwatch.errors import ConfigError
from rigwatch.wire import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES


class ServerSection(Strict):
    """Where the server listens and how big a body may be (bigger: 413 before parsing)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8100, gt=0, lt=65536)
    max_message_bytes: int = Field(default=MAX_MESSAGE_BYTES, ge=1024, le=MAX_MESSAGE_BYTES)
    max_batch_bytes: int = Field(default=MAX_BATCH_BYTES, ge=1024, le=MAX_BATCH_BYTES)
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    """Largest body of the other (human) endpoints."""


class DatabaseSection(Strict):
    """Storage: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``) or a SQLite path.

    Attributes:
        url: database URL or SQLite file (relative to the config file).
        schema_name: PostgreSQL schema to create and use (``None``: the default search path).
        synchronous: SQLite's ``synchronous`` pragma in WAL mode (NORMAL loses nothing on a
            process crash; FULL also survives a power cut at the price of an fsync per commit).
        raw_retention_days: raw samples older than this are rolled up into hourly min/max/mean
            and deleted.
        retention_every_s: how often the roll-up runs.
    """

    url: str = "fleet.sqlite3"
    schema_name: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    raw_retention_days: float = Field(default=30.0, gt=0)
    retention_every_s: float = Field(default=3600.0, gt=0)


class RateLimit(Strict):
    """A token bucket per API key, in messages (a batch of n takes n tokens)."""

    messages_per_s: float = Field(default=10.0, gt=0)
    burst: int = Field(default=1000, ge=1)


class IngestSection(Strict):
    """The group-commit queue between the request handlers and the database.

    Attributes:
        queue_max_messages: accepted-but-not-yet-committed messages at most; more: 503 with
            Retry-After (the memory bound under overload).
        max_in_flight_bytes: request bodies in progress at most (see the field).
        commit_max_messages: most messages written in one transaction.
        retry_after_s: the Retry-After of a 503.
        rate_limit: per-key limit (429 with Retry-After beyond it).
        key_cache_s: how long a worker trusts a key lookup (a revoke in another worker takes
            effect after at most this long; in the same worker at once).
    """

    queue_max_messages: int = Field(default=10_000, ge=1)
    max_in_flight_bytes: int = Field(default=64 * 1024 * 1024, ge=MAX_BATCH_BYTES)
    """Bodies being read or validated at once, in bytes (by Content-Length, or the limit when
    chunked); beyond: 503 with Retry-After before reading. Bounds memory under overload."""
    commit_max_messages: int = Field(default=2_000, ge=1, le=100_000)
    retry_after_s: int = Field(default=1, ge=1, le=3600)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    key_cache_s: float = Field(default=5.0, ge=0)


class LiveSection(Strict):
    """Live updates over ``/ws``.

    Attributes:
        client_queue: updates waiting for one client at most; beyond it the client is sent a
            fresh snapshot instead (resynchronised).
        redis_url: Redis carrying latest state and updates between several server workers.
        channel: the Redis pub/sub channel; key_prefix: prefix of the Redis keys.
    """

    client_queue: int = Field(default=256, ge=1, le=100_000)
    redis_url: str | None = None
    channel: str = "rigwatch:fleet:updates"
    key_prefix: str = "rigwatch:fleet:"


class MqttSection(Strict):
    """Ingest from an MQTT broker (aiomqtt).

    The broker authenticates each machine (user = machine id, password = its key) and allows it
    to publish only on its own topic (``pattern write rigwatch/machines/%u/status``): the server
    trusts the topic's machine id, and refuses messages whose ``machine_id`` differs from it or
    whose machine is unknown or has no valid key.
    """

    enabled: bool = False
    url: str = "mqtt://127.0.0.1:1883"
    topic: str = "rigwatch/machines/+/status"
    username: str | None = None
    password: str | None = None
    client_id: str = "rigwatch-fleet"
    qos: Literal[0, 1, 2] = 1
    reconnect_s: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _one_wildcard(self) -> MqttSection:
        parts = self.topic.split("/")
        if parts.count("+") != 1 or "#" in parts:
            raise ValueError("topic must hold exactly one '+' (the machine id) and no '#'")
        return self


class AuthSection(Strict):
    """Human users: token lifetime and whether reading needs a login."""

    token_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    anonymous_read: bool = False
    """True: viewers need no token (the map and lists are public on this network)."""
    argon2_time_cost: int = Field(default=3, ge=1, le=20)
    argon2_memory_kib: int = Field(default=65536, ge=8192, le=4 * 1024 * 1024)
    """argon2id parameters of new password hashes (RFC 9106's second option by default)."""


class RulesSection(Strict):
    """The status rules and the timer that evaluates them without messages."""

    path: ResolvedPath | None = None
    """A rule-set TOML file; ``None``: the default rules (today's thresholds)."""
    tick_s: float = Field(default=5.0, gt=0, le=600)


class WebhookSection(Strict):
    """A webhook that receives alert openings and escalations."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=5.0, gt=0)


class EmailSection(Strict):
    """SMTP delivery of alert openings and escalations."""

    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    sender: str
    recipients: list[str] = Field(min_length=1)
    starttls: bool = True
    username: str | None = None
    password: str | None = None


class NotifySection(Strict):
    """Where notifications go."""

    webhooks: list[WebhookSection] = Field(default_factory=list)
    email: EmailSection | None = None


class FleetConfig(Strict):
    """The whole fleet server configuration."""

    server: ServerSection = Field(default_factory=ServerSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    live: LiveSection = Field(default_factory=LiveSection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    rules: RulesSection = Field(default_factory=RulesSection)
    notify: NotifySection = Field(default_factory=NotifySection)


def load_fleet_config(path: str | Path) -> FleetConfig:
    """Read and validate a fleet config; a relative database path is resolved against the
    file's folder.

    Raises:
        ConfigError: unreadable file, invalid TOML, or invalid values (file, key and reason).
    """
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    try:
        config = FleetConfig.model_validate(data, context={"base_dir": p.parent.resolve()})
    except ValidationError as exc:
        lines = [
            f"{p}: {'.'.join(str(x) for x in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
        raise ConfigError("\n".join(lines)) from None
    url = config.database.url
    if "://" not in url and not Path(url).is_absolute():
        db = config.database.model_copy(update={"url": str((p.parent / url).resolve())})
        config = config.model_copy(update={"database": db})
    return config
