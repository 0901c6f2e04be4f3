"""Replicas on PostgreSQL in normal operation: two real `notifier run` processes on one real
database (tests/pg.py, tests/replicas.py) share the work through leases — every change reaches
every sink exactly once, PostHog is listed as one instance would list it — and a replica frozen
past its lease sends nothing it no longer owns. Kills, database outages and the shared request
budget: tests/test_replicas_faults.py.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import wait_for
from tests.replicas import OTHER, TTL, owners, replica_config, replicas

pytestmark = pytest.mark.slow


@pytest.fixture
def config(make_config: Callable[..., Path], postgres_url: str, posthog: FakePostHog) -> Path:
    return replica_config(make_config, postgres_url, posthog)


def test_two_replicas_deliver_every_change_exactly_once(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    config: Path,
    env: dict[str, str],
    postgres_url: str,
) -> None:
    """The five units (two projects, three sinks) spread over both replicas; reports and status
    changes in both projects reach Slack and the webhook once each."""
    with replicas(config, env, 2) as running:
        wait_for(lambda: running.working(postgres_url), 30, "both replicas working")
        shared_since = time.monotonic()
        units = owners(postgres_url)
        sinks = {"deliver:slack", "deliver:slack-hook", "deliver:hook"}
        assert set(units) == {f"poll:{PROJECT}", f"poll:{OTHER}", *sinks}
        made = [
            (pid, posthog.add_report(pid, title=f"r{pid}-{i}"))
            for pid in (PROJECT, OTHER)
            for i in range(3)
        ]
        wait_for(lambda: len(receiver.received) >= 6, 30, "six new reports delivered")
        for pid, report in made[::2]:
            posthog.update_report(pid, report["id"], status="resolved")
        wait_for(lambda: len(receiver.received) >= 9, 30, "three status changes delivered")
        time.sleep(3 * TTL)  # a duplicate, if any, would arrive by now
        kinds = Counter((body["type"], body["data"]["report"]["id"]) for body in receiver.bodies())
        assert all(count == 1 for count in kinds.values()), kinds
        assert len(kinds) == 9
        posts = Counter(
            m.text for m in slack.messages if m.method == "chat.postMessage" and not m.thread_ts
        )
        assert posts, "nothing reached Slack"
        assert all(count == 1 for count in posts.values()), posts  # no card or digest twice
        # PostHog is listed as one instance would list it: one listing per project per interval
        # (1 s), never each project by both replicas (that would be about twice as many)
        window = time.monotonic() - shared_since
        for pid in (PROJECT, OTHER):
            listings = [
                r
                for r in posthog.requests
                if r.received_at >= shared_since and f"/{pid}/" in r.path and "ordering" in r.query
            ]
            assert len(listings) <= window + 3, (pid, len(listings), window)
        assert all(replica.alive() for replica in running.all)


def test_a_frozen_replica_sends_nothing_it_no_longer_owns(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    config: Path,
    env: dict[str, str],
    postgres_url: str,
) -> None:
    """SIGSTOP the replica delivering to the webhook past its lease: the other takes the sink
    over and delivers; resumed (SIGCONT), the frozen one finds its leases gone and sends
    nothing twice."""
    with replicas(config, env, 2) as running:
        wait_for(lambda: running.working(postgres_url), 30, "both replicas working")
        replica = running.holder(postgres_url, "deliver:hook")
        frozen, process = owners(postgres_url)["deliver:hook"], replica.process
        process.send_signal(signal.SIGSTOP)
        try:
            wait_for(
                lambda: owners(postgres_url).get("deliver:hook") not in (None, frozen),
                30,
                "the webhook taken over",
            )
            reports = [
                posthog.add_report(pid, title=f"while frozen {pid}") for pid in (PROJECT, OTHER)
            ]
            wanted = {r["id"] for r in reports}
            wait_for(
                lambda: wanted <= {b["data"]["report"]["id"] for b in receiver.bodies()},
                30,
                "delivered by the other replica",
            )
        finally:
            process.send_signal(signal.SIGCONT)
        time.sleep(2 * TTL)  # the resumed replica's chance to send again, if it could
        ids = [b["data"]["report"]["id"] for b in receiver.bodies()]
        assert all(ids.count(report_id) == 1 for report_id in wanted), ids
        assert process.poll() is None  # it lives on, working its new share
