"""Outbox draining: order per sink, retries with backoff, dead letters, give-up, isolation;
living messages handed to and remembered for a sink, digests recorded together."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import DeliverySettings
from notifier.core.errors import SinkError, StateError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery, Notice, NoticeKind
from notifier.core.report import Report
from notifier.delivery.drain import MAX_DIGEST, Deliverer, backoff
from notifier.sinks.base import MessageRef
from notifier.state.store import CycleWrite, Store


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


# --- living messages, digests, notices -------------------------------------------------------


class LivingSink(ScriptedSink):
    """A LivingSink and DigestSink: records the card it was handed and what it was sent."""

    def __init__(
        self, name: str, failures: list[SinkError] | None = None, digest_after: int = 5
    ) -> None:
        super().__init__(name, failures)
        self.digest_after = digest_after
        self.cards: list[MessageRef | None] = []
        self.digests: list[list[str]] = []
        self.plain: list[str] = []

    def send(self, delivery: Delivery) -> None:
        self.attempts += 1
        self.plain.append(delivery.event.id)

    def send_report(self, delivery: Delivery, card: MessageRef | None) -> MessageRef:
        self.attempts += 1
        self.cards.append(card)
        if self.failures:
            raise self.failures.pop(0)
        assert isinstance(delivery.event, Event)
        self.accepted.append(delivery.event.report.id)
        return card or MessageRef("C1", f"ts-{delivery.event.report.id}-{len(self.cards)}")

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.digests.append([d.event.report.id for d in deliveries])  # type: ignore[union-attr]


def change(store: Store, sink: str, report_id: str, status: str, now: float = 1000.0) -> None:
    before = Report.from_api({"id": report_id, "status": "candidate"})
    after = Report.from_api({"id": report_id, "status": status})
    event = Event.create(EventType.STATUS_CHANGED, 1, after, before, {"status": ("x", status)})
    store.commit_cycle(CycleWrite(1, [], [], [(event, sink, ("rule",))], now=now))


def notice(store: Store, sink: str, now: float = 1000.0) -> None:
    store.enqueue_notice(
        Notice.create(
            NoticeKind.SOURCE_FAILING, project_id=7, error="x", since=now, at=now, hint="wait"
        ),
        [sink],
        now,
    )


def test_a_living_sink_gets_the_remembered_message_and_it_is_kept(store: Store) -> None:
    """The first event about a report is handed no card; the card returned is remembered with
    the delivered mark and handed in for the next event about that report, even after a
    restart; other reports and other sinks have their own."""
    sink = LivingSink("s")
    queue(store, "s", "a", "b")
    Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert sink.cards == [None, None]
    assert store.message("s", 1, "a") == ("C1", "ts-a-1", None)
    assert store.message("other", 1, "a") is None
    change(store, "s", "a", "in_progress")
    restarted = Store(store.path)
    try:
        Deliverer(restarted, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    finally:
        restarted.close()
    assert sink.cards[-1] == MessageRef("C1", "ts-a-1")
    assert store.message("s", 1, "a") == ("C1", "ts-a-1", None)


def test_notices_are_plain_posts_never_living_nor_digested(store: Store) -> None:
    """A notice to a living, digesting sink goes through plain `send`, after the digest of the
    events queued around it, and is never counted towards digest_after."""
    sink = LivingSink("s", digest_after=2)
    queue(store, "s", "a")
    notice(store, "s")
    queue(store, "s", "b", "c")
    result = Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert sink.digests == [["a", "b", "c"]]
    assert len(sink.plain) == 1
    assert sink.cards == []
    assert result.delivered == 4
    sink = LivingSink("t", digest_after=2)
    queue(store, "t", "a", "b")
    notice(store, "t")
    Deliverer(store, {"t": sink}, SETTINGS, clock=Clock()).drain("t")
    assert (sink.digests, sink.accepted, len(sink.plain)) == ([], ["a", "b"], 1)


@pytest.mark.parametrize(("queued", "digest_after", "digested"), [(6, 5, True), (5, 5, False)])
def test_more_due_events_than_digest_after_are_one_digest(
    store: Store, queued: int, digest_after: int, digested: bool
) -> None:
    """More than digest_after due events: one digest, all marked delivered together;
    exactly digest_after: one by one; digest_after 0: never."""
    ids = [f"r{i}" for i in range(queued)]
    queue(store, "s", *ids)
    sink = LivingSink("s", digest_after=digest_after)
    Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert sink.digests == ([ids] if digested else [])
    assert sink.accepted == ([] if digested else ids)
    assert store.counts() == {("s", "delivered"): queued}
    assert finished(store) == {1000.0}
    never = LivingSink("n", digest_after=0)
    queue(store, "n", *ids, "extra")
    Deliverer(store, {"n": never}, SETTINGS, clock=Clock()).drain("n")
    assert never.digests == []


def test_a_digest_never_overtakes_an_entry_waiting_for_its_retry(store: Store) -> None:
    """A due notice at the head, then events waiting to be retried, then newer due events:
    the notice goes, and the newer events wait behind the older ones (no digest of them), so a
    report's later change never reaches the channel before its earlier one."""
    notice(store, "s")
    queue(store, "s", "a", "b", "c")
    queue(store, "s", "x", "y", "z")
    waiting = [e.id for e in store.pending("s") if isinstance(e.event, Event)][:3]
    store.mark_retry(waiting, 5000.0, "HTTP 503")
    sink = LivingSink("s", digest_after=2)
    Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert len(sink.plain) == 1
    assert (sink.digests, sink.accepted) == ([], [])
    clock = Clock()
    clock.now = 5000.0
    Deliverer(store, {"s": sink}, SETTINGS, clock=clock).drain("s")
    assert sink.digests == [["a", "b", "c", "x", "y", "z"]]


def finished(store: Store) -> set[Any]:
    """Every distinct finished_at of the outbox."""
    return {row[0] for row in store._conn().execute("SELECT finished_at FROM outbox")}


def test_a_digest_is_capped_and_the_rest_follow(store: Store) -> None:
    """A backlog bigger than MAX_DIGEST goes out as several digests, oldest first."""
    ids = [f"r{i:03d}" for i in range(MAX_DIGEST + 7)]
    queue(store, "s", *ids)
    sink = LivingSink("s", digest_after=5)
    Deliverer(store, {"s": sink}, SETTINGS, clock=Clock()).drain("s")
    assert sink.digests == [ids[:MAX_DIGEST], ids[MAX_DIGEST:]]


def test_a_failed_digest_is_recorded_together(store: Store) -> None:
    """A transient failure reschedules every entry of the digest to the same moment (and the
    next digest takes them all again, with what came since); a permanent one dead-letters all
    of them with the reason; entries past give_up_after are dead-lettered, the rest retried."""
    clock = Clock()
    sink = LivingSink(
        "s",
        [
            SinkError("HTTP 503", permanent=False, retry_after=30),
            SinkError("HTTP 503", permanent=False, retry_after=3000),
            SinkError("channel_not_found", permanent=True),
        ],
        digest_after=2,
    )
    queue(store, "s", "a", "b", "c", now=0.0)
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=clock)
    assert deliverer.drain("s").retrying == 3
    assert {e.next_attempt_at for e in store.pending("s")} == {1030.0}
    clock.now = 1030.0
    queue(store, "s", "d", now=1030.0)
    result = deliverer.drain("s")  # a, b, c would pass give_up_after (3600): dead; d retried
    assert (result.dead, result.retrying) == (3, 1)
    assert [e.event.report.id for e in store.pending("s")] == ["d"]
    dead = store.entries("dead")
    assert {e.last_error.split(":")[0] for e in dead if e.last_error} == {
        "gave up after 2 attempts"
    }
    queue(store, "s", "e", "f", now=1030.0)
    clock.now = 5000.0
    store.mark_retry(store.pending("s")[0].id, 5000.0, "HTTP 503")
    assert deliverer.drain("s").dead == 3
    assert {
        e.last_error for e in store.entries("dead") if e.event.report.id in ("d", "e", "f")
    } == {"channel_not_found"}


def test_a_transient_failure_while_stopping_records_nothing(store: Store) -> None:
    """Cut short by the shutdown (the pacer's wait, a timeout): the entry is left as it was,
    attempts unchanged, and goes out after the restart."""
    stop = threading.Event()

    class Stopping(ScriptedSink):
        def send(self, delivery: Delivery) -> None:
            stop.set()
            raise SinkError("the notifier is stopping", permanent=False, retry_after=0.0)

    queue(store, "s", "a")
    result = Deliverer(store, {"s": Stopping("s")}, SETTINGS, clock=Clock()).drain("s", stop)
    assert result.retrying == 1
    [entry] = store.pending("s")
    assert (entry.attempts, entry.next_attempt_at, entry.last_error) == (0, 1000.0, None)


def test_an_accepted_digest_whose_mark_fails_is_recorded_later_not_sent_again(
    store: Store,
) -> None:
    """The store fails after the sink accepted a digest: the next pass records every entry of
    it in one go instead of sending the digest again."""
    sink = LivingSink("s", digest_after=1)
    queue(store, "s", "a", "b")
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=Clock())
    store._conn().execute(
        "CREATE TRIGGER full BEFORE UPDATE ON outbox BEGIN SELECT RAISE(ABORT, 'full'); END"
    )
    with pytest.raises(StateError):
        deliverer.drain("s")
    store._conn().execute("DROP TRIGGER full")
    assert deliverer.drain("s").delivered == 2
    assert sink.digests == [["a", "b"]]
    assert store.counts() == {("s", "delivered"): 2}
