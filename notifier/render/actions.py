"""The card's action buttons and what it says once someone acted (issue 14).

``actions_block``: the actions block under the link buttons of a bot ``slack`` sink's card,
with the sink's ``actions:`` that make sense for the report's status (``core.actions.actions_for``):
buttons for acknowledge, resolve, reopen (“Restore” for a dismissed report) and mute (“Mute
4 h”: a silence of the report, ours), a ``static_select`` for dismiss (PostHog's reasons) and
snooze (sizes). Its ``block_id`` and the
elements' ``action_id``/option values are everything a click needs (``core.actions.parse_click``),
so a click works after a restart. When the report has an open pull request, the actions that
close it in PostHog ask first (a Block Kit ``confirm``).

``acted_line``: “⚫ Dismissed by <@U0ALICE> — Not relevant · 14:02 UTC”, on the card (under the
status) and as the thread reply recording it (``acted_reply``; a mute's also names its silence
and how to undo it). A Slack member id is @-mentioned; anything else is shown as an escaped
name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from notifier.core.actions import (
    CLOSES_PR,
    DISMISS_REASONS,
    SNOOZE_SIZES,
    Acted,
    ReportAction,
    actions_for,
    block_id,
    has_open_pr,
)
from notifier.core.events import Event, EventType
from notifier.core.mute import MUTE_SPAN, undo_words
from notifier.render.blocks import MAX_FIELD_TEXT, SlackMessage, mrkdwn, plain, section
from notifier.render.text import UNTITLED, escape_truncate, one_line

#: Block Kit's limit on a ``block_id`` (and an ``action_id``).
MAX_BLOCK_ID: Final = 255
#: Acted lines shown on the card at most (the latest; the thread keeps them all).
MAX_ACTED: Final = 5
#: A Slack member id, the only kind of user shown as a mention.
_SLACK_ID: Final = re.compile(r"[UW][A-Z0-9]+")
#: A silence id as ``core.silences.new_silence_id`` and ``core.mute.mute_id`` make them: safe
#: to show unescaped (in backticks).
_SILENCE_ID: Final = re.compile(r"sil_[0-9a-f]{1,32}")
_NAME_CHARS: Final = 80
_TITLE_CHARS: Final = 150

BUTTON_WORDS: Final = {
    ReportAction.ACKNOWLEDGE: "👀 I'm on it",
    ReportAction.RESOLVE: "Resolve",
    ReportAction.REOPEN: "Reopen",
    ReportAction.MUTE: f"🔇 Mute {MUTE_SPAN}",
}
SELECT_WORDS: Final = {ReportAction.DISMISS: "Dismiss…", ReportAction.SNOOZE: "Snooze…"}
#: What the confirm dialog's button says, per action that closes an open pull request.
_CONFIRM_WORDS: Final = {
    ReportAction.DISMISS: "Dismiss",
    ReportAction.RESOLVE: "Resolve",
    ReportAction.SNOOZE: "Snooze",
}
PR_WARNING: Final = "This also closes the report's open pull request."


def actions_block(event: Event, actions: Sequence[ReportAction]) -> dict[str, Any] | None:
    """The card's actions block: the ``actions`` that make sense for the report's status, in
    the card's order; None when none do, for a removed report, or when the report's id cannot
    be carried in a ``block_id`` (too long, or holding its separator ``|``)."""
    if not actions or event.type is EventType.REMOVED:
        return None
    report = event.report
    shown = actions_for(report.status, tuple(actions))
    block = block_id(event.project_id, report.id, report.status)
    if not shown or len(block) > MAX_BLOCK_ID or block.count("|") != 3:
        return None
    confirm = has_open_pr(report.raw)
    elements = [_element(action, report.status, confirm) for action in shown]
    return {"type": "actions", "block_id": block, "elements": elements}


def _element(action: ReportAction, status: str, open_pr: bool) -> dict[str, Any]:
    element: dict[str, Any]
    if action in SELECT_WORDS:
        element = {
            "type": "static_select",
            "action_id": action.action_id,
            "placeholder": plain(SELECT_WORDS[action]),
            "options": [_option(text, value) for text, value in _choices(action)],
        }
    else:
        words = BUTTON_WORDS[action]
        if action is ReportAction.REOPEN and status == "suppressed":
            words = "Restore"
        element = {
            "type": "button",
            "action_id": action.action_id,
            "text": plain(words),
            "value": action.value,
        }
    if open_pr and action in CLOSES_PR:
        element["confirm"] = _confirm(action)
    return element


def _choices(action: ReportAction) -> list[tuple[str, str]]:
    if action is ReportAction.DISMISS:
        return [(words, code) for code, words in DISMISS_REASONS.items()]
    return [(f"until {size} more signals", str(size)) for size in SNOOZE_SIZES]


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": plain(text), "value": value}


def _confirm(action: ReportAction) -> dict[str, Any]:
    """Block Kit's confirm dialog: the click closes the open pull request too."""
    verb = _CONFIRM_WORDS[action]
    return {
        "title": plain(f"{verb} this report?"),
        "text": plain(PR_WARNING),
        "confirm": plain(verb),
        "deny": plain("Cancel"),
        "style": "danger",
    }


# -- who acted -------------------------------------------------------------------------------


def who(acted: Acted) -> str:
    """``<@U0ALICE>`` for a Slack member id, else the escaped name (or id) on one line."""
    if _SLACK_ID.fullmatch(acted.user_id):
        return f"<@{acted.user_id}>"
    name = one_line(acted.user_name) or one_line(acted.user_id) or "someone"
    return escape_truncate(name, _NAME_CHARS)


def acted_line(acted: Acted, *, undo: bool = False) -> str:
    """One action in words (escaped mrkdwn): ``💤 Snoozed by <@U0ALICE> until 50 more signals ·
    14:02 UTC``; ``undo``: a mute's also names its silence and how to end it (the thread reply:
    the card's later renders no longer know the silence)."""
    person = who(acted)
    when = datetime.fromtimestamp(acted.at, UTC).strftime("%H:%M UTC")
    action = acted.action
    if action is ReportAction.ACKNOWLEDGE:
        said = f"👀 {person} is on it"
    elif action is ReportAction.DISMISS:
        reason = acted.reason or "other"
        words = DISMISS_REASONS.get(reason) or escape_truncate(one_line(reason), 40)
        said = f"⚫ Dismissed by {person} — {words}"
    elif action is ReportAction.RESOLVE:
        said = f"✅ Resolved by {person}"
    elif action is ReportAction.SNOOZE:
        size = acted.snooze_for or SNOOZE_SIZES[0]
        said = f"💤 Snoozed by {person} until {size} more signals"
    elif action is ReportAction.MUTE:
        said = f"🔇 Muted for {MUTE_SPAN} by {person}"
        silence = acted.silence_id
        if undo and silence and _SILENCE_ID.fullmatch(silence):
            said = f"{said} {undo_words(silence)}"
    else:
        said = f"↩️ Reopened by {person}"
    return f"{said} · {when}"


def acted_block(acted: Sequence[Acted]) -> dict[str, Any] | None:
    """A context of the latest actions (one line each, at most ``MAX_ACTED``), or None."""
    lines = [acted_line(a) for a in acted[-MAX_ACTED:]]
    while lines and len("\n".join(lines)) > MAX_FIELD_TEXT:
        lines.pop(0)  # whole lines only: never half a mention
    return {"type": "context", "elements": [mrkdwn("\n".join(lines))]} if lines else None


def acted_reply(acted: Acted, title: str) -> SlackMessage:
    """The thread reply recording an action: its line (a mute's with its silence and how to
    undo it), and the report's title in the fallback text (the notification)."""
    line = acted_line(acted, undo=True)
    shown = escape_truncate(one_line(title) or UNTITLED, _TITLE_CHARS)
    return SlackMessage(text=f"{line} — {shown}", blocks=(section(line),))
