"""Events people care about, against today's PostHog (the V6 fake): an artefact count moving is
no event; a priority raised with a status change is announced at once, one raised alone (its
``updated_at`` unchanged) at the next full listing, counted as a late find; a report dismissed
into ``suppressed`` is seen in the listing (``include_all_statuses``), not fetched by id. Real
notifiers, the fake PostHog over TCP, real SQLite."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import Settings
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from tests.factories import PROJECT, Notifiers
from tests.fakes import WebhookReceiver

#: 150 reports about a second apart at 100 a page: an incremental listing stops at its
#: cut-off (the high-water mark minus the 60 s overlap) on its first page.
REPORTS = 150
HOOK_ONLY = "- {name: all, match: {event: [new, status_changed, updated, removed]}, sinks: [hook]}"


@pytest.fixture
def build(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Notifier]:
    """A Notifier built from make_config(**config) at page size 100, closed afterwards."""

    def make(**config: Any) -> Notifier:
        config.setdefault("posthog_extra", "page_size: 100")
        config.setdefault("rules", HOOK_ONLY)
        return notifiers.build(load(make_config(**config)))

    return make


@pytest.fixture
def v6(posthog: FakePostHog) -> FakePostHog:
    posthog.api_version = 6
    return posthog


def poll(notifier: Notifier) -> CyclePlan:
    plan = notifier.poll(PROJECT)
    assert plan is not None, notifier.health[PROJECT].last_error
    return plan


def kinds(plan: CyclePlan) -> list[tuple[str, str]]:
    return [(e.type.value, e.report.id) for e in plan.events]


def full_sync_due(notifier: Notifier) -> None:
    """Pretend the last full listing ran two hours ago."""
    with sqlite3.connect(notifier.settings.state.path) as conn:
        conn.execute("UPDATE projects SET full_sync_at = full_sync_at - 7200")


def fetched_by_id(posthog: FakePostHog, since: int) -> list[str]:
    """Paths of the one-report retrieves PostHog received from request number ``since``."""
    later = posthog.requests[since:]
    return [
        r.path for r in later if not r.path.endswith("/reports/") and r in posthog.report_requests()
    ]


def metric(notifier: Notifier, name: str) -> str:
    text = notifier.metrics.render()[0].decode()
    return next(line for line in text.splitlines() if line.startswith(f"{name}{{"))


# -- artefact counts ------------------------------------------------------------------------


def today_version(item: Mapping[str, Any]) -> str:
    """A report's version as the notifier before this change stored it (``item_version`` over
    the status, the then tracked fields, artefact_count among them, and ``updated_at``)."""
    state: dict[str, Any] = {"status": item["status"]}
    for name in (
        "title",
        "summary",
        "total_weight",
        "signal_count",
        "relevant_user_count",
        "artefact_count",
        "priority",
        "actionability",
    ):
        if name in item:
            state[name] = item[name]
    state["updated_at"] = item.get("updated_at")
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_an_artefact_count_moving_alone_is_no_event(
    v6: FakePostHog, build: Callable[..., Notifier], receiver: WebhookReceiver
) -> None:
    """Notes, commits and task runs move a report's artefact_count (its updated_at stays): no
    `updated` event from an incremental listing that lists the report, nor from the full
    listing; the snapshot keeps the new count all the same, and a rule still matches on it."""
    reports = [v6.add_report(PROJECT, title=f"r{i}") for i in range(REPORTS)]
    rules = (
        "- {name: busy, match: {event: [status_changed], artefact_count: {gte: 3}}, sinks: [hook]}"
    )
    run = build(rules=rules)
    poll(run)
    recent, old = reports[-1], reports[0]
    for report in (recent, old):
        for kind in ("note", "commit", "task_run"):
            v6.add_artefact(PROJECT, report["id"], kind, {"note": "x"})
    quiet = poll(run)
    assert quiet.incremental
    assert kinds(quiet) == []
    full_sync_due(run)
    reconciled = poll(run)
    assert not reconciled.incremental
    assert kinds(reconciled) == []
    assert {row.report.id for row in reconciled.write.upserts} == {old["id"]}  # kept fresh
    assert run.store.snapshot(PROJECT)[old["id"]].report.artefact_count == 3
    v6.update_report(PROJECT, old["id"], status="resolved")
    plan = poll(run)
    assert kinds(plan) == [("status_changed", old["id"])]
    assert plan.events[0].changes == {"status": ("ready", "resolved")}
    assert [rt.sink for rt in plan.routed[0].routes] == ["hook"]


def test_a_state_written_before_the_upgrade_gives_no_event_and_no_reparse(
    v6: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """Versions are what the notifier stored before artefact_count stopped making events (so an
    upgraded state is not re-parsed and rewritten in full); counts that moved while the old
    version ran the state give no event on the new one's first cycle: only those rows are
    rewritten."""
    reports = [v6.add_report(PROJECT, title=f"r{i}") for i in range(REPORTS)]
    run = build()
    poll(run)
    stored = {rid: row.report.version for rid, row in run.store.snapshot(PROJECT).items()}
    assert stored == {r["id"]: today_version(r) for r in v6.reports(PROJECT)}
    for report in reports[:5]:
        v6.add_artefact(PROJECT, report["id"], "note", {"note": "while upgrading"})
    full_sync_due(run)
    plan = poll(build())
    assert not plan.incremental
    assert kinds(plan) == []
    assert len(plan.write.upserts) == 5


# -- priority and actionability -------------------------------------------------------------


def test_a_priority_raised_with_a_status_change_is_announced_in_that_cycle(
    v6: FakePostHog, build: Callable[..., Notifier], receiver: WebhookReceiver
) -> None:
    """Judgments are written during research: a P2 → P0 that comes with in_progress → ready moves
    updated_at, so the next incremental cycle announces both in one event."""
    reports = [v6.add_report(PROJECT, status="in_progress", priority="P2") for _ in range(REPORTS)]
    run = build()
    poll(run)
    rid = reports[3]["id"]
    v6.update_report(PROJECT, rid, status="ready", priority="P0")
    plan = poll(run)
    assert plan.incremental
    assert kinds(plan) == [("status_changed", rid)]
    assert plan.events[0].changes == {
        "status": ("in_progress", "ready"),
        "priority": ("P2", "P0"),
    }
    assert (plan.missed, plan.late) == (0, 0)
    run.drain_all()
    (body,) = [json.loads(r.body) for r in receiver.received]
    assert body["data"]["changes"]["priority"] == ["P2", "P0"]


def test_a_priority_raised_alone_is_found_by_the_next_full_listing_and_counted_late(
    v6: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """A judgment written on its own leaves updated_at as it was: incremental listings cannot see
    it; the next full listing announces it (`updated`) and counts it in
    notifier_late_changes_total, not in notifier_missed_events_total (no overlap would help)."""
    reports = [v6.add_report(PROJECT, priority="P2") for _ in range(REPORTS)]
    run = build()
    poll(run)
    old = reports[0]
    v6.update_report(
        PROJECT,
        old["id"],
        priority="P0",
        actionability="immediately_actionable",
        updated_at=old["updated_at"],
    )
    for _ in range(2):
        quiet = poll(run)
        assert (quiet.incremental, kinds(quiet)) == (True, [])
    full_sync_due(run)
    plan = poll(run)
    assert not plan.incremental
    assert kinds(plan) == [("updated", old["id"])]
    assert plan.events[0].changes == {
        "priority": ("P2", "P0"),
        "actionability": (None, "immediately_actionable"),
    }
    assert (plan.late, plan.missed) == (1, 0)
    assert metric(run, "notifier_late_changes_total").endswith(" 1.0")
    assert metric(run, "notifier_missed_events_total").endswith(" 0.0")


def test_a_recent_report_s_quiet_change_is_no_late_find(
    v6: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """A project that fits on one page: every incremental listing reads it to the end, past its
    cut-off, so a priority changed without updated_at is announced by the next cycle — not
    late (nor missed), though the report's updated_at is older than the cut-off."""
    reports = [v6.add_report(PROJECT, priority="P3") for _ in range(5)]  # ~1 s apart
    run = build(poll_extra="overlap: 1s")
    poll(run)
    v6.update_report(PROJECT, reports[0]["id"], priority="P1", updated_at=reports[0]["updated_at"])
    plan = poll(run)
    assert kinds(plan) == [("updated", reports[0]["id"])]
    assert (plan.late, plan.missed) == (0, 0)


# -- suppressed -----------------------------------------------------------------------------


def test_a_dismissed_report_is_seen_in_the_listing_not_fetched(
    v6: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """V6 lists suppressed reports when asked (`include_all_statuses=true`): a report dismissed
    into suppressed is a status change in the next incremental cycle, without a retrieve, and
    the full listing after it fetches nothing by id either."""
    reports = [v6.add_report(PROJECT) for _ in range(REPORTS)]
    run = build()
    poll(run)
    rid = reports[0]["id"]
    v6.update_report(PROJECT, rid, status="suppressed", dismissal_reason="wontfix_irrelevant")
    start = len(v6.report_requests())
    plan = poll(run)
    assert plan.incremental
    assert kinds(plan) == [("status_changed", rid)]
    later = v6.report_requests()[start:]
    assert later
    assert all(r.query.get("include_all_statuses") == "true" for r in later)
    full_sync_due(run)
    plan = poll(run)
    assert (plan.incremental, kinds(plan)) == (False, [])
    assert fetched_by_id(v6, 0) == []
    assert run.store.snapshot(PROJECT)[rid].listed


def test_an_older_server_still_has_dismissals_fetched_by_id(
    posthog: FakePostHog, build: Callable[..., Notifier]
) -> None:
    """V5 ignores include_all_statuses: the dismissed report leaves its listing, and the next
    full listing fetches it (one retrieve) and announces the status change, as before."""
    posthog.api_version = 5
    reports = [posthog.add_report(PROJECT) for _ in range(REPORTS)]
    run = build()
    poll(run)
    rid = reports[0]["id"]
    posthog.update_report(PROJECT, rid, status="suppressed")
    assert kinds(poll(run)) == []
    full_sync_due(run)
    start = len(posthog.requests)
    plan = poll(run)
    assert kinds(plan) == [("status_changed", rid)]
    assert len(fetched_by_id(posthog, start)) == 1


def test_a_status_filter_is_the_listing(v6: FakePostHog, build: Callable[..., Notifier]) -> None:
    """posthog.statuses says what is listed: include_all_statuses is not added to it (list
    `suppressed` to see dismissals in the listing); a report leaving the filter is fetched by
    id at the next full listing, as before."""
    reports = [v6.add_report(PROJECT) for _ in range(REPORTS)]
    run = build(posthog_extra="page_size: 100\nstatuses: [ready, suppressed]")
    poll(run)
    v6.update_report(PROJECT, reports[0]["id"], status="suppressed")
    v6.update_report(PROJECT, reports[1]["id"], status="resolved")
    start = len(v6.requests)
    plan = poll(run)
    assert kinds(plan) == [("status_changed", reports[0]["id"])]
    assert all("include_all_statuses" not in r.query for r in v6.requests[start:])
    full_sync_due(run)
    assert kinds(poll(run)) == [("status_changed", reports[1]["id"])]
    assert len(fetched_by_id(v6, start)) == 1
