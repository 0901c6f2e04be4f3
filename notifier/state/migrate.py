"""Moving a SQLite state into PostgreSQL (`notifier state migrate`), so that replicas carry on
where a single instance stopped: nothing lost, nothing sent again.

Every table that matters is copied — snapshots (``reports``), project marks (``projects``:
baseline, high-water mark, last full listing), the whole outbox (pending entries keep their
attempts and next try; dead and delivered ones their outcome), living messages, outages,
held changes (``held``: re-research not announced yet), actions taken from Slack and
silences;
leases, replicas and the shared request budget are PostgreSQL's own. The copy is one PostgreSQL
transaction, read from one SQLite transaction: all of it or none of it. The caller holds the
SQLite file's lock, so no notifier changes it meanwhile.

Idempotent: rows go in with ``ON CONFLICT`` on their natural keys, so a second run adds nothing.
Outbox entries get PostgreSQL's own ids, in the file's order (each sink's entries are delivered
in id order): nothing refers to an id across the move, and an entry is one per ``(event_id,
sink)`` on both sides. An entry already in the target is never turned back from delivered or
dead to pending (that would send it again); a pending one there takes the file's outcome.

Refused (``MigrationRefused``) while replicas work the target (they would poll and send on a
state being replaced), and when the target already holds other marks for the file's projects —
replicas moved on, or another notifier's state — unless ``force``: then the file's snapshots
and marks replace the target's for those projects.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from notifier.core.errors import StateError
from notifier.state.dialect import Connection
from notifier.state.store import PostgresStore, Store

log = logging.getLogger(__name__)

#: rows read from the file and written to PostgreSQL at a time
BATCH: Final = 1_000
#: rows between two progress lines of one table
PROGRESS_EVERY: Final = 20_000

_PROJECT_COLUMNS: Final = (
    "project_id, baselined_at, last_success_at, high_water, full_sync_at, listing"
)


@dataclass(frozen=True, slots=True)
class _Table:
    """How one table is read from the file and written to PostgreSQL."""

    name: str
    columns: str  # "a, b, c"
    order: str  # the file's order: natural key, or the outbox's id
    conflict: str  # what a row already in the target does
    conflict_forced: str = ""  # the same with ``force`` (default: as ``conflict``)


_TABLES: Final = (
    _Table(
        "projects",
        _PROJECT_COLUMNS,
        "project_id",
        "ON CONFLICT (project_id) DO NOTHING",
        "ON CONFLICT (project_id) DO UPDATE SET baselined_at = excluded.baselined_at, "
        "last_success_at = excluded.last_success_at, high_water = excluded.high_water, "
        "full_sync_at = excluded.full_sync_at, listing = excluded.listing",
    ),
    # with ``force``, the target's reports of the file's projects are deleted first
    _Table(
        "reports",
        "project_id, report_id, version, listed, status, data",
        "project_id, report_id",
        "ON CONFLICT (project_id, report_id) DO NOTHING",
    ),
    _Table(
        "outbox",
        "event_id, sink, project_id, report_id, event_type, event, rules, state, attempts, "
        "created_at, next_attempt_at, last_error, finished_at, last_attempt_at",
        "id",
        # a pending entry takes the file's outcome; a finished one stays finished
        "ON CONFLICT (event_id, sink) DO UPDATE SET state = excluded.state, "
        "attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, "
        "last_error = excluded.last_error, finished_at = excluded.finished_at, "
        "last_attempt_at = excluded.last_attempt_at "
        "WHERE outbox.state = 'pending' AND excluded.state <> 'pending'",
    ),
    _Table(
        "messages",
        "sink, project_id, report_id, channel, ts, updated_at, shown",
        "sink, project_id, report_id",
        # the message touched last is the one the channel shows
        "ON CONFLICT (sink, project_id, report_id) DO UPDATE SET channel = excluded.channel, "
        "ts = excluded.ts, updated_at = excluded.updated_at, shown = excluded.shown "
        "WHERE excluded.updated_at > messages.updated_at",
    ),
    _Table(
        "outages",
        "subject, since, error, hint, alerted",
        "subject",
        "ON CONFLICT (subject) DO NOTHING",
    ),
    # held changes (re-research settling) belong with the snapshots: with ``force``, the
    # target's holds of the file's projects are deleted first, like its reports
    _Table(
        "held",
        "project_id, report_id, since, announced, latest",
        "project_id, report_id",
        "ON CONFLICT (project_id, report_id) DO NOTHING",
    ),
    # actions taken from Slack: a click done before the move is not written again after it
    _Table(
        "actions",
        "key, project_id, report_id, action, shown_status, user_id, user_name, reason, "
        "snooze_for, moves_to, channel_id, message_ts, outcome, status_after, detail, "
        "attempts, created_at, started_at, finished_at, absorbed_at",
        "key",
        "ON CONFLICT (key) DO NOTHING",
    ),
    # silences added with `notifier silence add`: still muting on PostgreSQL
    _Table(
        "silences",
        "id, matchers, starts_at, ends_at, author, comment, drop_events, expired_at, held",
        "id",
        "ON CONFLICT (id) DO NOTHING",
    ),
)


class MigrationRefused(StateError):
    """The copy would do harm as things stand; the message says what to do (the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class Copied:
    """One table's copy: rows in the file, rows written to PostgreSQL (new or updated)."""

    table: str
    rows: int
    written: int


@dataclass(frozen=True, slots=True)
class Migration:
    """What a migration copied, table by table, and the file's outbox entries by state."""

    tables: tuple[Copied, ...]
    outbox_states: dict[str, int]


def copy_state(source: Store, target: PostgresStore, *, force: bool = False) -> Migration:
    """Copy every table of ``source`` into ``target`` in one transaction of each; raises
    ``MigrationRefused`` (nothing written) as the module says, ``StateError`` when either
    database fails (nothing kept)."""
    _refuse_live_replicas(target)
    copied = []
    with source._write("read the state to migrate") as src:
        states = dict(src.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        projects = src.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY project_id"  # noqa: S608
        ).fetchall()
        with target._write("copy the SQLite state into it") as dst:
            _refuse_other_state(dst, target.name, source.name, projects, force=force)
            if force:
                dst.executemany(
                    "DELETE FROM reports WHERE project_id = ?", [(row[0],) for row in projects]
                )
                dst.executemany(
                    "DELETE FROM held WHERE project_id = ?", [(row[0],) for row in projects]
                )
            for table in _TABLES:
                copied.append(_copy_table(src, dst, table, force=force))
    return Migration(tuple(copied), {str(k): int(v) for k, v in states.items()})


def _refuse_live_replicas(target: PostgresStore) -> None:
    """Replicas working the target would poll and send on a state being replaced."""
    replicas = target.replicas()
    if not replicas:
        return
    count = f"{len(replicas)} replica{'s are' if len(replicas) > 1 else ' is'}"
    raise MigrationRefused(
        f"{count} working on {target.name} ({', '.join(replicas[:3])}"
        f"{', …' if len(replicas) > 3 else ''}): they would poll and send on a state that is "
        "being replaced. Stop them (scale the deployment to 0), wait for their leases to "
        "expire (state.lease_ttl), then run `notifier state migrate` again"
    )


def _refuse_other_state(
    dst: Connection,
    target: str,
    source: str,
    projects: list[Any],
    *,
    force: bool,
) -> None:
    """The target's marks for the file's projects must be the file's own (an earlier copy) or
    absent; else, without ``force``, the two states have gone separate ways."""
    if force or not projects:
        return
    ids = [row[0] for row in projects]
    marks = {
        row[0]: tuple(row)
        for row in dst.execute(
            f"SELECT {_PROJECT_COLUMNS} FROM projects "  # noqa: S608
            "WHERE project_id = ANY(?)",
            (ids,),
        ).fetchall()
    }
    differ = [row[0] for row in projects if row[0] in marks and marks[row[0]] != tuple(row)]
    if not differ:
        return
    which = ", ".join(map(str, differ))
    raise MigrationRefused(
        f"{target} already holds a different state for project{'s' if len(differ) > 1 else ''} "
        f"{which} than {source}: replicas have worked it since an earlier copy, or it is another "
        "notifier's state. Copying the file over it would mix the two (reports notified again or "
        "missed). If the replicas on PostgreSQL are the ones to keep, keep it as it is and stop "
        "using the file; to replace its snapshots and marks of these projects with the file's, "
        "run again with --force (deliveries already made there are kept and not sent again)"
    )


def _copy_table(src: sqlite3.Connection, dst: Connection, table: _Table, *, force: bool) -> Copied:
    """Copy one table in batches, logging progress every ``PROGRESS_EVERY`` rows."""
    total = int(src.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0])  # noqa: S608
    names = table.columns
    marks = ", ".join("?" for _ in names.split(","))
    conflict = (table.conflict_forced or table.conflict) if force else table.conflict
    insert = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) {conflict}"  # noqa: S608
    done = written = 0
    next_report = PROGRESS_EVERY
    select = f"SELECT {names} FROM {table.name} ORDER BY {table.order}"  # noqa: S608
    for rows in _batches(src, select):
        written += max(dst.executemany(insert, rows).rowcount, 0)
        done += len(rows)
        if done >= next_report:
            log.info(
                "migrate: %s: %s of %s rows copied",
                table.name,
                f"{done:,}",
                f"{total:,}",
                extra={"event": "migrate_progress", "table": table.name, "rows": done},
            )
            next_report = (done // PROGRESS_EVERY + 1) * PROGRESS_EVERY
    return Copied(table.name, done, written)


def _batches(src: sqlite3.Connection, sql: str) -> Iterator[list[Any]]:
    """The rows of ``sql``, ``BATCH`` at a time (a large state is never read at once)."""
    cursor = src.execute(sql)
    while rows := cursor.fetchmany(BATCH):
        yield rows
