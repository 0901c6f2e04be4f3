"""Snapshots: each project's reports as of its last successful cycle, and what the store
remembers about the project (baseline mark, high-water mark, last full listing).

A cycle reads what it needs without parsing every report: ``snapshot_index`` gives versions
only, ``snapshot_rows`` parses just the reports asked for, and ``status_counts`` counts from an
index. The writes (``mark_project``, ``write_reports``) run inside the cycle's one transaction
(``commit``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from notifier.core.report import Report
from notifier.state.database import Database, compact
from notifier.state.dialect import Connection
from notifier.state.records import CycleWrite, ProjectState, SnapshotRow

#: ids per ``IN (...)`` lookup, well under SQLite's limit on parameters
_CHUNK: Final = 500


def mark_project(conn: Connection, write: CycleWrite) -> None:
    """Record the cycle's success: the baseline mark (first time), high-water mark and, after a
    full listing, its time."""
    conn.execute(
        "INSERT INTO projects (project_id, baselined_at, last_success_at, high_water, "
        "full_sync_at, listing) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET "
        "last_success_at = excluded.last_success_at, "
        "high_water = COALESCE(excluded.high_water, projects.high_water), "
        "full_sync_at = COALESCE(excluded.full_sync_at, projects.full_sync_at), "
        "listing = COALESCE(excluded.listing, projects.listing)",
        (
            write.project_id,
            write.now,
            write.now,
            write.high_water,
            write.now if write.full_sync else None,
            write.listing if write.full_sync else None,
        ),
    )


def start_baseline(conn: Connection, write: CycleWrite) -> None:
    """A baseline page (``write.baseline_page``): the first one records when the baseline
    began, in a project row whose ``last_success_at`` stays NULL until ``mark_project`` marks
    the whole listing recorded (``baselined_at`` keeps that start)."""
    conn.execute(
        "INSERT INTO projects (project_id, baselined_at, last_success_at) VALUES (?, ?, NULL) "
        "ON CONFLICT (project_id) DO NOTHING",
        (write.project_id, write.now),
    )


def write_reports(conn: Connection, write: CycleWrite) -> None:
    """Upsert the cycle's changed snapshot rows and delete the gone ones."""
    conn.executemany(
        "INSERT INTO reports (project_id, report_id, version, listed, status, data) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, report_id) DO UPDATE SET "
        "version = excluded.version, listed = excluded.listed, "
        "status = excluded.status, data = excluded.data",
        [
            (
                write.project_id,
                row.report.id,
                row.report.version,
                int(row.listed),
                row.report.status,
                compact(row.report.to_json()),
            )
            for row in write.upserts
        ],
    )
    conn.executemany(
        "DELETE FROM reports WHERE project_id = ? AND report_id = ?",
        [(write.project_id, report_id) for report_id in write.deletes],
    )


def _parsed(rows: list[Any]) -> dict[str, SnapshotRow]:
    """Report id → snapshot row, from ``(data, listed)`` rows."""
    return {
        (report := Report.from_api(json.loads(data))).id: SnapshotRow(report, bool(listed))
        for data, listed in rows
    }


class Snapshots(Database):
    """Reads of the per-project snapshots and project marks."""

    def is_baselined(self, project_id: int) -> bool:
        """Whether the project has completed its first successful cycle."""
        rows = self._read(
            "SELECT 1 FROM projects WHERE project_id = ? AND last_success_at IS NOT NULL",
            (project_id,),
        )
        return bool(rows)

    def project_state(self, project_id: int) -> ProjectState:
        """The project's baseline mark, high-water mark and last full listing (a row without
        ``last_success_at``: a baseline under way since ``baselined_at``)."""
        rows = self._read(
            "SELECT high_water, full_sync_at, last_success_at, baselined_at, listing "
            "FROM projects WHERE project_id = ?",
            (project_id,),
        )
        if not rows:
            return ProjectState(baselined=False, high_water=None, full_sync_at=None)
        high_water, full_sync_at, last_success_at, started, listing = rows[0]
        if last_success_at is None:
            return ProjectState(False, None, None, baseline_started=float(started))
        return ProjectState(
            baselined=True, high_water=high_water, full_sync_at=full_sync_at, listing=listing
        )

    def status_counts(self, project_id: int) -> dict[str, int]:
        """The project's listed reports by status (from an index: no snapshot is read)."""
        rows = self._read(
            "SELECT status, COUNT(*) FROM reports WHERE project_id = ? AND listed = 1 "
            "GROUP BY status",
            (project_id,),
        )
        return {str(status): int(count) for status, count in rows}

    def snapshot(self, project_id: int) -> dict[str, SnapshotRow]:
        """The project's reports as of its last successful cycle."""
        return _parsed(
            self._read("SELECT data, listed FROM reports WHERE project_id = ?", (project_id,))
        )

    def snapshot_index(
        self, project_id: int, report_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, bool]]:
        """Report id → (version, listed) of the project's snapshot, without parsing: every
        report, or only these ids (those that exist)."""
        if report_ids is None:
            rows = self._read(
                "SELECT report_id, version, listed FROM reports WHERE project_id = ?",
                (project_id,),
            )
        else:
            rows = self._read_ids("report_id, version, listed", project_id, report_ids)
        return {rid: (version, bool(listed)) for rid, version, listed in rows}

    def snapshot_rows(self, project_id: int, report_ids: Sequence[str]) -> dict[str, SnapshotRow]:
        """The snapshot rows of these reports (those that exist)."""
        return _parsed(self._read_ids("data, listed", project_id, report_ids))

    def _read_ids(self, columns: str, project_id: int, report_ids: Sequence[str]) -> list[Any]:
        """``columns`` of the project's snapshot rows with these ids, 500 ids per query."""
        rows: list[Any] = []
        for start in range(0, len(report_ids), _CHUNK):
            chunk = list(report_ids[start : start + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT {columns} FROM reports "  # noqa: S608 - our columns, placeholders
                f"WHERE project_id = ? AND report_id IN ({marks})"
            )
            rows += self._read(sql, (project_id, *chunk))
        return rows
