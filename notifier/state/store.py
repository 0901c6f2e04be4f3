"""The state database: per-project snapshots and the delivery outbox, in SQLite.

One cycle's outcome (changed snapshot rows, deleted rows, outbox entries, the project's baseline
mark) is written in ONE transaction: a crash leaves either the old state or the new, never half.
The SQL is plain (no SQLite-only upserts beyond ``INSERT ... ON CONFLICT``, which PostgreSQL shares)
so that a PostgreSQL backend can implement the same ``Store`` methods.

Times are Unix seconds (float). Each thread gets its own connection; WAL mode lets the delivery
threads read while a cycle writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from notifier.core.errors import StateError
from notifier.core.models import Event, Notice, Report, outbox_item_from_json
from notifier.state.schema import migrate

WAL_LIMIT: Final = 4 * 1024 * 1024

#: One (event or notice, sink) entry; a recomputed cycle inserts nothing twice.
_INSERT_OUTBOX: Final = (
    "INSERT INTO outbox (event_id, sink, project_id, report_id, event_type, event, rules, "
    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id, sink) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A report as last seen; ``listed`` is False for copies fetched by id (not in listings)."""

    report: Report
    listed: bool


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One (event, sink) delivery and its progress; ``event`` may be the notifier's own notice."""

    id: int
    sink: str
    event: Event | Notice
    rules: tuple[str, ...]
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutageRow:
    """A project or sink failing since ``since``; ``alerted``: its failing notice is queued."""

    subject: str  # 'project:4242' or 'sink:slack'
    since: float
    error: str
    hint: str
    alerted: bool


@dataclass(frozen=True, slots=True)
class CycleWrite:
    """Everything one successful cycle changes, committed at once."""

    project_id: int
    upserts: Sequence[SnapshotRow]
    deletes: Sequence[str]
    outbox: Sequence[tuple[Event, str, tuple[str, ...]]]  # (event, sink, rule names)
    now: float
    high_water: str | None = None  # the latest updated_at known (None: keep the stored one)
    full_sync: bool = False  # a full listing: the next one is due full_sync_every from now


@dataclass(frozen=True, slots=True)
class ProjectState:
    """What the store remembers about a project between cycles."""

    baselined: bool  # its first successful cycle is done
    high_water: str | None  # the latest updated_at listed (ISO 8601)
    full_sync_at: float | None  # when its last full listing was committed


def _state_error(path: Path, exc: sqlite3.Error, doing: str) -> StateError:
    if path.is_dir():
        return StateError(
            f"state database {path}: cannot {doing}: it is a directory; point state.path at a "
            f"file (e.g. {path / 'notifier-state.db'})"
        )
    kept = "; nothing of this cycle was kept" if doing == "save the cycle" else ""
    return StateError(
        f"state database {path}: cannot {doing}: {exc}. Check that state.path is on a writable "
        f"volume with free space{kept}"
    )


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is still open, never masking the error that got us here."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _ids(ids: int | Sequence[int]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


class Store:
    """SQLite-backed snapshots and outbox. Safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocker = next((p for p in self.path.parents if p.is_file()), None)
            reason = f"{blocker} is a file, not a directory" if blocker else exc.strerror
            raise StateError(
                f"state directory {self.path.parent} cannot be created: {reason}; "
                "point state.path at a writable directory"
            ) from exc
        with self._write("open and migrate") as conn:
            migrate(conn, self.path)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # WAL shrinks back
            except sqlite3.Error as exc:
                raise _state_error(self.path, exc, "open it") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # SQLITE_FULL, IOERR, BUSY and NOMEM may already have rolled the transaction back;
            # the original error is the one worth reporting either way.
            _rollback(conn)
            raise _state_error(self.path, exc, doing) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _state_error(self.path, exc, "read it") from exc

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file: 'ok' when sound."""
        return str(self._read("PRAGMA integrity_check")[0][0])

    # -- snapshots ----------------------------------------------------------------------------

    def is_baselined(self, project_id: int) -> bool:
        """Whether the project has completed its first successful cycle."""
        rows = self._read("SELECT 1 FROM projects WHERE project_id = ?", (project_id,))
        return bool(rows)

    def project_state(self, project_id: int) -> ProjectState:
        """The project's baseline mark, high-water mark and last full listing."""
        rows = self._read(
            "SELECT high_water, full_sync_at FROM projects WHERE project_id = ?", (project_id,)
        )
        if not rows:
            return ProjectState(baselined=False, high_water=None, full_sync_at=None)
        high_water, full_sync_at = rows[0]
        return ProjectState(baselined=True, high_water=high_water, full_sync_at=full_sync_at)

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
        rows = self._read("SELECT data, listed FROM reports WHERE project_id = ?", (project_id,))
        return {
            (report := Report.from_api(json.loads(data))).id: SnapshotRow(report, bool(listed))
            for data, listed in rows
        }

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
            return {rid: (version, bool(listed)) for rid, version, listed in rows}
        rows = self._read_ids("report_id, version, listed", project_id, report_ids)
        return {rid: (version, bool(listed)) for rid, version, listed in rows}

    def snapshot_rows(self, project_id: int, report_ids: Sequence[str]) -> dict[str, SnapshotRow]:
        """The snapshot rows of these reports (those that exist)."""
        rows = self._read_ids("data, listed", project_id, report_ids)
        return {
            (report := Report.from_api(json.loads(data))).id: SnapshotRow(report, bool(listed))
            for data, listed in rows
        }

    def _read_ids(self, columns: str, project_id: int, report_ids: Sequence[str]) -> list[Any]:
        """``columns`` of the project's snapshot rows with these ids, 500 ids per query."""
        rows: list[Any] = []
        for start in range(0, len(report_ids), 500):
            chunk = list(report_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT {columns} FROM reports "  # noqa: S608 - our columns, placeholders
                f"WHERE project_id = ? AND report_id IN ({marks})"
            )
            rows += self._read(sql, (project_id, *chunk))
        return rows

    def commit_cycle(self, write: CycleWrite) -> int:
        """Persist one cycle atomically; returns how many outbox entries were added."""
        added = 0
        with self._write("save the cycle") as conn:
            conn.execute(
                "INSERT INTO projects (project_id, baselined_at, last_success_at, high_water, "
                "full_sync_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET "
                "last_success_at = excluded.last_success_at, "
                "high_water = COALESCE(excluded.high_water, projects.high_water), "
                "full_sync_at = COALESCE(excluded.full_sync_at, projects.full_sync_at)",
                (
                    write.project_id,
                    write.now,
                    write.now,
                    write.high_water,
                    write.now if write.full_sync else None,
                ),
            )
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
                        json.dumps(row.report.to_json(), separators=(",", ":")),
                    )
                    for row in write.upserts
                ],
            )
            conn.executemany(
                "DELETE FROM reports WHERE project_id = ? AND report_id = ?",
                [(write.project_id, report_id) for report_id in write.deletes],
            )
            for event, sink, rules in write.outbox:
                cursor = conn.execute(
                    _INSERT_OUTBOX,
                    (
                        event.id,
                        sink,
                        event.project_id,
                        event.report.id,
                        event.type.value,
                        json.dumps(event.to_json(), separators=(",", ":")),
                        json.dumps(list(rules)),
                        write.now,
                        write.now,
                    ),
                )
                added += cursor.rowcount
        return added

    # -- outbox -------------------------------------------------------------------------------

    def enqueue_notice(self, notice: Notice, sinks: Sequence[str], now: float) -> int:
        """Queue the notifier's own notice for each sink, once per (notice, sink); returns how
        many entries were added. ``project_id`` is 0 and ``report_id`` the sink's name for a
        notice about a sink."""
        added = 0
        with self._write("queue a self-alert") as conn:
            for sink in sinks:
                cursor = conn.execute(
                    _INSERT_OUTBOX,
                    (
                        notice.id,
                        sink,
                        notice.project_id or 0,
                        notice.sink or "",
                        notice.kind.value,
                        json.dumps(notice.to_json(), separators=(",", ":")),
                        "[]",
                        now,
                        now,
                    ),
                )
                added += cursor.rowcount
        return added

    def _entries(self, where: str, params: Sequence[Any]) -> list[OutboxEntry]:
        columns = "id, sink, event, rules, state, attempts, created_at, next_attempt_at, last_error"
        sql = f"SELECT {columns} FROM outbox WHERE {where}"  # noqa: S608 - fixed fragments only
        rows = self._read(sql, params)
        return [
            OutboxEntry(
                id=row[0],
                sink=row[1],
                event=outbox_item_from_json(json.loads(row[2])),
                rules=tuple(json.loads(row[3])),
                state=row[4],
                attempts=row[5],
                created_at=row[6],
                next_attempt_at=row[7],
                last_error=row[8],
            )
            for row in rows
        ]

    def pending(self, sink: str, limit: int = 100) -> list[OutboxEntry]:
        """A sink's pending entries, oldest first (delivery order)."""
        return self._entries("sink = ? AND state = 'pending' ORDER BY id LIMIT ?", (sink, limit))

    def entries(self, state: str, sink: str | None = None) -> list[OutboxEntry]:
        """Entries in one state ('pending', 'dead', 'delivered'), optionally for one sink."""
        if sink is None:
            return self._entries("state = ? ORDER BY id", (state,))
        return self._entries("state = ? AND sink = ? ORDER BY id", (state, sink))

    def next_due(self, sink: str) -> float | None:
        """When the sink's first pending entry is due, or None when it has none."""
        rows = self._read(
            "SELECT next_attempt_at FROM outbox WHERE sink = ? AND state = 'pending' "
            "ORDER BY id LIMIT 1",
            (sink,),
        )
        return float(rows[0][0]) if rows else None

    def mark_delivered(
        self,
        entry_ids: int | Sequence[int],
        now: float,
        *,
        message: tuple[str, str] | tuple[str, str, str | None] | None = None,
    ) -> None:
        """The sink accepted the entries (several: one digest). ``message``: the ``(channel,
        ts)`` of the living message the sink now keeps for the entry's report, remembered in
        the same transaction as the mark."""
        ids = _ids(entry_ids)
        with self._write("record a delivery") as conn:
            conn.executemany(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                "finished_at = ?, last_error = NULL WHERE id = ?",
                [(now, i) for i in ids],
            )
            if message is not None:
                shown = message[2] if len(message) > 2 else None
                conn.executemany(
                    "INSERT INTO messages (sink, project_id, report_id, channel, ts, updated_at, "
                    "shown) SELECT sink, project_id, report_id, ?, ?, ?, ? FROM outbox "
                    "WHERE id = ? ON CONFLICT (sink, project_id, report_id) DO UPDATE SET "
                    "channel = excluded.channel, ts = excluded.ts, "
                    "updated_at = excluded.updated_at, shown = excluded.shown",
                    [(message[0], message[1], now, shown, i) for i in ids],
                )

    def mark_retry(
        self, entry_ids: int | Sequence[int], next_attempt_at: float, error: str
    ) -> None:
        """A transient failure: try again at ``next_attempt_at``."""
        self.mark_failed(_ids(entry_ids), next_attempt_at, error)

    def mark_dead(self, entry_ids: int | Sequence[int], now: float, error: str) -> None:
        """A permanent failure, or retries exhausted: keep it, with the reason, for a person."""
        self.mark_failed([], now, error, dead=_ids(entry_ids), now=now)

    def mark_failed(
        self,
        retry: Sequence[int],
        next_attempt_at: float,
        error: str,
        *,
        dead: Sequence[int] = (),
        now: float = 0.0,
        reason: str = "",
    ) -> None:
        """One failed attempt (of a digest: many entries) in one transaction: ``retry`` entries
        are tried again at ``next_attempt_at``; ``dead`` ones are dead-lettered at ``now`` with
        ``reason`` (default: ``error``)."""
        with self._write("record a retry" if retry else "record a dead letter") as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ? WHERE id = ?",
                [(next_attempt_at, error, i) for i in retry],
            )
            conn.executemany(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, finished_at = ?, "
                "last_error = ? WHERE id = ?",
                [(now, reason or error, i) for i in dead],
            )

    def message(
        self, sink: str, project_id: int, report_id: str
    ) -> tuple[str, str, str | None] | None:
        """The ``(channel, ts, shown)`` of the sink's living message about the report, if any
        (``shown``: the report's ``updated_at`` it shows)."""
        rows = self._read(
            "SELECT channel, ts, shown FROM messages "
            "WHERE sink = ? AND project_id = ? AND report_id = ?",
            (sink, project_id, report_id),
        )
        if not rows:
            return None
        channel, ts, shown = rows[0]
        return str(channel), str(ts), shown

    def retry_dead(self, now: float, sink: str | None = None) -> int:
        """Put dead entries back in line (``notifier outbox retry``); returns how many."""
        with self._write("requeue dead entries") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?, "
                "next_attempt_at = ?, finished_at = NULL "
                "WHERE state = 'dead' AND (? IS NULL OR sink = ?)",
                (now, now, sink, sink),
            )
            return cursor.rowcount

    def counts(self) -> dict[tuple[str, str], int]:
        """Outbox entries by (sink, state)."""
        rows = self._read("SELECT sink, state, COUNT(*) FROM outbox GROUP BY sink, state")
        return {(sink, state): count for sink, state, count in rows}

    # -- outages (self-alerts) -----------------------------------------------------------------

    def outages(self) -> list[OutageRow]:
        """Every outage under way."""
        rows = self._read("SELECT subject, since, error, hint, alerted FROM outages ORDER BY since")
        return [OutageRow(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows]

    def save_outage(self, outage: OutageRow) -> None:
        """Record an outage, or update it."""
        with self._write("record an outage") as conn:
            conn.execute(
                "INSERT INTO outages (subject, since, error, hint, alerted) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET "
                "since = excluded.since, error = excluded.error, hint = excluded.hint, "
                "alerted = excluded.alerted",
                (outage.subject, outage.since, outage.error, outage.hint, int(outage.alerted)),
            )

    def end_outage(self, subject: str) -> None:
        """Forget an outage: it is over."""
        with self._write("end an outage") as conn:
            conn.execute("DELETE FROM outages WHERE subject = ?", (subject,))

    def prune(self, before: float, *, messages_before: float | None = None) -> int:
        """Forget delivered entries finished before ``before``; dead ones stay until retried.
        Living messages untouched since ``messages_before`` (default ``before``) are forgotten
        too: a report that changes again after that long gets a new message."""
        cut = before if messages_before is None else messages_before
        with self._write("prune the outbox") as conn:
            cursor = conn.execute(
                "DELETE FROM outbox WHERE state = 'delivered' AND finished_at < ?", (before,)
            )
            conn.execute("DELETE FROM messages WHERE updated_at < ?", (cut,))
            return cursor.rowcount
