"""Counts in words for logs and command output: "1 event", "2 events", "1 delivery"."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is one (``plural`` when not noun + s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
