"""What the outbox holds and hands to a sink: the notifier's notices about itself (``Notice``),
reading an entry's JSON back (an event or a notice), and the ``Delivery`` of one entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from notifier.core.events import Event
from notifier.core.times import iso_instant


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
    #: released from a silence or quiet hours: the words its digest opens with
    #: ("While muted (4 h, by alice: 'deploy')")
    held: str | None = None


def digest_events(deliveries: Sequence[Delivery]) -> list[tuple[Event, tuple[str, ...]]]:
    """The events of a digest, each with the rules that routed it (notices left out)."""
    return [(d.event, d.rules) for d in deliveries if isinstance(d.event, Event)]


def held_note(deliveries: Sequence[Delivery]) -> str | None:
    """What held a digest's deliveries (released together, from one hold), or None."""
    return deliveries[0].held if deliveries else None
