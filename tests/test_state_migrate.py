"""`notifier state migrate --to postgresql://…`: a single instance's SQLite state moved into
PostgreSQL so that replicas carry on where it stopped — nothing lost, nothing sent again.

The SQLite state is built by running the real notifier (`once`, in-process) against the fakes:
delivered, dead and pending outbox entries, living Slack messages, an outage under way,
snapshots and project marks. The copy is compared table by table with what a real PostgreSQL
(tests/pg.py) holds; a second run adds nothing; a notifier on the migrated state (``state.url``)
sends only what was still pending, once. The command refuses while a notifier holds the SQLite
file, when live replicas work the target, and when the target has moved on (unless
``--force``); `notifier check` names the backend. No password in any output.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from notifier.config.settings import Settings
from notifier.runtime.daemon import Notifier
from notifier.state import migrate
from notifier.state.lock import StateLock
from notifier.state.postgres import display
from notifier.state.store import PostgresStore
from tests.factories import PROJECT, World
from tests.fakes import SlackMessage
from tests.helpers import cli, inject

#: what `--password-file` and $NOTIFIER_STATE_PASSWORD carry (the test server trusts local
#: connections, so it is sent and ignored): it must show up nowhere
PASSWORD = "pg-Migrate-S3cret-Passw0rd"
#: a project PostHog does not know: its polls fail, so its outage is under way at migration
MISSING_PROJECT = 9999
#: the natural key of each table the migration copies (the outbox's id is PostgreSQL's own)
KEYS = {
    "projects": "project_id",
    "reports": "project_id, report_id",
    "outbox": "event_id, sink",
    "messages": "sink, project_id, report_id",
    "outages": "subject",
}
OUTBOX_COLUMNS = (
    "event_id, sink, project_id, report_id, event_type, event, rules, state, attempts, "
    "created_at, next_attempt_at, last_error, finished_at, last_attempt_at"
)


def columns(table: str) -> str:
    return OUTBOX_COLUMNS if table == "outbox" else "*"


def sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        sql = f"SELECT {columns(table)} FROM {table} ORDER BY {KEYS[table]}"
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def pg_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        sql = f"SELECT {columns(table)} FROM {table} ORDER BY {KEYS[table]}"
        return [tuple(row) for row in conn.execute(sql).fetchall()]


def sink_order(rows: list[tuple[Any, ...]]) -> dict[str, list[str]]:
    """Each sink's event ids in delivery order (rows in id order)."""
    order: dict[str, list[str]] = {}
    for event_id, sink in rows:
        order.setdefault(sink, []).append(event_id)
    return order


@dataclass
class Built:
    """A SQLite state written by the real notifier, and what it holds."""

    config: Path
    db: Path
    reports: dict[str, str]  # "A".."D" → report id


@pytest.fixture
def built(world: World, load: Callable[[Path], Settings]) -> Built:
    """Run the notifier three times on a SQLite file:

    1. reports A and B are new: posted to Slack (living messages) and the webhook, delivered;
    2. report C is new: Slack takes it, the webhook answers 410 (dead letter);
    3. A changes and D is new: Slack and the webhook both ask to wait 2 s (pending, tried once).

    Project ``MISSING_PROJECT`` fails every poll: its outage is under way throughout."""
    ph, slack, receiver = world.posthog, world.slack, world.receiver
    config = world.make_config(first_run="notify", project_ids=(PROJECT, MISSING_PROJECT))
    db = config.parent / "state.db"

    def once() -> None:
        notifier = Notifier(load(config))
        try:
            notifier.once(max_wait=0)
        finally:
            notifier.close()

    ids = {name: ph.add_report(PROJECT, title=f"Report {name}")["id"] for name in "AB"}
    once()
    ids["C"] = ph.add_report(PROJECT, title="Report C")["id"]
    receiver.respond_next(410)
    once()
    ph.update_report(PROJECT, ids["A"], status="pending_input", title="Report A, moving")
    ids["D"] = ph.add_report(PROJECT, title="Report D")["id"]
    receiver.respond_next(503, headers={"Retry-After": "2"})
    slack.fail_next("ratelimited", retry_after=2)
    once()
    return Built(config, db, ids)


def states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())


def migrate_cli(built: Built, url: str, *extra: str, env: dict[str, str]) -> Any:
    return cli(
        "state", "migrate", "-c", str(built.config), "--to", url, *extra,
        env={**env, "NOTIFIER_STATE_PASSWORD": PASSWORD},
    )  # fmt: skip


def top_level_posts(world: World) -> list[SlackMessage]:
    """The bot's own posts (not updates, not thread replies, not the incoming webhook's)."""
    return [
        m
        for m in world.slack.messages
        if m.via == "api" and m.method == "chat.postMessage" and m.thread_ts is None
    ]


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


# -- the copy -----------------------------------------------------------------------------------


def test_migrate_copies_every_table_and_a_second_run_adds_nothing(
    built: Built, world: World, postgres_url: str
) -> None:
    """Every row of every table arrives as it was — a pending entry still pending with its
    attempts and next try, dead and delivered entries, living messages, the outage, snapshots
    and marks — each sink's entries in their order; the summary counts them and says what to
    change in the config; run again, nothing doubles."""
    held = states(built.db)
    assert held.get("pending", 0) >= 2, held
    assert held.get("dead", 0) >= 1, held
    assert held.get("delivered", 0) >= 5, held

    first = migrate_cli(built, postgres_url, env=world.env)
    assert first.returncode == EXIT_OK, first.stderr
    for table in KEYS:
        source = sqlite_rows(built.db, table)
        assert source, f"the test built no {table} rows"
        assert pg_rows(postgres_url, table) == source, table
    with sqlite3.connect(built.db) as conn:
        before = conn.execute("SELECT event_id, sink FROM outbox ORDER BY id").fetchall()
    with psycopg.connect(postgres_url) as conn:
        after = conn.execute("SELECT event_id, sink FROM outbox ORDER BY id").fetchall()
    assert sink_order(after) == sink_order(before)

    out = first.stdout
    outbox_total = len(sqlite_rows(built.db, "outbox"))
    assert f"outbox   {outbox_total:>9,} rows" in out, out
    assert f"{held['pending']} pending, {held['dead']} dead, {held['delivered']} delivered" in out
    assert "state:\n    url: " + postgres_url in out, out
    assert "instead of\n  state:\n    path: " in out, out
    assert "stop" in out.lower()  # never start the SQLite instance again
    assert_no_password(first.stdout, first.stderr)

    again = migrate_cli(built, postgres_url, env=world.env)
    assert again.returncode == EXIT_OK, again.stderr
    for table in KEYS:
        assert pg_rows(postgres_url, table) == sqlite_rows(built.db, table), table
    assert f"{outbox_total:>9,} rows, 0 written (already there)" in again.stdout, again.stdout
    assert_no_password(again.stdout, again.stderr)


def test_replicas_on_the_migrated_state_send_only_what_was_pending_once(
    built: Built, world: World, postgres_url: str, load: Callable[[Path], Settings]
) -> None:
    """After the move, a notifier on PostgreSQL re-sends none of the delivered events, keeps the
    dead entry dead, delivers the two pending ones exactly once — A's change as an update of
    its living Slack message, not a new post — and then has nothing left to do."""
    assert migrate_cli(built, postgres_url, env=world.env).returncode == EXIT_OK
    slack, receiver = world.slack, world.receiver
    posts_before = top_level_posts(world)
    hooks_before = len(receiver.received)
    a_message = next(m for m in posts_before if "Report A" in (m.text or ""))
    updates_before = len(slack.messages)

    inject(built.config, f"path: {built.db}", f"url: {postgres_url}")
    settings = load(built.config)
    assert settings.state.backend == "postgresql"
    for _ in range(2):  # the second pass finds nothing to do
        notifier = Notifier(settings)
        try:
            notifier.once(max_wait=10)
        finally:
            notifier.close()

    hooks = [r.json() for r in receiver.received[hooks_before:]]
    sent = sorted((body["type"], body["data"]["report"]["id"]) for body in hooks)
    assert sent == sorted(
        [
            ("signal_report.status_changed", built.reports["A"]),
            ("signal_report.new", built.reports["D"]),
        ]
    ), sent
    new_posts = top_level_posts(world)[len(posts_before) :]
    about = [name for m in new_posts for name in "ABCD" if f"Report {name}" in (m.text or "")]
    assert about == ["D"], new_posts  # (besides the notice that the hook works again)
    updates = [
        m
        for m in slack.messages[updates_before:]
        if m.method == "chat.update" and m.ts == a_message.ts
    ]
    assert updates, "A's living message was not updated"  # it was remembered across the move
    store = PostgresStore(postgres_url)
    try:
        counts = store.counts()
    finally:
        store.close()
    assert counts.get(("hook", "pending"), 0) == 0
    assert counts.get(("slack", "pending"), 0) == 0
    assert counts[("hook", "dead")] == 1


# -- refusals -----------------------------------------------------------------------------------


def test_refused_while_a_notifier_holds_the_sqlite_file(
    built: Built, world: World, postgres_url: str
) -> None:
    """A notifier still running on the file would go on changing it after the copy: refused
    (exit 2) naming the holder and what to do; nothing is written to PostgreSQL."""
    with StateLock(built.db, "run"):
        refused = migrate_cli(built, postgres_url, env=world.env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "is in use by another notifier (pid " in refused.stderr
    assert "`notifier run`" in refused.stderr
    assert "stop it first" in refused.stderr
    assert "then run `notifier state migrate`" in (refused.stderr)
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    assert tables == []
    assert_no_password(refused.stdout, refused.stderr)


def test_refused_when_the_target_has_moved_on_unless_forced(
    built: Built, world: World, postgres_url: str, load: Callable[[Path], Settings]
) -> None:
    """Replicas that already worked the target (its project marks differ from the file's):
    copying an older state over theirs would mix two histories, so it is refused (exit 2)
    naming the projects; ``--force`` replaces the snapshots and marks of the file's projects
    but never turns a finished entry back to pending."""
    assert migrate_cli(built, postgres_url, env=world.env).returncode == EXIT_OK
    world.posthog.add_report(PROJECT, title="Report E")
    pg_config = built.config.with_name("pg.yaml")
    pg_config.write_text(
        built.config.read_text().replace(f"path: {built.db}", f"url: {postgres_url}")
    )
    notifier = Notifier(load(pg_config))
    try:
        notifier.once(max_wait=10)
    finally:
        notifier.close()
    delivered_on_pg = pg_rows(postgres_url, "outbox")

    refused = migrate_cli(built, postgres_url, env=world.env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert f"already holds a different state for project {PROJECT}" in refused.stderr
    assert "--force" in refused.stderr
    assert pg_rows(postgres_url, "outbox") == delivered_on_pg  # untouched

    forced = migrate_cli(built, postgres_url, "--force", env=world.env)
    assert forced.returncode == EXIT_OK, forced.stderr
    assert pg_rows(postgres_url, "projects") == sqlite_rows(built.db, "projects")
    assert pg_rows(postgres_url, "reports") == sqlite_rows(built.db, "reports")
    after = {row[:2]: row[7] for row in pg_rows(postgres_url, "outbox")}
    for row in delivered_on_pg:
        if row[7] != "pending":
            assert after[row[:2]] == row[7], row[:2]  # never back to pending


def test_refused_while_replicas_work_the_target(
    built: Built, world: World, postgres_url: str
) -> None:
    """A live replica on the target would poll and send while its state is replaced: refused,
    even with --force, naming how many and what to do."""
    store = PostgresStore(postgres_url)
    try:
        store.announce("replica-1", 0.0, 60)
    finally:
        store.close()
    refused = migrate_cli(built, postgres_url, "--force", env=world.env)
    assert refused.returncode == EXIT_USAGE, refused.stderr
    assert "1 replica is working" in refused.stderr
    assert "Stop them" in refused.stderr
    assert pg_rows(postgres_url, "reports") == []


def test_usage_errors_exit_2_and_say_what_to_do(
    built: Built, world: World, postgres_url: str, tmp_path: Path
) -> None:
    """A password in the URL, a URL that is not PostgreSQL's, a configuration already on
    PostgreSQL, a state file that does not exist: exit 2 with the fix, nothing created."""
    with_password = postgres_url.replace(
        "postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@"
    )
    cases = {
        with_password: "holds a password",
        "mysql://db/notifier": "postgresql://",
    }
    for url, expected in cases.items():
        result = migrate_cli(built, url, env=world.env)
        assert result.returncode == EXIT_USAGE, (url, result.stderr)
        assert expected in result.stderr, result.stderr
        assert_no_password(result.stdout, result.stderr)

    missing = tmp_path / "elsewhere" / "nothing.db"
    inject(built.config, f"path: {built.db}", f"path: {missing}")
    result = migrate_cli(built, postgres_url, env=world.env)
    assert result.returncode == EXIT_USAGE
    assert f"no SQLite state at {missing}" in result.stderr
    assert not missing.parent.exists()

    inject(built.config, f"path: {missing}", f"url: {postgres_url}")
    result = migrate_cli(built, postgres_url, env=world.env)
    assert result.returncode == EXIT_USAGE
    assert "already uses PostgreSQL" in result.stderr


def test_password_from_a_file_and_an_unreachable_server_fail_cleanly(
    built: Built, world: World, tmp_path: Path
) -> None:
    """``--password-file`` is read (never echoed); a server that cannot be reached is a
    failure (exit 1) that names the database and what to check, with no password in it."""
    secret = tmp_path / "pg-password"
    secret.write_text(PASSWORD + "\n")
    result = cli(
        "state", "migrate", "-c", str(built.config), "--password-file", str(secret),
        "--to", "postgresql://notifier@127.0.0.1:1/notifier", env=world.env,
    )  # fmt: skip
    assert result.returncode == EXIT_FAILURE, result.stderr
    assert "postgresql://127.0.0.1:1/notifier" in result.stderr
    assert "Check that PostgreSQL is up" in result.stderr
    assert_no_password(result.stdout, result.stderr)


def test_progress_is_logged_for_large_tables(
    built: Built, world: World, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``PROGRESS_EVERY`` rows of a table, a log line says how far the copy is."""
    monkeypatch.setattr(migrate, "PROGRESS_EVERY", 2)
    monkeypatch.setattr(migrate, "BATCH", 2)
    result = migrate_cli(built, postgres_url, env=world.env)
    assert result.returncode == EXIT_OK, result.stderr
    total = len(sqlite_rows(built.db, "outbox"))
    assert f"outbox: 2 of {total} rows copied" in result.stderr, result.stderr
    assert f"outbox: 4 of {total} rows copied" in result.stderr


# -- check --------------------------------------------------------------------------------------


def test_check_names_the_backend(world: World, postgres_url: str, tmp_path: Path) -> None:
    """`notifier check` says which database holds the state and what that means."""
    sqlite_config = world.make_config()
    result = cli("check", "-c", str(sqlite_config), env=world.env)
    assert f"State    {tmp_path / 'state.db'} (SQLite: one instance)" in result.stdout

    pg_config = world.make_config(state=f"url: {postgres_url}\nlease_ttl: 45s")
    result = cli("check", "-c", str(pg_config), env=world.env)
    shown = display(postgres_url)
    assert (
        f"State    {shown} (PostgreSQL: replicas share the work, lease_ttl 45s)" in result.stdout
    ), result.stdout
