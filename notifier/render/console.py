"""Event → a few readable lines for a terminal (what ``notifier demo`` shows).

Report text is stripped of control characters first, so a title cannot smuggle ANSI escapes
into the operator's terminal; colour, when asked for, is only ever added here.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Final

from notifier.core.events import Event, EventType
from notifier.core.report import Links
from notifier.render.text import (
    event_emoji,
    event_status,
    field_words,
    format_number,
    headline,
    one_line,
    status_text,
    title_of,
    truncate,
)

WIDTH: Final = 100
INDENT: Final = "   "
SUMMARY_LINES: Final = 4
_TITLE_CHARS: Final = 200

_RESET: Final = "\x1b[0m"
_COLOURS: Final = {
    "ready": "\x1b[1;32m",  # bold green
    "resolved": "\x1b[32m",
    "potential": "\x1b[36m",  # cyan
    "candidate": "\x1b[36m",
    "in_progress": "\x1b[33m",  # yellow
    "pending_input": "\x1b[1;33m",
    "failed": "\x1b[1;31m",  # bold red
    "suppressed": "\x1b[2m",  # dim
    "deleted": "\x1b[2m",
    "removed": "\x1b[2m",
}


def _status_word(status: str, *, color: bool) -> str:
    word = truncate(status_text(status), 30)
    code = _COLOURS.get(status)
    return f"{code}{word}{_RESET}" if color and code else word


def _plural(count: int | None, noun: str) -> str | None:
    if count is None:
        return None
    return f"{format_number(count)} {noun}{'' if count == 1 else 's'}"


def stats_line(event: Event) -> str:
    """``7 signals, weight 2.35 · 12 users · P1 · high · Act now``: the evidence in the card's
    words (``render.why``), then the judgments."""
    report = event.report
    weight = report.total_weight
    evidence = [
        _plural(report.signal_count, "signal"),
        f"weight {format_number(weight)}" if weight is not None else None,
    ]
    parts = [
        ", ".join(p for p in evidence if p),
        _plural(report.relevant_user_count, "user"),
        field_words("priority", report.priority, 30) if report.priority else None,
        field_words("actionability", report.actionability) if report.actionability else None,
    ]
    return " · ".join(p for p in parts if p)


def console_text(event: Event, rules: Sequence[str], links: Links, *, color: bool) -> str:
    """The event as a multi-line block, without a trailing newline."""
    report = event.report
    status = _status_word(event_status(event), color=color)
    title = truncate(title_of(report), _TITLE_CHARS)
    lines = [f"{event_emoji(event)} {status}  {title}"]
    lines.append(INDENT + one_line(headline(event)))
    summary = one_line(report.summary or "")
    if summary:
        wrapped = textwrap.wrap(summary, WIDTH - len(INDENT))
        if len(wrapped) > SUMMARY_LINES:
            room = WIDTH - len(INDENT) - 2
            last = wrapped[SUMMARY_LINES - 1][:room].rstrip()
            wrapped = [*wrapped[: SUMMARY_LINES - 1], last + " …"]
        lines.extend(INDENT + line for line in wrapped)
    stats = stats_line(event)
    if stats:
        lines.append(INDENT + stats)
    if event.type is not EventType.REMOVED:  # once removed, its page is gone
        lines.append(INDENT + links.report(event.project_id, one_line(report.id)))
    if event.project_name:
        lines.append(INDENT + "project: " + truncate(one_line(event.project_name), 80))
    if rules:
        lines.append(INDENT + "rules: " + truncate(", ".join(one_line(r) for r in rules), 200))
    return "\n".join(lines)
