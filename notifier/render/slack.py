"""Event → Slack Block Kit message: a header, what happened, the numbers, a button.

Every string that came from PostHog (title, summary, statuses, ids, field values) is escaped with
``escape_mrkdwn`` wherever it goes, ``plain_text`` included, so ``<!channel>``, ``<@U1>`` or
``<https://evil|innocent>`` can neither ping anyone nor disguise a link. Every Block Kit limit
holds whatever the data: texts are cut with ``…`` and, should the whole still be too big, the
message falls back to a minimal card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from notifier.models import Event, EventType, Links
from notifier.render.text import (
    escape_mrkdwn,
    escape_truncate,
    event_emoji,
    format_value,
    headline,
    one_line,
    status_change,
    status_emoji,
    strip_controls,
    title_of,
    truncate,
)

# Block Kit limits (docs.slack.dev/reference/block-kit/blocks), with a margin where Slack
# counts differently from Python (it has rejected ~13k characters of blocks in total).
MAX_BLOCKS: Final = 50
MAX_HEADER: Final = 150
MAX_SECTION_TEXT: Final = 3000
MAX_FIELDS: Final = 10
MAX_FIELD_TEXT: Final = 2000
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_BUTTON_TEXT: Final = 75
MAX_URL: Final = 3000
MAX_BLOCKS_JSON: Final = 11_000

SUMMARY_CHARS: Final = 600
_HEADLINE_CHARS: Final = 800
_FIELD_CHARS: Final = 200
_CONTEXT_CHARS: Final = 300
_TEXT_CHARS: Final = 300
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%-._~"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What ``chat.postMessage`` or an incoming webhook receives: fallback text and blocks."""

    text: str
    blocks: tuple[dict[str, Any], ...]

    def blocks_json(self) -> str:
        """The blocks as Slack will count them (characters, not bytes)."""
        return json.dumps(list(self.blocks), ensure_ascii=False, separators=(",", ":"))


def fallback_text(event: Event) -> str:
    """The short, escaped top-level ``text``: emoji, headline and title."""
    report = event.report
    raw = f"{event_emoji(event)} {headline(event)}: {title_of(report)}"
    return escape_truncate(one_line(raw), _TEXT_CHARS)


def text_only(event: Event, links: Links) -> str:
    """A message without blocks, for when Slack refuses the blocks: text, summary and link."""
    lines = [fallback_text(event)]
    summary = one_line(event.report.summary or "")
    if summary:
        lines.append(escape_truncate(summary, SUMMARY_CHARS))
    url = _report_url(event, links)
    if url is not None:
        lines.append(escape_mrkdwn(url))
    return "\n".join(lines)


def slack_message(event: Event, rules: Sequence[str], links: Links) -> SlackMessage:
    """The Block Kit card for one event, within every Block Kit limit."""
    blocks: list[dict[str, Any]] = [
        _header(event),
        _section(_body(event)),
        {"type": "section", "fields": _fields(event)},
        {"type": "context", "elements": _context(event, rules)},
    ]
    url = _report_url(event, links)
    if url is not None:
        blocks.append(_button(url))
    message = SlackMessage(text=fallback_text(event), blocks=tuple(blocks))
    if len(message.blocks_json()) > MAX_BLOCKS_JSON:
        # Cannot happen with the caps above; kept so that no data can ever break the card.
        minimal = [_header(event), _section(escape_truncate(headline(event), 200))]
        message = SlackMessage(text=message.text, blocks=tuple(minimal))
    return message


def _report_url(event: Event, links: Links) -> str | None:
    """The report link, percent-encoded where an odd id would make it invalid; None if too long."""
    url = quote(links.report(event.project_id, event.report.id), safe=_URL_SAFE)
    return url if len(url) <= MAX_URL else None


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate(text, MAX_SECTION_TEXT))}


def _header(event: Event) -> dict[str, Any]:
    text = f"{event_emoji(event)} {title_of(event.report)}"
    return {"type": "header", "text": _plain(escape_truncate(text, MAX_HEADER))}


def _body(event: Event) -> str:
    text = f"*{escape_truncate(headline(event), _HEADLINE_CHARS)}*"
    summary = strip_controls(event.report.summary or "").strip()
    if summary:
        text += "\n" + escape_truncate(summary, SUMMARY_CHARS)
    return text


def _field(name: str, value: str) -> dict[str, Any]:
    """A ``*Name*`` over the escaped ``value`` (raw text in, escaped and cut out)."""
    limit = min(_FIELD_CHARS, MAX_FIELD_TEXT) - len(name) - 3
    return _mrkdwn(f"*{name}*\n{escape_truncate(value, limit)}")


def _numeric(event: Event, name: str, value: Any) -> str:
    """The value, or ``before → after`` when this event changed it (raw text)."""
    change = event.changes.get(name)
    if event.type is EventType.UPDATED and change is not None:
        before, after = change
        return f"{format_value(before)} → {format_value(after)}"
    return format_value(value)


def _fields(event: Event) -> list[dict[str, Any]]:
    report = event.report
    if event.type is EventType.STATUS_CHANGED:
        before, after = status_change(event)
        status = (
            f"{status_emoji(before)} {format_value(before)} → "
            f"{status_emoji(after)} {format_value(after)}"
        )
    elif event.type is EventType.REMOVED:
        last = f"{status_emoji(report.status)} {format_value(report.status)}"
        status = f"{event_emoji(event)} removed (last seen {last})"
    else:
        status = f"{status_emoji(report.status)} {format_value(report.status)}"
    fields = [
        _field("Status", status),
        _field("Weight", _numeric(event, "total_weight", report.total_weight)),
        _field("Signals", _numeric(event, "signal_count", report.signal_count)),
    ]
    if report.relevant_user_count is not None:
        fields.append(
            _field("Users", _numeric(event, "relevant_user_count", report.relevant_user_count))
        )
    if report.artefact_count is not None:
        fields.append(_field("Artefacts", _numeric(event, "artefact_count", report.artefact_count)))
    if report.priority:
        fields.append(_field("Priority", _numeric(event, "priority", report.priority)))
    if report.actionability:
        pretty = report.actionability.replace("_", " ")
        fields.append(_field("Actionability", _numeric(event, "actionability", pretty)))
    return fields[:MAX_FIELDS]


def _context(event: Event, rules: Sequence[str]) -> list[dict[str, Any]]:
    elements = [_mrkdwn(f"Project {event.project_id}")]
    if rules:
        names = ", ".join(one_line(r) for r in rules)
        noun = "Rule" if len(rules) == 1 else "Rules"
        elements.append(_mrkdwn(f"{noun}: {escape_truncate(names, _CONTEXT_CHARS)}"))
    elements.append(_mrkdwn(f"Report {escape_truncate(one_line(event.report.id), 80)}"))
    return elements[:MAX_CONTEXT_ELEMENTS]


def _button(url: str) -> dict[str, Any]:
    button = {
        "type": "button",
        "text": _plain(truncate("Open report", MAX_BUTTON_TEXT)),
        "url": url,
        "action_id": "open_report",
    }
    return {"type": "actions", "elements": [button]}
