"""Timestamps: int64 nanoseconds since the Unix epoch (UTC) to and from aware datetimes, to
ISO 8601 and to the compact stamp used in file names. Every part converts and formats time
through these functions."""

from __future__ import annotations

from datetime import UTC, datetime

NS_PER_S = 1_000_000_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ns(at: datetime) -> int:
    """An aware datetime (a naive one is taken as UTC) as int64 ns since the Unix epoch
    (exact: integer arithmetic, no float rounding)."""
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    delta = at - _EPOCH
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def from_ns(ts_ns: int) -> datetime:
    """``ts_ns`` as an aware UTC datetime, truncated to microseconds.

    Raises:
        OverflowError, OSError, ValueError: outside the range of :class:`datetime.datetime`.
    """
    seconds, rest_ns = divmod(int(ts_ns), NS_PER_S)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest_ns // 1000)


def iso_utc(ts_ns: int) -> str:
    """ISO 8601 UTC text of a timestamp, microsecond precision, ``Z`` suffix
    (``2024-05-01T12:00:00.123456Z``).

    Raises:
        OverflowError, OSError, ValueError: ``ts_ns`` is outside years 1..9999.
    """
    return iso_utc_datetime(from_ns(ts_ns))


def iso_utc_datetime(at: datetime) -> str:
    """ISO 8601 UTC text of an aware datetime (a naive one is taken as UTC), as
    :func:`iso_utc` writes it (``2024-05-01T12:00:00.123456Z``; no fraction when it is 0)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")


def file_stamp(ts_ns: int) -> str:
    """``%Y%m%dT%H%M%S_%fZ`` of a timestamp, for file names (``20240501T120000_123456Z``).

    Sorts like the time it names. A timestamp outside the datetime range (a device's clock gone
    wrong) gives the stamp of the wall clock now instead of an error, so a file can always be
    named.
    """
    try:
        dt = from_ns(ts_ns)
    except (OverflowError, OSError, ValueError):
        dt = datetime.now(tz=UTC)
    return dt.strftime("%Y%m%dT%H%M%S_%fZ")
