"""Instants, waits and durations as the notifier reads and writes them: PostHog's ISO 8601
timestamps in, Unix seconds out as ISO 8601, the wait a ``Retry-After`` header asks for, and a
duration shown to people. One function each, for every place that needs it.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime
from typing import Literal

SpanStyle = Literal["words", "short", "config"]


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


def format_span(seconds: float, style: SpanStyle = "words") -> str:
    """A duration for people.

    ``words`` (messages, notices, `check`): ``0.5 s``, ``45 s``, ``15 min``, ``2 h 5 min``,
    ``3 d 4 h``;
    ``short`` (table cells): the largest whole unit, ``45s``, ``12m``, ``5h``, ``3d``;
    ``config`` (as a config file writes it, in messages about a setting): ``500ms``, ``30s``.
    """
    seconds = max(0.0, seconds)
    if style == "config":
        return f"{seconds * 1000:g}ms" if 0 < seconds < 1 else f"{seconds:g}s"
    if style == "short":
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                return f"{int(seconds // size)}{unit}"
        return f"{int(seconds)}s"
    if seconds < 10:
        return f"{round(seconds, 1):g} s"  # a timeout of 0.5 s is not "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
