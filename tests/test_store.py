"""The store's contract, on both backends — a real SQLite file and a real PostgreSQL database
(tests/pg.py): atomic cycles, idempotent outbox, dead letters, living messages, reopening.
Then what is particular to each: SQLite files and their upgrades, PostgreSQL's migration lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notifier.config.settings import StateSettings
from notifier.core.errors import LeaseLost, SourceError, StateError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Notice, NoticeKind
from notifier.core.report import Report
from notifier.core.settle import Held
from notifier.posthog.budget import RequestBudget
from notifier.state.budget import KeyBudget
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.store import (
    CycleWrite,
    Fence,
    OutageRow,
    PostgresStore,
    SnapshotRow,
    Store,
    open_store,
)
from tests.helpers import wait_for

AnyStore = Store | PostgresStore


def rep(report_id: str = "r1", **fields: Any) -> Report:
    return Report.from_api({"id": report_id, "status": "ready", "title": "T", **fields})


def new_event(report: Report, project_id: int = 1) -> Event:
    return Event.create(EventType.NEW, project_id, report, None, {})


def fail_inserts(store: AnyStore, table: str) -> None:
    """Make every insert into ``table`` fail as a full disk would, until ``allow_inserts``."""
    if isinstance(store, Store):
        store._conn().execute(
            f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} BEGIN "
            "SELECT RAISE(ABORT, 'disk full (simulated)'); END"
        )
        return
    conn = store._conn()
    conn.execute(
        "CREATE OR REPLACE FUNCTION fail_insert() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'disk full (simulated)'; END $$ LANGUAGE plpgsql"
    )
    conn.execute(
        f"CREATE TRIGGER fail_{table} BEFORE INSERT ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION fail_insert()"
    )


def allow_inserts(store: AnyStore, table: str) -> None:
    on = "" if isinstance(store, Store) else f" ON {table}"
    store._conn().execute(f"DROP TRIGGER fail_{table}{on}")


def test_cycle_persists_snapshot_and_outbox(store: AnyStore, state_settings: StateSettings) -> None:
    """A committed cycle survives reopening the database: snapshot rows, baseline mark,
    outbox."""
    report = rep(total_weight=1.5)
    event = new_event(report)
    added = store.commit_cycle(
        CycleWrite(1, [SnapshotRow(report, True)], [], [(event, "slack", ("r",))], now=100.0)
    )
    assert added == 1
    store.close()
    again = open_store(state_settings)
    assert again.is_baselined(1)
    assert not again.is_baselined(2)
    assert again.snapshot(1) == {"r1": SnapshotRow(report, True)}
    pending = again.pending("slack")
    assert [p.event for p in pending] == [event]
    assert pending[0].rules == ("r",)
    if isinstance(again, Store):
        assert again.integrity_check() == "ok"
    again.close()


def test_same_event_and_sink_is_queued_once(store: AnyStore) -> None:
    """Recomputing a cycle (same event ids) adds no duplicate outbox entries."""
    event = new_event(rep())
    write = CycleWrite(1, [], [], [(event, "slack", ("r",)), (event, "hook", ("r",))], now=1.0)
    assert store.commit_cycle(write) == 2
    assert store.commit_cycle(write) == 0
    assert store.counts() == {("slack", "pending"): 1, ("hook", "pending"): 1}


def test_failed_transaction_changes_nothing(store: AnyStore) -> None:
    """A cycle whose write fails half-way leaves the previous state intact."""
    store.commit_cycle(CycleWrite(1, [SnapshotRow(rep("a"), True)], [], [], now=1.0))

    bad = SnapshotRow(rep("b"), True)
    write = CycleWrite(
        1,
        [SnapshotRow(rep("a", title="changed"), True), bad],
        ["a"],
        [(new_event(rep("b")), "slack", ("r",))],
        now=2.0,
    )
    fail_inserts(store, "outbox")  # the outbox insert fails after the snapshot statements ran
    with pytest.raises(StateError, match="disk full"):
        store.commit_cycle(write)
    assert store.snapshot(1) == {"a": SnapshotRow(rep("a"), True)}
    assert store.counts() == {}


def test_dead_letters_and_retry(store: AnyStore) -> None:
    """Dead entries keep their reason and go back in line with `retry_dead`."""
    store.commit_cycle(CycleWrite(1, [], [], [(new_event(rep()), "slack", ("r",))], now=1.0))
    entry = store.pending("slack")[0]
    store.mark_retry(entry.id, 50.0, "HTTP 503")
    assert store.next_due("slack") == 50.0
    store.mark_dead(entry.id, 60.0, "channel_not_found")
    assert store.pending("slack") == []
    dead = store.entries("dead")
    assert dead[0].last_error == "channel_not_found"
    assert dead[0].attempts == 2
    assert store.retry_dead(100.0, sink="other") == 0
    assert store.retry_dead(100.0, sink="slack") == 1
    assert store.pending("slack")[0].attempts == 0


def test_delivered_entries_are_pruned(store: AnyStore) -> None:
    """Delivered entries older than the cut are forgotten; dead ones are kept."""
    store.commit_cycle(
        CycleWrite(
            1, [], [], [(new_event(rep("a")), "s", ()), (new_event(rep("b")), "s", ())], now=1.0
        )
    )
    a, b = store.pending("s")
    store.mark_delivered(a.id, 10.0)
    store.mark_dead(b.id, 10.0, "gone")
    assert store.prune(before=20.0) == 1
    assert store.counts() == {("s", "dead"): 1}


def test_living_messages_untouched_since_the_cut_are_forgotten(store: AnyStore) -> None:
    """The (sink, report) → message map is pruned with the outbox: an old card is let go, a
    recent one kept."""
    store.commit_cycle(
        CycleWrite(
            1, [], [], [(new_event(rep("a")), "s", ()), (new_event(rep("b")), "s", ())], now=1.0
        )
    )
    a, b = store.pending("s")
    store.mark_delivered(a.id, 10.0, message=("C1", "1.000"))
    store.mark_delivered(b.id, 30.0, message=("C1", "2.000"))
    store.prune(before=5.0, messages_before=20.0)  # its own cut: the daemon keeps cards longer
    assert store.message("s", 1, "a") is None
    assert store.message("s", 1, "b") == ("C1", "2.000", None)
    assert store.counts() == {("s", "delivered"): 2}


def test_unwritable_state_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A state path under a file (not a directory) fails with a StateError naming it."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot be created"):
        Store(blocker / "sub" / "state.db")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database written by a newer notifier is not silently downgraded."""
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StateError, match="newer notifier"):
        Store(path)


def test_living_messages_are_remembered_with_the_delivered_mark(store: AnyStore) -> None:
    """mark_delivered(message=…) remembers (channel, ts) for the entry's (sink, project,
    report) in the same transaction: when the mark fails, neither is written; a later one
    replaces it; other sinks and projects are separate."""
    store.commit_cycle(
        CycleWrite(
            1,
            [],
            [],
            [(new_event(rep("a")), "slack", ()), (new_event(rep("a"), 2), "slack", ())],
            now=1.0,
        )
    )
    first, second = store.pending("slack")
    fail_inserts(store, "messages")
    with pytest.raises(StateError, match="cannot record a delivery"):
        store.mark_delivered(first.id, 5.0, message=("C1", "1.000100"))
    assert store.counts() == {("slack", "pending"): 2}
    allow_inserts(store, "messages")
    store.mark_delivered(first.id, 5.0, message=("C1", "1.000100"))
    assert store.message("slack", 1, "a") == ("C1", "1.000100", None)
    assert store.message("slack", 2, "a") is None
    assert store.message("other", 1, "a") is None
    store.mark_delivered(second.id, 6.0, message=("C1", "1.000200"))
    store.mark_delivered(second.id, 6.0, message=("C2", "1.000300"))
    assert store.message("slack", 2, "a") == ("C2", "1.000300", None)
    assert store.message("slack", 1, "a") == ("C1", "1.000100", None)


def test_many_entries_are_marked_in_one_transaction(store: AnyStore) -> None:
    """A digest's entries are recorded together: delivered at once, or some retried and some
    dead-lettered in the same transaction."""
    events = [(new_event(rep(r)), "s", ()) for r in "abcd"]
    store.commit_cycle(CycleWrite(1, [], [], events, now=1.0))
    a, b, c, d = store.pending("s")
    store.mark_delivered([a.id, b.id], 2.0)
    store.mark_failed([c.id], 50.0, "HTTP 503", dead=[d.id], now=3.0, reason="gave up")
    assert store.counts() == {("s", "delivered"): 2, ("s", "pending"): 1, ("s", "dead"): 1}
    [retrying] = store.pending("s")
    assert (retrying.next_attempt_at, retrying.last_error, retrying.attempts) == (
        50.0,
        "HTTP 503",
        1,
    )
    assert store.entries("dead")[0].last_error == "gave up"


def test_a_schema_2_state_database_gains_the_messages_table(tmp_path: Path) -> None:
    """Schema 3 adds living messages to an existing state file, keeping its outbox."""
    path = tmp_path / "s.db"
    store = Store(path)
    store.commit_cycle(CycleWrite(1, [], [], [(new_event(rep()), "slack", ())], now=1.0))
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE messages")
        conn.execute("PRAGMA user_version = 2")
    again = Store(path)
    try:
        assert again.message("slack", 1, "r1") is None
        again.mark_delivered(again.pending("slack")[0].id, 2.0, message=("C1", "1.0"))
        assert again.message("slack", 1, "r1") == ("C1", "1.0", None)
    finally:
        again.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_snapshot_reads_and_project_marks(store: AnyStore) -> None:
    """What a cycle reads back: the project's marks (a high-water mark kept when the next cycle
    has none), versions by id without parsing, parsed rows by id (600 ids: more than one
    lookup), counts by status of the listed reports."""
    assert store.project_state(1).baselined is False
    rows = [
        SnapshotRow(rep(f"r{i}", status="ready" if i % 3 else "resolved"), True) for i in range(600)
    ]
    rows.append(SnapshotRow(rep("gone", status="ready"), False))
    store.commit_cycle(
        CycleWrite(1, rows, [], [], now=5.0, high_water="2026-01-01T00:00:00Z", full_sync=True)
    )
    store.commit_cycle(CycleWrite(1, [], ["r0"], [], now=6.0))
    state = store.project_state(1)
    assert (state.baselined, state.high_water, state.full_sync_at) == (
        True,
        "2026-01-01T00:00:00Z",
        5.0,
    )
    index = store.snapshot_index(1)
    assert len(index) == 600
    assert "r0" not in index
    assert index["gone"] == (rows[-1].report.version, False)
    ids = [f"r{i}" for i in range(1, 600)] + ["missing"]
    assert set(store.snapshot_index(1, ids)) == set(ids) - {"missing"}
    assert store.snapshot_rows(1, ["r5", "missing"]) == {"r5": rows[5]}
    assert store.status_counts(1) == {"ready": 400, "resolved": 199}  # r0 deleted, gone unlisted
    assert store.status_counts(2) == {}


def test_notices_are_queued_once_and_outages_kept(store: AnyStore) -> None:
    """The notifier's own notices: once per (notice, sink); outages recorded, updated, ended."""
    notice = Notice.create(
        NoticeKind.SINK_FAILING, sink="hook", error="e", since=1.0, at=2.0, hint="h"
    )
    assert store.enqueue_notice(notice, ["slack", "console"], 2.0) == 2
    assert store.enqueue_notice(notice, ["slack"], 3.0) == 0
    assert [e.event for e in store.pending("slack")] == [notice]
    store.save_outage(OutageRow("sink:hook", 1.0, "HTTP 500", "check it", False))
    store.save_outage(OutageRow("sink:hook", 1.0, "HTTP 502", "check it", True))
    store.save_outage(OutageRow("project:7", 4.0, "403", "the key", False))
    assert store.outages() == [
        OutageRow("sink:hook", 1.0, "HTTP 502", "check it", True),
        OutageRow("project:7", 4.0, "403", "the key", False),
    ]
    store.end_outage("sink:hook")
    assert [o.subject for o in store.outages()] == ["project:7"]


def test_a_clock_stepped_back_rebases_waiting_entries(store: AnyStore) -> None:
    """``rebase``: an entry whose wait began after ``now`` (the clock went back) is due its own
    wait after ``now``; nothing moves when the clock is sane."""
    store.commit_cycle(CycleWrite(1, [], [], [(new_event(rep()), "s", ())], now=1000.0))
    entry = store.pending("s")[0]
    store.mark_failed([entry.id], 1060.0, "HTTP 503", now=1000.0)  # a 60 s wait from 1000
    assert store.rebase("s", 2000.0) == 0
    assert store.rebase("s", 400.0) == 1  # the clock went back 600 s
    assert store.next_due("s") == 460.0


def test_a_lease_is_held_by_one_replica_at_a_time(store: AnyStore) -> None:
    """One owner per unit; a released or expired unit is taken over with a larger token; the
    old holder can no longer renew it."""
    assert store.acquire("poll:1", "a", 30.0) == 1
    assert store.acquire("poll:1", "b", 30.0) is None
    assert store.renew(Fence("poll:1", "a", 1), 30.0)
    assert store.acquire("deliver:slack", "b", 30.0) == 1
    assert {unit: owner for unit, (owner, _, _) in store.leases().items()} == {
        "deliver:slack": "b",
        "poll:1": "a",
    }
    store.release(Fence("poll:1", "a", 1))
    assert store.acquire("poll:1", "b", 30.0) == 2
    assert not store.renew(Fence("poll:1", "a", 1), 30.0)
    assert store.acquire("deliver:x", "a", 0.05) == 1
    wait_for(lambda: store.acquire("deliver:x", "b", 30.0) == 2, 10, "the lease expired")


def test_a_write_under_a_lost_lease_is_refused(store: AnyStore) -> None:
    """The fencing token: once another replica holds the unit, a cycle or a delivery mark made
    under the old lease is refused whole (LeaseLost) and changes nothing."""
    token = store.acquire("poll:1", "a", 30.0)
    assert token is not None
    old = Fence("poll:1", "a", token)
    event = new_event(rep("a"))
    write = CycleWrite(1, [SnapshotRow(rep("a"), True)], [], [(event, "s", ())], now=1.0, fence=old)
    assert store.commit_cycle(write) == 1
    store.release(old)
    assert store.acquire("poll:1", "b", 30.0) == token + 1
    later = CycleWrite(
        1, [SnapshotRow(rep("b"), True)], [], [(new_event(rep("b")), "s", ())], now=2.0, fence=old
    )
    with pytest.raises(LeaseLost, match="poll:1"):
        store.commit_cycle(later)
    assert set(store.snapshot(1)) == {"a"}
    deliver = store.acquire("deliver:s", "a", 30.0)
    assert deliver is not None
    fence = Fence("deliver:s", "a", deliver)
    entry = store.pending("s")[0]
    store.release(fence)
    store.acquire("deliver:s", "b", 30.0)
    with pytest.raises(LeaseLost):
        store.mark_delivered(entry.id, 3.0, message=("C1", "1.0"), fence=fence)
    with pytest.raises(LeaseLost):
        store.mark_failed([entry.id], 9.0, "HTTP 503", now=3.0, fence=fence)
    assert store.pending("s")[0] == entry
    assert store.message("s", 1, "a") is None


def test_replicas_announce_themselves(store: AnyStore) -> None:
    """The live replicas, in a stable order; one that stops announcing drops out."""
    store.announce("r2", 1.0, 30.0)
    store.announce("r1", 1.0, 30.0)
    store.announce("gone", 1.0, 0.05)
    assert {"r1", "r2"} <= set(store.replicas())
    wait_for(lambda: store.replicas() == ["r1", "r2"], 10, "the silent replica dropped out")


def test_the_request_budget_is_shared_by_every_store_on_the_database(
    store: AnyStore, state_settings: StateSettings
) -> None:
    """Two stores on one database (two replicas) take from the same buckets: five requests a
    minute in all, then a wait of about 12 s (60 / 5) for the next; a pause holds everyone."""
    other = open_store(state_settings)
    try:
        takes = [(store if i % 2 else other).take_request("k", 5, 100) for i in range(6)]
        assert takes[:5] == [0.0] * 5
        assert 10.0 < takes[5] <= 12.0
        assert store.take_request("another key", 5, 100) == 0.0
        other.pause_requests("another key", 30.0)
        assert 29.0 < store.take_request("another key", 5, 100) <= 30.0
    finally:
        other.close()


def test_replicas_taking_at_once_never_take_more_than_the_bucket_holds(
    store: AnyStore, state_settings: StateSettings
) -> None:
    """Eight threads on two stores (two replicas) take 80 requests at once from a bucket of
    20 a minute: about 20 are granted (one more may have been refilled meanwhile), never
    more, and every other take is told to wait."""
    other = open_store(state_settings)
    granted: list[float] = []
    lock = threading.Lock()

    def take(source: AnyStore) -> None:
        for _ in range(10):
            wait = source.take_request("raced", 20, 1000)
            with lock:
                granted.append(wait)

    try:
        threads = [threading.Thread(target=take, args=(s,)) for s in [store, other] * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        taken = sum(1 for wait in granted if wait == 0.0)
        assert len(granted) == 80
        assert 20 <= taken <= 21, taken
        assert all(wait > 0 for wait in granted if wait != 0.0)
    finally:
        other.close()


def test_replicas_never_exceed_the_shared_budget_together(postgres_url: str) -> None:
    """Three replicas' request budgets (each with its own in-process buckets) on one database:
    eighteen requests asked for, six a minute allowed — six go out in all, the others are
    refused at their deadline."""
    stores = [PostgresStore(postgres_url) for _ in range(3)]
    budgets = [
        RequestBudget(6, 100, shared=KeyBudget(s, "phx_shared_key_123", 6, 100)) for s in stores
    ]
    granted: list[int] = []
    refused: list[int] = []

    def ask(budget: RequestBudget) -> None:
        for _ in range(6):
            try:
                budget.acquire(1, deadline=time.monotonic() + 0.3)
                granted.append(1)
            except SourceError:
                refused.append(1)

    threads = [threading.Thread(target=ask, args=(b,)) for b in budgets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for s in stores:
        s.close()
    assert (len(granted), len(refused)) == (6, 12)


# --- PostgreSQL's own: the URL in messages, the migration lock, the same tables ---------------


def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    """Four stores opening one new database at the same moment: the advisory lock makes them
    migrate one after the other; every one opens, the schema is created once, at the current
    version."""
    opened: list[PostgresStore] = []
    failed: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    assert failed == []
    assert len(opened) == 4
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_newer_postgres_schema_is_refused(postgres_url: str) -> None:
    """A database a newer notifier migrated is not used by an older one."""
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StateError, match=r"newer notifier \(schema 99 > "):
        PostgresStore(postgres_url)


def test_unreachable_postgres_is_a_clear_error_without_the_password(postgres_url: str) -> None:
    """A database that cannot be reached: a StateError naming it (never the password) and
    what to check."""
    url = "postgresql://notifier@127.0.0.1:9/notifier"  # port 9 (discard): nothing listens
    with pytest.raises(StateError) as caught:
        PostgresStore(url, password="hunter2-very-secret")
    text = str(caught.value)
    assert "postgresql://127.0.0.1:9/notifier" in text
    assert "Check that PostgreSQL is up" in text
    assert "hunter2" not in text


def test_both_backends_have_the_same_tables(tmp_path: Path, postgres_url: str) -> None:
    """One schema: a new SQLite file and a new PostgreSQL database have the same tables and
    columns (the types are each database's own)."""
    Store(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        sqlite = {
            t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")}
            for t in tables
            if not t.startswith("sqlite_")
        }
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'schema_version'"
        ).fetchall()
    postgres: dict[str, set[str]] = {}
    for table, column in rows:
        postgres.setdefault(table, set()).add(column)
    assert postgres == sqlite


# -- held changes (re-research settling, ``core.settle``) ---------------------------------------


def test_held_changes_are_committed_with_the_cycle(
    store: AnyStore, state_settings: StateSettings
) -> None:
    """A hold is written by the cycle that sees the move back, survives reopening, is
    replaced by a later cycle's copy and forgotten when released; a cycle that fails keeps
    none of it."""
    ready, moved = rep("a"), rep("a", status="candidate", updated_at="1")
    hold = Held(1, "a", 100.0, ready, moved)
    store.commit_cycle(CycleWrite(1, [SnapshotRow(moved, True)], [], [], now=100.0, hold=[hold]))
    store.close()
    store = open_store(state_settings)
    try:
        assert store.held(1) == [hold]
        assert [(h.announced.status, h.latest.status) for h in store.held()] == [
            ("ready", "candidate")
        ]
        assert store.held(2) == []
        later = Held(1, "a", 100.0, ready, rep("a", status="in_progress", updated_at="2"))
        fail_inserts(store, "outbox")
        event = new_event(rep("b"))
        with pytest.raises(StateError):
            store.commit_cycle(CycleWrite(1, [], [], [(event, "s", ())], now=110.0, hold=[later]))
        allow_inserts(store, "outbox")
        assert store.held(1) == [hold]  # the failed cycle changed nothing
        store.commit_cycle(CycleWrite(1, [], [], [], now=110.0, hold=[later]))
        assert [h.latest.status for h in store.held(1)] == ["in_progress"]
        store.commit_cycle(CycleWrite(1, [], [], [], now=120.0, release=["a"]))
        assert store.held() == []
    finally:
        store.close()


def test_a_hold_under_a_lost_lease_is_refused(store: AnyStore) -> None:
    """Holds belong to the project's poll unit: a cycle under a lease another replica took
    writes no hold and forgets none."""
    token = store.acquire("poll:1", "a", 30.0)
    assert token is not None
    old = Fence("poll:1", "a", token)
    hold = Held(1, "a", 1.0, rep("a"), rep("a", status="candidate"))
    store.commit_cycle(CycleWrite(1, [], [], [], now=1.0, fence=old, hold=[hold]))
    store.release(old)
    assert store.acquire("poll:1", "b", 30.0) == token + 1
    other = Held(1, "b", 2.0, rep("b"), rep("b", status="candidate"))
    with pytest.raises(LeaseLost, match="poll:1"):
        store.commit_cycle(
            CycleWrite(1, [], [], [], now=2.0, fence=old, hold=[other], release=["a"])
        )
    assert store.held(1) == [hold]


def test_a_card_refreshed_after_a_digest_is_remembered(store: AnyStore) -> None:
    """keep_message: the (channel, ts, shown) of a delivered entry's report, replaced; nothing
    else is touched."""
    store.commit_cycle(CycleWrite(1, [], [], [(new_event(rep("a")), "slack", ())], now=1.0))
    (entry,) = store.pending("slack")
    store.mark_delivered(entry.id, 5.0, message=("C1", "1.000100", "2026-01-01T00:00:00Z"))
    store.keep_message(entry.id, ("C1", "1.000100", "2026-02-01T00:00:00Z"), 9.0)
    assert store.message("slack", 1, "a") == ("C1", "1.000100", "2026-02-01T00:00:00Z")
    assert store.counts() == {("slack", "delivered"): 1}
