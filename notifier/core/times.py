"""Instants as the notifier reads and writes them: PostHog's ISO 8601 timestamps in, Unix
seconds out as ISO 8601. One parser for every timestamp the notifier reads.
"""

from __future__ import annotations

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
