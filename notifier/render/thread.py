"""The short thread reply posted under a living Slack card: what this one event changed, in a
line or two, with a footnote linking the report and naming the rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from notifier.core.events import Event, EventType
from notifier.core.report import Links
from notifier.core.words import status_words
from notifier.render.blocks import (
    SlackMessage,
    coloured,
    context_block,
    fit,
    link,
    section,
    status_word,
)
from notifier.render.slack import report_url, rules_context
from notifier.render.text import (
    describe_changes,
    escape_text,
    escape_truncate,
    moved_text,
    reminder_text,
    same_words,
    status_change,
    status_colour,
    status_move,
    title_of,
    truncate,
)

_TEXT_CHARS: Final = 300
_CHANGES_CHARS: Final = 800


def thread_reply(event: Event, rules: Sequence[str], links: Links) -> SlackMessage:
    """The short reply under the living message: what this event changed, in a line or two,
    and a context line with the report link and the rules."""
    lines = _change_lines(event)
    changed = section("\n".join(lines))
    url = report_url(event, links)  # None once removed: no dead link
    context = [link(url, "Open report") if url else "", *rules_context(rules)]
    title = escape_truncate(title_of(event.report), _TEXT_CHARS // 2)
    text = truncate(f"{title}: {' · '.join(lines)}".replace("*", ""), _TEXT_CHARS)
    return fit(text, [(0, changed), (1, context_block(context))], minimal=[changed])


def _change_lines(event: Event) -> list[str]:
    """``🟡 in_progress → 🟢 *ready*`` and ``weight 1.2 → 2.4, signals 3 → 5`` (escaped)."""
    report = event.report
    if event.type is EventType.REMOVED:
        gone = status_words("removed")
        return [f"{gone.emoji} *Removed from PostHog* (last status {coloured(report.status)})"]
    if event.type is EventType.REMINDER:
        return [f"⏰ *{escape_text(reminder_text(event))}*"]
    lines = []
    if event.type is EventType.NEW:
        lines.append(
            f"*New signal report* · {status_colour(report.status)} *{status_word(report.status)}*"
        )
    elif event.type is EventType.STATUS_CHANGED:
        before, after = status_change(event)
        move = status_move(event)  # Reopened / Restored
        if after == "resolved" and move is None:
            lines.append(f"*Resolved* ✅ (was {coloured(before)})")
        elif move is not None:
            lines.append(
                f"*{move}* · {coloured(before)} → {status_colour(after)} *{status_word(after)}*"
            )
        elif same_words(before, after):
            lines.append(f"{status_colour(after)} *{escape_text(moved_text(before, after))}*")
        else:
            lines.append(f"{coloured(before)} → {status_colour(after)} *{status_word(after)}*")
    others = describe_changes({k: v for k, v in event.changes.items() if k != "status"})
    if others:
        lines.append(escape_truncate(others, _CHANGES_CHARS))
    return lines or ["Updated"]
