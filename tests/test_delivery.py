"""Outbox draining: order per sink, retries with backoff, dead letters, give-up, isolation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from notifier.delivery import Deliverer, backoff
from notifier.errors import SinkError
from notifier.models import Delivery, Event, EventType, Report
from notifier.settings import DeliverySettings
from notifier.store import CycleWrite, Store


class ScriptedSink:
    """A sink that fails as scripted, then accepts; records what it accepted."""

    def __init__(self, name: str, failures: list[SinkError] | None = None) -> None:
        self.name = name
        self.failures = list(failures or [])
        self.accepted: list[str] = []
        self.attempts = 0

    def send(self, delivery: Delivery) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append(delivery.event.report.id)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def queue(store: Store, sink: str, *report_ids: str, now: float = 1000.0) -> None:
    events = [
        Event.create(EventType.NEW, 1, Report.from_api({"id": r, "status": "ready"}), None, {})
        for r in report_ids
    ]
    store.commit_cycle(CycleWrite(1, [], [], [(e, sink, ("rule",)) for e in events], now=now))


SETTINGS = DeliverySettings(give_up_after=3600, backoff_initial=10, backoff_max=100)


def test_delivers_in_order(store: Store) -> None:
    """Entries reach the sink oldest first and are marked delivered."""
    sink = ScriptedSink("s")
    queue(store, "s", "a", "b", "c")
    result = Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert sink.accepted == ["a", "b", "c"]
    assert result.delivered == 3
    assert store.counts() == {("s", "delivered"): 3}


def test_transient_failure_waits_and_keeps_order(store: Store) -> None:
    """A transient failure reschedules the head entry; later entries wait behind it."""
    clock = Clock()
    sink = ScriptedSink("s", [SinkError("HTTP 503", permanent=False, retry_after=30)])
    queue(store, "s", "a", "b")
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=clock)
    assert deliverer.drain("s").retrying == 1
    assert sink.accepted == []
    assert store.next_due("s") == 1030.0  # Retry-After honoured exactly
    clock.now = 1029.0
    assert deliverer.drain("s").delivered == 0
    clock.now = 1030.0
    assert deliverer.drain("s").delivered == 2
    assert sink.accepted == ["a", "b"]


def test_permanent_failure_is_dead_lettered_and_the_rest_go(store: Store) -> None:
    """A permanent failure dead-letters that entry at once with its reason; the next one goes."""
    sink = ScriptedSink("s", [SinkError("channel_not_found", permanent=True)])
    queue(store, "s", "a", "b")
    result = Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert (result.dead, result.delivered) == (1, 1)
    dead = store.entries("dead")
    assert [d.event.report.id for d in dead] == ["a"]
    assert dead[0].last_error == "channel_not_found"


def test_gives_up_after_the_configured_time(store: Store) -> None:
    """Retries stop once the next attempt would fall past give_up_after."""
    clock = Clock()
    sink = ScriptedSink("s", [SinkError("HTTP 500", permanent=False, retry_after=1000)] * 5)
    queue(store, "s", "a")
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=clock)
    deliverer.drain("s")
    clock.now += 1000
    deliverer.drain("s")
    clock.now += 1000
    deliverer.drain("s")
    clock.now += 1000
    deliverer.drain("s")  # 1000 + 3000 elapsed + 1000 wait > 3600
    dead = store.entries("dead")
    assert len(dead) == 1
    assert dead[0].last_error is not None
    assert dead[0].last_error.startswith("gave up after 4 attempts")


def test_one_failing_sink_does_not_block_another(store: Store) -> None:
    """A sink stuck in retries leaves the other sink's entries flowing."""
    broken = ScriptedSink("broken", [SinkError("timeout", permanent=False)] * 10)
    fine = ScriptedSink("fine")
    queue(store, "broken", "a")
    queue(store, "fine", "a")
    deliverer = Deliverer(store, {"broken": broken, "fine": fine}, SETTINGS, clock=Clock())
    deliverer.drain("broken")
    deliverer.drain("fine")
    assert fine.accepted == ["a"]
    assert broken.accepted == []


def test_a_crashing_sink_is_contained(store: Store) -> None:
    """An unexpected exception in a sink dead-letters the entry instead of killing delivery."""

    class Crashing(ScriptedSink):
        def send(self, delivery: Delivery) -> None:
            raise RuntimeError("bug")

    queue(store, "s", "a")
    Deliverer(store, {"s": Crashing("s")}, SETTINGS, clock=Clock()).drain("s")
    assert store.entries("dead")[0].last_error == "internal error: RuntimeError"


@pytest.mark.parametrize(("attempts", "window"), [(1, 10), (2, 20), (3, 40), (5, 100), (9, 100)])
def test_backoff_is_full_jitter_within_a_capped_window(attempts: int, window: float) -> None:
    """Without Retry-After the wait is uniform over [0, min(max, initial·2^(n-1))]."""
    seen: list[tuple[float, float]] = []

    def rand(lo: float, hi: float) -> float:
        seen.append((lo, hi))
        return hi

    assert backoff(attempts, SETTINGS, rand=rand) == window
    assert seen == [(0.0, window)]
    assert backoff(attempts, SETTINGS, retry_after=7.0, rand=rand) == 7.0
