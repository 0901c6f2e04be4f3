"""The SQLite store on real files: atomic cycles, idempotent outbox, dead letters, reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notifier.core.errors import StateError
from notifier.core.events import Event, EventType
from notifier.core.report import Report
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.store import CycleWrite, SnapshotRow, Store


def rep(report_id: str = "r1", **fields: Any) -> Report:
    return Report.from_api({"id": report_id, "status": "ready", "title": "T", **fields})


def new_event(report: Report, project_id: int = 1) -> Event:
    return Event.create(EventType.NEW, project_id, report, None, {})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state" / "notifier.db")
    yield s  # type: ignore[misc]
    s.close()


def test_cycle_persists_snapshot_and_outbox(store: Store, tmp_path: Path) -> None:
    """A committed cycle survives reopening the file: snapshot rows, baseline mark, outbox."""
    report = rep(total_weight=1.5)
    event = new_event(report)
    added = store.commit_cycle(
        CycleWrite(1, [SnapshotRow(report, True)], [], [(event, "slack", ("r",))], now=100.0)
    )
    assert added == 1
    store.close()
    again = Store(store.path)
    assert again.is_baselined(1)
    assert not again.is_baselined(2)
    assert again.snapshot(1) == {"r1": SnapshotRow(report, True)}
    pending = again.pending("slack")
    assert [p.event for p in pending] == [event]
    assert pending[0].rules == ("r",)
    assert again.integrity_check() == "ok"
    again.close()


def test_same_event_and_sink_is_queued_once(store: Store) -> None:
    """Recomputing a cycle (same event ids) adds no duplicate outbox entries."""
    event = new_event(rep())
    write = CycleWrite(1, [], [], [(event, "slack", ("r",)), (event, "hook", ("r",))], now=1.0)
    assert store.commit_cycle(write) == 2
    assert store.commit_cycle(write) == 0
    assert store.counts() == {("slack", "pending"): 1, ("hook", "pending"): 1}


def test_failed_transaction_changes_nothing(store: Store) -> None:
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
    # make the outbox insert fail after the snapshot statements ran
    store._conn().execute(
        "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox BEGIN "
        "SELECT RAISE(ABORT, 'disk full (simulated)'); END"
    )
    with pytest.raises(StateError, match="disk full"):
        store.commit_cycle(write)
    assert store.snapshot(1) == {"a": SnapshotRow(rep("a"), True)}
    assert store.counts() == {}


def test_dead_letters_and_retry(store: Store) -> None:
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


def test_delivered_entries_are_pruned(store: Store) -> None:
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


def test_living_messages_untouched_since_the_cut_are_forgotten(store: Store) -> None:
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


def test_living_messages_are_remembered_with_the_delivered_mark(store: Store) -> None:
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
    conn = store._conn()
    conn.execute(
        "CREATE TRIGGER no_messages BEFORE INSERT ON messages "
        "BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END"
    )
    with pytest.raises(StateError, match="cannot record a delivery"):
        store.mark_delivered(first.id, 5.0, message=("C1", "1.000100"))
    assert store.counts() == {("slack", "pending"): 2}
    conn.execute("DROP TRIGGER no_messages")
    store.mark_delivered(first.id, 5.0, message=("C1", "1.000100"))
    assert store.message("slack", 1, "a") == ("C1", "1.000100", None)
    assert store.message("slack", 2, "a") is None
    assert store.message("other", 1, "a") is None
    store.mark_delivered(second.id, 6.0, message=("C1", "1.000200"))
    store.mark_delivered(second.id, 6.0, message=("C2", "1.000300"))
    assert store.message("slack", 2, "a") == ("C2", "1.000300", None)
    assert store.message("slack", 1, "a") == ("C1", "1.000100", None)


def test_many_entries_are_marked_in_one_transaction(store: Store) -> None:
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
