"""A report's story as this notifier saw it (schema 10), for `notifier explain REPORT_ID`: one
row per thing that happened to it — an event found (with the cycle and listing that found it and
the rules it matched), a hold by a silence or quiet hours, a release, a drop, a reminder — each
with a JSON detail. Deliveries are not copied here: the outbox keeps them (``entries_where``).

Rows are written in the transaction of what they tell (the cycle commit, a hold), so the story
never tells of something that did not happen; they are forgotten by age, whatever became of the
report, with the delivered entries (``Outbox.prune``'s horizon, at least ``STORY_KEPT``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.state.database import Database, compact
from notifier.state.dialect import Connection
from notifier.state.records import CycleWrite

#: How long a story row is kept at least.
STORY_KEPT: Final = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Chapter:
    """One thing that happened to a report: ``kind`` is ``found``, ``held``, ``released``,
    ``dropped`` or ``reminded``; ``detail`` what the teller wrote."""

    project_id: int
    report_id: str
    at: float
    kind: str
    detail: Mapping[str, Any]


def tell(conn: Connection, chapters: Iterable[Chapter]) -> None:
    """Add chapters inside the caller's transaction (one ``executemany``; none: no statement)."""
    rows = [(c.project_id, c.report_id, c.at, c.kind, compact(dict(c.detail))) for c in chapters]
    if rows:
        conn.executemany(
            "INSERT INTO story (project_id, report_id, at, kind, detail) VALUES (?, ?, ?, ?, ?)",
            rows,
        )


def found_chapters(write: CycleWrite, new: Collection[str]) -> list[Chapter]:
    """One ``found`` chapter per event of the cycle (``CycleWrite.found``, and those of its
    outbox): its type, the fields that changed, the rules and sinks that routed it (none: it
    matched no rule), and the listing that found it. A routed event tells its chapter only when
    its outbox entries are ``new`` (event ids), so a recomputed cycle tells nothing twice. A
    reminder is no finding: it tells its own chapter."""
    routed: dict[str, tuple[Event, list[str], list[str]]] = {}
    for event in write.found:
        routed.setdefault(event.id, (event, [], []))
    for event, sink, rules in write.outbox:
        _, sinks, names = routed.setdefault(event.id, (event, [], []))
        sinks.append(sink)
        names.extend(rule for rule in rules if rule not in names)
    listing = {
        "listing": "full" if write.full_sync else "incremental",
        "filter": write.listing,
        "baseline": write.baseline_page,
    }
    return [
        Chapter(
            event.project_id,
            event.report.id,
            write.now,
            "found",
            {
                "event": event.type.value,
                "changes": sorted(event.changes),
                "status": str(event.report.status),
                "was": None if event.previous is None else str(event.previous.status),
                "rules": names,
                "sinks": sinks,
                **listing,
            },
        )
        for event, sinks, names in routed.values()
        if event.type is not EventType.REMINDER
        and (event.id in new or not sinks)  # unrouted: no entry to tell it was new
    ]


def forget_story(conn: Connection, before: float) -> None:
    """Forget chapters older than ``before`` (inside the caller's transaction)."""
    conn.execute("DELETE FROM story WHERE at < ?", (before,))


class Story(Database):
    """Reading a report's story."""

    def story(self, report_id: str, limit: int = 500) -> list[Chapter]:
        """The report's chapters, oldest first (the latest ``limit``)."""
        rows = self._read(
            "SELECT project_id, report_id, at, kind, detail FROM story WHERE report_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (report_id, limit),
        )
        return [
            Chapter(int(pid), str(rid), float(at), str(kind), json.loads(detail))
            for pid, rid, at, kind, detail in reversed(rows)
        ]
