"""Event → Slack Block Kit: the report card (the "living message") and its thread replies.

The card shows the report's current state, so it can be posted once and ``chat.update``'d:
status colour and title (with a "Resolved:"/"Removed:" badge), status word and what happened,
summary, the numbers PostHog sent (``before → after`` where changed), what the artefacts add,
buttons. ``thread_reply`` is the short "what changed" posted under it.

Everything from PostHog is escaped with ``escape_text`` wherever it goes, ``plain_text``
included: the only ``<…>`` left are links built here from ``Links``, percent-encoded, and
report text cannot draw (no bold, code or line break of its own to pose as the card's fields).
Every Block Kit limit holds whatever the data: texts are cut with ``…``, links are never cut,
and when the whole is still too big the least important blocks are dropped (down to a minimal
card).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from notifier.core.actions import Acted, ReportAction
from notifier.core.events import NO_ENRICHMENT, Enrichment, Event, EventType, Recording
from notifier.core.report import Links
from notifier.core.words import actionability_words, status_name, status_words
from notifier.render.actions import acted_block, actions_block
from notifier.render.blocks import (
    LINK_URL_CHARS,
    MAX_BUTTON_TEXT,
    MAX_HEADER,
    SlackMessage,
    coloured,
    context_block,
    fit,
    header_block,
    lines_section,
    link,
    plain,
    safe_url,
    section,
    status_word,
)
from notifier.render.text import (
    escape_mrkdwn,
    escape_truncate,
    event_colour,
    headline,
    moved_text,
    one_line,
    same_words,
    status_change,
    status_colour,
    status_move,
    title_of,
    truncate,
)
from notifier.render.why import SUMMARY_CHARS, why_it_matters

MAX_RECORDINGS: Final = 3

_HEADLINE_CHARS: Final = 800
_CONTEXT_CHARS: Final = 300
_TEXT_CHARS: Final = 300
_EXPLANATION_CHARS: Final = 500
_RECORDING_CHARS: Final = 150


def fallback_text(event: Event) -> str:
    """The short, escaped top-level ``text``: status colour, headline and title."""
    raw = f"{event_colour(event)} {headline(event)}: {title_of(event.report)}"
    return escape_truncate(one_line(raw), _TEXT_CHARS)


def text_only(event: Event, links: Links) -> str:
    """A message without blocks, for when Slack refuses the blocks: text, summary and link."""
    lines = [fallback_text(event)]
    summary = one_line(event.report.summary or "")
    if summary:
        lines.append(escape_truncate(summary, SUMMARY_CHARS))
    url = report_url(event, links)
    if url is not None:
        lines.append(escape_mrkdwn(url))
    return "\n".join(lines)


def slack_message(
    event: Event,
    rules: Sequence[str],
    links: Links,
    *,
    enrichment: Enrichment = NO_ENRICHMENT,
    title: str | None = None,
    body: str | None = None,
    text: str | None = None,
    actions: Sequence[ReportAction] = (),
    acted: Sequence[Acted] = (),
) -> SlackMessage:
    """The card for the report's current state, within every Block Kit limit.

    ``title``, ``body`` and ``text`` are rendered templates (escaped mrkdwn, as
    ``templates.render`` returns them; None keeps the default): the header's title after the
    status colour and badge, the section in place of the summary, the fallback text.
    ``actions`` (a bot sink's ``actions:``) adds the buttons that fit the report's status after
    the link buttons; ``acted`` the lines saying who acted, under the status.
    """
    url = report_url(event, links)
    recordings = _recording_links(event, links, enrichment)
    header = _header(event, title)
    status = section(_status_text(event))
    ranked: list[tuple[int, dict[str, Any] | None]] = [
        (0, header),
        (0, status),
        (1, acted_block(acted)),
        (2, why_it_matters(event, url, body)),
        (5, _explanations(event, enrichment)),
        (3, _reviewers(enrichment)),
        (6, _recordings(recordings)),
        (1, _buttons(url, recordings)),
        (1, actions_block(event, actions)),
        (4, context_block(footnote(event, rules))),
    ]
    return fit(text or fallback_text(event), ranked, minimal=[header, status])


# -- building blocks (shared with render.digest and render.thread) ----------------------------


def report_url(event: Event, links: Links) -> str | None:
    """The report's link, or None when it would be too long for a button, or when PostHog no
    longer lists the report (its page is gone: no "Open report" to a dead end)."""
    if event.type is EventType.REMOVED:
        return None
    return safe_url(links.report(event.project_id, event.report.id))


# -- the card --------------------------------------------------------------------------------


def _badge(event: Event) -> str | None:
    """``Removed`` / ``Resolved`` / ``Dismissed`` / ``Deleted`` for a report that is done, else
    None."""
    if event.type is EventType.REMOVED:
        return status_name("removed")
    status = event.report.status
    return status_name(status) if status in ("resolved", "suppressed", "deleted") else None


def _header(event: Event, title: str | None = None) -> dict[str, Any]:
    """The colour, the badge, and the report title (or a rendered title, already escaped)."""
    badge = _badge(event)
    prefix = f"{event_colour(event)} " + (f"{badge}: " if badge else "")
    if title is None:
        return header_block(prefix + title_of(event.report))
    return {"type": "header", "text": plain(_cut_escaped(one_line(prefix + title), MAX_HEADER))}


def _cut_escaped(text: str, limit: int) -> str:
    """Escaped text cut to ``limit`` without leaving half an entity such as ``&am``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def _what(event: Event) -> str:
    """After the status word: what this event did (escaped)."""
    if event.type is EventType.STATUS_CHANGED:
        before, _ = status_change(event)
        move = status_move(event)  # Reopened / Restored
        if move:
            return f"*{move}* (was {coloured(before)})"
        after = event.report.status
        if same_words(before, after):
            return escape_truncate(moved_text(before, after), _HEADLINE_CHARS)
        return f"was {coloured(before)}"
    return escape_truncate(one_line(headline(event)), _HEADLINE_CHARS)


def _status_text(event: Event) -> str:
    report = event.report
    if event.type is EventType.REMOVED:
        title = escape_truncate(title_of(report), MAX_HEADER)
        gone = status_words("removed")
        last = coloured(report.status)
        return f"{gone.emoji} *{gone.name}* · {gone.meaning} (last status {last})\n~{title}~"
    status = report.status
    meaning = status_words(status).meaning
    first = f"{status_colour(status)} *{status_word(status)}*"
    # a decision taken from Slack without a move (a note) changes nothing worth a line here:
    # the card's "who acted" line says it
    what = "" if event.acted and not event.changes else _what(event)
    if not what:
        return f"{first} · {meaning}" if meaning else first
    return f"{first} · {meaning}\n{what}" if meaning else f"{first} · {what}"


def _explanations(event: Event, enrichment: Enrichment) -> dict[str, Any] | None:
    """Why PostHog judged this priority and actionability (from the artefacts): ``*Why this
    priority* · …`` and ``*Why “Act now”* · …`` (the judgments themselves are in the section
    above)."""
    report = event.report
    lines = []
    judged = (
        ("Priority", report.priority, enrichment.priority_explanation),
        ("Actionability", report.actionability, enrichment.actionability_explanation),
    )
    for name, value, explanation in judged:
        text = one_line(explanation or "")
        if not text:
            continue
        shown = one_line(value or "")
        if name == "Priority":
            label = "Why this priority"
        elif shown:
            label = f"Why “{escape_truncate(actionability_words(shown), 40)}”"
        else:
            label = "Why this actionability"
        lines.append(f"*{label}* · {escape_truncate(text, _EXPLANATION_CHARS)}")
    return section("\n".join(lines)) if lines else None


def _reviewers(enrichment: Enrichment) -> dict[str, Any] | None:
    """``*Suggested reviewers* · <@U0123ABCD>, Ana Silva``: each reviewer a Slack sink resolved
    is @-mentioned, the others shown by name (escaped, not mentioned)."""
    shown = [
        f"<@{r.slack_id}>"
        if r.slack_id and r.slack_id.isalnum()
        else escape_truncate(one_line(r.label()), 80)
        for r in enrichment.reviewers
    ]
    return section(f"*Suggested reviewers* · {', '.join(shown)}") if shown else None


def _recording_links(
    event: Event, links: Links, enrichment: Enrichment
) -> list[tuple[Recording, str | None]]:
    """Up to three recordings with their URLs (None when too long to link)."""
    found = []
    for recording in enrichment.recordings[:MAX_RECORDINGS]:
        raw = recording.url(links, event.project_id)  # opens at the segment's start
        found.append((recording, safe_url(raw, LINK_URL_CHARS)))
    return found


def _recordings(recordings: Sequence[tuple[Recording, str | None]]) -> dict[str, Any] | None:
    if not recordings:
        return None
    lines = ["*Session recordings*"]
    for number, (recording, url) in enumerate(recordings, 1):
        if recording.title or recording.problem_type:  # a session-replay signal (V6)
            lines.append(f"• {link(url, 'Watch recording')}{_segment(recording)}")
            continue
        text = one_line(recording.text or "")
        label = escape_truncate(text, _RECORDING_CHARS) if text else f"Recording {number}"
        lines.append(f"• {link(url, label)}")
    return lines_section(lines)


def _segment(recording: Recording) -> str:
    """``: Rage clicks on Pay (blocking exception)``, escaped: what the segment shows."""
    title = escape_truncate(one_line(recording.title or ""), _RECORDING_CHARS)
    problem = escape_truncate(one_line(recording.problem() or ""), 40)
    if title and problem:
        return f": {title} ({problem})"
    return f": {title or problem}" if title or problem else ""


def footnote(event: Event, rules: Sequence[str]) -> list[str]:
    """The card's last line, out of the reader's way: the project (by name when PostHog gave
    it), the rules that sent it, and the report id (for ``notifier`` commands)."""
    return [
        project_label(event),
        *rules_context(rules),
        f"Report {escape_truncate(one_line(event.report.id), 80)}",
    ]


def project_label(event: Event) -> str:
    """``Storefront`` (escaped) when PostHog gave the project's name, else ``Project 12345``."""
    name = one_line(event.project_name or "")
    return escape_truncate(name, 80) if name else f"Project {event.project_id}"


def rules_context(rules: Sequence[str]) -> list[str]:
    """``Rule: ready`` / ``Rules: a, b`` (escaped), or nothing without rules."""
    if not rules:
        return []
    names = ", ".join(one_line(r) for r in rules)
    noun = "Rule" if len(rules) == 1 else "Rules"
    return [f"{noun}: {escape_truncate(names, _CONTEXT_CHARS)}"]


def _buttons(
    url: str | None, recordings: Sequence[tuple[Recording, str | None]]
) -> dict[str, Any] | None:
    """ "Open report" (primary) and "Watch recording" (the first linkable recording)."""
    first = next((u for _, u in recordings if u is not None), None)
    wanted = (("Open report", url, "open_report"), ("Watch recording", first, "watch_recording"))
    buttons = [
        {"type": "button", "text": plain(truncate(text, MAX_BUTTON_TEXT)), "url": u, "action_id": a}
        for text, u, a in wanted
        if u is not None
    ]
    if url is not None:
        buttons[0]["style"] = "primary"
    return {"type": "actions", "elements": buttons} if buttons else None
