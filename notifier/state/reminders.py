"""Reminders followed (``core.reminders``): one row per (project, report, reminder) with since
when, the status it was in, how many were sent and when the next is due.

The cycle commit writes them (``write_reminders``), in its transaction and under its fence, with
the reminder events it queues: a crash neither loses nor repeats a reminder, and with replicas
they belong to the project's poll unit like its snapshot. ``tracked`` and ``due_reminders``
read them for the next cycle; ``reminders`` for `notifier outbox`/`explain`.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.core.reminders import Tracked
from notifier.state.database import Database
from notifier.state.dialect import Connection
from notifier.state.records import CycleWrite
from notifier.state.story import Chapter, tell

_COLUMNS = "project_id, report_id, reminder, since, status, sent, next_at"


def write_reminders(conn: Connection, write: CycleWrite) -> None:
    """Save the cycle's followed reminders and forget the ended ones."""
    plan = write.reminders
    if not plan:
        return
    conn.executemany(
        "DELETE FROM reminders WHERE project_id = ? AND report_id = ? AND reminder = ?",
        [(write.project_id, report_id, name) for report_id, name in plan.deletes],
    )
    conn.executemany(
        f"INSERT INTO reminders ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "  # noqa: S608
        "ON CONFLICT (project_id, report_id, reminder) DO UPDATE SET since = excluded.since, "
        "status = excluded.status, sent = excluded.sent, next_at = excluded.next_at",
        [
            (r.project_id, r.report_id, r.reminder, r.since, r.status, r.sent, r.next_at)
            for r in plan.upserts
        ],
    )
    sent: dict[str, tuple[Chapter, list[str]]] = {}
    for event, sink, _rules in plan.outbox:
        if event.reminded is not None:
            detail = {**event.reminded.to_json(), "sinks": []}
            chapter = Chapter(write.project_id, event.report.id, write.now, "reminded", detail)
            sent.setdefault(event.id, (chapter, detail["sinks"]))[1].append(sink)
    tell(conn, (chapter for chapter, _ in sent.values()))  # the story: what was reminded


def _tracked(rows: Sequence[Sequence[object]]) -> list[Tracked]:
    return [
        Tracked(
            project_id=int(str(pid)),
            report_id=str(rid),
            reminder=str(name),
            since=float(str(since)),
            status=str(status),
            sent=int(str(sent)),
            next_at=None if next_at is None else float(str(next_at)),
        )
        for pid, rid, name, since, status, sent, next_at in rows
    ]


class Reminders(Database):
    """Reads of the reminders followed."""

    def tracked(self, project_id: int, report_ids: Sequence[str]) -> list[Tracked]:
        """The rows of these reports."""
        found: list[Tracked] = []
        ids = list(dict.fromkeys(report_ids))
        for start in range(0, len(ids), 500):  # bounded IN lists
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found += _tracked(
                self._read(
                    f"SELECT {_COLUMNS} FROM reminders WHERE project_id = ? "  # noqa: S608
                    f"AND report_id IN ({marks})",
                    (project_id, *chunk),
                )
            )
        return found

    def due_reminders(self, project_id: int, now: float, limit: int = 1000) -> list[Tracked]:
        """The project's rows whose next reminder is due at ``now``, oldest due first."""
        return _tracked(
            self._read(
                f"SELECT {_COLUMNS} FROM reminders WHERE project_id = ? AND next_at <= ? "  # noqa: S608
                "ORDER BY next_at LIMIT ?",
                (project_id, now, limit),
            )
        )

    def reminders(self, report_id: str | None = None) -> list[Tracked]:
        """Every row (or one report's), by report."""
        sql = f"SELECT {_COLUMNS} FROM reminders"  # noqa: S608
        if report_id is None:
            return _tracked(self._read(sql + " ORDER BY project_id, report_id, reminder"))
        return _tracked(self._read(sql + " WHERE report_id = ? ORDER BY reminder", (report_id,)))
