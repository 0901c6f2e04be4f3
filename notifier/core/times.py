"""Instants and waits as the notifier reads and writes them: PostHog's ISO 8601 timestamps in,
Unix seconds out as ISO 8601, and the wait a ``Retry-After`` header asks for. One parser each
for every timestamp and every ``Retry-After`` the notifier reads.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset; naive read as UTC) as an aware datetime in
    UTC, or None when ``value`` is not such a string."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_instant(seconds: float) -> str:
    """Unix seconds as ``2026-01-15T14:02:11.123Z`` (UTC, milliseconds)."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date, never < 0.

    Returns None when the value is missing or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
