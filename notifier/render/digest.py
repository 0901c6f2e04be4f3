"""Many events for one sink in one cycle → one Slack digest, or one batched webhook body.

The Slack digest: a header ("12 signal report changes"), the counts by event type, then up to
``max_lines`` lines of status, linked title and what happened, and "and N more". Lines stop
early when the next would break the size limit, and the rest are counted in "and N more".
The webhook batch carries each event's ``data`` exactly as ``webhook_payload`` builds it, plus
its ``type``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.core.report import Links
from notifier.core.words import importance, priority_words
from notifier.render.blocks import (
    MAX_BLOCKS,
    MAX_BLOCKS_JSON,
    MAX_SECTION_TEXT,
    SlackMessage,
    coloured,
    context_block,
    header_block,
    link,
    section,
    status_word,
)
from notifier.render.slack import report_url
from notifier.render.text import (
    describe_changes,
    escape_truncate,
    event_colour,
    event_status,
    moved_text,
    one_line,
    same_words,
    status_change,
    status_move,
    title_of,
    truncate,
)
from notifier.render.webhook import encode_json, iso_utc, webhook_payload

BATCH_TYPE: Final = "signal_report.batch"
MAX_DIGEST_LINES: Final = 20

_TYPE_NAMES: Final = {
    EventType.NEW: "new",
    EventType.STATUS_CHANGED: "status changed",
    EventType.UPDATED: "updated",
    EventType.REMOVED: "removed",
    EventType.REMINDER: "reminded",
}
_TITLE_CHARS: Final = 100
_CHANGES_CHARS: Final = 120
_TEXT_CHARS: Final = 300

Events = Sequence[tuple[Event, Sequence[str]]]


def digest_message(
    events: Events, links: Links, *, max_lines: int = MAX_DIGEST_LINES
) -> SlackMessage:
    """One message for many events: header, counts, up to ``max_lines`` lines, "and N more"."""
    total = len(events)
    counts = count_line(events)
    noun = "change" if total == 1 else "changes"
    text = truncate(f"{total} signal report {noun}: {counts}", _TEXT_CHARS)
    head = [header_block(f"{total} signal report {noun}")]
    if counts:
        head.append(section(counts))
    return digest_body(head, events, links, text, max_lines=max_lines)


def digest_body(
    head: list[dict[str, Any]],
    events: Events,
    links: Links,
    text: str,
    *,
    max_lines: int = MAX_DIGEST_LINES,
) -> SlackMessage:
    """``head``, then up to ``max_lines`` lines (most important first) and "and N more"."""
    total = len(events)
    lines: list[str] = []
    for event, _rules in most_important_first(events)[: max(0, max_lines)]:
        candidate = _blocks(head, [*lines, digest_line(event, links)], total)
        if len(candidate) > MAX_BLOCKS or len(_json(candidate)) > MAX_BLOCKS_JSON:
            break  # the rest are counted in "and N more"
        lines.append(digest_line(event, links))
    return SlackMessage(text=text, blocks=_blocks(head, lines, total))


def _blocks(head: list[dict[str, Any]], lines: list[str], total: int) -> tuple[dict[str, Any], ...]:
    """The header and counts, the lines packed into as few sections as fit, "and N more"."""
    chunks: list[str] = []
    for line in lines:
        if chunks and len(chunks[-1]) + 1 + len(line) <= MAX_SECTION_TEXT:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    blocks = [*head, *(section(chunk) for chunk in chunks)]
    more = context_block([f"and {total - len(lines)} more"] if len(lines) < total else [])
    return (*blocks, more) if more is not None else tuple(blocks)


def most_important_first(events: Events) -> list[tuple[Event, Sequence[str]]]:
    """The events by priority (P0 first, none last), then status (needs input and ready
    before research, done last); PostHog's listing order among equals."""
    return sorted(events, key=_importance)


def _importance(pair: tuple[Event, Sequence[str]]) -> tuple[int, int]:
    return importance(pair[0].report.priority, event_status(pair[0]))


def _json(blocks: tuple[dict[str, Any], ...]) -> str:
    return SlackMessage(text="", blocks=blocks).blocks_json()


def count_line(events: Events) -> str:
    """``3 new · 2 status changed · 1 removed``, in event-type order, zeros left out."""
    counts = Counter(event.type for event, _ in events)
    return " · ".join(f"{counts[t]} {name}" for t, name in _TYPE_NAMES.items() if counts[t])


def digest_line(event: Event, links: Links) -> str:
    """``🟢 <url|Title> · P1 · high · 🟡 Researching → *Ready for review*`` (escaped mrkdwn,
    one line; a removed report's title is not linked: its page is gone)."""
    title = escape_truncate(title_of(event.report), _TITLE_CHARS)
    priority = one_line(event.report.priority or "")
    shown = f" · {escape_truncate(priority_words(priority), 30)}" if priority else ""
    linked = link(report_url(event, links), title)
    return f"{event_colour(event)} {linked}{shown} · {_what(event)}"


def _what(event: Event) -> str:
    status = event.report.status
    if event.type is EventType.NEW:
        return f"new, *{status_word(status)}*"
    if event.type is EventType.STATUS_CHANGED:
        before, after = status_change(event)
        move = status_move(event)  # Reopened / Restored
        moved = f"{coloured(before)} → *{status_word(after)}*"
        if same_words(before, after):
            moved = f"*{escape_truncate(moved_text(before, after), _CHANGES_CHARS)}*"
        return f"{move}: {moved}" if move else moved
    if event.type is EventType.UPDATED:
        changes = escape_truncate(describe_changes(event.changes, 3), _CHANGES_CHARS)
        return f"*{status_word(status)}*, {changes}" if changes else f"*{status_word(status)}*"
    return f"removed from PostHog (last *{status_word(status)}*), nothing to open"


# -- webhook --------------------------------------------------------------------------------


def webhook_batch_payload(
    events: Events, links: Links, timestamp: datetime, held: str | None = None
) -> dict[str, Any]:
    """``{"type": "signal_report.batch", "timestamp": …, "data": {"count": n, "events": […]}}``;
    each event is the ``data`` of its single webhook with its ``type`` added first. Released
    from a silence or quiet hours: ``data.held`` says so ("While muted (4 h, by alice: …)")."""
    items = []
    for event, rules in events:
        single = webhook_payload(event, rules, links, timestamp)
        items.append({"type": single["type"], **single["data"]})
    data: dict[str, Any] = {"count": len(items), "events": items}
    if held is not None:
        data["held"] = held
    return {"type": BATCH_TYPE, "timestamp": iso_utc(timestamp), "data": data}


def webhook_batch_body(
    events: Events, links: Links, timestamp: datetime, held: str | None = None
) -> bytes:
    """The exact bytes to sign and send: compact UTF-8 JSON."""
    return encode_json(webhook_batch_payload(events, links, timestamp, held))
