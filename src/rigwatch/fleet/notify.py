"""Notifications of alert openings and escalations: webhooks (httpx) and e-mail (smtplib).

A :class:`Notifier` sends one :class:`~rigwatch.fleet.alerts.AlertChange`. The
:class:`Dispatcher` hands each change marked ``notify`` to every notifier, once: it remembers
the dedup keys it has sent (bounded), on top of the alert's own ``notified`` record, so
applying the same signals twice or dispatching the same changes twice sends nothing more.
A failing notifier is logged and counted (``fleet.notify_failed``) and never stops the others
or the caller.

Sending is blocking I/O: a server runs :meth:`Dispatcher.dispatch` in a worker thread, not on
its event loop.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Protocol

import httpx

from rigwatch.counters import Counters
from rigwatch.errors import NotifyError
from rigwatch.fleet.alerts import AlertChange

logger = logging.getLogger(__name__)


class Notifier(Protocol):
    """Sends one alert change somewhere."""

    name: str

    def send(self, change: AlertChange) -> None:
        """Deliver the notification.

        Raises:
            NotifyError: it could not be delivered.
        """
        ...


def notification_body(change: AlertChange) -> dict[str, Any]:
    """The JSON object a webhook receives: ``{"event", "dedup_key", "alert"}`` with the
    alert as JSON (timestamps ISO 8601 UTC)."""
    return {
        "event": change.kind.value,
        "dedup_key": change.dedup_key,
        "alert": change.alert.model_dump(mode="json"),
    }


def subject_line(change: AlertChange) -> str:
    """``[rigwatch] CRITICAL opened: ironcast_berlin temperature - <message>``."""
    a = change.alert
    return (
        f"[rigwatch] {a.severity.value.upper()} {change.kind.value}: {a.machine_id} "
        f"{a.rule_id} - {a.message}"
    )[:200]


class WebhookNotifier:
    """POSTs :func:`notification_body` as JSON to a URL; any 2xx answer is success.

    Args:
        url: the webhook's URL.
        headers: extra headers (an ``Authorization`` token...).
        timeout_s: connect and read timeout.
        client: an ``httpx.Client`` to use (tests pass one with a ``MockTransport``); one is
            made, and owned, otherwise.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        name: str = "webhook",
    ) -> None:
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        self._own = client is None
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, change: AlertChange) -> None:
        try:
            response = self._client.post(
                self._url, json=notification_body(change), headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook {self._url}: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise NotifyError(f"webhook {self._url} answered HTTP {response.status_code}")

    def close(self) -> None:
        """Close the HTTP client if this notifier made it."""
        if self._own:
            self._client.close()


class EmailNotifier:
    """Sends a plain-text e-mail per change through an SMTP server.

    Args:
        host, port: the SMTP server.
        sender: the From address. recipients: the To addresses (at least one).
        starttls: upgrade the connection with STARTTLS (verified with the default context).
        username, password: log in when given.
        timeout_s: socket timeout.
        smtp_factory: makes the ``smtplib.SMTP``-like connection from ``(host, port,
            timeout)`` (tests pass a fake).
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        smtp_factory: Callable[[str, int, float], Any] | None = None,
        name: str = "email",
    ) -> None:
        if not recipients:
            raise NotifyError("e-mail notifier needs at least one recipient")
        self.name = name
        self._host, self._port, self._sender = host, port, sender
        self._recipients = list(recipients)
        self._starttls = starttls
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._factory = smtp_factory or (lambda h, p, t: smtplib.SMTP(host=h, port=p, timeout=t))

    def message(self, change: AlertChange) -> EmailMessage:
        """The e-mail for ``change``."""
        a = change.alert
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["Subject"] = subject_line(change)
        lines = [
            f"Machine:   {a.machine_id}",
            f"Rule:      {a.rule_id}",
            f"Severity:  {a.severity.value}",
            f"Event:     {change.kind.value}",
            f"Message:   {a.message}",
            f"Opened at: {a.opened_at.isoformat()}",
            f"Alert id:  {a.id}",
        ]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, change: AlertChange) -> None:
        try:
            with self._factory(self._host, self._port, self._timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(self.message(change))
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(
                f"e-mail via {self._host}:{self._port}: {type(exc).__name__}: {exc}"
            ) from exc


class Dispatcher:
    """Hands notifiable changes to every notifier, each dedup key once.

    Args:
        notifiers: where to send.
        counters: where failures and sends are counted (``fleet.notify_sent``,
            ``fleet.notify_failed``, ``fleet.notify_duplicate``).
        remember: how many dedup keys to remember (oldest forgotten first).
    """

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        counters: Counters | None = None,
        remember: int = 100_000,
    ) -> None:
        self._notifiers = list(notifiers)
        self._counters = counters or Counters()
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    @property
    def counters(self) -> Counters:
        """The counters of sends, failures and duplicates."""
        return self._counters

    def dispatch(self, changes: Iterable[AlertChange]) -> int:
        """Send every change with ``notify`` set whose key was not sent before.

        Returns:
            How many changes were sent (to every notifier that accepted them).
        """
        sent = 0
        for change in changes:
            if not change.notify:
                continue
            key = change.dedup_key
            if key in self._sent:
                self._counters.inc("fleet.notify_duplicate")
                continue
            self._sent[key] = None
            if len(self._sent) > self._remember:
                self._sent.popitem(last=False)
            for notifier in self._notifiers:
                try:
                    notifier.send(change)
                except NotifyError as exc:
                    logger.warning("notification %s via %s failed: %s", key, notifier.name, exc)
                    self._counters.inc("fleet.notify_failed", message=str(exc))
                else:
                    self._counters.inc("fleet.notify_sent")
            sent += 1
        return sent
