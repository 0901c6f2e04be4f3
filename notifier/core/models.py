"""Typed, frozen data that walks through the pipeline: reports, events, notices, deliveries.

Imports nothing internal. Everything here is pure: parsing an API item, computing a report's
version, turning an event or a notice into JSON and back.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from notifier.core.times import iso_instant

#: Fields whose change (status unchanged) makes an ``updated`` event, compared only when the
#: field is present in both copies: a PostHog upgrade that adds or drops a field is not a change.
TRACKED_FIELDS: Final = (
    "title",
    "summary",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "artefact_count",
    "priority",
    "actionability",
)

_FLOAT_FIELDS: Final = frozenset({"total_weight"})
_INT_FIELDS: Final = frozenset({"signal_count", "relevant_user_count", "artefact_count"})
_MAX_EXACT: Final = 2**53  # larger counts are not real counts (and not exact as floats)
_STR_FIELDS: Final = frozenset(
    {"title", "summary", "priority", "actionability", "created_at", "updated_at"}
)


class _Missing:
    """The marker for a field the report does not have (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen report data back into plain JSON-serialisable dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """Numbers as PostHog sends them, tolerating numeric strings; anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and kind is int:
        return value if abs(value) <= _MAX_EXACT else None
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or one too big for a float
        return None
    if not math.isfinite(number):
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


#: How each compared field is read from an API item (the same reading ``Report.from_api`` does).
_READERS: Final[Mapping[str, Any]] = {
    **dict.fromkeys(_STR_FIELDS, _as_str),
    **dict.fromkeys(_FLOAT_FIELDS, lambda v: _number(v, float)),
    **dict.fromkeys(_INT_FIELDS, lambda v: _number(v, int)),
}


def item_version(item: Mapping[str, Any]) -> str:
    """``Report.from_api(item).version`` without building the report: the digest of the status,
    the compared fields the item has and ``updated_at``. A listing compares every item's version
    with its snapshot and parses only those that differ, so this is the per-item cost of a cycle.
    """
    state: dict[str, Any] = {"status": item["status"]}
    for name in TRACKED_FIELDS:
        if name in item:
            state[name] = _READERS[name](item[name])
    state["updated_at"] = _as_str(item.get("updated_at"))
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Report:
    """One signal report as PostHog returned it; ``raw`` keeps every field, known or not."""

    id: str
    status: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    title: str | None = None
    summary: str | None = None
    total_weight: float | None = None
    signal_count: int | None = None
    relevant_user_count: int | None = None
    artefact_count: int | None = None
    priority: str | None = None
    actionability: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    _version: str | None = field(default=None, init=False, repr=False, compare=False)  # a cache

    @classmethod
    def from_api(cls, item: Any) -> Report:
        """Parse one API item. Raises ``ValueError`` when it has no usable ``id`` or ``status``."""
        if not isinstance(item, Mapping):
            raise ValueError(f"a report must be a JSON object, got {type(item).__name__}")
        report_id = item.get("id")
        if not isinstance(report_id, str) or not report_id.strip():
            raise ValueError("a report has no 'id'")
        status = item.get("status")
        if not isinstance(status, str) or not status:
            raise ValueError(f"report {report_id} has no 'status'")
        values: dict[str, Any] = {}
        for name in _STR_FIELDS:
            value = item.get(name)
            values[name] = value if isinstance(value, str) else None
        for name in _FLOAT_FIELDS:
            values[name] = _number(item.get(name), float)
        for name in _INT_FIELDS:
            values[name] = _number(item.get(name), int)
        return cls(id=report_id, status=status, raw=_freeze(dict(item)), **values)

    def get(self, name: str) -> Any:
        """A field by name: the parsed value for known fields, the raw one otherwise.

        Returns ``MISSING`` when the API did not send the field at all.
        """
        if name not in self.raw:
            return MISSING
        if name in ("id", "status") or name in TRACKED_FIELDS or name in _STR_FIELDS:
            return getattr(self, name)
        return self.raw[name]

    def tracked(self) -> dict[str, Any]:
        """The compared fields the API sent, status included, as plain values."""
        out: dict[str, Any] = {"status": self.status}
        for name in TRACKED_FIELDS:
            value = self.get(name)
            if value is not MISSING:
                out[name] = value
        return out

    @property
    def version(self) -> str:
        """A short digest of what the diff compares plus ``updated_at``: one report version."""
        if self._version is None:  # frozen, but a cache of its own data may be filled in
            object.__setattr__(self, "_version", item_version(self.raw))
        assert self._version is not None
        return self._version

    def to_json(self) -> dict[str, Any]:
        """The report as the API returned it, as plain JSON."""
        data: dict[str, Any] = thaw(self.raw)
        return data


@dataclass(frozen=True, slots=True)
class Recording:
    """A session recording an artefact (``video_segment``) points at, with what it shows."""

    session_id: str
    text: str | None = None  # the segment's description, untrusted text
    start_time: str | None = None
    end_time: str | None = None

    def to_json(self) -> dict[str, str]:
        """Plain JSON; fields that are None are left out."""
        fields = (
            ("session_id", self.session_id),
            ("text", self.text),
            ("start_time", self.start_time),
            ("end_time", self.end_time),
        )
        return {name: value for name, value in fields if value is not None}

    @classmethod
    def from_json(cls, data: Any) -> Recording | None:
        """The inverse of ``to_json``; None when ``data`` has no string ``session_id``."""
        if not isinstance(data, Mapping) or not isinstance(data.get("session_id"), str):
            return None
        return cls(
            session_id=data["session_id"],
            text=_as_str(data.get("text")),
            start_time=_as_str(data.get("start_time")),
            end_time=_as_str(data.get("end_time")),
        )


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What a report's artefacts add to its message (opt-in per sink: ``enrich: [artefacts]``).

    Empty when the sink does not ask for it or fetching the artefacts failed: a message never
    waits for, nor fails because of, its enrichment.
    """

    recordings: tuple[Recording, ...] = ()  # at most three, newest first
    priority_explanation: str | None = None  # of the latest priority_judgment
    actionability_explanation: str | None = None  # of the latest actionability_judgment

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
            priority_explanation=_as_str(data.get("priority_explanation")),
            actionability_explanation=_as_str(data.get("actionability_explanation")),
        )
        return NO_ENRICHMENT if enrichment == NO_ENRICHMENT else enrichment


NO_ENRICHMENT: Final = Enrichment()


class EventType(StrEnum):
    """What happened to a report between two complete listings."""

    NEW = "new"
    STATUS_CHANGED = "status_changed"
    UPDATED = "updated"
    REMOVED = "removed"


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
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The inverse of ``to_json``; rows written before enrichment existed have none."""
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
        )


class NoticeKind(StrEnum):
    """What the notifier says about itself (``self_alerts``)."""

    SOURCE_FAILING = "source_failing"  # polling a project has failed for self_alerts.after
    SOURCE_RECOVERED = "source_recovered"  # ...and then worked again
    SINK_FAILING = "sink_failing"  # a sink's deliveries are being dead-lettered
    SINK_RECOVERED = "sink_recovered"  # ...and then one was delivered again

    @property
    def failing(self) -> bool:
        """True for the two "something is broken" kinds."""
        return self in (NoticeKind.SOURCE_FAILING, NoticeKind.SINK_FAILING)


#: The outbox JSON of a notice carries ``"object": "notice"``; rows without it are events.
NOTICE_OBJECT: Final = "notice"


def notice_id(kind: NoticeKind, subject: str, since: str) -> str:
    """Deterministic: one id per (kind, project or sink, start of the outage)."""
    blob = f"{kind.value}:{subject}:{since}"
    return "ntc_" + hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Notice:
    """The notifier's word about itself: a project it cannot poll, a sink it cannot deliver to,
    or the recovery of either. Exactly one of ``project_id`` and ``sink`` is set.

    ``since`` is when the outage began, ``at`` when the notice was raised (the alert, or the
    recovery), both ISO 8601 UTC; ``error`` is the last error, ``hint`` what to do about it.
    """

    id: str
    kind: NoticeKind
    project_id: int | None
    sink: str | None
    error: str
    since: str
    at: str
    hint: str

    @classmethod
    def create(
        cls,
        kind: NoticeKind,
        *,
        project_id: int | None = None,
        sink: str | None = None,
        error: str,
        since: float,
        at: float,
        hint: str,
    ) -> Notice:
        """Build a notice, deriving its id from the kind, the subject and ``since``."""
        if (project_id is None) == (sink is None):
            raise ValueError("a notice is about a project or a sink, exactly one")
        subject = f"project:{project_id}" if project_id is not None else f"sink:{sink}"
        since_text = iso_instant(since)
        return cls(
            id=notice_id(kind, subject, since_text),
            kind=kind,
            project_id=project_id,
            sink=sink,
            error=error,
            since=since_text,
            at=iso_instant(at),
            hint=hint,
        )

    @property
    def subject(self) -> str:
        """``project 4242`` or ``sink slack``."""
        return f"project {self.project_id}" if self.project_id is not None else f"sink {self.sink}"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, as stored in the outbox (with the ``object`` discriminator)."""
        return {
            "object": NOTICE_OBJECT,
            "id": self.id,
            "kind": self.kind.value,
            "project_id": self.project_id,
            "sink": self.sink,
            "error": self.error,
            "since": self.since,
            "at": self.at,
            "hint": self.hint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notice:
        """The inverse of ``to_json``."""
        project_id = data.get("project_id")
        sink = data.get("sink")
        return cls(
            id=str(data["id"]),
            kind=NoticeKind(data["kind"]),
            project_id=int(project_id) if project_id is not None else None,
            sink=str(sink) if sink is not None else None,
            error=str(data.get("error") or ""),
            since=str(data["since"]),
            at=str(data.get("at") or data["since"]),
            hint=str(data.get("hint") or ""),
        )


def outbox_item_from_json(data: Mapping[str, Any]) -> Event | Notice:
    """An outbox row's JSON: a notice when it says so, an event otherwise (older rows too)."""
    if data.get("object") == NOTICE_OBJECT:
        return Notice.from_json(data)
    return Event.from_json(data)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox entry handed to a sink: the event (or the notifier's own notice), the rules
    that routed it (none for a notice), its attempt."""

    outbox_id: int
    sink: str
    event: Event | Notice
    rules: tuple[str, ...]
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Links:
    """Where a human can look at a report in the PostHog app."""

    host: str

    def report(self, project_id: int, report_id: str) -> str:
        """The report's page, the same path PostHog's own Slack cards use."""
        return f"{self.host.rstrip('/')}/project/{project_id}/inbox/reports/{report_id}"

    def recording(self, project_id: int, session_id: str) -> str:
        """A session recording."""
        return f"{self.host.rstrip('/')}/project/{project_id}/replay/{session_id}"
