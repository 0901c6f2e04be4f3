"""Decisions taken from a Slack card: which actions a report offers, what a click asks for, and
the PostHog write it becomes. Pure: every transport (Socket Mode, HTTP), the card's buttons,
the PostHog writes and the state speak these types.

The card carries everything a click needs, so a click works after a restart: the actions
block's ``block_id`` is ``ra1|<project>|<report>|<status shown>`` and each element's
``action_id`` is ``report.<action>``; a dismiss reason or snooze size is the selected option's
value. Two clicks that ask the same thing of the same card (a double click, Slack's
redelivery, two people at once) have the same ``key``: one PostHog write. ``mute`` is the one
action that is ours, not PostHog's: a silence of the report for ``MUTE_FOR`` (``core.mute``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class ReportAction(StrEnum):
    """What a reader can do from the card."""

    ACKNOWLEDGE = "acknowledge"
    DISMISS = "dismiss"
    SNOOZE = "snooze"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    MUTE = "mute"

    @property
    def action_id(self) -> str:
        """The Block Kit ``action_id``: ``report.dismiss``."""
        return f"report.{self.value}"


ACTION_PREFIX: Final = "report."
BLOCK_PREFIX: Final = "ra1"

#: PostHog's dismissal reasons a reader may pick, in the order shown, with their words.
DISMISS_REASONS: Final[Mapping[str, str]] = {
    "wontfix_irrelevant": "Not relevant",
    "already_fixed": "Already fixed",
    "wontfix_intentional": "Works as intended",
    "report_unclear": "Report unclear",
    "analysis_wrong": "Analysis is wrong",
    "wrong_repo": "Wrong repository",
    "other": "Other reason",
}
#: Every reason PostHog accepts (``fixed_outside_posthog`` and ``pr_merged`` come from resolve).
ALL_REASONS: Final = frozenset({*DISMISS_REASONS, "fixed_outside_posthog", "pr_merged"})
RESOLVE_REASON: Final = "fixed_outside_posthog"

#: Snooze sizes offered: wait for this many more signals before PostHog looks again.
SNOOZE_SIZES: Final = (10, 50, 200)
SNOOZE_MAX: Final = 100_000
#: How long a mute from the card silences the report (seconds).
MUTE_FOR: Final = 4 * 3600.0

#: The actions that make sense in each status (in the order the card shows them).
_BY_STATUS: Final[Mapping[str, tuple[ReportAction, ...]]] = {
    "ready": (
        ReportAction.ACKNOWLEDGE,
        ReportAction.RESOLVE,
        ReportAction.SNOOZE,
        ReportAction.DISMISS,
        ReportAction.MUTE,
    ),
    "pending_input": (
        ReportAction.ACKNOWLEDGE,
        ReportAction.RESOLVE,
        ReportAction.SNOOZE,
        ReportAction.DISMISS,
        ReportAction.MUTE,
    ),
    "potential": (ReportAction.ACKNOWLEDGE, ReportAction.DISMISS, ReportAction.MUTE),
    "candidate": (ReportAction.ACKNOWLEDGE, ReportAction.DISMISS, ReportAction.MUTE),
    "in_progress": (ReportAction.ACKNOWLEDGE, ReportAction.DISMISS, ReportAction.MUTE),
    "failed": (ReportAction.REOPEN, ReportAction.DISMISS, ReportAction.MUTE),
    "suppressed": (ReportAction.REOPEN, ReportAction.MUTE),
    "resolved": (ReportAction.REOPEN, ReportAction.MUTE),
}

#: The status PostHog moves the report to (None: the status stays, e.g. a note).
MOVES_TO: Final[Mapping[ReportAction, str | None]] = {
    ReportAction.ACKNOWLEDGE: None,
    ReportAction.DISMISS: "suppressed",
    ReportAction.SNOOZE: "potential",
    ReportAction.RESOLVE: "resolved",
    ReportAction.REOPEN: "potential",
    ReportAction.MUTE: None,
}

#: Actions after which PostHog closes the report's open pull request.
CLOSES_PR: Final = frozenset({ReportAction.DISMISS, ReportAction.RESOLVE, ReportAction.SNOOZE})


def actions_for(
    status: str, wanted: tuple[ReportAction, ...] | list[ReportAction]
) -> list[ReportAction]:
    """Of the ``wanted`` actions (a sink's ``actions:``), those that make sense for a report in
    ``status``, in the card's order; none for a removed, deleted or unknown status."""
    return [a for a in _BY_STATUS.get(status, ()) if a in wanted]


def block_id(project_id: int, report_id: str, status: str) -> str:
    """The actions block's id: what a click needs to know about the card (≤ 255 characters;
    report ids are UUIDs)."""
    return f"{BLOCK_PREFIX}|{project_id}|{report_id}|{status}"


@dataclass(frozen=True, slots=True)
class Click:
    """One click on a card's action, as parsed from Slack's ``block_actions`` payload."""

    action: ReportAction
    project_id: int
    report_id: str
    shown_status: str  # the status the card showed when clicked
    user_id: str
    user_name: str  # Slack's username or name, for notes ("Dismissed in Slack by alice")
    team_id: str | None = None
    channel_id: str | None = None
    message_ts: str | None = None  # the card's ts (chat.update and the thread)
    response_url: str | None = None  # for an ephemeral answer to the clicker
    reason: str | None = None  # dismiss: one of DISMISS_REASONS
    snooze_for: int | None = None  # snooze: one of SNOOZE_SIZES (or any 1–100000)
    action_ts: str | None = None

    @property
    def key(self) -> str:
        """Idempotency: the same request on the same card state is one write, whoever asks and
        however many times Slack delivers it. A mute's key also names the ``MUTE_FOR`` window
        its click fell in (by ``action_ts``, which a redelivery keeps): a card muted once can
        be muted again when that silence is over."""
        parts = [
            str(self.project_id),
            self.report_id,
            self.action.value,
            self.shown_status,
            self.reason or "",
            str(self.snooze_for or ""),
        ]
        if self.action is ReportAction.MUTE:
            parts.append(_window(self.action_ts))
        return "act_" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]

    @property
    def moves_to(self) -> str | None:
        return MOVES_TO[self.action]


def _window(action_ts: str | None) -> str:
    """The ``MUTE_FOR`` window a Slack timestamp falls in ("" when there is none)."""
    try:
        return str(int(float(action_ts or "") // MUTE_FOR))
    except (ValueError, OverflowError):  # none, or not a number (nan, inf)
        return ""


class BadClick(ValueError):
    """A payload that is not a click on one of our cards' actions (or is malformed)."""


def parse_click(payload: Mapping[str, Any]) -> Click:
    """The click in a Slack ``block_actions`` payload; ``BadClick`` saying why it is not one."""
    if payload.get("type") != "block_actions":
        raise BadClick(f"not a block_actions payload (type {payload.get('type')!r})")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], Mapping):
        raise BadClick("the payload has no action")
    element = actions[0]
    action_id = str(element.get("action_id", ""))
    if not action_id.startswith(ACTION_PREFIX):
        raise BadClick(f"not one of our actions ({action_id!r})")
    try:
        action = ReportAction(action_id.removeprefix(ACTION_PREFIX))
    except ValueError as exc:
        raise BadClick(f"unknown action {action_id!r}") from exc
    project_id, report_id, status = _card(str(element.get("block_id", "")))
    user = payload.get("user") if isinstance(payload.get("user"), Mapping) else {}
    assert isinstance(user, Mapping)
    user_id = str(user.get("id") or "")
    if not user_id:
        raise BadClick("the payload names no user")
    chosen = _chosen(element)
    reason, snooze = _option(action, chosen)
    container = _mapping(payload.get("container"))
    return Click(
        action=action,
        project_id=project_id,
        report_id=report_id,
        shown_status=status,
        user_id=user_id,
        user_name=str(user.get("username") or user.get("name") or user_id),
        team_id=_str(_mapping(payload.get("team")).get("id")),
        channel_id=_str(_mapping(payload.get("channel")).get("id"))
        or _str(container.get("channel_id")),
        message_ts=_str(container.get("message_ts"))
        or _str(_mapping(payload.get("message")).get("ts")),
        response_url=_str(payload.get("response_url")),
        reason=reason,
        snooze_for=snooze,
        action_ts=_str(element.get("action_ts")),
    )


def _card(block: str) -> tuple[int, str, str]:
    parts = block.split("|")
    if len(parts) != 4 or parts[0] != BLOCK_PREFIX or not parts[1].isdigit() or not parts[2]:
        raise BadClick(f"the action's block does not name a report ({block[:80]!r})")
    return int(parts[1]), parts[2], parts[3]


def _chosen(element: Mapping[str, Any]) -> str | None:
    """A select's chosen option value, else a button's value."""
    option = element.get("selected_option")
    if isinstance(option, Mapping) and option.get("value") is not None:
        return str(option["value"])
    value = element.get("value")
    return str(value) if value is not None else None


def _option(action: ReportAction, chosen: str | None) -> tuple[str | None, int | None]:
    if action is ReportAction.DISMISS:
        reason = chosen or "other"
        if reason not in ALL_REASONS:
            raise BadClick(f"unknown dismissal reason {reason[:40]!r}")
        return reason, None
    if action is ReportAction.SNOOZE:
        size = chosen or str(SNOOZE_SIZES[0])
        if not size.isdigit() or not 1 <= int(size) <= SNOOZE_MAX:
            raise BadClick(f"a snooze size must be 1 to {SNOOZE_MAX} signals ({size[:20]!r})")
        return None, int(size)
    return None, None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


@dataclass(frozen=True, slots=True)
class Write:
    """The PostHog write a click becomes: ``state`` (``POST {id}/state/``) or ``note``
    (``POST {id}/artefacts/``), with its JSON body; ``note`` after a state write records the
    real actor where the state body cannot (PostHog credits every write to the key's owner)."""

    kind: str  # "state" or "note"
    body: dict[str, Any]
    note: str | None = None  # a note artefact to add after a successful state write


def note_body(text: str, author: str) -> dict[str, Any]:
    """A note artefact's body."""
    return {"artefact_type": "note", "content": {"note": text, "author": author}}


def write_for(click: Click, author: str = "posthog-signal-notifier") -> Write:
    """The write that carries out ``click`` in PostHog; ``ValueError`` for a mute (ours: a
    silence, nothing written to PostHog)."""
    who = click.user_name
    body: dict[str, Any]
    if click.action is ReportAction.MUTE:
        raise ValueError("a mute is a silence of the notifier's: PostHog is not written to")
    if click.action is ReportAction.ACKNOWLEDGE:
        return Write("note", note_body(f"Acknowledged in Slack by {who}", author))
    if click.action is ReportAction.DISMISS:
        body = {
            "state": "suppressed",
            "dismissal_reason": click.reason or "other",
            "dismissal_note": f"Dismissed in Slack by {who}",
        }
        return Write("state", body)
    if click.action is ReportAction.RESOLVE:
        body = {
            "state": "resolved",
            "dismissal_reason": RESOLVE_REASON,
            "dismissal_note": f"Resolved in Slack by {who}",
        }
        return Write("state", body)
    if click.action is ReportAction.SNOOZE:
        body = {
            "state": "potential",
            "snooze_for": click.snooze_for or SNOOZE_SIZES[0],
        }
        return Write("state", body, note=f"Snoozed in Slack by {who}")
    return Write("state", {"state": "potential"}, note=f"Reopened in Slack by {who}")


@dataclass(frozen=True, slots=True)
class Acted:
    """An action taken on a report from Slack, as the card and its thread show it: who (their
    Slack id, and a name for when the id is not one), what, when, and what they chose."""

    action: ReportAction
    user_id: str
    user_name: str
    at: float  # Unix seconds (UTC), as the state and the outbox keep times
    reason: str | None = None  # dismiss: one of DISMISS_REASONS
    snooze_for: int | None = None  # snooze: how many more signals
    silence_id: str | None = None  # mute: the silence it made (the thread reply says how to undo)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, as the outbox keeps it inside the event."""
        data: dict[str, Any] = {
            "action": self.action.value,
            "user_id": self.user_id,
            "user_name": self.user_name,
            "at": self.at,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.snooze_for is not None:
            data["snooze_for"] = self.snooze_for
        if self.silence_id is not None:
            data["silence_id"] = self.silence_id
        return data

    @classmethod
    def from_json(cls, data: Any) -> Acted | None:
        """The inverse of ``to_json``; None for anything unreadable."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(
                action=ReportAction(str(data["action"])),
                user_id=str(data["user_id"]),
                user_name=str(data.get("user_name") or data["user_id"]),
                at=float(data["at"]),
                reason=_str(data.get("reason")),
                snooze_for=int(data["snooze_for"]) if data.get("snooze_for") else None,
                silence_id=_str(data.get("silence_id")),
            )
        except (KeyError, TypeError, ValueError):
            return None


#: A pull request state that is over (PostHog's ``implementation_pr_state``, a PR's ``state``).
_PR_DONE: Final = frozenset({"merged", "closed"})


def has_open_pr(raw: Mapping[str, Any]) -> bool:
    """Whether the report (its API item) has an open pull request, which dismiss, resolve and
    snooze close in PostHog: ``implementation_pr_url`` not merged or closed, or an entry of
    ``pull_requests`` that is not."""
    url = raw.get("implementation_pr_url")
    state = str(raw.get("implementation_pr_state") or "").lower()
    merged = raw.get("implementation_pr_merged") is True
    if isinstance(url, str) and url and state not in _PR_DONE and not merged:
        return True
    prs = raw.get("pull_requests")
    for pr in prs if isinstance(prs, list | tuple) else ():
        if isinstance(pr, Mapping):
            done = str(pr.get("state") or "").lower() in _PR_DONE or pr.get("merged") is True
            if not done:
                return True
        elif isinstance(pr, str) and pr:
            return True
    return False
