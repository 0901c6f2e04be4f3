"""Incremental polling and its reconciliation, request counts per cycle, the schema upgrade,
concurrency between projects, and what `check` says about requests. Real notifier, real fake
PostHog over TCP, real SQLite."""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.cli.check import cmd_check
from notifier.config.settings import Settings
from notifier.core.events import EventType
from notifier.core.times import parse_instant
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.store import Store
from tests.factories import PROJECT, Notifiers
from tests.fakes import FakeSlack
from tests.helpers import wait_for

OTHER = 7
RULES = "- {name: all, match: {}, sinks: [out]}"
CONSOLE = "out: {type: console}"


@pytest.fixture
def notifier(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Notifier]:
    """A Notifier built from make_config(**config), closed afterwards."""

    def make(*, store_type: type[Store] = Store, **config: Any) -> Notifier:
        config.setdefault("posthog_extra", "page_size: 100")
        settings = load(make_config(**config))
        return notifiers.build(settings, store=store_type(settings.state.path))

    return make


def poll(notifier: Notifier, project_id: int = PROJECT) -> CyclePlan:
    plan = notifier.poll(project_id)
    assert plan is not None, notifier.health[project_id].last_error
    return plan


def listings(posthog: FakePostHog, since: int) -> list[dict[str, str]]:
    """The queries of the listing requests PostHog received from request number ``since``."""
    return [r.query for r in posthog.requests[since:] if r.path.endswith("reports/")]


def full_sync_due(notifier: Notifier, project_id: int = PROJECT) -> None:
    """Pretend the last full listing ran two hours ago (the clock is the database's)."""
    with sqlite3.connect(notifier.settings.state.path) as conn:
        conn.execute(
            "UPDATE projects SET full_sync_at = full_sync_at - 7200 WHERE project_id = ?",
            (project_id,),
        )


def kinds(plan: CyclePlan) -> set[tuple[str, str]]:
    return {(e.type.value, e.report.id) for e in plan.events}


def test_steady_state_requests_per_cycle(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """1,000 reports at page size 100: the first cycle lists all 10 pages; a quiet cycle costs
    ONE request; 150 changed reports cost two pages; a due full listing all 10 again. Counted
    by the server, not only by the client."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(1000)]
    run = notifier(poll_extra="overlap: 10s")
    start = len(posthog.requests)
    first = poll(run)
    assert (first.requests, first.incremental) == (10, False)
    assert len(listings(posthog, start)) == 10
    for _ in range(3):
        start = len(posthog.requests)
        quiet = poll(run)
        assert (quiet.requests, quiet.incremental, quiet.events) == (1, True, ())
        assert listings(posthog, start) == [
            {
                "limit": "100",
                "ordering": "-updated_at,id",
                "include_all_statuses": "true",
                "offset": "0",
            }
        ]
    for report in reports[:150]:
        posthog.update_report(PROJECT, report["id"], total_weight=9.5)
    start = len(posthog.requests)
    changed = poll(run)
    # two listing pages, and the project's name (asked once per 6 h, by cycles with events)
    assert (changed.requests, changed.incremental) == (3, True)
    assert len(changed.events) == 150
    assert len(posthog.requests) - start == 3
    full_sync_due(run)
    reconciled = poll(run)
    assert (reconciled.requests, reconciled.incremental, reconciled.events) == (10, False, ())


class IndexReads(Store):
    """A real store counting reads of a project's whole snapshot index."""

    whole = 0

    def snapshot_index(
        self, project_id: int, report_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, bool]]:
        self.whole += report_ids is None
        return super().snapshot_index(project_id, report_ids)


def test_an_incremental_cycle_reads_only_the_versions_of_what_it_lists(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """An incremental cycle that stops at its cut-off looks up the snapshot versions of the
    ids it was served, never the project's whole index: its cost follows the changes, not the
    project's size. A full listing reads the index once (it must see what is missing)."""
    for i in range(300):
        posthog.add_report(PROJECT, title=f"r{i}")
    run = notifier(store_type=IndexReads)
    store = run.store
    assert isinstance(store, IndexReads)
    poll(run)
    store.whole = 0  # the baseline's listing is not what is measured
    quiet = poll(run)
    assert (quiet.incremental, quiet.write.full_sync, store.whole) == (True, False, 0)
    full_sync_due(run)
    assert not poll(run).incremental
    assert store.whole == 1


def test_incremental_cycles_find_changes_and_full_listings_find_removals(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """New, status_changed and updated are seen by the next (incremental) cycle; a deleted or
    suppressed report leaves the default listing silently, so only the next full listing can
    tell: removed (PostHog answers 404) and status_changed (it is still there). That is
    PostHog before V6; today's lists suppressed reports too (tests/test_tracking.py)."""
    posthog.api_version = 5
    # 150 reports ~1 s apart at page size 100: one page reaches past the overlap (60 s)
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(150)]
    run = notifier()
    poll(run)
    new = posthog.add_report(PROJECT, title="new")
    posthog.update_report(PROJECT, reports[0]["id"], status="resolved")
    posthog.update_report(PROJECT, reports[1]["id"], title="renamed")
    posthog.delete_report(PROJECT, reports[2]["id"])
    posthog.update_report(PROJECT, reports[3]["id"], status="suppressed")
    plan = poll(run)
    assert plan.incremental
    assert kinds(plan) == {
        ("new", new["id"]),
        ("status_changed", reports[0]["id"]),
        ("updated", reports[1]["id"]),
    }
    assert poll(run).events == ()
    full_sync_due(run)
    plan = poll(run)
    assert not plan.incremental
    assert kinds(plan) == {("removed", reports[2]["id"]), ("status_changed", reports[3]["id"])}
    assert plan.missed == 0  # both changes left the listing: no listing could have shown them


def test_a_change_older_than_the_overlap_is_caught_by_the_full_listing_and_counted(
    posthog: FakePostHog, notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    """A change PostHog made without moving updated_at is invisible to incremental listings;
    the full listing delivers it, counts it in notifier_missed_events_total and says so."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(150)]
    run = notifier()
    poll(run)
    old = reports[0]["updated_at"]
    posthog.update_report(PROJECT, reports[0]["id"], title="silently renamed", updated_at=old)
    assert poll(run).events == ()
    full_sync_due(run)
    with caplog.at_level(logging.WARNING, logger="notifier.runtime.daemon"):
        plan = poll(run)
    assert [(e.type, e.report.title) for e in plan.events] == [
        (EventType.UPDATED, "silently renamed")
    ]
    assert plan.missed == 1
    metrics = run.metrics.render()[0].decode()
    assert f'notifier_missed_events_total{{project_id="{PROJECT}"}} 1.0' in metrics
    assert f'notifier_listings_total{{kind="incremental",project_id="{PROJECT}"}} 1.0' in metrics
    assert any("incremental listings missed" in r.getMessage() for r in caplog.records)


def test_changes_no_incremental_listing_can_see_are_not_counted_as_missed(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """Long after the last full listing, a report that went to a hidden status (suppressed) and
    one whose priority alone changed (PostHog writes judgments without moving updated_at) are
    found by the full listing: delivered, but not counted as missed (the priority is a late
    find: tests/test_tracking.py). PostHog before V6, which does not list suppressed reports."""
    posthog.api_version = 5
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(300)]
    run = notifier()
    poll(run)
    posthog.update_report(PROJECT, reports[0]["id"], status="suppressed")
    old = reports[1]["updated_at"]
    posthog.update_report(PROJECT, reports[1]["id"], priority="P0", updated_at=old)
    for report in reports[150:250]:  # ~100 s of later updates: the mark moves past the overlap
        posthog.update_report(PROJECT, report["id"], signal_count=2)
    incremental = poll(run)
    assert incremental.write.full_sync is False  # it stopped at the overlap
    assert len(incremental.events) == 100
    full_sync_due(run)
    plan = poll(run)
    assert kinds(plan) == {("status_changed", reports[0]["id"]), ("updated", reports[1]["id"])}
    assert plan.missed == 0


def test_a_late_commit_within_the_overlap_is_seen_incrementally(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """An update whose updated_at is a little older than the high-water mark (PostHog committed
    it late) is still within the overlap: the next incremental cycle reports it."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(150)]
    run = notifier()
    poll(run)
    newest = reports[-1]["updated_at"]  # the high-water mark: 150 reports ~1 s apart
    late = reports[-30]["updated_at"]  # ~30 s before it
    assert late < newest
    posthog.update_report(PROJECT, reports[5]["id"], status="pending_input", updated_at=late)
    plan = poll(run)
    assert plan.incremental
    assert kinds(plan) == {("status_changed", reports[5]["id"])}
    full_sync_due(run)
    assert poll(run).missed == 0


def test_changes_while_paging_are_all_reported_within_two_cycles(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """Reports updated between two pages of an incremental listing jump to its front, unseen
    by this cycle, and push the end of page 1 onto page 2 (repeats, newer than page 1's oldest:
    not a sign of a server ignoring the ordering): the listing stays incremental, the next
    cycle reports them, nothing is reported twice, nothing removed."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(400)]
    run = notifier(poll_extra="overlap: 10s")
    poll(run)
    for report in reports[:150]:  # two pages of changes
        posthog.update_report(PROJECT, report["id"], total_weight=3.0)
    during = [r["id"] for r in reports[300:305]]

    def churn(project_id: int, offset: int) -> None:
        if offset == 0:  # page 1 is built; page 2 not yet
            posthog.on_list_page = None
            for rid in during:
                posthog.update_report(project_id, rid, status="pending_input")

    posthog.on_list_page = churn
    first = poll(run)
    second = poll(run)
    assert first.incremental
    assert second.incremental
    assert run.source.incremental(PROJECT)
    seen = [(e.type.value, e.report.id) for e in first.events + second.events]
    assert len(seen) == len(set(seen)) == 155
    assert {rid for kind, rid in seen if kind == "status_changed"} == set(during)
    assert {kind for kind, _ in seen} == {"updated", "status_changed"}


def test_a_change_behind_a_long_listing_is_still_reached_by_the_next_cycle(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """A full listing takes a while (a later page is held 1.5 s). Meanwhile a report on a page
    already read changes, and reports on later pages show even newer updates. The high-water
    mark is moved back by the listing's duration, so the next (incremental) cycle still reaches
    the first change instead of stopping just before it and leaving it to the next full one."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(30)]
    run = notifier(posthog_extra="page_size: 2", poll_extra="overlap: 1s")

    def stamp(base: str, seconds: float) -> str:
        moment = parse_instant(base)
        assert moment is not None
        return (moment + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def change(project_id: int, offset: int) -> None:
        if offset == 0:  # page 1 (reports 0 and 1) is built; the others are not
            posthog.on_list_page = None
            changed = posthog.update_report(project_id, reports[1]["id"], title="changed")
            when = changed["updated_at"]
            posthog.update_report(project_id, reports[25]["id"], updated_at=stamp(when, 1.2))
            posthog.update_report(project_id, reports[27]["id"], updated_at=stamp(when, 0.1))

    posthog.on_list_page = change
    posthog.stall_next(1.5, path_contains="offset=20")
    assert not poll(run).incremental
    plan = poll(run)
    assert plan.incremental
    assert ("updated", reports[1]["id"]) in kinds(plan)


def test_a_server_serving_smaller_pages_than_asked_costs_no_extra_request(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """A server capping `limit` (DRF's max_limit) pages by 10 while 100 are asked for: the
    look-ahead follows the pages it is served: 250 reports are 25 requests, none wasted."""
    for i in range(250):
        posthog.add_report(PROJECT, title=f"r{i}")
    posthog.max_limit = 10
    run = notifier(poll_extra="full_sync_every: 0s")
    plan = poll(run)
    assert (plan.reports, plan.requests) == (250, 25)
    start = len(posthog.requests)
    assert poll(run).requests == 25
    assert [q["offset"] for q in listings(posthog, start)] == [str(i) for i in range(0, 250, 10)]


def test_a_server_that_ignores_the_ordering_gets_full_listings_and_one_info(
    posthog: FakePostHog, notifier: Callable[..., Notifier], caplog: pytest.LogCaptureFixture
) -> None:
    """PostHog V1 orders by weight whatever is asked: the first incremental attempt sees it
    (one request), lists in full in the same cycle, says so once at INFO, and never tries
    again; changes are still found."""
    posthog.api_version = 1
    reports = [posthog.add_report(PROJECT, total_weight=float(i % 7)) for i in range(30)]
    run = notifier()
    poll(run)
    posthog.update_report(PROJECT, reports[3]["id"], title="renamed")
    with caplog.at_level(logging.INFO, logger="notifier.posthog.client"):
        start = len(posthog.requests)
        plan = poll(run)
        assert kinds(plan) == {("updated", reports[3]["id"])}
        assert not plan.incremental
        assert [q["ordering"] for q in listings(posthog, start)] == [
            "-updated_at,id",
            "created_at,id",
        ]
        for _ in range(2):
            start = len(posthog.requests)
            poll(run)
            assert [q["ordering"] for q in listings(posthog, start)] == ["created_at,id"]
    infos = [r.getMessage() for r in caplog.records if "does not honour" in r.getMessage()]
    assert len(infos) == 1
    assert "full listings" in infos[0]


def test_a_restart_keeps_the_full_listing_schedule(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """A restart within full_sync_every carries on incrementally (the schedule is in the
    state: tests/test_cron.py); a report deleted while the notifier was down is `removed` by
    the next full listing, when it is due."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(150)]
    first = notifier()
    poll(first)
    assert poll(first).incremental
    first.close()
    posthog.delete_report(PROJECT, reports[1]["id"])
    again = notifier()
    assert (poll(again).incremental, poll(again).events) == (True, ())
    full_sync_due(again)
    plan = poll(again)
    assert not plan.incremental
    assert kinds(plan) == {("removed", reports[1]["id"])}
    assert poll(again).incremental


def test_a_schema_1_state_database_is_upgraded_in_place(tmp_path: Path) -> None:
    """A state file written before incremental polling keeps its snapshot: the status column
    is filled from the stored reports, the high-water mark starts empty (a full listing)."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE projects (project_id INTEGER PRIMARY KEY, baselined_at REAL NOT NULL,
                last_success_at REAL);
            CREATE TABLE reports (project_id INTEGER NOT NULL, report_id TEXT NOT NULL,
                version TEXT NOT NULL, listed INTEGER NOT NULL, data TEXT NOT NULL,
                PRIMARY KEY (project_id, report_id));
            INSERT INTO projects VALUES (4242, 1.0, 2.0);
            INSERT INTO reports VALUES (4242, 'a', 'v', 1, '{"id": "a", "status": "ready"}');
            INSERT INTO reports VALUES (4242, 'b', 'v', 1, '{"id": "b", "status": "ready"}');
            INSERT INTO reports VALUES (4242, 'c', 'v', 0, '{"id": "c", "status": "suppressed"}');
            PRAGMA user_version = 1;
            """
        )
    store = Store(path)
    try:
        assert store.status_counts(4242) == {"ready": 2}
        state = store.project_state(4242)
        assert (state.baselined, state.high_water, state.full_sync_at) == (True, None, None)
        assert set(store.snapshot(4242)) == {"a", "b", "c"}
        assert store.integrity_check() == "ok"
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_slow_project_does_not_delay_the_others(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
) -> None:
    """Projects are polled concurrently: while one project's listing hangs (PostHog holds the
    request), the other keeps completing cycles."""
    posthog.add_project(OTHER)
    posthog.add_report(PROJECT)
    posthog.add_report(OTHER)
    posthog.stall_next(8, path_contains=f"/projects/{PROJECT}/")
    settings = load(make_config(project_ids=(PROJECT, OTHER)))
    settings = settings.model_copy(
        update={"posthog": settings.posthog.model_copy(update={"timeout": 60})}
    )
    cycles: dict[int, int] = {PROJECT: 0, OTHER: 0}
    lock = threading.Lock()

    def counted(project_id: int, plan: CyclePlan | None) -> None:
        with lock:
            cycles[project_id] += 1

    run = Notifier(settings, after_cycle=counted)
    stop = threading.Event()
    thread = threading.Thread(target=run.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: cycles[OTHER] >= 3, 20, "three cycles of the other project")
        assert cycles[PROJECT] == 0  # still inside its first, held, request
    finally:
        posthog.stop()  # wakes the held request at once, rather than after its 8 s
        stop.set()
        thread.join(timeout=20)
        run.close()


def test_check_prints_the_expected_requests_per_hour(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> None:
    """`check` says what the configuration costs in requests and whether the budget holds it."""
    path = make_config(
        project_ids=(PROJECT, OTHER),
        posthog_extra="requests_per_hour: 100",
        poll_extra="full_sync_every: 30m",
    )
    out = io.StringIO()
    assert cmd_check(load(path), out) == 0
    text = out.getvalue()
    # 2 projects × 3,600 cycles an hour (1 s interval): 4 of them full listings of 1 page
    assert "Requests ~7,200/hour when nothing changes" in text
    assert "7,196 incremental cycles × 1 request + 4 for full listings every 30 min" in text
    assert "budget 100/hour" in text
    assert "does NOT fit" in text


def test_incremental_listings_keep_the_status_filter(
    posthog: FakePostHog, notifier: Callable[..., Notifier]
) -> None:
    """With posthog.statuses, incremental listings ask for the same statuses: a report moving
    into the filter is seen at once; one moving out of it (not listed any more) is seen by the
    next full listing, as a status change, not a removal."""
    reports = [posthog.add_report(PROJECT, title=f"r{i}", status="ready") for i in range(150)]
    others = [posthog.add_report(PROJECT, status="candidate") for _ in range(2)]
    run = notifier(posthog_extra="page_size: 100\nstatuses: [ready]")
    poll(run)
    posthog.update_report(PROJECT, others[0]["id"], status="ready")
    posthog.update_report(PROJECT, reports[0]["id"], status="resolved")
    start = len(posthog.requests)
    plan = poll(run)
    assert plan.incremental
    assert kinds(plan) == {("new", others[0]["id"])}
    assert all(
        (q["status"], q["ordering"]) == ("ready", "-updated_at,id")
        for q in listings(posthog, start)
    )
    full_sync_due(run)
    assert kinds(poll(run)) == {("status_changed", reports[0]["id"])}


def test_once_polls_every_project_when_an_earlier_one_fails(
    posthog: FakePostHog, slack: FakeSlack, once: Callable[..., int]
) -> None:
    """`notifier once` (cron): a project PostHog refuses fails its cycle and the exit code,
    and the projects after it are still polled and delivered."""
    posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    code = once(project_ids=(PROJECT + 1, PROJECT), first_run="notify", max_wait=0)
    assert code == 1
    assert [m for m in slack.messages if m.via == "api" and m.thread_ts is None]


def test_once_forgets_delivered_entries_past_keep_delivered(
    posthog: FakePostHog, slack: FakeSlack, once: Callable[..., int], tmp_path: Path
) -> None:
    """Cron runs `notifier once` only: it prunes what the daemon's hourly housekeeping would
    (delivered entries older than delivery.keep_delivered, 7 days), and keeps the rest."""
    posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once(first_run="notify", max_wait=0) == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:  # delivered eight days ago
        conn.execute("UPDATE outbox SET finished_at = finished_at - 8 * 86400")
    posthog.add_report(PROJECT, title="Search is slow", status="ready")
    assert once(first_run="notify", max_wait=0) == 0
    with sqlite3.connect(tmp_path / "state.db") as conn:
        kept = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'").fetchone()
    assert kept == (2,)  # the second report's, to slack and hook; the first's are forgotten
