"""`notifier once` from cron costs what the daemon's steady cycle costs: the full-listing
schedule (``poll.full_sync_every``) lives in the state, so the first cycle of a process lists
everything only when a full listing is due (or the project is new, or its listing changed), not
on every start. Real notifiers, the fake PostHog over TCP, the state on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from notifier.config.settings import Settings
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.runtime.leases import holding
from tests.factories import PROJECT, Notifiers

Once = Callable[..., int]


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The config's state section: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


@pytest.fixture
def build(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    state: str,
) -> Callable[..., Notifier]:
    """A new Notifier (a new process, as far as the notifier can tell) on the test's state."""

    def make(**config: Any) -> Notifier:
        config["posthog_extra"] = f"page_size: 100\n{config.get('posthog_extra', '')}"
        return notifiers.build(load(make_config(state=state, **config)))

    return make


def poll(notifier: Notifier) -> CyclePlan:
    """One cycle of the project, holding its lease as `notifier once` does (PostgreSQL)."""
    with holding(notifier.leases):
        plan = notifier.poll(PROJECT)
    assert plan is not None, notifier.health[PROJECT].last_error
    return plan


def update_project(settings: Settings, assignments: str, *values: object) -> None:
    """``UPDATE projects SET <assignments>`` for the project (``?`` placeholders), on either
    backend."""
    sql = f"UPDATE projects SET {assignments} WHERE project_id = ?"
    if settings.state.url is None:
        with sqlite3.connect(settings.state.path) as conn:
            conn.execute(sql, (*values, PROJECT))
        return
    with psycopg.connect(settings.state.url, autocommit=True) as conn:
        conn.execute(sql.replace("?", "%s"), (*values, PROJECT))


def age_full_sync(settings: Settings, seconds: float) -> None:
    """Move the project's last full listing ``seconds`` into the past (negative: the future,
    as a wall clock stepped back would leave it)."""
    update_project(settings, "full_sync_at = full_sync_at - ?", seconds)


def test_quiet_once_runs_cost_one_request_each_at_5000_reports(
    posthog: FakePostHog, once: Once, state: str
) -> None:
    """5,000 reports at 250 a page (20 pages, as 20,000 at the default 1,000; scale is
    bench/'s): the first `notifier once` lists everything (20 requests); five quiet runs after
    it, each a new Notifier as cron would start it, cost one request each (≤ 2 allowed) — what
    a daemon's steady cycle costs, not 20."""
    for i in range(5_000):
        posthog.add_report(PROJECT, title=f"r{i}")
    start = len(posthog.requests)
    assert once(state=state, posthog_extra="page_size: 250") == 0
    assert len(posthog.requests) - start == 20
    costs = []
    for _ in range(5):
        start = len(posthog.requests)
        assert once(state=state, posthog_extra="page_size: 250") == 0
        costs.append(len(posthog.requests) - start)
    assert costs == [1] * 5
    assert all(r.query.get("ordering") == "-updated_at,id" for r in posthog.requests[-5:])


def test_a_once_run_still_sees_changes_and_removals_at_the_scheduled_full_listing(
    posthog: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """A change is seen by the next `once` (incremental); a deletion, which only a full
    listing can see, waits for the schedule: when the last full listing is older than
    full_sync_every, the next process's first cycle lists everything and finds it. (150
    reports at 100 a page: the incremental listing stops at its cut-off; a project on one page
    is read to the end by every cycle, which sees deletions at once.)"""
    reports = [posthog.add_report(PROJECT, title=f"r{i}") for i in range(150)]
    assert not poll(build()).incremental
    posthog.update_report(PROJECT, reports[0]["id"], title="renamed")
    posthog.delete_report(PROJECT, reports[1]["id"])
    later = build()
    plan = poll(later)
    assert plan.incremental
    assert [(e.type.value, e.report.id) for e in plan.events] == [("updated", reports[0]["id"])]
    age_full_sync(later.settings, 3601)
    plan = poll(build())
    assert not plan.incremental
    assert [(e.type.value, e.report.id) for e in plan.events] == [("removed", reports[1]["id"])]


def test_a_restarted_daemon_follows_the_stored_schedule(
    posthog: FakePostHog, build: Callable[..., Notifier], notifiers: Notifiers
) -> None:
    """The daemon's first cycle after a restart is incremental while the last full listing is
    recent; the full listing comes when it is due, from the time stored, not from the start."""
    for i in range(3):
        posthog.add_report(PROJECT, title=f"r{i}")
    first = build()
    assert not poll(first).incremental
    assert poll(first).incremental
    notifiers.close(first)
    again = build()
    assert poll(again).incremental
    age_full_sync(again.settings, 3601)
    assert not poll(again).incremental
    assert poll(again).incremental


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("statuses: [ready]", ""),
        ("", "statuses: [ready]"),
        ("statuses: [ready]", "statuses: [ready, resolved]"),
    ],
    ids=["filter-removed", "filter-added", "filter-widened"],
)
def test_a_changed_status_filter_lists_everything_at_once(
    posthog: FakePostHog, build: Callable[..., Notifier], before: str, after: str
) -> None:
    """The snapshot was listed through another posthog.statuses filter: the first cycle with the
    new one lists everything (reports the old filter hid are seen now, not at the next scheduled
    full listing); the cycle after it is incremental again."""
    for status in ("ready", "candidate", "resolved"):
        posthog.add_report(PROJECT, status=status)
    assert not poll(build(posthog_extra=before)).incremental
    assert poll(build(posthog_extra=before)).incremental
    changed = build(posthog_extra=after)
    assert not poll(changed).incremental
    assert poll(changed).incremental


def test_a_full_listing_time_from_the_future_is_not_trusted(
    posthog: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """A last full listing stored more than full_sync_every in the future (the wall clock was
    stepped back, or another replica's clock is wrong) would put the next one off for longer
    than configured: the next cycle lists everything and the schedule restarts from now."""
    posthog.add_report(PROJECT)
    notifier = build()
    assert not poll(notifier).incremental
    age_full_sync(notifier.settings, -7200)
    assert not poll(build()).incremental
    assert poll(build()).incremental


def test_a_state_from_an_earlier_version_is_listed_in_full_once(
    posthog: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """A state written before the listing's filter was recorded (NULL after the upgrade) cannot
    say what its snapshot was listed through: the first cycle lists everything, as every start
    of the earlier version did, and records it; the next ones are incremental."""
    posthog.add_report(PROJECT)
    notifier = build()
    assert not poll(notifier).incremental
    update_project(notifier.settings, "listing = NULL")
    assert not poll(build()).incremental
    assert poll(build()).incremental
