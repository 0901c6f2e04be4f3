"""Enrichment from artefacts, opt-in per sink: the real notifier (httpx over TCP, SQLite) against
the fake PostHog. Artefacts are fetched once per report about to be notified to a sink that asks,
stored with the event in the outbox, and never hold a notification back."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import Settings
from notifier.core.events import NO_ENRICHMENT, Enrichment, Event, Recording
from notifier.core.report import Links
from notifier.cycle.enrich import MAX_PER_CYCLE, WINDOW
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.posthog.budget import RequestBudget
from notifier.render import slack_message
from notifier.runtime.daemon import Notifier
from tests.factories import PROJECT, Notifiers
from tests.fakes import FakeSlack
from tests.helpers import wait_for

SCOPE_403 = {
    "type": "authentication_error",
    "code": "permission_denied",
    "detail": "API key missing required scope 'task:read'",
    "attr": None,
}
#: What ``add_rich`` gives a report: its newest three sessions and latest judgments.
EXPECTED = Enrichment(
    recordings=(
        Recording("sess-4", "Scrolls back up, taps Pay again.", "2026-01-14T08:58:00Z"),
        Recording("sess-3", "Leaves the page.", "2026-01-14T08:57:00Z"),
        Recording("sess-2", "Taps Pay four times; nothing happens.", "2026-01-14T08:56:00Z"),
    ),
    priority_explanation="About 3% of checkouts are affected.",
    actionability_explanation="Reproducible; the click handler throws on Safari.",
)


def add_rich(posthog: FakePostHog, title: str, **fields: Any) -> dict[str, Any]:
    """A report with five video segments (one with an unusable session id), two priority
    judgments, an actionability judgment and other artefacts, oldest first."""
    report = posthog.add_report(PROJECT, title=title, **fields)
    rid = report["id"]

    def segment(session: str, text: str, minute: int) -> None:
        content = {"session_id": session, "content": text, "distinct_id": "u1"}
        content["start_time"] = f"2026-01-14T08:{minute}:00Z"
        posthog.add_artefact(PROJECT, rid, "video_segment", content)

    segment("sess-1", "The oldest one.", 55)
    posthog.add_artefact(
        PROJECT, rid, "priority_judgment", {"explanation": "Old.", "priority": "P3"}
    )
    segment("sess-2", "  Taps Pay four times; nothing happens.  ", 56)
    segment("../../admin", "Not a session id.", 56)
    posthog.add_artefact(
        PROJECT, rid, "priority_judgment", {"explanation": EXPECTED.priority_explanation}
    )
    posthog.add_artefact(
        PROJECT,
        rid,
        "actionability_judgment",
        {"explanation": EXPECTED.actionability_explanation, "already_addressed": False},
    )
    posthog.add_artefact(PROJECT, rid, "signal_finding", {"anything": [1, 2]})
    segment("sess-3", "Leaves the page.", 57)
    posthog.add_artefact(PROJECT, rid, "note", {})
    segment("sess-4", "Scrolls back up, taps Pay again.", 58)
    return report


V12_EXPECTED = replace(EXPECTED, priority_explanation=None, actionability_explanation=None)


def artefact_requests(posthog: FakePostHog) -> list[str]:
    """The report id of every artefacts request, in order."""
    return [r.path.split("/")[-3] for r in posthog.requests if r.path.endswith("/artefacts/")]


@dataclass
class Run:
    """A Notifier whose PostHog client records its retry waits instead of sleeping."""

    notifier: Notifier
    waits: list[float] = field(default_factory=list)

    def poll(self) -> CyclePlan:
        plan = self.notifier.poll(PROJECT)
        assert plan is not None, "the cycle failed"
        assert self.notifier.health[PROJECT].failures == 0
        return plan

    def rows(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every outbox row's JSON by (sink, report id), as stored."""
        found = self.notifier.store._conn().execute("SELECT sink, event FROM outbox").fetchall()
        rows = {}
        for sink, text in found:
            data = json.loads(text)
            rows[(sink, data["report"]["id"])] = data
        return rows

    def queued(self, sink: str, *states: str) -> dict[str, Event]:
        """The events pending (or in ``states``) for a sink, read back from the outbox, by
        report id."""
        store = self.notifier.store
        events = [e.event for state in states or ("pending",) for e in store.entries(state, sink)]
        return {e.report.id: e for e in events if isinstance(e, Event)}


def enriching(settings: Settings, sinks: Sequence[str], **sink_fields: dict[str, Any]) -> Settings:
    """``enrich: [artefacts]`` on ``sinks`` (until the config parses it), other sink fields
    by sink name."""
    changed = {}
    for name, sink in settings.sinks.items():
        fields = {
            **sink_fields.get(name, {}),
            **({"enrich": ("artefacts",)} if name in sinks else {}),
        }
        changed[name] = sink.model_copy(update=fields)
    return settings.model_copy(update={"sinks": changed})


@pytest.fixture
def start(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """A factory of Runs: ``enrich`` names the sinks that ask for artefacts, ``sinks`` sets
    other sink fields, ``posthog`` PostHog settings; the rest goes to make_config."""

    def make(
        *,
        enrich: Sequence[str] = ("slack",),
        sinks: dict[str, dict[str, Any]] | None = None,
        posthog: dict[str, Any] | None = None,
        enrich_window: float = WINDOW,
        **config: Any,
    ) -> Run:
        config.setdefault("poll_extra", "full_sync_every: 0s")
        settings = enriching(load(make_config(**config)), enrich, **(sinks or {}))
        posthog_settings = settings.posthog.model_copy(update=posthog or {})
        settings = settings.model_copy(update={"posthog": posthog_settings})
        ph, waits = settings.posthog, []
        budget = RequestBudget(ph.requests_per_minute, ph.requests_per_hour)
        notifier = notifiers.build(
            settings, waits=waits, budget=budget, enrich_window=enrich_window
        )
        return Run(notifier, waits)

    return make


def enrich_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if getattr(r, "event", None) == "enrich_failed" and r.levelno >= logging.WARNING
    ]


# ------------------------------------------------------------------------ where it goes


def test_enrichment_is_queued_with_the_event_for_enriching_sinks_only(
    posthog: FakePostHog, start: Callable[..., Run], slack: FakeSlack
) -> None:
    """A new report routed to Slack (enrich) and the webhook (not): its artefacts are fetched
    once; Slack's outbox entry carries the newest three recordings and the latest judgments,
    the webhook's has no 'enrichment' at all; the Slack card of the stored event links the
    recordings."""
    posthog.add_report(PROJECT, title="old")
    run = start()
    run.poll()
    new = add_rich(posthog, "Checkout button unresponsive")
    plan = run.poll()
    assert artefact_requests(posthog) == [new["id"]]
    assert plan.enriched == 1
    rows = run.rows()
    assert "enrichment" not in rows[("hook", new["id"])]
    stored = rows[("slack", new["id"])]["enrichment"]
    assert stored["recordings"][0] == {
        "session_id": "sess-4",
        "text": "Scrolls back up, taps Pay again.",
        "start_time": "2026-01-14T08:58:00Z",
    }
    assert run.queued("slack")[new["id"]].enrichment == EXPECTED
    assert run.queued("hook")[new["id"]].enrichment is NO_ENRICHMENT
    assert run.notifier.drain_all().delivered == 2
    assert len(slack.messages) == 1
    event = run.queued("slack", "delivered")[new["id"]]
    card = slack_message(event, ["everything"], Links(posthog.url), enrichment=event.enrichment)
    blocks = json.dumps(card.blocks)
    for session in ("sess-4", "sess-3", "sess-2"):
        assert f"{posthog.url}/project/{PROJECT}/replay/{session}" in blocks
    assert "sess-1" not in blocks
    assert EXPECTED.priority_explanation in blocks


def test_two_enriching_sinks_share_one_fetch(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """Slack and the webhook both ask: one artefacts request, both entries carry it."""
    run = start(enrich=("slack", "hook"), first_run="notify")
    report = add_rich(posthog, "both")
    run.poll()
    assert artefact_requests(posthog) == [report["id"]]
    assert run.queued("slack")[report["id"]].enrichment == EXPECTED
    assert run.queued("hook")[report["id"]].enrichment == EXPECTED


def test_no_sink_asking_means_no_request(posthog: FakePostHog, start: Callable[..., Run]) -> None:
    """Without `enrich: [artefacts]` nothing is fetched and nothing is attached."""
    run = start(enrich=(), first_run="notify")
    report = add_rich(posthog, "plain")
    plan = run.poll()
    assert [e.report.id for e in plan.events] == [report["id"]]
    assert artefact_requests(posthog) == []
    assert all("enrichment" not in row for row in run.rows().values())


def test_unrouted_removed_empty_and_quiet_cost_no_request(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """A removal (routed), an update routed nowhere and a new report without artefacts fetch
    nothing; neither does a quiet cycle."""
    rules = "- {name: new-and-gone, match: {event: [new, removed]}, sinks: [slack]}"
    gone, changed = add_rich(posthog, "to delete"), add_rich(posthog, "to change")
    run = start(rules=rules)
    run.poll()
    posthog.delete_report(PROJECT, gone["id"])
    posthog.update_report(PROJECT, changed["id"], title="changed")
    bare = posthog.add_report(PROJECT, title="no artefacts")
    plan = run.poll()
    kinds = {(e.type.value, e.report.id) for e in plan.events}
    assert kinds == {("removed", gone["id"]), ("updated", changed["id"]), ("new", bare["id"])}
    assert {rid for _, rid in run.rows()} == {gone["id"], bare["id"]}
    quiet = run.poll()
    assert (quiet.events, quiet.requests) == ((), 1)
    assert artefact_requests(posthog) == []
    assert all("enrichment" not in row for row in run.rows().values())


@pytest.mark.parametrize(
    ("version", "expected"),
    [(1, V12_EXPECTED), (2, V12_EXPECTED), (3, EXPECTED), (4, EXPECTED), (5, EXPECTED)],
)
def test_every_api_version(
    posthog: FakePostHog, start: Callable[..., Run], version: int, expected: Enrichment
) -> None:
    """V1/V2 serve only video segments (recordings, no judgments), V3 everything unpaginated,
    V4+ a page: the same recordings from each, at the prefix the listing found."""
    posthog.api_version = version
    run = start(first_run="notify")
    report = add_rich(posthog, f"v{version}")
    run.poll()
    assert artefact_requests(posthog) == [report["id"]]
    prefix = "signals/reports" if version >= 4 else "signal_reports"
    reads = [r for r in posthog.requests if r.path != f"/api/projects/{PROJECT}/"]  # its name
    assert reads[-1].path.startswith(f"/api/projects/{PROJECT}/{prefix}/")
    assert run.queued("slack")[report["id"]].enrichment == expected


# ----------------------------------------------------------------------------- failures


FAILURES: dict[str, tuple[Callable[[FakePostHog], None], int, str]] = {
    # name: (fault, artefacts requests expected, text the WARNING must contain)
    "403 missing task:read": (
        lambda f: f.fail_next(403, SCOPE_403, times=9, path_contains="/artefacts/"),
        1,  # the second report would fail alike: not tried
        "add the scope 'task:read'",
    ),
    "V1 key without signal_report:read": (
        lambda f: f.missing_scopes.add("signal_report:read") or setattr(f, "api_version", 1),
        1,
        "add the scope 'signal_report:read'",
    ),
    "500": (
        lambda f: f.fail_next(500, times=9, path_contains="/artefacts/"),
        6,  # three attempts per report
        "HTTP 500",
    ),
    "HTML body": (
        lambda f: f.fail_next(200, raw=b"<html>login</html>", times=9, path_contains="/artefacts/"),
        2,
        "not JSON",
    ),
    "not a page": (
        lambda f: f.fail_next(200, {"results": None}, times=9, path_contains="/artefacts/"),
        2,
        "'results' list",
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_enrichment_holds_nothing_back(
    posthog: FakePostHog,
    start: Callable[..., Run],
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    """Refused scope, server errors, unreadable bodies: the cycle succeeds, both events are
    queued without enrichment, and one WARNING (not one per event) gives the reason and fix."""
    fault, requests, text = FAILURES[failure]
    fault(posthog)
    run = start(first_run="notify")
    reports = [add_rich(posthog, f"r{i}") for i in range(2)]
    caplog.clear()
    plan = run.poll()
    assert plan.enriched == 0
    assert len(artefact_requests(posthog)) == requests
    queued = run.queued("slack")
    assert set(queued) == {r["id"] for r in reports}
    assert all(e.enrichment is NO_ENRICHMENT for e in queued.values())
    [warning] = enrich_warnings(caplog)
    assert text in warning
    assert f"project {PROJECT}: 2 of 2 events go out without" in warning
    assert run.notifier.drain_all().dead == 0


def test_one_failed_report_does_not_spoil_the_others(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """A transient failure for one report: the next report is still enriched."""
    run = start(first_run="notify")
    first, second = add_rich(posthog, "first"), add_rich(posthog, "second")
    posthog.fail_next(502, times=3, path_contains=f"{first['id']}/artefacts/")
    plan = run.poll()
    assert plan.enriched == 1
    queued = run.queued("slack")
    assert queued[first["id"]].enrichment is NO_ENRICHMENT
    assert queued[second["id"]].enrichment == EXPECTED
    [warning] = enrich_warnings(caplog)
    assert "1 of 2 events" in warning


def test_a_slow_posthog_costs_the_window_at_most(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """Artefacts that do not come within the enrichment window: the cycle goes on without
    them, without trying the other reports, long before PostHog would have answered."""
    run = start(first_run="notify", enrich_window=0.5)
    reports = [add_rich(posthog, f"r{i}") for i in range(3)]
    posthog.stall_next(10, times=9, path_contains="/artefacts/")
    started = time.monotonic()
    run.poll()
    assert time.monotonic() - started < 8
    assert len(artefact_requests(posthog)) == 1
    assert set(run.queued("slack")) == {r["id"] for r in reports}
    [warning] = enrich_warnings(caplog)
    assert "out of time" in warning


def test_an_exhausted_budget_skips_enrichment_without_waiting(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """The request budget has room for the listings only: no artefacts request is made, no
    wait, and the WARNING points at the budget."""
    run = start(posthog={"requests_per_minute": 2})
    run.poll()
    add_rich(posthog, "new")
    started = time.monotonic()
    run.poll()
    assert time.monotonic() - started < 5
    assert artefact_requests(posthog) == []
    [warning] = enrich_warnings(caplog)
    assert "requests_per_minute" in warning
    assert len(run.queued("slack")) == 1


# -------------------------------------------------------------------------------- caps


def test_a_cycle_the_sink_will_digest_fetches_nothing(
    posthog: FakePostHog, start: Callable[..., Run]
) -> None:
    """More events for Slack than its digest_after: they go out as one digest, which shows no
    recordings, so none are fetched; at the threshold they are."""
    run = start(sinks={"slack": {"digest_after": 3}})
    run.poll()
    for i in range(4):
        add_rich(posthog, f"flood {i}")
    run.poll()
    assert artefact_requests(posthog) == []
    run.notifier.store._conn().execute("DELETE FROM outbox")
    for i in range(3):
        add_rich(posthog, f"few {i}")
    plan = run.poll()
    assert len(artefact_requests(posthog)) == 3
    assert plan.enriched == 3


def test_a_flood_costs_at_most_the_cap(
    posthog: FakePostHog, start: Callable[..., Run], caplog: pytest.LogCaptureFixture
) -> None:
    """A sink that never digests: the first MAX_PER_CYCLE reports are enriched, the others go
    out without (one INFO, no WARNING)."""
    run = start(sinks={"slack": {"digest_after": 0}})
    run.poll()
    flood = [add_rich(posthog, f"flood {i}") for i in range(MAX_PER_CYCLE + 3)]
    plan = run.poll()
    assert len(artefact_requests(posthog)) == MAX_PER_CYCLE
    assert plan.enriched == MAX_PER_CYCLE
    queued = run.queued("slack")
    assert len(queued) == len(flood)
    assert sum(e.enrichment == EXPECTED for e in queued.values()) == MAX_PER_CYCLE
    assert enrich_warnings(caplog) == []
    [capped] = [r for r in caplog.records if getattr(r, "event", None) == "enrich_capped"]
    assert capped.levelno == logging.INFO
    assert "3 events" in capped.getMessage()


# ----------------------------------------------------------------------- never again


def test_retries_and_restarts_never_fetch_again(
    posthog: FakePostHog,
    start: Callable[..., Run],
    slack: FakeSlack,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
) -> None:
    """The enrichment lives in the outbox: a failed send waiting for its retry, read by a new
    process, still carries it, and delivering it fetches nothing."""
    run = start(first_run="notify")
    report = add_rich(posthog, "once")
    run.poll()
    slack.fail_next("internal_error")
    assert run.notifier.drain_all().retrying == 1
    run.notifier.close()
    restarted = Notifier(enriching(load(make_config(first_run="notify")), ("slack",)))
    try:
        [entry] = restarted.store.entries("pending", "slack")
        assert isinstance(entry.event, Event)
        assert entry.event.enrichment == EXPECTED
        wait_for(lambda: restarted.drain_all().delivered, what="the retried Slack message")
        assert restarted.store.counts()[("slack", "delivered")] == 1
    finally:
        restarted.close()
    assert artefact_requests(posthog) == [report["id"]]
    assert len(slack.messages) == 1
