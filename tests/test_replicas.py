"""Replicas on PostgreSQL: two real `notifier run` processes on one real database (tests/pg.py)
share the work through leases — every change reaches every sink exactly once — and when one is
killed (SIGKILL: no lease given back) the other takes its units over within the lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import assert_no_secrets, wait_for

pytestmark = pytest.mark.slow

OTHER = PROJECT + 1
TTL = 2.0  # seconds: short, so that a takeover happens within the test
RULES = "- {name: everything, match: {event: [new, status_changed]}, sinks: [slack, hook]}"


class Replica:
    """`notifier run` in a subprocess with its own temporary directory (its heartbeat)."""

    def __init__(self, config: Path, env: dict[str, str], name: str) -> None:
        self.dir = config.parent / name
        self.dir.mkdir()
        self.log = self.dir / "stderr.log"
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "notifier",
                    "run",
                    "-c",
                    str(config),
                    "--log-format",
                    "json",
                ],
                env={**os.environ, **env, "TMPDIR": str(self.dir), "NOTIFIER_STOP_GRACE": "5"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def text(self) -> str:
        return self.log.read_text()


@contextmanager
def replicas(config: Path, env: dict[str, str], count: int) -> Iterator[list[Replica]]:
    with ExitStack() as stack:
        started = []
        for i in range(count):
            replica = Replica(config, env, f"replica-{i}")
            started.append(replica)
            stack.callback(_stopped, replica, env)
        yield started


def _stopped(replica: Replica, env: dict[str, str]) -> None:
    if replica.process.poll() is None:
        replica.process.send_signal(signal.SIGTERM)
        try:
            replica.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait()
    assert_no_secrets(replica.text(), env)


def owners(url: str) -> dict[str, str]:
    """Unit → the replica holding its unexpired lease."""
    with psycopg.connect(url) as conn:
        try:
            rows = conn.execute(
                "SELECT unit, owner FROM leases "
                "WHERE expires_at > EXTRACT(EPOCH FROM clock_timestamp())"
            ).fetchall()
        except psycopg.errors.UndefinedTable:  # no replica has migrated the database yet
            return {}
    return {str(unit): str(owner) for unit, owner in rows}


def pid_of(owner: str) -> int:
    """The pid in a replica id (``host-pid-random``)."""
    return int(owner.rsplit("-", 2)[-2])


def holder(running: list[Replica], url: str, unit: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Once both replicas work, the one holding ``unit``: its replica id and process."""
    wait_for(lambda: len(set(owners(url).values())) == 2, 30, "both replicas working")
    owner = owners(url)[unit]
    return owner, next(r.process for r in running if r.process.pid == pid_of(owner))


@pytest.fixture
def config(make_config: Callable[..., Path], postgres_url: str, posthog: FakePostHog) -> Path:
    posthog.add_project(OTHER)
    return make_config(
        rules=RULES,
        first_run="notify",
        project_ids=(PROJECT, OTHER),
        state=f"url: {postgres_url}\nlease_ttl: {TTL}s",
    )


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
    with replicas(config, env, 2) as (first, second):
        wait_for(lambda: len(set(owners(postgres_url).values())) == 2, 30, "both replicas working")
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
        assert first.process.poll() is None
        assert second.process.poll() is None


def test_a_killed_replica_is_replaced_within_the_lease(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    config: Path,
    env: dict[str, str],
    postgres_url: str,
) -> None:
    """SIGKILL the replica polling the project (no lease given back): the other takes the unit
    over once the lease expires and delivers what happened meanwhile, once."""
    with replicas(config, env, 2) as running:
        victim, process = holder(running, postgres_url, f"poll:{PROJECT}")
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = time.monotonic()
        report = posthog.add_report(PROJECT, title="arrived after the kill")
        wait_for(
            lambda: any(b["data"]["report"]["id"] == report["id"] for b in receiver.bodies()),
            30,
            "the other replica delivered it",
        )
        failover = time.monotonic() - killed
        print(f"failover after SIGKILL: {failover:.1f} s (lease_ttl {TTL:g} s, interval 1 s)")
        assert owners(postgres_url)[f"poll:{PROJECT}"] != victim
        time.sleep(2 * TTL)
        ids = [b["data"]["report"]["id"] for b in receiver.bodies()]
        assert ids.count(report["id"]) == 1


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
        frozen, process = holder(running, postgres_url, "deliver:hook")
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
