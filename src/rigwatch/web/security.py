"""Who may write to or command a station: the Origin check and the token.

Reading (status, sensors, recordings, the live stream) is open to whoever reaches the port.
Writing and commanding (``POST`` requests; WebSocket commands) is refused:

- from a web page of a foreign origin: a request that carries an ``Origin`` header must come
  from the station's own origin (same host and port as the request's ``Host``) or one of
  ``server.allowed_origins``; otherwise any page on the internet could drive the station
  through a browser on the plant network (cross-site request forgery);
- without the token, when one is required (by default whenever the station listens beyond the
  loopback interface): ``Authorization: Bearer <token>`` on HTTP; on the WebSocket that
  header or a ``token`` query parameter of the handshake (browsers cannot set headers there).

Tokens are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from rigwatch.config.station import ServerConfig
from rigwatch.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_ENV = "RIGWATCH_TOKEN"
"""Environment variable holding the token (takes precedence over ``server.token_file``)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin(value: str) -> str | None:
    """``scheme://host[:port]`` of an origin, lower case; ``None`` when it is not one."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class AccessPolicy:
    """The rules of one running station server.

    Attributes:
        allowed_origins: foreign origins allowed besides the station's own, normalised.
        token: the token writes and commands need, or ``None`` when none is required.
    """

    allowed_origins: frozenset[str]
    token: str | None

    @classmethod
    def from_config(
        cls, server: ServerConfig, host: str, environ: Mapping[str, str] | None = None
    ) -> AccessPolicy:
        """The policy of a server configured by ``server`` and listening on ``host``.

        A required token comes from ``RIGWATCH_TOKEN``, else ``server.token_file``, else it
        is generated (and logged once, so the operator can use it).

        Raises:
            ConfigError: ``token_file`` cannot be read or is empty; an origin that is not
                ``scheme://host[:port]``.
        """
        env = os.environ if environ is None else environ
        origins = set()
        for o in server.allowed_origins:
            norm = _origin(o)
            if norm is None:
                raise ConfigError(f"server.allowed_origins: {o!r} is not scheme://host[:port]")
            origins.add(norm)
        required = server.require_token == "always" or (
            server.require_token == "auto" and not is_loopback(host)
        )
        token: str | None = None
        if required:
            token = env.get(TOKEN_ENV) or None
            if token is None and server.token_file is not None:
                try:
                    token = server.token_file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(
                        f"server.token_file: cannot read {server.token_file}: {exc}"
                    ) from exc
                if not token:
                    raise ConfigError(f"server.token_file: {server.token_file} is empty")
            if token is None:
                token = secrets.token_urlsafe(24)
                log.warning(
                    "listening on %s: writes and commands need the token %s "
                    "(set %s or server.token_file to choose it)",
                    host,
                    token,
                    TOKEN_ENV,
                )
        return cls(frozenset(origins), token)

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """True when a request with this ``Origin`` (``None``: not sent, as by non-browser
        clients) may write: same origin as ``host_header``, or an allowed origin."""
        if origin is None:
            return True
        norm = _origin(origin)
        if norm is None:
            return False  # "null" (sandboxed frames, file://) and garbage
        if host_header and urlsplit(norm).netloc == host_header.strip().lower():
            return True
        return norm in self.allowed_origins

    def token_ok(self, authorization: str | None, query_token: str | None = None) -> bool:
        """True when no token is required or the request carries it (``Bearer`` header, or
        a ``token`` query parameter)."""
        if self.token is None:
            return True
        given = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                given = value.strip()
        if given is None:
            given = query_token
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def cors_origins(self) -> Sequence[str]:
        """Origins for the CORS middleware."""
        return sorted(self.allowed_origins)
