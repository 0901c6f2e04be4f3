"""Actions taken from Slack cards, in the state (schema 8), on both backends — a real SQLite
file and a real PostgreSQL database (tests/pg.py): one PostHog write per click key whoever
clicks and however often (threads and replicas racing), a failed or abandoned attempt retried by
the next click, the record of who did what and PostHog's answer, the poll's echo of a move
absorbed with the cycle that sees it (under its fence), old records pruned, an older database
migrated forward and the records carried into PostgreSQL by `notifier state migrate`.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notifier.config.settings import StateSettings
from notifier.core.actions import Click, ReportAction
from notifier.core.errors import LeaseLost
from notifier.core.report import Report
from notifier.core.secrets import remember
from notifier.state.actions import ACTIONS_KEPT, REFUSED_HOLD, STALE_AFTER
from notifier.state.migrate import copy_state
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.store import CycleWrite, Fence, PostgresStore, SnapshotRow, Store, open_store
from tests.factories import API_KEY

AnyStore = Store | PostgresStore

REPORT = "0190f3c2-7d1e-7000-8000-00000000abcd"
RESPONSE_URL = "https://hooks.slack.com/actions/T1/123/s3cr3t-response-token"


def click(action: ReportAction = ReportAction.DISMISS, **fields: Any) -> Click:
    base: dict[str, Any] = {
        "action": action,
        "project_id": 1,
        "report_id": REPORT,
        "shown_status": "ready",
        "user_id": "U1",
        "user_name": "alice",
        "channel_id": "C1",
        "message_ts": "1700000000.000100",
        "response_url": RESPONSE_URL,
        "reason": "wontfix_irrelevant" if action is ReportAction.DISMISS else None,
    }
    return Click(**{**base, **fields})


def rep(status: str) -> Report:
    return Report.from_api({"id": REPORT, "status": status, "title": "T", "updated_at": status})


def test_the_first_click_writes_and_every_repeat_is_told_who_did_it(store: AnyStore) -> None:
    """A click's key is claimed once: the first caller writes to PostHog; Slack's redelivery, a
    double click or another person asking the same of the same card is told what became of it —
    pending while the first is under way, then done by alice with PostHog's answer."""
    first = store.begin_action(click(), now=1000.0)
    assert first.mine
    assert (first.record.outcome, first.record.user_name, first.record.at) == (
        "pending",
        "alice",
        1000.0,
    )
    again = store.begin_action(click(user_id="U2", user_name="bob"), now=1001.0)
    assert not again.mine
    assert (again.record.outcome, again.record.user_name) == ("pending", "alice")

    assert store.finish_action(
        first.record.key,
        "done",
        status_after="suppressed",
        detail="moved to suppressed",
        now=1002.0,
    )
    later = store.begin_action(click(user_id="U2", user_name="bob"), now=1030.0)
    assert not later.mine
    record = later.record
    assert (record.outcome, record.user_id, record.user_name) == ("done", "U1", "alice")
    assert (record.status_after, record.detail, record.finished_at) == (
        "suppressed",
        "moved to suppressed",
        1002.0,
    )
    assert (record.action, record.reason, record.shown_status) == (
        ReportAction.DISMISS,
        "wontfix_irrelevant",
        "ready",
    )
    # another reason is another request: its own write
    assert store.begin_action(click(reason="already_fixed"), now=1031.0).mine


def test_a_failed_or_abandoned_attempt_is_taken_by_the_next_click(store: AnyStore) -> None:
    """PostHog unreachable (``failed``): the next click writes again. An attempt still pending
    after ``STALE_AFTER`` (its replica crashed between claim and finish) is taken over; a late
    finish of the abandoned attempt changes nothing. A refusal (409, 403) answers repeats for
    ``REFUSED_HOLD``, then a new click may try again (the key's scope may have been fixed)."""
    key = click().key
    assert store.begin_action(click(), now=100.0).mine
    store.finish_action(key, "failed", status_after=None, detail="PostHog unreachable", now=101.0)
    retry = store.begin_action(click(user_name="bob", user_id="U2"), now=150.0)
    assert retry.mine
    assert (retry.record.outcome, retry.record.user_name, retry.record.attempts) == (
        "pending",
        "bob",
        2,
    )
    assert retry.record.detail is None

    assert not store.begin_action(click(), now=150.0 + STALE_AFTER - 1).mine
    taken = store.begin_action(click(), now=151.0 + STALE_AFTER)
    assert taken.mine
    assert taken.record.attempts == 3
    # the abandoned attempt (2) finishes late: its outcome is not the record's
    assert not store.finish_action(
        key, "done", status_after="suppressed", detail="late", now=152.0 + STALE_AFTER, attempt=2
    )
    assert store.actions()[0].outcome == "pending"

    now = 200.0 + STALE_AFTER
    assert store.finish_action(
        key, "refused", status_after=None, detail="403: lacks task:write", now=now, attempt=3
    )
    held = store.begin_action(click(), now=now + REFUSED_HOLD - 1)
    assert not held.mine
    assert held.record.detail == "403: lacks task:write"
    assert store.begin_action(click(), now=now + REFUSED_HOLD + 1).mine


def test_racing_clicks_on_two_replicas_make_one_write(
    store: AnyStore, state_settings: StateSettings
) -> None:
    """Eight threads on two stores (two replicas) click the same card at once: exactly one is
    told to write; after it failed, eight more race again and again exactly one writes."""
    other = open_store(state_settings)
    start = threading.Barrier(8)
    mine: list[bool] = []
    lock = threading.Lock()

    def press(source: AnyStore, n: int, now: float) -> None:
        start.wait()
        claim = source.begin_action(click(user_id=f"U{n}", user_name=f"user{n}"), now=now)
        with lock:
            mine.append(claim.mine)

    def race(now: float) -> None:
        mine.clear()
        threads = [
            threading.Thread(target=press, args=(s, n, now))
            for n, s in enumerate([store, other] * 4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    try:
        race(10.0)
        assert sorted(mine) == [False] * 7 + [True]
        store.finish_action(click().key, "failed", status_after=None, detail="503", now=11.0)
        race(20.0)
        assert sorted(mine) == [False] * 7 + [True]
        assert store.actions()[0].attempts == 2
    finally:
        other.close()


def test_actions_are_listed_newest_first_without_secrets(
    store: AnyStore, state_settings: StateSettings
) -> None:
    """``actions`` lists who did what, when, with PostHog's answer, newest first, by project
    and report; the click's ``response_url`` (a capability) is never kept, and a secret in
    PostHog's answer is scrubbed."""
    other_report = "0190f3c2-7d1e-7000-8000-00000000ffff"
    store.begin_action(click(ReportAction.ACKNOWLEDGE), now=1.0)
    store.finish_action(
        click(ReportAction.ACKNOWLEDGE).key, "done", status_after=None, detail="note added", now=1.5
    )
    store.begin_action(click(ReportAction.SNOOZE, snooze_for=50, user_name="bob"), now=2.0)
    store.begin_action(click(report_id=other_report), now=3.0)
    store.begin_action(click(project_id=2), now=4.0)
    assert [a.at for a in store.actions()] == [4.0, 3.0, 2.0, 1.0]
    assert [a.at for a in store.actions(project_id=1, report_id=REPORT)] == [2.0, 1.0]
    assert [a.at for a in store.actions(project_id=1, limit=2)] == [3.0, 2.0]
    snooze = store.actions(project_id=1, report_id=REPORT)[0]
    assert (snooze.action, snooze.snooze_for, snooze.user_name, snooze.channel_id) == (
        ReportAction.SNOOZE,
        50,
        "bob",
        "C1",
    )
    assert snooze.message_ts == "1700000000.000100"
    remember([API_KEY])
    store.finish_action(
        snooze.key, "refused", status_after=None, detail=f"403 for key {API_KEY}", now=5.0
    )
    assert store.actions(project_id=1, report_id=REPORT)[0].detail == "403 for key [redacted]"
    store.close()
    for row in dump(state_settings):
        assert "s3cr3t-response-token" not in repr(row)
        assert API_KEY not in repr(row)


def dump(settings: StateSettings) -> list[tuple[Any, ...]]:
    if settings.url is None:
        with sqlite3.connect(settings.path) as conn:
            return conn.execute("SELECT * FROM actions").fetchall()
    with psycopg.connect(settings.url) as conn:
        return conn.execute("SELECT * FROM actions").fetchall()


def test_the_polls_echo_of_a_move_is_absorbed_with_its_cycle(store: AnyStore) -> None:
    """A move made from Slack (pending or done; not a note, not a failure) is offered to the
    project's next cycle, which marks it absorbed in its own commit: once absorbed — or if
    that commit fails — it is (or stays) offered accordingly. A cycle under a lost lease
    absorbs nothing."""
    dismiss, resolve, ack = (
        click(),
        click(ReportAction.RESOLVE, report_id="r2"),
        click(ReportAction.ACKNOWLEDGE),
    )
    for n, c in enumerate((dismiss, resolve, ack, click(ReportAction.REOPEN, report_id="r3"))):
        store.begin_action(c, now=10.0 + n)
    store.finish_action(dismiss.key, "done", status_after="suppressed", detail="", now=20.0)
    store.finish_action(ack.key, "done", status_after=None, detail="note added", now=20.0)
    store.finish_action(
        click(ReportAction.REOPEN, report_id="r3").key,
        "failed",
        status_after=None,
        detail="",
        now=20.0,
    )
    assert sorted(store.moves_by_action(1)) == sorted(
        [(dismiss.key, REPORT, "suppressed"), (resolve.key, "r2", "resolved")]
    )
    assert store.moves_by_action(2) == []

    token = store.acquire("poll:1", "a", 30.0)
    assert token is not None
    store.release(Fence("poll:1", "a", token))
    assert store.acquire("poll:1", "b", 30.0) == token + 1
    with pytest.raises(LeaseLost):
        store.commit_cycle(
            CycleWrite(
                1, [], [], [], now=30.0, fence=Fence("poll:1", "a", token), absorbed=[dismiss.key]
            )
        )
    assert len(store.moves_by_action(1)) == 2

    store.commit_cycle(
        CycleWrite(
            1, [SnapshotRow(rep("suppressed"), True)], [], [], now=31.0, absorbed=[dismiss.key]
        )
    )
    assert store.moves_by_action(1) == [(resolve.key, "r2", "resolved")]
    # the resolve finishes after its echo was absorbed: it stays absorbed
    store.commit_cycle(CycleWrite(1, [], [], [], now=32.0, absorbed=[resolve.key]))
    store.finish_action(resolve.key, "done", status_after="resolved", detail="", now=33.0)
    assert store.moves_by_action(1) == []


def test_the_same_request_is_new_again_once_the_report_came_back(store: AnyStore) -> None:
    """Dismissed from a card showing "ready", reopened in PostHog and back to ready days
    later: the same request on the same status is a new decision once the poll has seen the
    move and the report is back where the click found it (its key is the same)."""
    assert store.begin_action(click(), now=1.0).mine
    store.finish_action(click().key, "done", status_after="suppressed", detail="", now=2.0)
    assert not store.begin_action(click(), now=3.0).mine  # not seen by a poll yet
    store.commit_cycle(
        CycleWrite(
            1, [SnapshotRow(rep("suppressed"), True)], [], [], now=4.0, absorbed=[click().key]
        )
    )
    assert not store.begin_action(click(), now=5.0).mine  # still suppressed
    store.commit_cycle(CycleWrite(1, [SnapshotRow(rep("ready"), True)], [], [], now=6.0))
    again = store.begin_action(click(user_name="bob"), now=7.0)
    assert again.mine
    assert again.record.user_name == "bob"
    assert not store.begin_action(click(), now=8.0).mine


def test_records_older_than_a_week_are_pruned(store: AnyStore) -> None:
    """Each finished action forgets the records older than ``ACTIONS_KEPT``."""
    store.begin_action(click(), now=1.0)
    store.finish_action(click().key, "done", status_after="suppressed", detail="", now=2.0)
    store.begin_action(click(ReportAction.ACKNOWLEDGE), now=ACTIONS_KEPT)
    store.finish_action(
        click(ReportAction.ACKNOWLEDGE).key,
        "done",
        status_after=None,
        detail="",
        now=ACTIONS_KEPT + 2,
    )
    assert [a.action for a in store.actions()] == [ReportAction.ACKNOWLEDGE]
    assert store.moves_by_action(1) == []


def test_a_schema_7_database_gains_the_actions_table(state_settings: StateSettings) -> None:
    """Schema 8 adds the actions to a database written by the notifier before it, keeping what
    it held; the same step on SQLite and PostgreSQL."""
    store = open_store(state_settings)
    store.commit_cycle(CycleWrite(1, [SnapshotRow(rep("ready"), True)], [], [], now=1.0))
    store.close()
    if state_settings.url is None:
        with sqlite3.connect(state_settings.path) as conn:
            conn.execute("DROP TABLE actions")
            conn.execute("PRAGMA user_version = 7")
    else:
        with psycopg.connect(state_settings.url) as conn:
            conn.execute("DROP TABLE actions")
            conn.execute("UPDATE schema_version SET version = 7")
    again = open_store(state_settings)
    try:
        assert again.schema_version() == SCHEMA_VERSION >= 8
        assert list(again.snapshot(1)) == [REPORT]
        assert again.begin_action(click(), now=2.0).mine
        assert [a.key for a in again.actions()] == [click().key]
    finally:
        again.close()


def test_state_migrate_carries_the_actions_into_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """`notifier state migrate` copies the actions: a click already done on the single
    instance is not written to PostHog again by a replica, and its record is kept."""
    source = Store(tmp_path / "s.db")
    source.begin_action(click(), now=1.0)
    source.finish_action(click().key, "done", status_after="suppressed", detail="ok", now=2.0)
    source.begin_action(click(ReportAction.ACKNOWLEDGE), now=3.0)
    target = PostgresStore(postgres_url)
    try:
        copied = {c.table: c for c in copy_state(source, target).tables}
        assert (copied["actions"].rows, copied["actions"].written) == (2, 2)
        assert target.actions() == source.actions()
        claim = target.begin_action(click(), now=4.0)
        assert not claim.mine
        assert claim.record.user_name == "alice"
        again = {c.table: c for c in copy_state(source, target).tables}
        assert again["actions"].written == 0
    finally:
        source.close()
        target.close()


def test_a_click_record_round_trips_every_field(store: AnyStore) -> None:
    """Nothing of the click the record keeps is lost or altered (ids, names, options)."""
    c = replace(click(ReportAction.SNOOZE), snooze_for=200, team_id="T1", user_name="Zoë")
    record = store.begin_action(c, now=9.5).record
    assert record.key == c.key
    assert (record.project_id, record.report_id, record.user_id, record.user_name) == (
        1,
        REPORT,
        "U1",
        "Zoë",
    )
    assert (record.snooze_for, record.reason, record.moves_to) == (200, None, "potential")
