"""Timestamps: the ISO 8601 UTC text of a datetime is the text of its nanoseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rigwatch.timefmt import iso_utc, iso_utc_datetime, to_ns


@pytest.mark.parametrize(
    ("at", "text"),
    [
        (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "2024-05-01T12:00:00.123456Z"),
        (datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), "2024-05-01T12:00:00Z"),
        (
            datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T12:00:00.000005Z",
        ),
        (datetime(2024, 5, 1, 12, 0, 0), "2024-05-01T12:00:00Z"),  # naive: taken as UTC
    ],
)
def test_iso_utc_datetime_writes_what_iso_utc_writes(at: datetime, text: str) -> None:
    assert iso_utc_datetime(at) == text
    assert iso_utc(to_ns(at)) == text
