"""Reminders (issue 15): a report that stays where a ``reminders:`` entry watches for it —
``status: pending_input`` for a day, say — is announced again ``after`` the event that put it
there, then every ``every``, at most ``max`` times. Pure: the cycle reads the tracked rows,
``plan_reminders`` says what to write and what to send, and the cycle commit writes both in
its one transaction (so a crash neither loses nor repeats a reminder, and with replicas only
the project's poll lease holder sends them).

A report is followed from the event that shows it matching; any later event re-checks it: still
matching and in the same status, the clock keeps running; moved (another status) or no longer
matching, the reminder stops — a new status that matches starts a new count. A removed report,
or a reminder no longer in the configuration, is forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from notifier.core.events import Event, EventType, Reminded, event_id
from notifier.core.report import Report
from notifier.core.rules import Match, matches

#: The rule name an outbox entry of a reminder carries: ``reminder:<name>``.
REMINDER_RULE_PREFIX = "reminder:"


@dataclass(frozen=True, slots=True)
class Watch:
    """A configured reminder, as the core reads it (``config.reminders.ReminderSettings``)."""

    name: str
    match: Match
    after: float
    every: float
    max: int
    sinks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tracked:
    """A report a reminder follows: since when, in which status, how many were sent and when
    the next is due (None: ``max`` reached; it waits for the report to move)."""

    project_id: int
    report_id: str
    reminder: str
    since: float
    status: str
    sent: int
    next_at: float | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.report_id, self.reminder)


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """What the cycle commit writes for reminders: rows to save, rows to forget, and the
    reminder events with their sinks."""

    upserts: tuple[Tracked, ...] = ()
    deletes: tuple[tuple[str, str], ...] = ()  # (report_id, reminder)
    outbox: tuple[tuple[Event, str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.outbox)


def watching(event: Event, watches: Sequence[Watch]) -> list[Watch]:
    """The reminders that follow the event's report now (none once it is removed)."""
    if event.type in (EventType.REMOVED, EventType.REMINDER):
        return []
    return [watch for watch in watches if matches(watch.match, event)]


def reminder_event(
    project_id: int, report: Report, row: Tracked, watch: Watch, now: float
) -> Event:
    """The ``count``-th reminder of ``row``: the report as it is, and what the reminder says."""
    count = row.sent + 1
    version = f"{watch.name}:{row.status}:{row.since!r}:{count}"
    reminded = Reminded(watch.name, count, watch.max, row.since, row.status, now)
    return Event(
        id=event_id(project_id, report.id, EventType.REMINDER, version),
        type=EventType.REMINDER,
        project_id=project_id,
        report=report,
        previous=None,
        changes={},
        reminded=reminded,
    )


def plan_reminders(
    project_id: int,
    *,
    events: Iterable[Event],
    rows: Iterable[Tracked],
    reports: Mapping[str, Report],
    watches: Sequence[Watch],
    now: float,
) -> ReminderPlan:
    """Follow what this cycle's ``events`` put where a reminder watches, stop what moved, and
    send what is due. ``rows``: the tracked rows of the events' reports and the project's due
    ones; ``reports``: the current copy of each due row's report (missing: it is gone)."""
    by_name = {watch.name: watch for watch in watches}
    known = {row.key: row for row in rows}
    followed: dict[str, dict[str, Tracked]] = {}  # report id → reminder → row
    for row in known.values():
        followed.setdefault(row.report_id, {})[row.reminder] = row
    for event in events:
        report = event.report
        kept = followed.get(report.id, {})
        followed[report.id] = {
            watch.name: kept[watch.name]
            if watch.name in kept and kept[watch.name].status == report.status
            else Tracked(
                project_id, report.id, watch.name, now, report.status, 0, now + watch.after
            )
            for watch in watching(event, watches)
        }
    table = {row.key: row for rows_of in followed.values() for row in rows_of.values()}
    outbox: list[tuple[Event, str, tuple[str, ...]]] = []
    for key, row in list(table.items()):
        if row.next_at is None or row.next_at > now:
            continue
        due, current = by_name.get(row.reminder), reports.get(row.report_id)
        if due is None or current is None or current.status != row.status:
            del table[key]  # no longer configured, gone, or moved without our seeing it
            continue
        event = reminder_event(project_id, current, row, due, now)
        rule = (REMINDER_RULE_PREFIX + due.name,)
        outbox += [(event, sink, rule) for sink in due.sinks]
        sent = row.sent + 1
        table[key] = replace(row, sent=sent, next_at=now + due.every if sent < due.max else None)
    return ReminderPlan(
        upserts=tuple(row for key, row in table.items() if known.get(key) != row),
        deletes=tuple(key for key in known if key not in table),
        outbox=tuple(outbox),
    )
