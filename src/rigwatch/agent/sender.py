"""Delivery of the outbox to the fleet server, over HTTP or MQTT, at least once and in order.

The :class:`Sender` takes the oldest messages of the :class:`~rigwatch.agent.outbox.Outbox`,
hands them to a :class:`Transport` and removes them only once the server confirmed them.
What it does with each answer:

===================================  =============================================================
answer                               action
===================================  =============================================================
2xx (or MQTT PUBACK)                 delivered: removed from the outbox
429, 503                             wait the server's ``Retry-After`` (seconds or HTTP date; else
                                     the backoff), then send the same messages again
413 to a batch                       halve the batch size, send again
401, 403, 404                        the server does not take messages from this machine (a wrong,
                                     revoked or rotated key; an unknown machine): the messages are
                                     kept and sent again after the longest backoff, and it is
                                     logged as an error. The messages are not at fault, so they
                                     are not set aside.
other 4xx (400, 413 alone, 422...)   a permanent refusal of that message: set aside in the
                                     outbox's ``refused`` table, counted, never sent again. A batch
                                     refused so is sent again one message at a time, so only the
                                     faulty message is set aside.
5xx, 408, network error, timeout     transient: exponential backoff with jitter, then again
===================================  =============================================================

Messages go out oldest first, each with its original timestamp. A message sent late (a newer
one is already waiting, or it is older than ``backfill_after_s``) is marked ``"backfill": true``
so that the server stores it without opening or clearing alerts in the past. Each message
carries its ``seq``: a message sent twice (the confirmation was lost) is dropped by the server.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from rigwatch.agent.clock import Clock, SystemClock
from rigwatch.agent.config import BackoffConfig, HttpServerConfig, MqttServerConfig, TlsConfig
from rigwatch.agent.outbox import Outbox, OutboxItem
from rigwatch.counters import Counters

log = logging.getLogger(__name__)

OutcomeKind = Literal["delivered", "refused", "retry", "too_large", "not_authorised"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What the server made of one send (one message or one batch).

    Attributes:
        kind: ``delivered``; ``refused`` (permanent, 4xx); ``retry`` (transient: 5xx, 429,
            network); ``too_large`` (413); ``not_authorised`` (401/403/404: the machine or its
            key is not accepted).
        status: the HTTP status (None for MQTT and network errors).
        reason: what happened, for logs and the refused table.
        retry_after_s: the server's Retry-After in seconds (429/503), if it gave one.
        delivered: for a partly sent batch (MQTT), how many of its first messages arrived.
    """

    kind: OutcomeKind
    status: int | None = None
    reason: str = ""
    retry_after_s: float | None = None
    delivered: int = 0


class Transport(Protocol):
    """Carries message bodies (UTF-8 JSON) to the server."""

    async def send_one(self, body: bytes) -> SendOutcome:
        """Send one message."""
        ...

    async def send_batch(self, bodies: Sequence[bytes]) -> SendOutcome:
        """Send several messages, oldest first, as one unit where the transport can."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 section 10.2.3): a number of
    seconds or an HTTP date. None when absent or unreadable; never negative."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def classify_http(status: int, headers: httpx.Headers, now: float) -> SendOutcome:
    """The :class:`SendOutcome` of an HTTP answer (see the module's table)."""
    reason = f"HTTP {status}"
    if 200 <= status < 300:
        return SendOutcome("delivered", status)
    if status in (429, 503):
        return SendOutcome(
            "retry", status, reason, parse_retry_after(headers.get("retry-after"), now)
        )
    if status == 413:
        return SendOutcome("too_large", status, reason)
    if status in (401, 403, 404):
        return SendOutcome("not_authorised", status, reason)
    if status == 408 or status >= 500:
        return SendOutcome("retry", status, reason)
    if 400 <= status < 500:
        return SendOutcome("refused", status, reason)
    return SendOutcome("retry", status, f"unexpected HTTP {status}")


def _problem_text(reply: httpx.Response) -> str:
    """A short text of an error reply's body (problem details' ``detail`` when there)."""
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:500]
    if isinstance(body, dict):
        parts = [str(body.get(k)) for k in ("title", "detail") if body.get(k)]
        errors = body.get("errors")
        if errors:
            parts.append(json.dumps(errors)[:1000])
        return "; ".join(parts)[:1500] or json.dumps(body)[:500]
    return json.dumps(body)[:500]


class HttpTransport:
    """Messages over HTTP(S): ``POST {url}/api/machines/{machine_id}/status`` for one message,
    ``POST .../status/batch`` with ``{"messages": [...]}`` for several; both with
    ``Authorization: Bearer <key>``.

    Args:
        config: the server's URL, timeout and batch sizes.
        machine_id: the machine's id (in the URL).
        key: the machine's API key (None: no Authorization header).
        tls: CA file, verification, client certificate.
        client: an ``httpx.AsyncClient`` to use (tests); by default one is made.
        clock: for Retry-After dates.
    """

    def __init__(
        self,
        config: HttpServerConfig,
        machine_id: str,
        key: str | None,
        tls: TlsConfig | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        base = config.url.rstrip("/")
        self.url = f"{base}/api/machines/{machine_id}/status"
        self.batch_url = f"{self.url}/batch"
        self._clock = clock or SystemClock()
        headers = {"Content-Type": "application/json", "User-Agent": "rigwatch-agent"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=config.timeout_s, verify=(tls or TlsConfig()).verify_arg()
        )
        self._headers = headers

    async def _post(self, url: str, content: bytes) -> SendOutcome:
        try:
            reply = await self._client.post(url, content=content, headers=self._headers)
        except httpx.HTTPError as exc:
            return SendOutcome("retry", None, f"{type(exc).__name__}: {exc}")
        outcome = classify_http(reply.status_code, reply.headers, self._clock.time())
        if outcome.kind != "delivered":
            detail = _problem_text(reply)
            if detail:
                outcome = SendOutcome(
                    outcome.kind,
                    outcome.status,
                    f"{outcome.reason}: {detail}",
                    outcome.retry_after_s,
                )
        return outcome

    async def send_one(self, body: bytes) -> SendOutcome:
        """``POST .../status`` with the message as body."""
        return await self._post(self.url, body)

    async def send_batch(self, bodies: Sequence[bytes]) -> SendOutcome:
        """``POST .../status/batch`` with ``{"messages": [...]}`` (bodies kept byte for byte)."""
        content = b'{"messages":[' + b",".join(bodies) + b"]}"
        return await self._post(self.batch_url, content)

    async def aclose(self) -> None:
        """Close the HTTP client (when this transport made it)."""
        if self._owns_client:
            await self._client.aclose()


class MqttTransport:
    """Messages through an MQTT broker: each published on ``rigwatch/machines/{id}/status``
    with QoS 1 (the publish returns once the broker acknowledged it), in order.

    The connection is opened at the first send and again after any failure. The broker user is
    ``username`` (default: the machine id), the password the machine's key.

    Args:
        config: broker, port, topic, QoS, TLS switch.
        machine_id: the machine's id (topic, client id).
        key: the machine's key (password), or None.
        tls: TLS settings used when ``config.tls_enabled``.
    """

    def __init__(
        self,
        config: MqttServerConfig,
        machine_id: str,
        key: str | None,
        tls: TlsConfig | None = None,
    ) -> None:
        self.config = config
        self.topic = config.topic.replace("{machine_id}", machine_id)
        self._machine_id = machine_id
        self._key = key
        self._tls_context: ssl.SSLContext | None = (
            (tls or TlsConfig()).ssl_context() if config.tls_enabled else None
        )
        self._client: Any = None

    async def _connect(self) -> Any:
        if self._client is None:
            import aiomqtt

            client = aiomqtt.Client(
                hostname=self.config.host,
                port=self.config.port,
                username=self.config.username or self._machine_id,
                password=self._key,
                identifier=f"rigwatch-agent-{self._machine_id}",
                keepalive=self.config.keepalive_s,
                timeout=self.config.timeout_s,
                tls_context=self._tls_context,
            )
            await client.__aenter__()
            self._client = client
        return self._client

    async def _drop_connection(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except Exception:  # the connection is already broken
                log.debug("closing the MQTT connection failed", exc_info=True)

    async def send_batch(self, bodies: Sequence[bytes]) -> SendOutcome:
        """Publish each body in order; on a failure, say how many arrived before it."""
        import aiomqtt

        done = 0
        try:
            client = await self._connect()
            for body in bodies:
                await client.publish(self.topic, body, qos=self.config.qos)
                done += 1
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            await self._drop_connection()
            return SendOutcome("retry", None, f"MQTT: {type(exc).__name__}: {exc}", None, done)
        return SendOutcome("delivered", None, "", None, done)

    async def send_one(self, body: bytes) -> SendOutcome:
        """Publish one body."""
        return await self.send_batch([body])

    async def aclose(self) -> None:
        """Disconnect from the broker."""
        await self._drop_connection()


@dataclass
class DrainResult:
    """What one :meth:`Sender.drain` did.

    Attributes:
        delivered, refused: messages confirmed, and set aside as refused.
        last_outcome: the last answer (None when nothing was sent).
        empty: the outbox was emptied.
    """

    delivered: int = 0
    refused: int = 0
    last_outcome: SendOutcome | None = None
    empty: bool = False


def mark_backfill(body: bytes) -> bytes:
    """The message with ``"backfill": true`` (other fields, the timestamp included, as they
    were). A body that is not a JSON object is returned unchanged."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict) or data.get("backfill") is True:
        return body
    data["backfill"] = True
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Sender:
    """Takes messages from the outbox to the server (see the module docstring).

    Args:
        outbox: where the messages wait.
        transport: HTTP or MQTT.
        clock: for backoff deadlines (``monotonic``) and message ages (``time``).
        backoff: initial and longest wait after a failure; the Retry-After cap.
        batch_max_messages, batch_max_bytes: size of one batch of a backlog.
        backfill_after_s: a message older than this when sent is marked backfill.
        rng: jitter source (seed it in tests).
        counters: counts ``agent.delivered``, ``agent.refused``, ``agent.send_failures``,
            ``agent.not_authorised``, ``agent.batches``.

    Attributes:
        next_attempt_at: ``clock.monotonic()`` value before which no send is tried.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        clock: Clock | None = None,
        backoff: BackoffConfig | None = None,
        batch_max_messages: int = 200,
        batch_max_bytes: int = 1_000_000,
        backfill_after_s: float = 30.0,
        rng: random.Random | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.clock = clock or SystemClock()
        self.backoff = backoff or BackoffConfig()
        self.batch_max_messages = batch_max_messages
        self.batch_max_bytes = batch_max_bytes
        self.backfill_after_s = backfill_after_s
        self.rng = rng or random.Random()
        self.counters = counters or Counters()
        self.next_attempt_at = float("-inf")
        self._failures = 0
        self._batch_limit = batch_max_messages

    # -- timing -------------------------------------------------------------------------------

    def _backoff_s(self) -> float:
        exp = self.backoff.initial_s * (2.0 ** min(self._failures - 1, 30))
        ceiling = min(self.backoff.max_s, exp)
        return ceiling * self.rng.uniform(0.5, 1.0)

    def _fail(self, outcome: SendOutcome) -> None:
        self._failures += 1
        if outcome.kind == "not_authorised":
            wait = self.backoff.max_s
        elif outcome.retry_after_s is not None:
            wait = min(outcome.retry_after_s, self.backoff.max_retry_after_s)
        else:
            wait = self._backoff_s()
        self.next_attempt_at = self.clock.monotonic() + wait
        self.counters.inc("agent.send_failures", message=outcome.reason)
        level = logging.ERROR if outcome.kind == "not_authorised" else logging.WARNING
        log.log(
            level,
            "send failed (%s); %d message(s) wait in the outbox; next attempt in %.1f s",
            outcome.reason or outcome.kind,
            len(self.outbox),
            wait,
        )

    def _ok(self) -> None:
        if self._failures:
            log.info("server reachable again after %d failed attempt(s)", self._failures)
        self._failures = 0
        self.next_attempt_at = float("-inf")

    def ready(self) -> bool:
        """Whether a send may be tried now (no backoff pending)."""
        return self.clock.monotonic() >= self.next_attempt_at

    # -- sending ------------------------------------------------------------------------------

    def _bodies(self, items: Sequence[OutboxItem]) -> list[bytes]:
        newest = self.outbox.newest_seq()
        now_ns = int(self.clock.time() * 1e9)
        out = []
        for item in items:
            late = (newest is not None and item.seq < newest) or (
                now_ns - item.created_ns > self.backfill_after_s * 1e9
            )
            out.append(mark_backfill(item.body) if late else item.body)
        return out

    async def drain(self, stop: asyncio.Event | None = None) -> DrainResult:
        """Send waiting messages, oldest first, until the outbox is empty, a send fails
        transiently (then :attr:`next_attempt_at` is set) or ``stop`` is set."""
        result = DrainResult()
        while stop is None or not stop.is_set():
            if not self.ready():
                return result
            items = self.outbox.peek(self._batch_limit, self.batch_max_bytes)
            if not items:
                self._ok()
                self._batch_limit = self.batch_max_messages
                result.empty = True
                return result
            bodies = self._bodies(items)
            if len(items) == 1:
                outcome = await self.transport.send_one(bodies[0])
            else:
                self.counters.inc("agent.batches")
                outcome = await self.transport.send_batch(bodies)
            result.last_outcome = outcome
            if outcome.kind == "delivered":
                self._delivered(items, result)
                self._ok()
                continue
            if outcome.delivered:  # a partly sent batch: keep what arrived
                self._delivered(items[: outcome.delivered], result)
            if outcome.kind == "too_large" and len(items) > 1:
                self._batch_limit = max(1, len(items) // 2)
                log.warning(
                    "batch of %d refused as too large; trying %d", len(items), self._batch_limit
                )
                continue
            if outcome.kind in ("refused", "too_large"):
                if len(items) == 1:
                    self._refuse(items[0], outcome, result)
                    continue
                if not await self._one_by_one(items, bodies, result, stop):
                    return result
                continue
            self._fail(outcome)
            return result
        return result

    async def _one_by_one(
        self,
        items: Sequence[OutboxItem],
        bodies: Sequence[bytes],
        result: DrainResult,
        stop: asyncio.Event | None,
    ) -> bool:
        """Send a refused batch's messages singly, setting aside only those refused.
        Returns False when a transient failure stopped it."""
        for item, body in zip(items, bodies, strict=True):
            if stop is not None and stop.is_set():
                return False
            outcome = await self.transport.send_one(body)
            result.last_outcome = outcome
            if outcome.kind == "delivered":
                self._delivered([item], result)
            elif outcome.kind in ("refused", "too_large"):
                self._refuse(item, outcome, result)
            else:
                self._fail(outcome)
                return False
        return True

    def _delivered(self, items: Sequence[OutboxItem], result: DrainResult) -> None:
        n = self.outbox.ack(i.message_id for i in items)
        result.delivered += len(items)
        self.counters.inc("agent.delivered", len(items))
        if n != len(items):
            log.debug("%d delivered message(s) had already left the outbox", len(items) - n)

    def _refuse(self, item: OutboxItem, outcome: SendOutcome, result: DrainResult) -> None:
        self.outbox.refuse(item, outcome.status, outcome.reason)
        result.refused += 1
        self.counters.inc("agent.refused", message=outcome.reason)
        log.error(
            "server refused message %s for good (%s); set aside, not sent again",
            item.message_id,
            outcome.reason,
        )
