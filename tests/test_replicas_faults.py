"""Replicas on PostgreSQL when things go wrong, with real `notifier run` processes on one real
database (tests/replicas.py): the replica polling a project killed with SIGKILL four times at
seeded random points; the database's connections cut and the database refused mid-cycle and
mid-delivery; three replicas sharing one low PostHog request budget. Every change is still
delivered, at most once more per failure, and nobody exceeds what is shared.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.fakes import WebhookReceiver
from tests.helpers import wait_for
from tests.replicas import (
    OTHER,
    TTL,
    cut_connections,
    database_down,
    replica_config,
    replicas,
)

pytestmark = pytest.mark.slow

SEED = 20261203
KILLS = 4  # each kill is the same scenario at another seeded moment
INTERVAL = 1.0  # poll.interval of the replicas' config
#: Failover is promised within lease_ttl + one interval. Measured from the kill to the delivery
#: of a report added just after it, it also holds the survivor's next lease round (ttl / 3) and
#: the report's own cycle and send; the rest is room for a loaded 2-core machine.
FAILOVER_BOUND = TTL + TTL / 3 + INTERVAL + 2.0


def webhook_events(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """Every event the webhook received, digests opened: each with its ``type``."""
    events: list[dict[str, Any]] = []
    for body in receiver.bodies():
        if body["type"] == "signal_report.batch":
            events.extend(body["data"]["events"])
        else:
            events.append({"type": body["type"], **body["data"]})
    return events


def seen(receiver: WebhookReceiver) -> set[tuple[str, str]]:
    return {(e["type"], e["report"]["id"]) for e in webhook_events(receiver)}


def repeats(receiver: WebhookReceiver) -> int:
    """How many deliveries repeated an event already delivered (by its event id)."""
    counts = Counter(e["event_id"] for e in webhook_events(receiver))
    return sum(count - 1 for count in counts.values())


@dataclass
class Story:
    """Changes made to the fake PostHog, and the webhook events they must produce."""

    posthog: FakePostHog
    receiver: WebhookReceiver
    rng: random.Random
    wanted: set[tuple[str, str]] = field(default_factory=set)
    ready: list[tuple[int, str]] = field(default_factory=list)

    def add(self, project: int, title: str) -> str:
        report = self.posthog.add_report(project, title=title)
        self.wanted.add(("signal_report.new", report["id"]))
        self.ready.append((project, report["id"]))
        return str(report["id"])

    def change(self) -> None:
        """A new report, or a ready one resolved (each report at most once, and only once its
        arrival was delivered: one resolved before any cycle saw it is new, already resolved)."""
        known = seen(self.receiver)
        ready = [r for r in self.ready if ("signal_report.new", r[1]) in known]
        if ready and self.rng.random() < 0.5:
            project, report_id = ready[self.rng.randrange(len(ready))]
            self.ready.remove((project, report_id))
            self.posthog.update_report(project, report_id, status="resolved")
            self.wanted.add(("signal_report.status_changed", report_id))
        else:
            project = self.rng.choice((PROJECT, OTHER))
            self.add(project, f"change {len(self.wanted)}")

    def delivered(self) -> bool:
        return self.wanted <= seen(self.receiver)


@pytest.fixture
def config(make_config: Callable[..., Path], postgres_url: str, posthog: FakePostHog) -> Path:
    return replica_config(make_config, postgres_url, posthog)


@pytest.mark.timeout(240)
def test_kill_9_of_the_polling_replica_at_seeded_random_points(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    config: Path,
    env: dict[str, str],
    postgres_url: str,
) -> None:
    """KILLS times: changes are made, and at a seeded random moment (before, during or after the
    cycle that finds them, or their delivery) the replica polling the project is killed with
    SIGKILL and a new one started, so two always run. Every change is delivered, at most one
    repeat per kill, and each failover — from the kill to the delivery of a report added just
    after it — is within lease_ttl + one interval and a lease round (printed)."""
    story = Story(posthog, receiver, random.Random(SEED))
    failovers: list[float] = []
    with replicas(config, env, 2) as running:
        wait_for(lambda: running.working(postgres_url), 30, "both replicas working")
        for kill in range(KILLS):
            victim = running.holder(postgres_url, f"poll:{PROJECT}")
            for _ in range(story.rng.randint(1, 3)):
                story.change()
            time.sleep(story.rng.uniform(0.0, 1.5))
            victim.kill()
            killed = time.monotonic()
            running.start()
            probe = story.add(PROJECT, f"after kill {kill}")
            wait_for(
                lambda probe=probe: ("signal_report.new", probe) in seen(receiver),
                30,
                f"the report added after kill {kill} delivered",
            )
            failovers.append(time.monotonic() - killed)
        wait_for(story.delivered, 30, "every change delivered")
        time.sleep(2 * TTL)  # a late repeat, if any, would arrive by now
        assert story.delivered()
        assert repeats(receiver) <= KILLS, repeats(receiver)
        figures = ", ".join(f"{f:.1f}" for f in failovers)
        print(
            f"failover after kill -9 (lease_ttl {TTL:g} s, interval {INTERVAL:g} s): "
            f"{figures} s; max {max(failovers):.1f} s; {repeats(receiver)} repeats in {KILLS} kills"
        )
        assert max(failovers) <= FAILOVER_BOUND, failovers
        assert len(running.living()) == 2


@pytest.mark.timeout(180)
def test_the_database_cut_and_refused_mid_cycle_and_mid_delivery(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    config: Path,
    env: dict[str, str],
    postgres_server: str,
    postgres_url: str,
) -> None:
    """Six times, at seeded random moments while changes are being found and sent, every
    connection to the database is cut (``pg_terminate_backend``); twice more the database also
    refuses connections for a while (a restart, a failover), during which both replicas answer
    /readyz with 503. Nothing is lost, at most one repeat per sink per interruption, and both
    replicas work again and are ready afterwards."""
    story = Story(posthog, receiver, random.Random(SEED + 1))
    interruptions = cut = 0
    with replicas(config, env, 2) as running:
        wait_for(lambda: running.working(postgres_url), 30, "both replicas working")
        for round_ in range(8):
            for _ in range(story.rng.randint(2, 4)):
                story.change()
            time.sleep(story.rng.uniform(0.0, 1.2))
            interruptions += 1
            if round_ % 4 != 3:
                # none, when the replicas have not reconnected since the last cut
                cut += cut_connections(postgres_server, postgres_url)
                continue
            database_down(postgres_server, postgres_url, down=True)
            try:
                story.change()  # made while the database is away
                wait_for(
                    lambda: not any(r.ready() for r in running.all),
                    30,
                    "both replicas not ready while the database is away",
                )
            finally:
                database_down(postgres_server, postgres_url, down=False)
        wait_for(story.delivered, 60, "every change delivered")
        wait_for(lambda: running.working(postgres_url), 30, "both replicas working again")
        wait_for(lambda: all(r.ready() for r in running.all), 30, "both replicas ready again")
        time.sleep(2 * TTL)  # a late repeat, if any, would arrive by now
        print(f"{repeats(receiver)} repeats after {interruptions} database interruptions")
        assert cut > 0  # connections were cut, not merely none there
        assert repeats(receiver) <= interruptions, repeats(receiver)
        assert all(r.alive() for r in running.all)


@pytest.mark.timeout(120)
def test_three_replicas_never_exceed_one_low_request_budget(
    make_config: Callable[..., Path],
    posthog: FakePostHog,
    env: dict[str, str],
    postgres_url: str,
) -> None:
    """Three projects, each needing far more requests than the key's budget allows (always a
    full listing, one report per page), polled by three replicas: the budget is one bucket in
    the database, so all the requests PostHog sees together stay within 30 a minute (a full
    bucket of 30, then one every two seconds) — three separate budgets would allow three times
    as many."""
    per_minute = 30
    third = OTHER + 1
    for project in (PROJECT, OTHER, third):
        posthog.add_project(project)
        for i in range(6):
            posthog.add_report(project, title=f"{project}-{i}")
    config = make_config(
        rules="- {name: none, match: {event: new, title: {regex: '^never$'}}, sinks: [hook]}",
        project_ids=(PROJECT, OTHER, third),
        posthog_extra=f"page_size: 1\nrequests_per_minute: {per_minute}",
        poll_extra="full_sync_every: 0s",
        state=f"url: {postgres_url}\nlease_ttl: {TTL}s",
    )
    with replicas(config, env, 3) as running:
        wait_for(lambda: running.working(postgres_url), 30, "three replicas working")
        time.sleep(8.0)  # a demand of about 20 requests a second, far above the budget meanwhile
        assert all(r.alive() for r in running.all)
    times = sorted(r.received_at for r in posthog.requests)
    allowed = per_minute + (times[-1] - times[0]) * per_minute / 60 + 1
    print(f"{len(times)} PostHog requests by three replicas in {times[-1] - times[0]:.1f} s")
    print(f"(a budget of {per_minute}/min allows {allowed:.0f})")
    assert len(times) > per_minute  # the budget was reached, not merely unused
    assert len(times) <= allowed, (len(times), allowed)
