"""Secrets of the fleet: machine API keys, login tokens and user passwords.

- API keys and login tokens are 256-bit random values (``secrets.token_urlsafe(32)``). Only
  their SHA-256 is stored: for a high-entropy random secret a fast hash is enough (nothing to
  guess from it), and it keeps the per-request check a dictionary lookup.
- Passwords of people are low-entropy: they are stored as argon2id hashes (argon2-cffi's
  defaults, RFC 9106's second recommended option), slow on purpose.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

KEY_PREFIX = "rwk_"
"""API keys start with this, so a leaked key is recognisable (secret scanners, logs)."""
TOKEN_PREFIX = "rwt_"
"""Login tokens start with this."""

_default_hasher = PasswordHasher()


def password_hasher(time_cost: int = 3, memory_kib: int = 65536) -> PasswordHasher:
    """An argon2id hasher; the defaults are RFC 9106's second recommended option (t=3,
    m=64 MiB, p=4). Verification reads the parameters from the hash itself."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=4)


def new_secret(prefix: str) -> str:
    """A new random secret: ``prefix`` + 43 URL-safe characters (256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """SHA-256 of a key or token, 64 hex digits."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """The argon2id hash of a password (PHC string)."""
    return (hasher or _default_hasher).hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False otherwise (never raises)."""
    try:
        return _default_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
