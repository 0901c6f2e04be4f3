"""The words people read: counts ("1 event", "2 events"), and the one table of what a report's
status, actionability and priority mean, with the emoji every sink shows for a status.

Every renderer (Slack card, thread reply, digest, console, the webhook's ``text``) takes its
words from here, so a status reads the same wherever it is shown. The webhook's JSON data keeps
PostHog's raw values: machines read those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless the count is one (``plural`` when not noun + s)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


@dataclass(frozen=True, slots=True)
class StatusWords:
    """How a status reads: its emoji, its name, what it means for the reader and what to do,
    and its rank when listing the most important first (lower first)."""

    emoji: str
    name: str
    meaning: str
    rank: int


_RESEARCHING: Final = "PostHog is still researching it; nothing to do yet"

#: The one table of statuses. ``removed`` is ours: PostHog no longer lists the report.
STATUSES: Final[Mapping[str, StatusWords]] = {
    "pending_input": StatusWords("🟣", "Needs your input", "PostHog is waiting for an answer", 0),
    "ready": StatusWords("🟢", "Ready for review", "research finished, decide whether to act", 1),
    "failed": StatusWords("🔴", "Failed", "PostHog's research failed; open it to retry", 2),
    "in_progress": StatusWords("🟡", "Researching", _RESEARCHING, 3),
    "candidate": StatusWords("🔵", "Researching", _RESEARCHING, 3),
    "potential": StatusWords("⚪", "Researching", _RESEARCHING, 3),
    "resolved": StatusWords("✅", "Resolved", "fixed or closed; nothing left to do", 4),
    "suppressed": StatusWords("⚫", "Dismissed", "someone dismissed it; no action needed", 5),
    "deleted": StatusWords("🗑️", "Deleted", "deleted in PostHog; nothing left to do", 6),
    "removed": StatusWords("🗑️", "Removed", "PostHog no longer lists it; nothing to open", 6),
}
UNKNOWN_EMOJI: Final = "🔘"
_UNKNOWN_RANK: Final = 3

#: ``actionability`` values in words.
ACTIONABILITY: Final[Mapping[str, str]] = {
    "immediately_actionable": "Act now",
    "requires_human_input": "Needs a decision",
    "not_actionable": "Not actionable",
}

#: ``priority`` values in words: ``P0 · critical``.
PRIORITY: Final[Mapping[str, str]] = {
    "P0": "critical",
    "P1": "high",
    "P2": "medium",
    "P3": "low",
    "P4": "minor",
}


def status_words(status: str) -> StatusWords:
    """The words of a status; a status PostHog adds later reads as its raw value."""
    known = STATUSES.get(status)
    if known is not None:
        return known
    return StatusWords(UNKNOWN_EMOJI, status.replace("_", " ").capitalize(), "", _UNKNOWN_RANK)


def status_name(status: str) -> str:
    """``Ready for review``, ``Needs your input``, ``Researching``, …"""
    return status_words(status).name


def status_line(status: str) -> str:
    """``Ready for review: research finished, decide whether to act`` (name only when unknown)."""
    words = status_words(status)
    return f"{words.name}: {words.meaning}" if words.meaning else words.name


def actionability_words(value: str) -> str:
    """``Act now``, ``Needs a decision``, ``Not actionable``; unknown values with spaces."""
    return ACTIONABILITY.get(value, value.replace("_", " "))


def priority_words(value: str) -> str:
    """``P0 · critical`` … ``P4 · minor``; an unknown priority as it is."""
    meaning = PRIORITY.get(value.upper())
    return f"{value.upper()} · {meaning}" if meaning else value


def importance(priority: str | None, status: str) -> tuple[int, int]:
    """The sort key listing the most important first: priority (P0 first, none last), then
    status (needs-input and ready before research, done last)."""
    shown = (priority or "").upper()
    return (_PRIORITY_RANK.get(shown, len(_PRIORITY_RANK)), status_words(status).rank)


#: P0 → 0, P1 → 1, …: ``importance`` looks a priority up once per sorted item.
_PRIORITY_RANK: Final = {p: i for i, p in enumerate(PRIORITY)}
