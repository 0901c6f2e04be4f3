"""V6's write endpoints: state changes (one or many), note artefacts, claims and feedback.

``ReportWrites`` is the part of ``FakePostHog`` that applies them to the data, under its lock, as
PostHog does (``posthog-today.md``, "Writing"): a state change saves the report (its
``updated_at`` moves) and, when it dismisses or resolves with a reason or note, writes a
``dismissal`` artefact whose reason and note the report then shows; a note, a claim and feedback
are artefacts and claims, which never move ``updated_at``. Every accepted write is kept in
``writes``; a test plays another user's claim with ``claim_as``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from notifier.demo.simulator.answers import Answer, BadBody
from notifier.demo.simulator.facts import NOT_FOUND, write_error
from notifier.demo.simulator.signals import SignalData
from notifier.demo.simulator.transitions import (
    StateChange,
    invalid,
    parse_state,
    refusal,
    text_field,
)

__all__ = ["ReportWrites", "Write"]

#: At most this many ids per ``bulk-state`` request.
BULK_MAX: Final = 100
_SENTIMENTS: Final = ("positive", "negative")


@dataclass(frozen=True)
class Write:
    """One write the fake accepted: ``action`` is ``state``, ``bulk-state``, ``note``, ``claim``
    or ``feedback``; ``report_id`` is None for ``bulk-state``; ``body`` as sent."""

    action: str
    project_id: int
    report_id: str | None
    body: dict[str, Any]


def _user(user_id: int, name: str) -> dict[str, Any]:
    """An ``assignee``/``created_by`` in PostHog's user shape."""
    slug = name.lower().replace(" ", ".")
    return {
        "type": "user",
        "id": user_id,
        "uuid": f"00000000-0000-4000-8000-{user_id:012d}",
        "first_name": name,
        "email": f"{slug}@example.com",
    }


class ReportWrites(SignalData):
    """The writes of V6, over ``SignalData``.

    Settings a test may change: ``write_scope_ok`` (False = the key lacks ``task:write``: every
    write is a 403) and ``key_user`` (the key's owner, whom every write is credited to).
    """

    def __init__(self, projects: Iterable[int], *, api_version: int) -> None:
        SignalData.__init__(self, projects, api_version=api_version)
        self.write_scope_ok = True
        self.key_user: dict[str, Any] = _user(1, "API key owner")
        #: Every write accepted (2xx), oldest first.
        self.writes: list[Write] = []
        #: (project, report) -> the status it had when it was suppressed through the API.
        self._suppressed_from: dict[tuple[int, str], str] = {}

    def claim_as(self, project_id: int, report_id: str, name: str | None) -> dict[str, Any]:
        """Another user (``name``) claims the report, as from PostHog's UI; None releases it.
        ``updated_at`` does not move. Returns the API's view of the report."""
        with self._data_lock:
            report = self._report(project_id, report_id)
            report["assignee"] = None if name is None else _user(2, name)
            report["work_state"] = "unclaimed" if name is None else "working"
            self._project(project_id).changed()
            return self._render(report)

    # ------------------------------------------------------------------------ the endpoints

    def _write(self, action: str, pid: int, rid: str | None, body: dict[str, Any]) -> Answer:
        """The answer to one write; an accepted one joins ``writes``."""
        try:
            if action == "bulk-state":
                answer = self._bulk_state(pid, body)
            elif rid is None:
                answer = Answer(404, NOT_FOUND)
            elif action == "state":
                answer = self._state(pid, rid, parse_state(body))
            elif action == "note":
                answer = self._note(pid, rid, body)
            elif action == "claim":
                answer = self._claim(pid, rid, body)
            else:
                answer = self._feedback(pid, rid, body)
        except BadBody as bad:
            return bad.answer
        if answer.status < 300:
            self.writes.append(Write(action, pid, rid, copy.deepcopy(body)))
        return answer

    def _shown_report(self, pid: int, rid: str) -> dict[str, Any] | None:
        """The stored report a write may change (the caller holds the lock), else None."""
        report = self._projects[pid].reports.get(rid)
        return report if report is not None and self._shown(report) else None

    def _state(self, pid: int, rid: str, change: StateChange) -> Answer:
        with self._data_lock:
            report = self._shown_report(pid, rid)
            if report is None:
                return Answer(404, NOT_FOUND)
            message = refusal(report["status"], change, self._suppressed_from.get((pid, rid)))
            if message is not None:
                return Answer(409, write_error(message))
            self._apply(pid, report, change)
            return Answer(200, self._render(report))

    def _apply(self, pid: int, report: dict[str, Any], change: StateChange) -> None:
        """Save the new status (``updated_at`` moves); close an open PR when PostHog would;
        record a dismissal (the caller holds the lock)."""
        before, rid = report["status"], report["id"]
        if change.state == "suppressed":
            self._suppressed_from[(pid, rid)] = before
        snooze_closes = change.snooze_for is not None and before in ("ready", "resolved")
        closes_pr = change.state in ("suppressed", "resolved") or snooze_closes
        report["status"] = change.state
        report["updated_at"] = self._tick()
        if closes_pr and report.get("implementation_pr_state") == "open":
            report["implementation_pr_state"] = "closed"
        if change.dismisses:
            content = {"reason": change.dismissal_reason, "note": change.dismissal_note}
            self._append_artefact(
                pid, rid, "dismissal", content, actor_kind="user", created_by=self.key_user
            )
            report["dismissal_reason"] = change.dismissal_reason
            report["dismissal_note"] = change.dismissal_note
        self._projects[pid].changed()

    def _bulk_state(self, pid: int, body: dict[str, Any]) -> Answer:
        ids = body.get("ids")
        if ids is None:
            invalid("ids", "required", "This field is required.")
        if not isinstance(ids, list):
            invalid(
                "ids",
                "not_a_list",
                f'Expected a list of items but got type "{type(ids).__name__}".',
            )
        if not ids:
            invalid("ids", "empty", "This list may not be empty.")
        if len(ids) > BULK_MAX:
            invalid("ids", "max_length", f"Ensure this field has no more than {BULK_MAX} elements.")
        if not all(isinstance(i, str) for i in ids):
            invalid("ids", "invalid", "Must be a valid UUID.")
        change = parse_state(body)
        results = []
        with self._data_lock:
            for rid in ids:
                results.append(self._bulk_one(pid, rid, change))
        counts = {
            f"{outcome}_count": sum(1 for r in results if r["outcome"] == outcome)
            for outcome in ("transitioned", "skipped", "failed", "not_found")
        }
        return Answer(200, {"results": results, **counts})

    def _bulk_one(self, pid: int, rid: str, change: StateChange) -> dict[str, Any]:
        report = self._shown_report(pid, rid)
        if report is None:
            return {"id": rid, "outcome": "not_found", "status": None, "detail": "Not found."}
        current = report["status"]
        if current == change.state and change.snooze_for is None:
            detail = f"Report is already {current}."
            return {"id": rid, "outcome": "skipped", "status": current, "detail": detail}
        message = refusal(current, change, self._suppressed_from.get((pid, rid)))
        if message is not None:
            return {"id": rid, "outcome": "failed", "status": current, "detail": message}
        self._apply(pid, report, change)
        return {"id": rid, "outcome": "transitioned", "status": change.state, "detail": None}

    def _note(self, pid: int, rid: str, body: dict[str, Any]) -> Answer:
        kind = body.get("artefact_type")
        if kind is None:
            invalid("artefact_type", "required", "This field is required.")
        if kind != "note":
            detail = f"Artefact type '{kind}' cannot be written through the API."
            invalid("artefact_type", "invalid_input", detail)
        content = body.get("content")
        note = content.get("note") if isinstance(content, dict) else None
        if not isinstance(note, str) or not note.strip():
            invalid("content", "invalid_input", "A note needs content.note, a non-empty string.")
        assert isinstance(content, dict)
        with self._data_lock:
            if self._shown_report(pid, rid) is None:
                return Answer(404, NOT_FOUND)
            artefact = self._append_artefact(
                pid, rid, "note", content, actor_kind="user", created_by=self.key_user
            )
        keys = ("id", "claim_id", "type", "content", "created_at", "updated_at", "task_id")
        return Answer(201, {"report_id": rid, **{k: artefact[k] for k in keys}})

    def _claim(self, pid: int, rid: str, body: dict[str, Any]) -> Answer:
        release = body.get("release", False)
        if not isinstance(release, bool):
            invalid("release", "invalid", "Must be a valid boolean.")
        with self._data_lock:
            report = self._shown_report(pid, rid)
            if report is None:
                return Answer(404, NOT_FOUND)
            holder = report.get("assignee")
            if isinstance(holder, dict) and holder.get("id") != self.key_user.get("id"):
                name = holder.get("first_name") or "another user"
                return Answer(409, write_error(f"Report is already claimed by {name}."))
            report["assignee"] = None if release else copy.deepcopy(self.key_user)
            report["work_state"] = "unclaimed" if release else "working"
            self._projects[pid].changed()
            return Answer(200, self._render(report))

    def _feedback(self, pid: int, rid: str, body: dict[str, Any]) -> Answer:
        sentiment = body.get("sentiment")
        if sentiment is None:
            invalid("sentiment", "required", "This field is required.")
        if sentiment not in _SENTIMENTS:
            invalid("sentiment", "invalid_choice", f'"{sentiment}" is not a valid choice.')
        note = text_field(body, "note") or ""
        with self._data_lock:
            if self._shown_report(pid, rid) is None:
                return Answer(404, NOT_FOUND)
        return Answer(200, {"sentiment": sentiment, "note": note})
