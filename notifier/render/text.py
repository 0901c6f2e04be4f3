"""Shared text helpers for every renderer: emoji, headlines, numbers, truncation, escaping.

Pure functions of the models; nothing here knows about Slack, HTTP or terminals beyond the
three characters Slack's mrkdwn needs escaped, the marks it draws with, and what a log line
must not hold.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.core.report import Report
from notifier.core.times import format_span
from notifier.core.words import (
    STATUSES,
    UNKNOWN_EMOJI,
    actionability_words,
    priority_words,
    status_name,
)

ELLIPSIS: Final = "…"
UNTITLED: Final = "Untitled report"
NEUTRAL_EMOJI: Final = UNKNOWN_EMOJI

#: The emoji of each status, the same in every sink (from ``core.words``, the one table).
STATUS_EMOJI: Final[Mapping[str, str]] = {name: w.emoji for name, w in STATUSES.items()}
#: The same emoji under the name Slack's renderers know it by.
STATUS_COLOUR: Final = STATUS_EMOJI
UNKNOWN_COLOUR: Final = UNKNOWN_EMOJI

#: Short human names for the tracked fields, as the headlines and field lists show them.
FIELD_LABELS: Final[Mapping[str, str]] = {
    "total_weight": "weight",
    "signal_count": "signals",
    "relevant_user_count": "users",
    "artefact_count": "artefacts",
    "priority": "priority",
    "actionability": "actionability",
    "title": "title",
    "summary": "summary",
    "status": "status",
}

#: Fields whose before/after values are too long for a headline: only "changed" is said.
_PROSE_FIELDS: Final = frozenset({"title", "summary"})
_MAX_HEADLINE_CHANGES: Final = 6
_MAX_VALUE_CHARS: Final = 40


def status_emoji(status: str) -> str:
    """The emoji for a status; unknown statuses (new ones appear) get ``UNKNOWN_EMOJI``."""
    return STATUS_EMOJI.get(status, NEUTRAL_EMOJI)


def status_colour(status: str) -> str:
    """The colour emoji for a status in Slack; unknown statuses get ``UNKNOWN_COLOUR``."""
    return STATUS_COLOUR.get(status, UNKNOWN_COLOUR)


def event_status(event: Event) -> str:
    """The status to show: the report's, or ``removed`` once PostHog no longer lists it."""
    return "removed" if event.type is EventType.REMOVED else event.report.status


def event_emoji(event: Event) -> str:
    """The emoji that leads every rendering of the event."""
    return status_emoji(event_status(event))


def event_colour(event: Event) -> str:
    """The colour emoji of the status the event leaves the report in (Slack)."""
    return status_colour(event_status(event))


def title_of(report: Report) -> str:
    """The report's title on one line, or "Untitled report" when it has none."""
    title = one_line(report.title or "")
    return title or UNTITLED


def format_number(value: Any) -> str:
    """Numbers for humans: ``7``, ``1,204``, ``2.35``, ``0.004``; anything else as ``str``."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        if abs(value) >= 0.01:
            return f"{value:,.2f}".rstrip("0").rstrip(".")
        return f"{value:.2g}"
    return str(value)


def format_value(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """Any field value on one short line: numbers formatted, strings trimmed, null as ``—``."""
    if value is None or isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return truncate(one_line(value), limit) or "(empty)"
    return truncate(one_line(repr(value)), limit)


def field_words(name: str, value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """A field's value as people read it: ``P0 · critical``, ``Act now``, ``Ready for review``
    for priority, actionability and status (``core.words``); others as ``format_value``."""
    if isinstance(value, str) and value:
        words = {"priority": priority_words, "actionability": actionability_words}
        to_words = words.get(name, status_name if name == "status" else None)
        if to_words is not None:
            return format_value(to_words(value), limit)
    return format_value(value, limit)


def label(field_name: str) -> str:
    """The short human name of a field (``total_weight`` → ``weight``)."""
    return FIELD_LABELS.get(field_name, field_name)


def status_change(event: Event) -> tuple[str, str]:
    """``(before, after)`` statuses of a status_changed event, from its changes or its copies."""
    change = event.changes.get("status")
    after = event.report.status
    if change is not None:
        before, changed_to = change
        return str(before), str(changed_to if changed_to is not None else after)
    before = event.previous.status if event.previous is not None else "?"
    return before, after


#: Where a reopened report can go from ``resolved``: back to work (research or announced again).
_REOPENED_TO: Final = frozenset({"potential", "candidate", "in_progress", "ready", "pending_input"})


def status_move(event: Event) -> str | None:
    """``Reopened`` (``resolved`` → back to work) or ``Restored`` (``suppressed`` → any status
    but ``deleted``) for a status change that has its own wording; else None. The event stays a
    ``status_changed`` (rules match it as before)."""
    if event.type is not EventType.STATUS_CHANGED:
        return None
    before, after = status_change(event)
    if before == "resolved" and after in _REOPENED_TO:
        return "Reopened"
    if before == "suppressed" and after not in ("suppressed", "deleted"):
        return "Restored"
    return None


def describe_changes(
    changes: Mapping[str, tuple[Any, Any]], limit: int = _MAX_HEADLINE_CHANGES
) -> str:
    """``weight 1.2 → 2.4, signals 3 → 5, title changed`` (at most ``limit``, then "+N more")."""
    parts: list[str] = []
    for name, (before, after) in changes.items():
        if len(parts) == limit:
            parts.append(f"+{len(changes) - limit} more")
            break
        if name in _PROSE_FIELDS:
            parts.append(f"{label(name)} changed")  # prose: too long to show
        else:
            name_text = truncate(label(one_line(name)), _MAX_VALUE_CHARS)
            parts.append(f"{name_text} {field_words(name, before)} → {field_words(name, after)}")
    return ", ".join(parts)


def status_text(status: str) -> str:
    """A status in words on one short line (``Ready for review``, ``Researching``)."""
    return format_value(status_name(status))


def same_words(before: str, after: str) -> bool:
    """Whether two statuses read the same (``candidate`` and ``in_progress``: Researching)."""
    return status_text(before) == status_text(after)


def moved_text(before: str, after: str) -> str:
    """``Researching → Ready for review``; ``Still researching`` when both read the same."""
    was, now = status_text(before), status_text(after)
    if was == now:
        return f"Still {now[:1].lower()}{now[1:]}" if now == "Researching" else now
    return f"{was} → {now}"


def headline(event: Event) -> str:
    """One line saying what happened: ``New signal report``, ``Researching → Ready for
    review``, ``Reopened: Resolved → Researching``, …"""
    if event.type is EventType.NEW:
        return "New signal report"
    if event.type is EventType.STATUS_CHANGED:
        before, after = status_change(event)
        move = status_move(event)  # Reopened / Restored
        moved = moved_text(before, after)
        return f"{move}: {moved}" if move else moved
    if event.type is EventType.UPDATED:
        described = describe_changes(event.changes)
        return f"Updated: {described}" if described else "Updated"
    if event.type is EventType.REMINDER:
        return reminder_text(event)
    return "Removed from PostHog"


def reminder_text(event: Event) -> str:
    """``Reminder 2 of 3: still needs your input after 2 d``."""
    reminded = event.reminded
    status = status_text(event.report.status if reminded is None else reminded.status)
    still = f"still {status[:1].lower()}{status[1:]}"
    if reminded is None:
        return f"Reminder: {still}"
    return (
        f"Reminder {reminded.count} of {reminded.max}: {still} after {format_span(reminded.waited)}"
    )


def truncate(s: str, n: int) -> str:
    """``s`` cut to at most ``n`` characters, the last one ``…`` when anything was cut."""
    if len(s) <= n:
        return s
    if n <= 0:
        return ""
    return s[: n - 1] + ELLIPSIS


def escape_mrkdwn(s: str) -> str:
    """Escape the three characters Slack parses: ``&`` first, then ``<`` and ``>``."""
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: mrkdwn's formatting marks and the look-alikes Slack does not parse. mrkdwn has no escape
#: character, and zero-width characters are no reliable one (converters insert them to make
#: Slack format mid-word), so report text gets a look-alike wherever its mark could open or
#: close formatting; inside a word (``snake_case``, ``2*3``) it cannot, and stays.
_LOOKALIKES: Final = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}  # ∗ ˍ ∼ ˋ
_MARK: Final = re.compile(r"(?<![^\W_])[*_~`]|[*_~`](?![^\W_])")
#: Line and paragraph separators: Slack breaks the line there, so they become spaces.
_SEPARATORS: Final = str.maketrans({"\u2028": " ", "\u2029": " "})


def escape_text(s: str) -> str:
    """Untrusted text for mrkdwn: ``escape_mrkdwn``, and it cannot draw either: no bold, italic,
    strike or code of its own (look-alike marks), no U+2028/U+2029 line breaks (spaces)."""
    marked = _MARK.sub(lambda m: _LOOKALIKES[m[0]], escape_mrkdwn(s))
    return marked.translate(_SEPARATORS)


def escape_truncate(s: str, n: int) -> str:
    """``escape_text``, then cut to ``n`` characters without leaving half an entity (``&am``)."""
    escaped = escape_text(s)
    if len(escaped) <= n:
        return escaped
    if n <= 0:
        return ""
    cut = escaped[: n - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def strip_controls(s: str) -> str:
    """Drop control and format characters (ANSI escapes, bidi overrides, NULs); keep newlines."""
    return "".join(
        ch for ch in s if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )


def escape_controls(s: str) -> str:
    """``s`` with every character that is not printable (newlines, CR, ANSI escapes, bidi
    overrides, line separators…) written as its Python escape (``\\n``, ``\\x1b``,
    ``\\u202e``), so the text stays on one line and cannot restyle a terminal."""
    if s.isprintable():
        return s
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in s)


def one_line(s: str) -> str:
    """Untrusted text on a single line: controls dropped, every run of whitespace one space."""
    return " ".join(strip_controls(s).split())
