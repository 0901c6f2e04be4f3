"""Commands that promise to write nothing write nothing (issue 13, item 6).

`dry-run` and `outbox` open the state read-only: on a missing state they create no file (and no
table in PostgreSQL) and say so with the path they looked at; on an existing one they change
no byte (not even the -wal and -shm files SQLite makes for a reader). `dry-run` on a first
cycle also shows what `first_run: notify` would send.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.factories import PROJECT, World
from tests.helpers import cli


def listing(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and mtime (ns)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def contents(url: str) -> dict[str, list[str]]:
    """Every row of every table, as text."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name: sorted(str(row) for row in conn.execute(f"SELECT * FROM {name}").fetchall())
            for name in tables(url)
        }


def tables(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return sorted(str(r[0]) for r in rows)


@pytest.mark.parametrize("args", [("outbox",), ("outbox", "retry"), ("dry-run",)])
def test_a_missing_sqlite_state_is_not_created(world: World, args: tuple[str, ...]) -> None:
    """Nothing appears beside the config (no state file, no -wal/-shm, no folder), and the
    message names the path looked at."""
    state = world.make_config().parent / "data" / "state.db"
    config = world.make_config(state=f"path: {state}")
    folder = config.parent
    before = listing(folder)
    result = cli(*args, "-c", str(config), env=world.env)
    assert listing(folder) == before
    assert f"no state at {state} yet: the notifier has not run with this config" in result.stdout
    assert not state.parent.exists()
    if args[0] == "outbox":
        assert result.returncode == 1, result.stderr
        assert "nothing to show" in result.stdout or "nothing to retry" in result.stdout
    else:
        assert result.returncode == 0, result.stderr


def test_dry_run_on_a_first_cycle_shows_what_notify_would_send(world: World) -> None:
    """``first_run: baseline`` records silently; the dry run says so and also shows the
    payloads ``first_run: notify`` would send."""
    world.posthog.add_report(PROJECT, title="Pricing toggle confuses annual vs monthly")
    config = world.make_config(first_run="baseline")
    result = cli("dry-run", "-c", str(config), env=world.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "would record 1 report silently (first_run: baseline)" in out
    assert "with first_run: notify it would send" in out
    assert "Pricing toggle confuses annual vs monthly" in out
    assert "→ hook (webhook)" in out
    assert '"type": "signal_report.new"' in out


def test_an_existing_sqlite_state_is_not_modified(world: World) -> None:
    """After `once` (a dead letter in the outbox, a report in the snapshot), `outbox` and
    `dry-run` change no byte and no mtime, and leave no -wal/-shm behind."""
    config = world.make_config(first_run="notify", rules="- {name: all, match: {}, sinks: [hook]}")
    world.posthog.add_report(PROJECT, title="kept")
    world.receiver.respond_next(410)
    assert cli("once", "-c", str(config), env=world.env).returncode == 1
    world.posthog.add_report(PROJECT, title="new since")
    folder = config.parent
    before = listing(folder)
    assert "state.db" in before
    assert not [name for name in before if name.endswith(("-wal", "-shm"))]

    shown = cli("outbox", "-c", str(config), env=world.env)
    assert shown.returncode == 0, shown.stderr
    assert "0 pending, 1 dead" in shown.stdout
    planned = cli("dry-run", "-c", str(config), env=world.env)
    assert planned.returncode == 0, planned.stderr
    assert "new since" in planned.stdout
    assert listing(folder) == before


def test_a_missing_postgres_state_is_not_created(world: World, postgres_url: str) -> None:
    """On an empty PostgreSQL database: no table is created; `dry-run` still plans."""
    world.posthog.add_report(PROJECT, title="on postgres")
    config = world.make_config(state=f"url: {postgres_url}")
    shown = cli("outbox", "-c", str(config), env=world.env)
    assert shown.returncode == 1, shown.stderr
    assert "no state at postgresql://" in shown.stdout
    planned = cli("dry-run", "-c", str(config), env=world.env)
    assert planned.returncode == 0, planned.stderr
    assert "on postgres" in planned.stdout
    assert tables(postgres_url) == []


def test_an_existing_postgres_state_is_read_only(world: World, postgres_url: str) -> None:
    """`outbox` lists an existing PostgreSQL state inside read-only transactions."""
    config = world.make_config(
        state=f"url: {postgres_url}",
        first_run="notify",
        rules="- {name: all, match: {}, sinks: [hook]}",
    )
    world.posthog.add_report(PROJECT, title="kept")
    world.receiver.respond_next(410)
    assert cli("once", "-c", str(config), env=world.env).returncode == 1
    before = contents(postgres_url)
    shown = cli("outbox", "-c", str(config), env=world.env)
    assert shown.returncode == 0, shown.stderr
    assert "0 pending, 1 dead" in shown.stdout
    assert cli("dry-run", "-c", str(config), env=world.env).returncode == 0
    assert contents(postgres_url) == before


@pytest.mark.parametrize("command", ["outbox", "dry-run"])
def test_an_emptied_sqlite_state_is_refused_and_left_as_it_is(world: World, command: str) -> None:
    """A 0-byte state file lost what it held: refused (exit 65, as before), not taken for
    "no state yet", and left as it is."""
    config = world.make_config()
    (config.parent / "state.db").write_bytes(b"")
    before = listing(config.parent)
    result = cli(command, "-c", str(config), env=world.env)
    assert result.returncode == 65, result.stdout
    assert "is empty (0 bytes)" in result.stderr
    assert listing(config.parent) == before
