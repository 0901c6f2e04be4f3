"""The state database's tables, and the steps that bring an older database up to date.

A fresh database goes through the same steps as an upgraded one, on SQLite and PostgreSQL alike
(the statements are written with SQLite's types; ``dialect`` maps them); a database written by
a newer notifier is refused. On PostgreSQL the migration holds an advisory lock, so replicas
starting together migrate one after the other.
"""

from __future__ import annotations

import json
import time
from typing import Final

from notifier.core.errors import StateError
from notifier.state.dialect import Connection, Dialect

SCHEMA_VERSION: Final = 10

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS projects (
        project_id INTEGER PRIMARY KEY,
        baselined_at REAL NOT NULL,
        last_success_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS reports (
        project_id INTEGER NOT NULL,
        report_id TEXT NOT NULL,
        version TEXT NOT NULL,
        listed INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (project_id, report_id)
    )""",
    """CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        sink TEXT NOT NULL,
        project_id INTEGER NOT NULL,
        report_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        event TEXT NOT NULL,
        rules TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        finished_at REAL,
        UNIQUE (event_id, sink)
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_sink ON outbox (sink, state, id)",
    # self-alerts: outages under way ('project:4242', 'sink:slack'), so that a restart neither
    # restarts the self_alerts.after clock nor repeats the alert, and still says "recovered"
    """CREATE TABLE IF NOT EXISTS outages (
        subject TEXT PRIMARY KEY,
        since REAL NOT NULL,
        error TEXT NOT NULL,
        hint TEXT NOT NULL,
        alerted INTEGER NOT NULL DEFAULT 0
    )""",
)


#: What each schema version adds to the one before (the tables above are version 1). A fresh
#: database goes through the same steps as an upgraded one.
_MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    2: (
        # incremental polling: the latest updated_at listed, when the last full listing ran;
        # a report's status, so that reports by status are counted without reading snapshots
        "ALTER TABLE projects ADD COLUMN high_water TEXT",
        "ALTER TABLE projects ADD COLUMN full_sync_at REAL",
        "ALTER TABLE reports ADD COLUMN status TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX IF NOT EXISTS reports_by_status ON reports (project_id, listed, status)",
    ),
    3: (
        # living messages: the Slack message (channel id, ts) each bot-token sink keeps up to
        # date for a report; written with the `delivered` mark of the entry that posted it
        """CREATE TABLE IF NOT EXISTS messages (
            sink TEXT NOT NULL,
            project_id INTEGER NOT NULL,
            report_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (sink, project_id, report_id)
        )""",
    ),
    4: (
        # the report's updated_at a living message shows: a late, older event leaves it be
        "ALTER TABLE messages ADD COLUMN shown TEXT",
    ),
    5: (),  # outbox.last_attempt_at: ``_add_last_attempt``
    6: (
        # replicas sharing a PostgreSQL state: who is alive, and which of them holds each unit
        # of work ('poll:12345', 'deliver:slack') with the fencing token its writes carry
        """CREATE TABLE IF NOT EXISTS replicas (
            replica TEXT PRIMARY KEY,
            started_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS leases (
            unit TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            token INTEGER NOT NULL,
            expires_at REAL NOT NULL
        )""",
        # the PostHog request budget they share: token buckets per API key (hashed)
        """CREATE TABLE IF NOT EXISTS budget (
            key TEXT PRIMARY KEY,
            minute_tokens REAL NOT NULL,
            hour_tokens REAL NOT NULL,
            at REAL NOT NULL,
            paused_until REAL NOT NULL
        )""",
    ),
    7: (
        # held changes (core.settle): a report sent back into research, not announced yet; the
        # copy people last heard about and the latest, written with the cycle that saw them
        """CREATE TABLE IF NOT EXISTS held (
            project_id INTEGER NOT NULL,
            report_id TEXT NOT NULL,
            since REAL NOT NULL,
            announced TEXT NOT NULL,
            latest TEXT NOT NULL,
            PRIMARY KEY (project_id, report_id)
        )""",
        # and projects.listing: ``_add_listing``
    ),
    8: (
        # actions taken from Slack cards (``state.actions``): one row per click key — one
        # PostHog write per key — with who, what, when and PostHog's answer; ``absorbed_at``:
        # the cycle that saw the move, so that its echo is not announced
        """CREATE TABLE IF NOT EXISTS actions (
            key TEXT PRIMARY KEY,
            project_id INTEGER NOT NULL,
            report_id TEXT NOT NULL,
            action TEXT NOT NULL,
            shown_status TEXT NOT NULL,
            user_id TEXT NOT NULL,
            user_name TEXT NOT NULL,
            reason TEXT,
            snooze_for INTEGER,
            moves_to TEXT,
            channel_id TEXT,
            message_ts TEXT,
            outcome TEXT NOT NULL,
            status_after TEXT,
            detail TEXT,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            absorbed_at REAL
        )""",
        "CREATE INDEX IF NOT EXISTS actions_by_report ON actions (project_id, report_id)",
        "CREATE INDEX IF NOT EXISTS actions_by_age ON actions (created_at)",
    ),
    9: (
        # silences added with `notifier silence add` (``state.silences``): matchers (JSON list
        # of texts), start, end, who and why; ``expired_at``: by hand; ``held``: events held
        """CREATE TABLE IF NOT EXISTS silences (
            id TEXT PRIMARY KEY,
            matchers TEXT NOT NULL,
            starts_at REAL NOT NULL,
            ends_at REAL,
            author TEXT NOT NULL,
            comment TEXT NOT NULL,
            drop_events INTEGER NOT NULL DEFAULT 0,
            expired_at REAL,
            held INTEGER NOT NULL DEFAULT 0
        )""",
    ),
    10: (
        # holds (``state.holds``): an entry a silence or quiet hours keep back is 'held' with
        # what holds it (``silence:sil_…``, ``quiet:nights``) and the words its digest opens
        # with; released, it is pending again and keeps both; dropped, it is 'dropped'
        # and outbox.held_by, outbox.held_note: ``_add_holds``
        # reminders (``state.reminders``): a report a reminder follows, since when (the event
        # that put it there), the status it was in, how many were sent and when the next is due
        """CREATE TABLE IF NOT EXISTS reminders (
            project_id INTEGER NOT NULL,
            report_id TEXT NOT NULL,
            reminder TEXT NOT NULL,
            since REAL NOT NULL,
            status TEXT NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            next_at REAL,
            PRIMARY KEY (project_id, report_id, reminder)
        )""",
        "CREATE INDEX IF NOT EXISTS reminders_due ON reminders (project_id, next_at)",
        # a report's story as this notifier saw it (``notifier explain REPORT_ID``): events
        # found (cycle, listing, rules), holds, releases, drops, reminders; JSON details
        """CREATE TABLE IF NOT EXISTS story (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project_id INTEGER NOT NULL,
            report_id TEXT NOT NULL,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS story_by_report ON story (report_id, id)",
        "CREATE INDEX IF NOT EXISTS story_by_age ON story (at)",
    ),
}


def _add_last_attempt(conn: Connection, dialect: Dialect) -> None:
    """Schema 5: when an entry's wait began (its last failed attempt), so that a wall clock
    stepped back past it shows and the entry is due again within that wait (``Outbox.rebase``).
    Entries already waiting count their remaining wait from now."""
    if "last_attempt_at" not in dialect.columns(conn, "outbox"):
        conn.execute(dialect.ddl("ALTER TABLE outbox ADD COLUMN last_attempt_at REAL"))
    conn.execute(
        "UPDATE outbox SET last_attempt_at = CASE WHEN next_attempt_at < ? THEN next_attempt_at "
        "ELSE ? END WHERE state = 'pending' AND attempts > 0 AND last_attempt_at IS NULL",
        (time.time(), time.time()),
    )


def _add_holds(conn: Connection, dialect: Dialect) -> None:
    """Schema 10: what holds an outbox entry back (a silence, quiet hours) and the words the
    digest that releases it opens with."""
    have = dialect.columns(conn, "outbox")
    for column in ("held_by", "held_note"):
        if column not in have:
            conn.execute(dialect.ddl(f"ALTER TABLE outbox ADD COLUMN {column} TEXT"))


def _add_listing(conn: Connection, dialect: Dialect) -> None:
    """Schema 7: what a project's last full listing asked for (``posthog.statuses``; the
    ``cycle.fullsync`` schedule): a snapshot listed through another filter needs a full listing
    before incremental ones can follow it. NULL (not known) until the next full listing."""
    if "listing" not in dialect.columns(conn, "projects"):
        conn.execute(dialect.ddl("ALTER TABLE projects ADD COLUMN listing TEXT"))


def _fill_statuses(conn: Connection) -> None:
    """Schema 2: the status column of snapshot rows written before it existed, a thousand rows
    at a time (a large state file must not be read into memory at once). Only an old SQLite
    file has such rows."""
    last = 0
    while True:
        rows = conn.execute(
            "SELECT rowid, data FROM reports WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,)
        ).fetchall()
        if not rows:
            return
        conn.executemany(
            "UPDATE reports SET status = ? WHERE rowid = ?",
            [(str(json.loads(data).get("status", "")), rowid) for rowid, data in rows],
        )
        last = rows[-1][0]


def migrate(conn: Connection, dialect: Dialect, name: str) -> None:
    """Create the tables and apply every step the database lacks (inside the caller's
    transaction, under the migration lock); ``StateError`` for a database from a newer
    notifier. ``name`` says which database in that message."""
    dialect.lock(conn)
    version = dialect.version(conn)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database {name} was written by a newer notifier (schema "
            f"{version} > {SCHEMA_VERSION}); upgrade the notifier or use another "
            f"{'path' if dialect.name == 'sqlite' else 'database'}"
        )
    if version == SCHEMA_VERSION:
        return
    for statement in _SCHEMA:
        conn.execute(dialect.ddl(statement))
    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[step]:
            conn.execute(dialect.ddl(statement))
        if step == 2 and version >= 1:
            _fill_statuses(conn)
        if step == 5:
            _add_last_attempt(conn, dialect)
        if step == 7:
            _add_listing(conn, dialect)
        if step == 10:
            _add_holds(conn, dialect)
    dialect.set_version(conn, SCHEMA_VERSION)
