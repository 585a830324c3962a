"""Handlers whose client libraries are asyncio (asyncua, aiomqtt), called from the reporter's
synchronous loop: an event loop on a thread of its own (:class:`LoopThread`), and the base of
such handlers (:class:`AsyncClientHandler`), which keeps one client open on that loop between
records and opens it again after an error."""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rigwatch.errors import DeliveryError

if TYPE_CHECKING:
    from rigwatch.pipeline.stages.handlers.records import ReportRecord

T = TypeVar("T")


class LoopThread:
    """A private event loop running on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run ``coro`` on the loop and wait for its result.

        Raises:
            TimeoutError: it took longer than ``timeout_s`` (it is cancelled); whatever the
                coroutine raised.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class AsyncClientHandler(ABC):
    """A reporter handler talking to one server through an asyncio client.

    The client is opened on the first delivery and kept open between records. A delivery
    that fails in any way (cannot connect, the server refuses, it takes longer than its time
    limit) closes the client, so the next one connects again, and raises
    :class:`~rigwatch.errors.DeliveryError` ``"<name> <server>: <exception type>: <reason>"``.
    A subclass says how to open and close its client (:meth:`open_client`,
    :meth:`close_client`) and, in :meth:`deliver`, what to send through :meth:`send` and what
    it delivered.

    Args:
        timeout_s: the client's timeout, seconds; closing the client waits at most this long.
        server: the server as named in error messages (``host:port``, an endpoint URL).
    """

    name: ClassVar[str]

    def __init__(self, timeout_s: float, server: str) -> None:
        self.timeout_s = timeout_s
        self.server = server
        self._loop = LoopThread(f"reporter-{self.name}")
        self._client: Any = None
        self._log = logging.getLogger(type(self).__module__)

    @abstractmethod
    async def open_client(self) -> Any:
        """Connect to the server; returns the connected client (runs on the handler's loop).

        Raises:
            Exception: whatever the client library raises (the delivery fails).
        """

    @abstractmethod
    async def close_client(self, client: Any) -> None:
        """Disconnect ``client`` and forget what was cached for it (runs on the handler's
        loop; an exception is logged and ignored: the server may be gone already)."""

    @abstractmethod
    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        """Deliver one record (through :meth:`send`); returns what was delivered (JSON object).

        Raises:
            DeliveryError: not delivered (retried later).
        """

    def send(self, work: Callable[[Any], Awaitable[T]], time_limit_s: float) -> T:
        """Run ``work(client)`` on the handler's loop, connecting first when no client is open.

        Returns:
            What ``work`` returned.

        Raises:
            DeliveryError: connecting or ``work`` failed or took longer than ``time_limit_s``
                (the client is closed).
        """

        async def with_client() -> T:
            if self._client is None:
                self._client = await self.open_client()
            return await work(self._client)

        try:
            return self._loop.run(with_client(), time_limit_s)
        except Exception as exc:
            try:
                self._loop.run(self._disconnect(), self.timeout_s)
            except Exception as inner:
                self._log.debug("%s disconnect after error: %s", self.name, inner)
            raise DeliveryError(f"{self.name} {self.server}: {type(exc).__name__}: {exc}") from exc

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await self.close_client(client)
            except Exception as exc:  # the server is gone already
                self._log.debug("%s disconnect: %s", self.name, exc)

    def flush(self) -> None:
        """Nothing to do after a batch: each record is sent as it comes."""
        return

    def close(self) -> None:
        """Close the client and stop the handler's loop."""
        try:
            self._loop.run(self._disconnect(), self.timeout_s)
        except Exception as exc:
            self._log.debug("%s close: %s", self.name, exc)
        self._loop.close()
