"""What happened to a report: an ``Event`` (new, status changed, updated, removed) with the
changes and what the artefacts add (``Enrichment``), and its JSON for the outbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from notifier.core.actions import Acted
from notifier.core.report import Links, Report, as_str, thaw
from notifier.core.times import parse_instant


@dataclass(frozen=True, slots=True)
class Recording:
    """A session recording and the part of it that shows the problem: from a report's
    ``session_replay`` signal (PostHog V6) or a ``video_segment`` artefact (before)."""

    session_id: str
    text: str | None = None  # the segment's description, untrusted text
    start_time: str | None = None  # when the segment starts, as PostHog sent it
    end_time: str | None = None
    title: str | None = None  # the signal's segment_title, untrusted text
    problem_type: str | None = None  # confusion, abandonment, blocking_exception…
    session_start: str | None = None  # when the recording starts, when PostHog says

    def to_json(self) -> dict[str, str]:
        """Plain JSON; fields that are None are left out."""
        fields = (
            ("session_id", self.session_id),
            ("text", self.text),
            ("start_time", self.start_time),
            ("end_time", self.end_time),
            ("title", self.title),
            ("problem_type", self.problem_type),
            ("session_start", self.session_start),
        )
        return {name: value for name, value in fields if value is not None}

    @classmethod
    def from_json(cls, data: Any) -> Recording | None:
        """The inverse of ``to_json``; None when ``data`` has no string ``session_id``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("session_id"), str):
            return None
        return cls(
            session_id=data["session_id"],
            text=as_str(data.get("text")),
            start_time=as_str(data.get("start_time")),
            end_time=as_str(data.get("end_time")),
            title=as_str(data.get("title")),
            problem_type=as_str(data.get("problem_type")),
            session_start=as_str(data.get("session_start")),
        )

    def problem(self) -> str | None:
        """The problem type in words, as PostHog's own Slack thread shows it (``blocking
        exception``); None when there is none."""
        return self.problem_type.replace("_", " ") if self.problem_type else None

    def start_query(self) -> str:
        """What opens PostHog's player at the segment's start: ``?t=<seconds>`` (seconds from
        the recording's start, as PostHog's player reads ``t``) when both starts are
        timestamps, else ``?timestamp=<Unix ms>`` (the player seeks to that instant), else
        ``""`` (a bare number's meaning is unknown: the recording opens at its beginning)."""
        start = parse_instant(self.start_time)
        if start is None:
            return ""
        began = parse_instant(self.session_start)
        if began is not None and began <= start:
            return f"?t={int((start - began).total_seconds())}"
        return f"?timestamp={int(start.timestamp() * 1000)}"

    def url(self, links: Links, project_id: int) -> str:
        """The replay link, opening at the segment's start when known."""
        return links.recording(project_id, self.session_id) + self.start_query()


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A suggested reviewer of the report (its ``suggested_reviewers`` artefact): a GitHub
    login, a name to show, the PostHog user's email when PostHog knows the person, and the
    Slack user id a Slack sink resolved them to (when it sends; never stored)."""

    login: str | None = None  # GitHub login
    name: str | None = None  # the PostHog user's name, else the GitHub name; untrusted text
    email: str | None = None  # the PostHog user's email
    slack_id: str | None = None  # set by a Slack sink as it sends

    def label(self) -> str:
        """What the card shows when nobody resolved the reviewer: the name, else ``@login``."""
        return self.name or (f"@{self.login}" if self.login else self.email or "someone")

    def to_json(self) -> dict[str, str]:
        """Plain JSON; fields that are None are left out (``slack_id``: never stored)."""
        fields = (("login", self.login), ("name", self.name), ("email", self.email))
        return {name: value for name, value in fields if value is not None}

    @classmethod
    def from_json(cls, data: Any) -> Reviewer | None:
        """The inverse of ``to_json``; None when ``data`` names nobody."""
        if not isinstance(data, Mapping):
            return None
        found = cls(as_str(data.get("login")), as_str(data.get("name")), as_str(data.get("email")))
        return found if found.login or found.email or found.name else None


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What a report's artefacts add to its message (opt-in per sink: ``enrich: [artefacts]``).

    Empty when the sink does not ask for it or fetching the artefacts failed: a message never
    waits for, nor fails because of, its enrichment.
    """

    recordings: tuple[Recording, ...] = ()  # at most three, newest first
    priority_explanation: str | None = None  # of the latest priority_judgment
    actionability_explanation: str | None = None  # of the latest actionability_judgment
    reviewers: tuple[Reviewer, ...] = ()  # of the latest suggested_reviewers

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, as the outbox keeps it inside the event; empty parts are left out (an
        empty enrichment is ``{}``)."""
        data: dict[str, Any] = {}
        if self.recordings:
            data["recordings"] = [r.to_json() for r in self.recordings]
        if self.priority_explanation is not None:
            data["priority_explanation"] = self.priority_explanation
        if self.actionability_explanation is not None:
            data["actionability_explanation"] = self.actionability_explanation
        if self.reviewers:
            data["reviewers"] = [r.to_json() for r in self.reviewers]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Enrichment:
        """The inverse of ``to_json``. Never raises: anything unreadable (an older row without
        it, a hand-edited one) reads as no enrichment, part by part."""
        if not isinstance(data, Mapping):
            return NO_ENRICHMENT
        raw = data.get("recordings")
        read = (Recording.from_json(r) for r in raw) if isinstance(raw, list) else ()
        enrichment = cls(
            recordings=tuple(r for r in read if r is not None),
            priority_explanation=as_str(data.get("priority_explanation")),
            actionability_explanation=as_str(data.get("actionability_explanation")),
            reviewers=_reviewers(data.get("reviewers")),
        )
        return NO_ENRICHMENT if enrichment == NO_ENRICHMENT else enrichment


NO_ENRICHMENT: Final = Enrichment()


def _acted(raw: Any) -> tuple[Acted, ...]:
    """Stored decisions, the unreadable ones left out."""
    read = (Acted.from_json(a) for a in raw) if isinstance(raw, list) else ()
    return tuple(a for a in read if a is not None)


def _reviewers(raw: Any) -> tuple[Reviewer, ...]:
    """Stored reviewers, the unreadable ones left out."""
    read = (Reviewer.from_json(r) for r in raw) if isinstance(raw, list) else ()
    return tuple(r for r in read if r is not None)


class EventType(StrEnum):
    """What happened to a report between two complete listings."""

    NEW = "new"
    STATUS_CHANGED = "status_changed"
    UPDATED = "updated"
    REMOVED = "removed"
    #: Not a change: a report still where a ``reminders:`` entry watches for it (issue 15).
    REMINDER = "reminder"


#: The event types a rule's ``event:`` can name (rules route changes; reminders route
#: themselves).
CHANGES: Final = (EventType.NEW, EventType.STATUS_CHANGED, EventType.UPDATED, EventType.REMOVED)


@dataclass(frozen=True, slots=True)
class Reminded:
    """What a reminder event says: which ``reminders:`` entry, the how-manyth of at most
    ``max``, since when (Unix seconds) the report has been in ``status``, and when it was
    due (``at``)."""

    name: str
    count: int
    max: int
    since: float
    status: str
    at: float

    @property
    def waited(self) -> float:
        """Seconds the report had been waiting when the reminder was due."""
        return max(0.0, self.at - self.since)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "name": self.name,
            "count": self.count,
            "max": self.max,
            "since": self.since,
            "status": self.status,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, data: Any) -> Reminded | None:
        """The inverse of ``to_json``; None when ``data`` is not one."""
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(
                str(data["name"]),
                int(data["count"]),
                int(data["max"]),
                float(data["since"]),
                str(data["status"]),
                float(data["at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


#: ``{"status": ("in_progress", "ready"), ...}``: field → (before, after).
Changes = Mapping[str, tuple[Any, Any]]


def event_id(project_id: int, report_id: str, event_type: EventType, version: str) -> str:
    """Deterministic: a cycle recomputed after a crash yields the same id."""
    blob = f"{project_id}:{report_id}:{event_type.value}:{version}"
    return "evt_" + hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one report. ``report`` is the current copy (the last known for removed)."""

    id: str
    type: EventType
    project_id: int
    report: Report
    previous: Report | None
    changes: Changes
    #: What the report's artefacts add (only for sinks with ``enrich: [artefacts]``); not part
    #: of the event's identity.
    enrichment: Enrichment = field(default_factory=lambda: NO_ENRICHMENT, compare=False)
    #: The project's name in PostHog, when known (``GET /api/projects/{id}/``); cards show it
    #: in place of the id. Not part of the event's identity.
    project_name: str | None = field(default=None, compare=False)
    #: Decisions taken on the report from Slack that this event shows (``interact``).
    acted: tuple[Acted, ...] = field(default=(), compare=False)
    #: A reminder event's reminder (``EventType.REMINDER``); None for a change.
    reminded: Reminded | None = field(default=None, compare=False)

    @classmethod
    def create(
        cls,
        event_type: EventType,
        project_id: int,
        report: Report,
        previous: Report | None,
        changes: Changes,
    ) -> Event:
        """Build an event, deriving its deterministic id from the report versions it describes."""
        version = report.version if previous is None else f"{previous.version}>{report.version}"
        return cls(
            id=event_id(project_id, report.id, event_type, version),
            type=event_type,
            project_id=project_id,
            report=report,
            previous=previous,
            changes=MappingProxyType(dict(changes)),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, as stored in the outbox (``enrichment`` only when there is one)."""
        data: dict[str, Any] = {
            "id": self.id,
            "type": self.type.value,
            "project_id": self.project_id,
            "report": self.report.to_json(),
            "previous": self.previous.to_json() if self.previous is not None else None,
            "changes": {k: [thaw(a), thaw(b)] for k, (a, b) in self.changes.items()},
        }
        enrichment = self.enrichment.to_json()
        if enrichment:  # left out when empty: rows stay as they were before enrichment
            data["enrichment"] = enrichment
        if self.project_name is not None:
            data["project_name"] = self.project_name
        if self.acted:
            data["acted"] = [a.to_json() for a in self.acted]
        if self.reminded is not None:
            data["reminded"] = self.reminded.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of ``to_json``; rows written before enrichment (or project names) existed
        have none."""
        previous = data.get("previous")
        return cls(
            id=str(data["id"]),
            type=EventType(data["type"]),
            project_id=int(data["project_id"]),
            report=Report.from_api(data["report"]),
            previous=Report.from_api(previous) if previous is not None else None,
            changes=MappingProxyType(
                {str(k): (v[0], v[1]) for k, v in dict(data.get("changes") or {}).items()}
            ),
            enrichment=Enrichment.from_json(data.get("enrichment")),
            project_name=as_str(data.get("project_name")),
            acted=_acted(data.get("acted")),
            reminded=Reminded.from_json(data.get("reminded")),
        )
