"""One click on a card's action, after Slack has been acknowledged: who may act, once only,
the PostHog write, the record, the card, and an answer to the clicker when it went wrong.

1. The payload is parsed (``core.actions.parse_click``): the card carries the project, the
   report and the status it showed, so a click works after a restart.
2. The clicker must be allowed (``interactivity.allowed_users`` / ``allowed_usergroups``;
   nobody listed: anyone who can see the card).
3. The state records the click by its key (``Click.key``): a double click, Slack's redelivery
   or two people at once make one PostHog write; the others are told it is already done.
4. PostHog's write (``core.actions.write_for``), through the shared request budget ahead of
   polling. A refusal (409, 403, 404, 400) is recorded ``refused`` and told to the clicker in
   words; an outage ``failed`` (a new click tries again).
5. Done: the move is recorded, and an event of it — with who acted — is queued in the outbox
   for the sink that owns the card, so the living card is updated and the thread told through
   the same durable, retried path as every delivery. The next poll's echo of that move is
   absorbed (``StateStore.moves_by_action``): nobody is told twice.

A mute (``interact.mute``) takes the same claim, but writes nothing to PostHog: step 4 is a
silence of the report in the state, and the card shows it from the report as last polled.

Answers to the clicker are ephemeral (``response_url``), seen by nobody else.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

import httpx

from notifier.core.actions import Acted, BadClick, Click, ReportAction, parse_click, write_for
from notifier.core.errors import SourceError, StateError, WriteError
from notifier.core.events import Event, EventType
from notifier.core.mute import MUTE_SPAN, muted_words, undo_words
from notifier.core.report import Report
from notifier.core.words import status_name
from notifier.interact.mute import mute
from notifier.posthog.client import PostHogClient
from notifier.state.base import StateStore

log = logging.getLogger(__name__)

#: Seconds an answer to the clicker may take (Slack's response_url).
ANSWER_TIMEOUT: Final = 10.0
#: The silence a mute's record names (its ``detail``).
_SILENCE: Final = re.compile(r"\bsil_[0-9a-f]+\b")


class ActionHandler:
    """Carries out clicks. ``owner_of(click)`` names the sink that keeps the clicked card
    (None: not one of ours any more); ``allowed(user_id)`` says whether the clicker may act;
    ``wake(sink)`` asks the sink's worker to deliver now."""

    def __init__(
        self,
        *,
        source: PostHogClient,
        store: StateStore,
        owner_of: Callable[[Click], str | None],
        allowed: Callable[[str], bool],
        wake: Callable[[str], None],
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._store = store
        self._owner_of = owner_of
        self._allowed = allowed
        self._wake = wake
        self._http = http or httpx.Client(timeout=ANSWER_TIMEOUT, follow_redirects=False)
        self._clock = clock

    def close(self) -> None:
        self._http.close()

    def __call__(self, payload: Mapping[str, Any]) -> None:
        """Handle one ``block_actions`` payload (on a worker thread, after the ack)."""
        try:
            click = parse_click(payload)
        except BadClick as exc:
            log.info("Slack action ignored: %s", exc, extra={"event": "action_ignored"})
            return
        where = f"project {click.project_id}: report {click.report_id}"
        if not self._allowed(click.user_id):
            log.warning(
                "%s: %s refused: Slack user %s is not in interactivity.allowed_users or "
                "allowed_usergroups",
                where,
                click.action.value,
                click.user_id,
                extra=_extra(click, "action_refused"),
            )
            self._tell(
                click,
                "You are not allowed to act on reports from Slack; ask whoever "
                "runs the notifier to add you to `interactivity.allowed_users`.",
            )
            return
        try:
            claim = self._store.begin_action(click, self._clock())
        except StateError as exc:  # nothing was written to PostHog: a new click may try again
            log.error(
                "%s: %s by %s not done: the state cannot record it: %s",
                where,
                click.action.value,
                click.user_name,
                exc,
                extra=_extra(click, "action_failed"),
            )
            self._tell(
                click,
                "The notifier cannot record this right now (its state is "
                "unavailable); nothing was changed in PostHog. Try again in a minute.",
            )
            return
        if not claim.mine:
            self._tell(click, _already(claim.record))
        elif click.action is ReportAction.MUTE:
            self._mute(click, where, claim.record.attempts)
        else:
            self._carry_out(click, where, claim.record.attempts)

    def _carry_out(self, click: Click, where: str, attempt: int) -> None:
        """The PostHog write, then its record (``attempt``: a late finish of an attempt another
        click has since taken over changes nothing)."""
        try:
            answer = self._source.write(click.project_id, click.report_id, write_for(click))
        except WriteError as exc:
            outcome = "failed" if exc.retryable else "refused"
            self._store.finish_action(
                click.key,
                outcome,
                status_after=None,
                detail=exc.reason,
                now=self._clock(),
                attempt=attempt,
            )
            log.warning(
                "%s: %s by %s %s: %s",
                where,
                click.action.value,
                click.user_name,
                "failed" if exc.retryable else "refused by PostHog",
                exc.reason,
                extra=_extra(click, f"action_{outcome}"),
            )
            self._tell(click, f"Could not {_verb(click.action)} the report: {exc.reason}.")
            return
        after = _status_after(click, answer)
        self._store.finish_action(
            click.key,
            "done",
            status_after=after,
            detail=_done_words(click),
            now=self._clock(),
            attempt=attempt,
        )
        log.info(
            "%s: %s by %s (Slack %s)%s",
            where,
            click.action.value,
            click.user_name,
            click.user_id,
            f", now {after}" if after else "",
            extra=_extra(click, "action_done"),
        )
        self._show(click, answer, after)

    def _mute(self, click: Click, where: str, attempt: int) -> None:
        """A silence of the report (no PostHog write), recorded, then shown on the card; the
        clicker is told when the report was already muted or the card cannot say it."""
        now = self._clock()
        try:
            muted = mute(self._store, click, now)
        except StateError as exc:
            with contextlib.suppress(StateError):  # else the claim ends stale: a retry later
                self._store.finish_action(
                    click.key,
                    "failed",
                    status_after=None,
                    detail=str(exc),
                    now=now,
                    attempt=attempt,
                )
            log.error(
                "%s: mute by %s not done: the state cannot record it: %s",
                where,
                click.user_name,
                exc,
                extra=_extra(click, "action_failed"),
            )
            self._tell(
                click,
                "The notifier cannot record this right now (its state is unavailable); "
                "nothing was muted. Try again in a minute.",
            )
            return
        self._store.finish_action(
            click.key, "done", status_after=None, detail=muted.detail(), now=now, attempt=attempt
        )
        log.info(
            "%s: %s by %s (Slack %s)",
            where,
            f"muted for {MUTE_SPAN}" if muted.made else "mute asked",
            click.user_name,
            click.user_id,
            extra={**_extra(click, "action_done"), "silence_id": muted.silence.id},
        )
        if not muted.made:
            self._tell(click, muted.already())
        elif not self._show(click, {}, None, silence_id=muted.silence.id):
            self._tell(click, muted_words(click.user_name, muted.silence.id))

    def _show(
        self,
        click: Click,
        answer: Mapping[str, Any],
        after: str | None,
        *,
        silence_id: str | None = None,
    ) -> bool:
        """Queue the card's update (and its thread reply) for the sink that keeps it; False
        when there is no card of ours to update, or no report to show on it."""
        sink = self._owner_of(click)
        if sink is None:
            return False
        report = _report(answer)
        if report is None:
            report = self._current(click)
        if report is None:
            return False
        event = acted_event(click, report, after, self._clock(), silence_id=silence_id)
        self._store.enqueue_event(event, sink, (), self._clock())
        self._wake(sink)
        return True

    def _current(self, click: Click) -> Report | None:
        """The report the card shows after a note (as PostHog has it now) or a mute (as last
        polled: a mute asks PostHog nothing, unless the state has no copy)."""
        if click.action is ReportAction.MUTE:
            with contextlib.suppress(StateError):
                rows = self._store.snapshot_rows(click.project_id, [click.report_id])
                if click.report_id in rows:
                    return rows[click.report_id].report
        try:
            return self._source.retrieve(click.project_id, click.report_id)
        except SourceError as exc:
            log.warning(
                "project %s: report %s: %s, but the card could not be updated: %s",
                click.project_id,
                click.report_id,
                "muted" if click.action is ReportAction.MUTE else "the note was added",
                exc,
                extra=_extra(click, "action_card_failed"),
            )
            return None

    def _tell(self, click: Click, text: str) -> None:
        """An ephemeral answer to the clicker only; failing to answer is a DEBUG line."""
        if not click.response_url:
            return
        body = {"response_type": "ephemeral", "replace_original": False, "text": text}
        try:
            self._http.post(click.response_url, json=body).raise_for_status()
        except httpx.HTTPError as exc:
            log.debug("could not answer the clicker: %s", type(exc).__name__)


def acted_event(
    click: Click, report: Report, after: str | None, now: float, *, silence_id: str | None = None
) -> Event:
    """The event the card shows after the click: the move (or, for a note or a mute, the
    report as it is), with who acted (and the silence a mute made)."""
    acted = Acted(
        action=click.action,
        user_id=click.user_id,
        user_name=click.user_name,
        at=now,
        reason=click.reason,
        snooze_for=click.snooze_for,
        silence_id=silence_id,
    )
    shown = report if after is None else replace(report, status=click.shown_status)
    if after is None or after == click.shown_status:
        event = Event.create(EventType.UPDATED, click.project_id, report, shown, {})
    else:
        changes = {"status": (click.shown_status, after)}
        event = Event.create(EventType.STATUS_CHANGED, click.project_id, report, shown, changes)
    return replace(event, id=f"{event.id}_{click.key}", acted=(acted,))


def _report(answer: Mapping[str, Any]) -> Report | None:
    """The report PostHog answered a state write with; for a note, None."""
    if "status" in answer and "id" in answer:
        return Report.from_api(dict(answer))
    return None


def _status_after(click: Click, answer: Mapping[str, Any]) -> str | None:
    if click.moves_to is None:
        return None
    status = answer.get("status")
    return str(status) if isinstance(status, str) else click.moves_to


def _verb(action: ReportAction) -> str:
    return {
        ReportAction.ACKNOWLEDGE: "acknowledge",
        ReportAction.DISMISS: "dismiss",
        ReportAction.SNOOZE: "snooze",
        ReportAction.RESOLVE: "resolve",
        ReportAction.REOPEN: "reopen",
        ReportAction.MUTE: "mute",
    }[action]


def _done_words(click: Click) -> str:
    if click.moves_to is None:
        return "note added"
    return f"moved to {status_name(click.moves_to)}"


def _already(record: Any) -> str:
    """What a second click is told: who did it, when, and how it ended."""
    if record is None:
        return "This was already done."
    who = getattr(record, "user_name", None) or "someone"
    outcome = getattr(record, "outcome", "")
    if outcome == "pending":
        return f"{who} just asked for this; it is being done."
    if outcome == "refused":
        return f"PostHog refused this when {who} asked: {getattr(record, 'detail', '')}."
    silence = _SILENCE.search(str(getattr(record, "detail", None) or ""))
    if getattr(record, "action", None) is ReportAction.MUTE and silence:
        return f"Already muted by {who} {undo_words(silence.group())}."
    return f"Already done by {who}."


def _extra(click: Click, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "project_id": click.project_id,
        "report_id": click.report_id,
        "action": click.action.value,
    }
