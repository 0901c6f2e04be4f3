"""How the delivery loop names outbox entries in its log lines: a sentence for people and the
structured keys of JSON logs."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.core.outbox import Notice
from notifier.state.store import OutboxEntry


def describe(entry: OutboxEntry | Sequence[OutboxEntry]) -> str:
    """An entry (or a digest of several) for a log line or a dead letter's reason."""
    if not isinstance(entry, OutboxEntry):
        if len(entry) != 1:
            return f"a digest of {len(entry)} events"
        entry = entry[0]
    if isinstance(entry.event, Notice):
        return f"the notifier's {entry.event.kind.value} notice about {entry.event.subject}"
    report = entry.event.report
    title = (report.title or "untitled")[:80]
    return f"{entry.event.type.value} of report {report.id} ({title!r})"


def log_keys(entry: OutboxEntry | Sequence[OutboxEntry]) -> dict[str, object]:
    """The structured keys of a delivery's log line: the sink, and the report or notice."""
    if not isinstance(entry, OutboxEntry):
        if len(entry) != 1:
            return {"event": "delivery", "sink": entry[0].sink, "entries": len(entry)}
        entry = entry[0]
    event = entry.event
    if isinstance(event, Notice):
        keys: dict[str, object] = {
            "event": "delivery",
            "sink": entry.sink,
            "notice": event.kind.value,
        }
        if event.project_id is not None:
            keys["project_id"] = event.project_id
        return keys
    return {
        "event": "delivery",
        "sink": entry.sink,
        "project_id": event.project_id,
        "report_id": event.report.id,
    }
