"""Pure diffing: (snapshot, listing) → events.

The caller (``notifier.cycle.pipeline``) settles what the current state is: the complete
listing, plus reports fetched one by one because they went missing from it, plus snapshot copies
of those whose fetch failed (left for the next cycle). This module only compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from notifier.core.events import Changes, Event, EventType
from notifier.core.report import MISSING, TRACKED_FIELDS, Report


def compare(before: Report, after: Report) -> dict[str, tuple[Any, Any]]:
    """Changed fields: status always; the others only when both copies carry the field."""
    changes: dict[str, tuple[Any, Any]] = {}
    if before.status != after.status:
        changes["status"] = (before.status, after.status)
    for name in TRACKED_FIELDS:
        old, new = before.get(name), after.get(name)
        if old is MISSING or new is MISSING:
            continue
        if old != new:
            changes[name] = (old, new)
    return changes


def _order(event: Event) -> tuple[str, str]:
    return (event.report.created_at or "", event.report.id)


def diff(
    project_id: int,
    snapshot: Mapping[str, Report],
    current: Mapping[str, Report],
    gone: Set[str] = frozenset(),
) -> list[Event]:
    """Events that turn ``snapshot`` into ``current``; ``gone`` ids were confirmed deleted.

    Ids in the snapshot that are neither in ``current`` nor in ``gone`` produce nothing: not
    knowing is not a change. Events come in report creation order, so a listing recomputed after
    a crash gives the same events in the same order.
    """
    events: list[Event] = []
    for report_id, report in current.items():
        before = snapshot.get(report_id)
        if before is None:
            events.append(Event.create(EventType.NEW, project_id, report, None, {}))
            continue
        changes: Changes = compare(before, report)
        if "status" in changes:
            events.append(
                Event.create(EventType.STATUS_CHANGED, project_id, report, before, changes)
            )
        elif changes:
            events.append(Event.create(EventType.UPDATED, project_id, report, before, changes))
    for report_id in gone:
        before = snapshot.get(report_id)
        if before is not None and report_id not in current:
            events.append(Event.create(EventType.REMOVED, project_id, before, before, {}))
    events.sort(key=_order)
    return events
