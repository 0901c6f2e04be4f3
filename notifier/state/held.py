"""Held changes: reports sent back into research whose move is not announced yet
(``core.settle``), one row per report with the copy people last heard about and the latest.

They are written by the cycle commit, in its transaction and under its fence (``write_held``):
a crash or a restart neither loses a hold nor repeats what ending it sends, and with replicas
they belong to the project's poll unit like its snapshot. ``held`` reads them back, for the
next cycle and for ``notifier outbox``.
"""

from __future__ import annotations

import json

from notifier.core.report import Report
from notifier.core.settle import Held
from notifier.state.database import Database, compact
from notifier.state.dialect import Connection
from notifier.state.records import CycleWrite


def write_held(conn: Connection, write: CycleWrite) -> None:
    """Save the cycle's new and changed holds and forget the ended ones."""
    conn.executemany(
        "INSERT INTO held (project_id, report_id, since, announced, latest) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, report_id) DO UPDATE SET "
        "since = excluded.since, announced = excluded.announced, latest = excluded.latest",
        [
            (
                write.project_id,
                hold.report_id,
                hold.since,
                compact(hold.announced.to_json()),
                compact(hold.latest.to_json()),
            )
            for hold in write.hold
        ],
    )
    conn.executemany(
        "DELETE FROM held WHERE project_id = ? AND report_id = ?",
        [(write.project_id, report_id) for report_id in write.release],
    )


class HeldChanges(Database):
    """Reads of the held changes."""

    def held(self, project_id: int | None = None) -> list[Held]:
        """The project's held changes (every project's with None), oldest first."""
        sql = "SELECT project_id, report_id, since, announced, latest FROM held"
        params: tuple[int, ...] = ()
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params = (project_id,)
        rows = self._read(sql + " ORDER BY since, project_id, report_id", params)
        return [
            Held(
                project_id=int(pid),
                report_id=str(rid),
                since=float(since),
                announced=Report.from_api(json.loads(announced)),
                latest=Report.from_api(json.loads(latest)),
            )
            for pid, rid, since, announced, latest in rows
        ]
