"""The request budget: token buckets per API key, FIFO among projects, 429 pauses everyone;
the requests-per-hour arithmetic `notifier check` prints. Runs on a simulated clock."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.demo.simulator import FakePostHog
from notifier.posthog.budget import RequestBudget, expected_requests_per_hour
from notifier.posthog.client import PostHogClient
from notifier.runtime.daemon import Notifier
from notifier.runtime.service import same_budget
from tests.factories import PROJECT


class Clock:
    """A simulated monotonic clock; waiting on the budget's condition advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, _cond: threading.Condition, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def budget(clock: Clock, per_minute: int = 60, per_hour: int = 3600) -> RequestBudget:
    return RequestBudget(per_minute, per_hour, clock=clock, wait=clock.wait)


def test_a_full_bucket_serves_at_once_then_paces_at_the_refill_rate() -> None:
    """60/minute: 60 requests go out at once, the 61st waits one second (1 token per s)."""
    clock = Clock()
    b = budget(clock)
    assert [b.acquire(1) for _ in range(60)] == [0.0] * 60
    assert clock.waits == []
    waited = b.acquire(1)
    assert waited == pytest.approx(1.0)
    assert b.use().last_minute == 61


def test_the_hourly_bucket_binds_when_it_is_the_smaller_rate() -> None:
    """360/minute but 60/hour: after 60 requests the next waits a minute (3600 s / 60)."""
    clock = Clock()
    b = budget(clock, per_minute=360, per_hour=60)
    for _ in range(60):
        b.acquire(1)
    assert b.acquire(1) == pytest.approx(60.0)
    assert b.use().last_hour == 61


def test_a_request_that_cannot_fit_before_the_deadline_fails_at_once() -> None:
    """No waiting in vain: the error says which limits bind and what to change."""
    clock = Clock()
    b = budget(clock, per_minute=1, per_hour=3600)
    b.acquire(7)
    with pytest.raises(SourceError) as caught:
        b.acquire(7, deadline=clock.now + 10)  # the next token is 60 s away
    assert caught.value.kind is SourceErrorKind.THROTTLED
    assert "posthog.requests_per_minute 1" in str(caught.value)
    assert "poll.interval" in str(caught.value)
    assert clock.waits == []


def test_a_429_pauses_every_project() -> None:
    """pause() holds every request (whichever project) until it runs out."""
    clock = Clock()
    b = budget(clock)
    b.pause(30)
    assert b.acquire(1) == pytest.approx(30.0)
    assert b.acquire(2) == 0.0


def test_waiting_requests_are_served_first_come_first_served() -> None:
    """Three projects queue for a dry bucket: they are served in arrival order, one token each
    (a project with many pages interleaves with the others instead of starving them)."""
    b = RequestBudget(3, 3600)  # real clock: a token every 20 s, so the queue cannot drain
    for _ in range(3):
        b.acquire(0)
    served: list[int] = []
    lock = threading.Lock()
    arrived = threading.Semaphore(0)

    def project(pid: int) -> None:
        arrived.release()
        b.acquire(pid)
        with lock:
            served.append(pid)

    threads = []
    for pid in (1, 2, 3):
        thread = threading.Thread(target=project, args=(pid,), daemon=True)
        thread.start()
        arrived.acquire()
        # wait until this project's ticket is queued before the next one arrives
        while len(b._queue) < pid:
            threading.Event().wait(0.001)
        threads.append(thread)
    with b._cond:
        for bucket in b._buckets:
            bucket.tokens = 3
        b._cond.notify_all()
    for thread in threads:
        thread.join(timeout=10)
    assert served == [1, 2, 3]


def test_waiting_warns_once_with_the_numbers(caplog: pytest.LogCaptureFixture) -> None:
    """A wait logs one WARNING with the limits and the recent use; later waits within ten
    minutes do not repeat it."""
    clock = Clock()
    waited: list[float] = []
    b = RequestBudget(2, 3600, clock=clock, wait=clock.wait, on_wait=waited.append)
    with caplog.at_level(logging.WARNING, logger="notifier.posthog.budget"):
        for _ in range(6):
            b.acquire(5)
    warnings = [r.getMessage() for r in caplog.records if r.name == "notifier.posthog.budget"]
    assert len(warnings) == 1
    assert "requests_per_minute 2" in warnings[0]
    assert "polled less often" in warnings[0]
    assert len(waited) == 4
    assert sum(waited) == pytest.approx(120.0)


def test_a_throttled_answer_pauses_the_budget(posthog: FakePostHog, tmp_path: Path) -> None:
    """PostHog's 429 (wait only in `detail`) pauses the shared budget for that long."""
    clock = Clock()
    b = budget(clock)
    settings = _settings(posthog, tmp_path)
    client = PostHogClient(settings.posthog, budget=b, sleep=lambda _s: None)
    posthog.add_report(PROJECT)
    posthog.throttle_next(42)
    try:
        assert len(client.list_reports(PROJECT).reports) == 1
        # the client's own sleep is a no-op here: the retry waited for the budget's pause,
        # which every project's requests wait for
        assert sum(clock.waits) == pytest.approx(42.0)
    finally:
        client.close()


def _settings(posthog: FakePostHog, state_dir: Path, **poll: object) -> Settings:
    data: dict[str, Any] = {
        "posthog": {"host": posthog.url, "api_key": posthog.api_key, "project_ids": [1, 2, 3]},
        "state": {"path": str(state_dir / "state.db")},
        "sinks": {"out": {"type": "console"}},
        "rules": [{"name": "all", "match": {}, "sinks": ["out"]}],
        "http": {"listen": None},
    }
    if poll:
        data["poll"] = dict(poll)
    return parse_config(yaml.safe_dump(data), source="test.yaml")


@pytest.mark.parametrize(
    ("poll", "reports", "per_hour", "quiet", "full"),
    [
        # 3 projects, every 60 s, incremental: 3 × (60 − 1) quiet cycles + 3 full listings
        ({}, 1000, 180, 177, 3),
        # 5,000 reports a project at page size 1000: each full listing is 5 requests
        ({}, 5000, 192, 177, 15),
        # every cycle full: 3 × 60 × 5 pages
        ({"full_sync_every": "0s"}, 5000, 900, 0, 900),
        ({"interval": "10s", "full_sync_every": "30m"}, 1000, 1080, 1074, 6),
    ],
)
def test_expected_requests_per_hour(
    posthog: FakePostHog,
    tmp_path: Path,
    poll: dict[str, object],
    reports: int,
    per_hour: int,
    quiet: int,
    full: int,
) -> None:
    """The arithmetic `check` prints: quiet incremental cycles plus periodic full listings."""
    settings = _settings(posthog, tmp_path, **poll)
    expected = expected_requests_per_hour(settings, reports)
    assert (expected.per_hour, expected.quiet_cycles, expected.full_listings) == (
        per_hour,
        quiet,
        full,
    )
    assert expected.fits(settings)
    tight = settings.model_copy(
        update={"posthog": settings.posthog.model_copy(update={"requests_per_hour": per_hour - 1})}
    )
    assert not expected.fits(tight)


def test_a_reload_keeps_the_budget_of_the_same_key(posthog: FakePostHog, tmp_path: Path) -> None:
    """After a reload with the same host, key and limits the running budget is kept (a reload
    must not grant a fresh hour's worth of requests), bound to the new notifier's stop event;
    another key or other limits get a new one."""
    settings = _settings(posthog, tmp_path)
    old = Notifier(settings)
    stopped = threading.Event()
    stopped.set()  # the old notifier has been stopped: its waits are abandoned
    old.budget.bind(stopped)
    with pytest.raises(SourceError, match="stopping"):
        old.budget.acquire(1)
    old.close()
    new = Notifier(settings, budget=old.budget)
    try:
        assert new.budget is old.budget
        new.budget.acquire(1)  # serves the new notifier: its stop event is not set
    finally:
        new.close()
    assert same_budget(settings, settings)
    other = settings.posthog.model_copy(update={"api_key": SecretStr("phx_other")})
    other_key = settings.model_copy(update={"posthog": other})
    assert not same_budget(settings, other_key)
    tighter = settings.model_copy(
        update={"posthog": settings.posthog.model_copy(update={"requests_per_hour": 100})}
    )
    assert not same_budget(settings, tighter)
