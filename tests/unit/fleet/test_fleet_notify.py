"""Notifications: one per opening or escalation, never per message, delivered by webhook
(a real local HTTP server, and httpx's MockTransport) and e-mail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest

from rigwatch.errors import NotifyError
from rigwatch.fleet.alerts import AlertChange, AlertManager, InMemoryAlertStore
from rigwatch.fleet.monitor import Monitor
from rigwatch.fleet.notify import Dispatcher, EmailNotifier, WebhookNotifier
from rigwatch.fleet.rules import load_rules
from rigwatch.fleet.status import StatusEngine
from support.fleet_clock import at, message


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]
    arrived: threading.Condition

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.arrived:
            self.received.append({"body": json.loads(body), "auth": self.headers.get("X-Token")})
            self.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"received": [], "arrived": threading.Condition()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(monitor: Monitor, dispatcher: Dispatcher, temps: list[float], start: int = 0) -> int:
    sent = 0
    for i, t in enumerate(temps, start=start):
        out = monitor.on_message(message(i * 30, sensor_data={"temperature": t}), at(i * 30))
        sent += dispatcher.dispatch(out.changes)
    return sent


def test_fleet_webhook_once_per_opening_and_escalation(
    webhook_server: tuple[str, type[_Receiver]],
) -> None:
    url, handler = webhook_server
    notifier = WebhookNotifier(url, headers={"X-Token": "s3cret"}, timeout_s=5.0)
    dispatcher = Dispatcher([notifier])
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    try:
        # 10 warning messages, 10 critical, 10 warning again, then recovery
        sent = run(monitor, dispatcher, [70.0] * 10 + [90.0] * 10 + [70.0] * 10 + [40.0] * 3)
    finally:
        notifier.close()
    assert sent == 2
    with handler.arrived:
        assert handler.arrived.wait_for(lambda: len(handler.received) >= 2, timeout=5)
    events = [(r["body"]["event"], r["body"]["alert"]["severity"]) for r in handler.received]
    assert events == [("opened", "warning"), ("escalated", "critical")]
    assert all(r["auth"] == "s3cret" for r in handler.received)
    assert handler.received[0]["body"]["alert"]["machine_id"] == "m1"
    assert dispatcher.counters.get("fleet.notify_sent") == 2


def test_fleet_dispatching_the_same_changes_twice_sends_once() -> None:
    seen: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200)

    client = httpx.Client(transport=httpx.MockTransport(handle))
    dispatcher = Dispatcher([WebhookNotifier("http://hooks.example/x", client=client)])
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    out = monitor.on_message(message(0, sensor_data={"pressure": 6.0}), at(0))
    assert dispatcher.dispatch(out.changes) == 1
    assert dispatcher.dispatch(out.changes) == 0  # a retry of the same batch
    assert len(seen) == 1 and seen[0]["event"] == "opened"
    assert dispatcher.counters.get("fleet.notify_duplicate") == 1


def test_fleet_failing_webhook_is_counted_and_does_not_stop_others() -> None:
    delivered: list[AlertChange] = []

    class Recorder:
        name = "recorder"

        def send(self, change: AlertChange) -> None:
            delivered.append(change)

    broken = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    down = httpx.Client(
        transport=httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")))
    )
    dispatcher = Dispatcher(
        [
            WebhookNotifier("http://a.example/", client=broken),
            WebhookNotifier("http://b.example/", client=down),
            Recorder(),
        ]
    )
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    out = monitor.on_message(message(0, sensor_data={"temperature": 95.0}), at(0))
    assert dispatcher.dispatch(out.changes) == 1
    assert len(delivered) == 1
    assert dispatcher.counters.get("fleet.notify_failed") == 2
    last = dispatcher.counters.last_messages()["fleet.notify_failed"]
    assert "b.example" in last and "ConnectError" in last


class FakeSMTP:
    instances: ClassVar[list[FakeSMTP]] = []

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sent: list[Any] = []
        self.logins: list[tuple[str, str]] = []
        FakeSMTP.instances.append(self)

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def login(self, user: str, password: str) -> None:
        self.logins.append((user, password))

    def send_message(self, msg: Any) -> None:
        self.sent.append(msg)


def test_fleet_email_notification() -> None:
    FakeSMTP.instances.clear()
    notifier = EmailNotifier(
        "smtp.example",
        25,
        "fleet@example.org",
        ["ops@example.org"],
        username="fleet",
        password="pw",
        smtp_factory=FakeSMTP,
    )
    dispatcher = Dispatcher([notifier])
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    assert run(monitor, dispatcher, [40.0, 96.0, 97.0, 98.0]) == 1
    (smtp,) = FakeSMTP.instances
    (mail,) = smtp.sent
    assert smtp.logins == [("fleet", "pw")]
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"].startswith("[rigwatch] CRITICAL opened: m1 temperature")
    assert "Machine:   m1" in mail.get_content()


def test_fleet_email_failure_raises_notify_error() -> None:
    def refuse(host: str, port: int, timeout: float) -> Any:
        raise ConnectionRefusedError("refused")

    notifier = EmailNotifier("127.0.0.1", 1, "a@b", ["c@d"], smtp_factory=refuse)
    monitor = Monitor(StatusEngine(load_rules()), AlertManager(InMemoryAlertStore()))
    (change,) = monitor.on_message(message(0, sensor_data={"pressure": 6.0}), at(0)).changes
    with pytest.raises(NotifyError, match=r"127\.0\.0\.1:1"):
        notifier.send(change)
    with pytest.raises(NotifyError, match="recipient"):
        EmailNotifier("h", 25, "a@b", [])
