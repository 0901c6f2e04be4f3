"""The notifier's notices about itself → a Slack message, a webhook body, terminal text.

A notice says that polling a project, or delivering to a sink, has been failing (and since when,
the last error, what to do), or that it works again. Error texts can quote PostHog's or a
receiver's words, so they are escaped for Slack like report text, and stripped of control
characters everywhere. Pure functions: the durations shown are computed from the notice's own
``since`` and ``at``, never from a clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from notifier.core.outbox import Notice, NoticeKind
from notifier.core.times import format_span, parse_instant
from notifier.render.blocks import MAX_CONTEXT_ELEMENTS, MAX_HEADER, MAX_SECTION_TEXT, SlackMessage
from notifier.render.text import escape_truncate, one_line, truncate
from notifier.render.webhook import encode_json, iso_utc

WARNING_EMOJI: Final = "⚠️"
RECOVERED_EMOJI: Final = "✅"
PRODUCT: Final = "posthog-signal-notifier"

_ERROR_CHARS: Final = 1500
_HINT_CHARS: Final = 1000
_TEXT_CHARS: Final = 300
_INDENT: Final = "   "
_RESET: Final = "\x1b[0m"
_COLOURS: Final = {True: "\x1b[1;33m", False: "\x1b[32m"}  # failing: bold yellow; else green


def notice_headline(notice: Notice) -> str:
    """``⚠️ Notifier cannot poll PostHog project 4242`` and the like (raw text, one line)."""
    sink = one_line(notice.sink or "?")
    match notice.kind:
        case NoticeKind.SOURCE_FAILING:
            text = f"{WARNING_EMOJI} Notifier cannot poll PostHog project {notice.project_id}"
        case NoticeKind.SOURCE_RECOVERED:
            text = f"{RECOVERED_EMOJI} Polling PostHog project {notice.project_id} recovered"
        case NoticeKind.SINK_FAILING:
            text = f"{WARNING_EMOJI} Notifier cannot deliver to sink {sink}"
        case NoticeKind.SINK_RECOVERED:
            text = f"{RECOVERED_EMOJI} Delivery to sink {sink} recovered"
    return text


def _clock(moment: datetime, *, date: bool = True) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC" if date else "%H:%M UTC")


def notice_timing(notice: Notice) -> str:
    """``Since 2026-01-15 14:02 UTC (failing for 15 min)`` or, for a recovery,
    ``Failed from 2026-01-15 14:02 UTC until 14:40 UTC (38 min)``."""
    since, at = parse_instant(notice.since), parse_instant(notice.at)
    if since is None or at is None:  # not from this notifier; show what it says
        return f"Since {one_line(notice.since)[:40]}"
    span = format_span((at - since).total_seconds())
    if notice.kind.failing:
        return f"Since {_clock(since)} (failing for {span})"
    until = _clock(at, date=at.date() != since.date())
    return f"Failed from {_clock(since)} until {until} ({span})"


def _error_label(notice: Notice) -> str:
    return "Error" if notice.kind.failing else "Last error"


# -- Slack ----------------------------------------------------------------------------------


def notice_fallback_text(notice: Notice) -> str:
    """The short, escaped top-level ``text``: headline and error."""
    raw = f"{notice_headline(notice)}: {notice.error}" if notice.error else notice_headline(notice)
    return escape_truncate(one_line(raw), _TEXT_CHARS)


def notice_text_only(notice: Notice) -> str:
    """A message without blocks (for when Slack refuses the blocks)."""
    lines = [
        escape_truncate(one_line(notice_headline(notice)), _TEXT_CHARS),
        f"{_error_label(notice)}: {escape_truncate(one_line(notice.error), _ERROR_CHARS)}",
        escape_truncate(notice_timing(notice), _TEXT_CHARS),
        f"What to do: {escape_truncate(one_line(notice.hint), _HINT_CHARS)}",
    ]
    return "\n".join(lines)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate(text, MAX_SECTION_TEXT))}


def notice_slack_message(notice: Notice) -> SlackMessage:
    """The Block Kit message for one notice: header, error and timing, what to do, context."""
    header = escape_truncate(one_line(notice_headline(notice)), MAX_HEADER)
    error = escape_truncate(one_line(notice.error) or "(none given)", _ERROR_CHARS)
    timing = escape_truncate(notice_timing(notice), 200)
    hint = escape_truncate(one_line(notice.hint), _HINT_CHARS)
    subject = escape_truncate(one_line(notice.subject), 120)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _section(f"*{_error_label(notice)}:* {error}\n*{timing}*"),
    ]
    if hint:
        blocks.append(_section(f"*What to do:* {hint}"))
    context = [
        _mrkdwn(f"{PRODUCT} about itself"),
        _mrkdwn(subject[:1].upper() + subject[1:]),
        _mrkdwn(f"Notice {escape_truncate(one_line(notice.id), 80)}"),
    ]
    blocks.append({"type": "context", "elements": context[:MAX_CONTEXT_ELEMENTS]})
    return SlackMessage(text=notice_fallback_text(notice), blocks=tuple(blocks))


# -- webhook --------------------------------------------------------------------------------


def notice_webhook_payload(notice: Notice, timestamp: datetime) -> dict[str, Any]:
    """``{"type": "notifier.source_failing", "timestamp": …, "data": {the notice}}``."""
    return {
        "type": f"notifier.{notice.kind.value}",
        "timestamp": iso_utc(timestamp),
        "data": {
            "notice_id": notice.id,
            "kind": notice.kind.value,
            "project_id": notice.project_id,
            "sink": notice.sink,
            "error": notice.error,
            "since": notice.since,
            "at": notice.at,
            "hint": notice.hint,
        },
    }


def notice_webhook_body(notice: Notice, timestamp: datetime) -> bytes:
    """The exact bytes to sign and send: compact UTF-8 JSON."""
    return encode_json(notice_webhook_payload(notice, timestamp))


# -- console --------------------------------------------------------------------------------


def notice_console_text(notice: Notice, *, color: bool) -> str:
    """The notice as a few lines for a terminal, without a trailing newline."""
    headline = truncate(one_line(notice_headline(notice)), 200)
    if color:
        headline = f"{_COLOURS[notice.kind.failing]}{headline}{_RESET}"
    lines = [
        headline,
        f"{_INDENT}{_error_label(notice).lower()}: {truncate(one_line(notice.error), 500)}",
        _INDENT + notice_timing(notice),
    ]
    if notice.hint:
        lines.append(f"{_INDENT}what to do: {truncate(one_line(notice.hint), 500)}")
    return "\n".join(lines)
