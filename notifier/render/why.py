"""The card's "why it matters" section, read right under the status: the priority and what to
do in words (no call to act once the report is closed), the summary's first paragraph, and the
evidence as "N signals, weight W · U users". A body template replaces the whole section.

What a status change changed besides the status is said in place: ``P1 · high (was P2 ·
medium)``, ``9 signals (was 7)``. Everything from PostHog is escaped.
"""

from __future__ import annotations

from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.core.words import actionability_words, priority_words
from notifier.render.blocks import link, section
from notifier.render.text import (
    escape_text,
    escape_truncate,
    format_number,
    one_line,
    strip_controls,
)

SUMMARY_CHARS: Final = 600
_WORDS_CHARS: Final = 40
_DONE: Final = frozenset({"resolved", "suppressed", "deleted"})


def why_it_matters(event: Event, url: str | None, body: str | None = None) -> dict[str, Any] | None:
    """The section, or None when PostHog sent none of it. ``body``: a rendered template
    (escaped mrkdwn) in place of the whole section (the template says what matters)."""
    if body:
        return section(body)
    lines = [_judgement(event), _lead(event, url), _evidence(event)]
    shown = [line for line in lines if line]
    return section("\n".join(shown)) if shown else None


def _was(event: Event, name: str, words: Any) -> str:
    """`` (was P2 · medium)`` when this event changed the field, else ``""`` (an update's
    status line already lists its changes)."""
    change = event.changes.get(name)
    if change is None or change[0] == change[1] or event.type is EventType.UPDATED:
        return ""
    before = change[0]
    shown = words(before) if before not in (None, "") else "none"
    return f" (was {escape_truncate(one_line(str(shown)), _WORDS_CHARS)})"


def _judgement(event: Event) -> str:
    """``*Priority P1 · high* · Act now``: PostHog's judgments in words (escaped)."""

    def priority(value: Any) -> str:
        return priority_words(one_line(str(value)))

    def action(value: Any) -> str:
        return actionability_words(one_line(str(value)))

    def escaped(text: str) -> str:
        return escape_truncate(text, _WORDS_CHARS)

    report = event.report
    parts = []
    if report.priority or "priority" in event.changes:
        shown = escaped(priority(report.priority)) if report.priority else "none"
        parts.append(f"*Priority {shown}*{_was(event, 'priority', priority)}")
    if (report.actionability or "actionability" in event.changes) and not _done(event):
        shown = escaped(action(report.actionability)) if report.actionability else "not judged"
        parts.append(f"{shown}{_was(event, 'actionability', action)}")
    return " · ".join(parts)


def _done(event: Event) -> bool:
    """Whether the report is closed (resolved, dismissed, deleted, removed): no call to act."""
    return event.type is EventType.REMOVED or event.report.status in _DONE


def _lead(event: Event, url: str | None) -> str:
    """The summary's first paragraph (escaped, cut), with "Read more" when there is more."""
    summary = strip_controls(event.report.summary or "").strip()
    if not summary:
        return ""
    first = one_line(summary.split("\n", 1)[0])
    text = escape_truncate(first, SUMMARY_CHARS)
    more = len(escape_text(first)) > SUMMARY_CHARS or "\n" in summary
    return f"{text} {link(url, 'Read more')}" if more and url is not None else text


def _evidence(event: Event) -> str:
    """``7 signals, weight 2.35 · 12 users``, with ``(was …)`` for what this event changed."""
    report = event.report
    signals, weight, users = report.signal_count, report.total_weight, report.relevant_user_count
    first = []
    if signals is not None:
        first.append(_many(signals, "signal") + _was(event, "signal_count", format_number))
    if weight is not None:
        first.append(
            f"weight {escape_text(format_number(weight))}"
            + _was(event, "total_weight", format_number)
        )
    parts = [", ".join(first)] if first else []
    if users is not None:
        parts.append(_many(users, "user") + _was(event, "relevant_user_count", format_number))
    return " · ".join(parts)


def _many(count: int, noun: str) -> str:
    """``1 signal``, ``1,204 signals``."""
    return escape_text(f"{format_number(count)} {noun if count == 1 else noun + 's'}")
