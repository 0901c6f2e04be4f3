"""Soak: 2,000 accelerated cycles against a churning fake PostHog (run by `make soak`).

Each cycle changes reports the way PostHog does (new ones appear, statuses move, weights grow,
some are deleted), then runs one real poll and one delivery pass through the real webhook sink.
After a warm-up, resident memory, open file descriptors and the state file must stay flat
(≤ 10 % growth), and every change must have been notified.
"""

from __future__ import annotations

import gc
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from notifier.config.settings import Settings
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.state.store import WAL_LIMIT
from tests.factories import PROJECT
from tests.fakes import WebhookReceiver

CYCLES = int(os.environ.get("SOAK_CYCLES", "2000"))
WARM_UP = CYCLES // 10
STATUSES = ["potential", "candidate", "in_progress", "ready", "pending_input", "failed"]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def wal_bytes(db: Path) -> int:
    wal = db.with_name(db.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def sample(cycle: int, db: Path) -> tuple[int, int, int, int, int]:
    """(cycle, RSS KiB, open fds, database bytes after a checkpoint, WAL bytes before it)."""
    wal = wal_bytes(db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    gc.collect()
    return cycle, rss_kib(), fds(), db.stat().st_size, wal


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    tmp_path: Path,
) -> None:
    """2,000 cycles with churn: memory, fds and state size flat; every change notified."""
    rng = random.Random(2026)
    rules = "- {name: all, match: {event: [new, status_changed, updated, removed]}, sinks: [hook]}"
    # Incremental cycles with a full listing every 2 s (every few dozen cycles); the budget is
    # lifted: the soak makes thousands of requests a minute on purpose.
    settings = load(
        make_config(
            rules=rules,
            posthog_extra="page_size: 100\nrequests_per_minute: 1000000\n"
            "requests_per_hour: 100000000",
            poll_extra="full_sync_every: 2s\nsettle: 0s",  # every status change at once
        )
    )
    delivery = settings.delivery.model_copy(update={"keep_delivered": 0.0})
    settings = settings.model_copy(update={"delivery": delivery})
    live = [posthog.add_report(PROJECT, status=rng.choice(STATUSES))["id"] for _ in range(150)]
    notifier = Notifier(settings, sinks=None)
    expected: Counter[tuple[str, str]] = Counter()
    delivered: Counter[tuple[str, str]] = Counter()
    samples: list[tuple[int, int, int, int, int]] = []
    kinds: Counter[bool] = Counter()  # cycles by incremental (True) or full (False) listing
    missed = 0
    db = tmp_path / "state.db"
    started = time.monotonic()
    try:
        for cycle in range(1, CYCLES + 1):
            touched: set[str] = set()  # one change per report per cycle: each is one event
            if cycle > 1:  # the first cycle is the silent baseline
                for _ in range(rng.randint(0, 3)):
                    action = rng.random()
                    rid = rng.choice(live)
                    if len(live) < 120 or (action < 0.2 and len(live) < 180):
                        rid = posthog.add_report(PROJECT, status="potential")["id"]
                        live.append(rid)
                        expected["new", rid] += 1
                    elif rid in touched:
                        continue
                    elif action < 0.4:
                        live.remove(rid)
                        posthog.delete_report(PROJECT, rid)
                        expected["removed", rid] += 1
                    elif action < 0.7:
                        current = next(r for r in posthog.reports(PROJECT) if r["id"] == rid)
                        status = rng.choice([s for s in STATUSES if s != current["status"]])
                        posthog.update_report(PROJECT, rid, status=status)
                        expected["status_changed", rid] += 1
                    else:
                        current = next(r for r in posthog.reports(PROJECT) if r["id"] == rid)
                        posthog.update_report(
                            PROJECT, rid, signal_count=int(current["signal_count"]) + 1
                        )
                        expected["updated", rid] += 1
                    touched.add(rid)
            if cycle == CYCLES:  # the last cycle is a full listing: it sees every removal
                with closing(sqlite3.connect(db)) as conn, conn:
                    conn.execute("UPDATE projects SET full_sync_at = 0")
            plan = notifier.poll(PROJECT)
            assert plan is not None, f"cycle {cycle} failed"
            kinds[plan.incremental] += 1
            missed += plan.missed
            notifier.drain_all()
            for hook in receiver.received:
                body = hook.json()
                kind = body["type"].removeprefix("signal_report.")
                delivered[kind, body["data"]["report"]["id"]] += 1
            receiver.received.clear()  # the fakes' own logs must not count as our growth
            posthog.requests.clear()
            if cycle % 50 == 0:
                notifier.housekeeping()
            if cycle % (CYCLES // 20) == 0 or cycle == WARM_UP:
                samples.append(sample(cycle, db))
    finally:
        notifier.close()
    elapsed = time.monotonic() - started

    print(
        f"\nsoak: {CYCLES} cycles in {elapsed:.1f}s ({CYCLES / elapsed:.0f} cycles/s), "
        f"{sum(expected.values())} changes, {sum(delivered.values())} deliveries"
    )
    print(f"{'cycle':>6} {'RSS KiB':>9} {'fds':>5} {'state bytes':>12} {'WAL bytes':>10}")
    for cycle, rss, fd, size, wal in samples:
        print(f"{cycle:>6} {rss:>9} {fd:>5} {size:>12} {wal:>10}")

    print(f"listings: {kinds[True]} incremental, {kinds[False]} full; {missed} missed events")
    assert delivered == expected, "every change notified exactly once"
    assert kinds[True] > kinds[False] > 2, "both kinds of listing ran"
    assert missed == 0, "no change was left to the full listings"
    warm = next(s for s in samples if s[0] == WARM_UP)
    peak_rss = max(s[1] for s in samples if s[0] >= WARM_UP)
    peak_fds = max(s[2] for s in samples if s[0] >= WARM_UP)
    peak_state = max(s[3] for s in samples if s[0] >= WARM_UP)
    print(
        f"growth after warm-up: RSS {peak_rss / warm[1] - 1:+.1%}, fds {peak_fds - warm[2]:+d}, "
        f"state {peak_state / warm[3] - 1:+.1%}"
    )
    assert peak_rss <= warm[1] * 1.10
    assert peak_fds <= warm[2] * 1.10
    assert peak_state <= warm[3] * 1.10
    assert max(s[4] for s in samples) <= WAL_LIMIT + 1024 * 1024  # one transaction past it
