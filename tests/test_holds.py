"""Silences in the delivery (issue 15, item 1): an event an active silence matches is held in the
state — not sent, not lost — and when the silence ends by itself each sink it held events for
gets one digest of what happened meanwhile ("While muted (4 h, by alice: 'deploy'): …"); one
expired by hand, or created with `drop`, sends nothing. Held entries survive a restart; notices
and the card's own answers to a click are never held. On both backends (a real SQLite file and a
real PostgreSQL database, tests/pg.py), through the real ``Deliverer`` and state.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from notifier.config.settings import StateSettings
from notifier.core.actions import Acted, ReportAction
from notifier.core.events import Event, EventType, Reminded
from notifier.core.outbox import Notice, NoticeKind
from notifier.core.report import Links
from notifier.core.silences import Silence, new_silence_id, parse_matcher
from notifier.delivery.drain import Deliverer
from notifier.delivery.holds import Holds
from notifier.demo.simulator import FakePostHog
from notifier.render.digest import webhook_batch_payload
from notifier.render.held import held_summary
from notifier.state.store import PostgresStore, Store, open_store
from tests.factories import PROJECT
from tests.fakes import FakeSlack
from tests.helpers import wait_for
from tests.holding import SETTINGS, T0, Clock, Recorder, event, queue

AnyStore = Store | PostgresStore
HOUR = 3600.0


def silence(*matchers: str, hours: float = 4, **kw: object) -> Silence:
    fields: dict[str, object] = {
        "id": new_silence_id(),
        "matchers": tuple(parse_matcher(m) for m in matchers),
        "starts_at": T0 - 60,
        "ends_at": T0 - 60 + hours * HOUR,
        "author": "alice",
        "comment": "deploy",
    }
    return Silence(**{**fields, **kw})  # type: ignore[arg-type]


def deliverer(
    store: AnyStore, clock: Clock, *sinks: Recorder, standing: Sequence[Silence] = ()
) -> Deliverer:
    holds = Holds(store, standing=standing)
    return Deliverer(store, {s.name: s for s in sinks}, SETTINGS, clock=clock, holds=holds)


def test_a_silence_holds_what_it_matches_and_the_rest_goes(store: AnyStore) -> None:
    clock, slack = Clock(), Recorder("slack")
    muted = silence("title=~Checkout.*")
    store.add_silence(muted)
    queue(
        store,
        (event("a", title="Checkout fails on Safari"), "slack"),
        (event("b", title="Search is slow"), "slack"),
        (event("c", title="Checkout button hidden"), "slack"),
    )
    result = deliverer(store, clock, slack).drain("slack")
    assert slack.singles == ["b"]
    assert slack.digests == []
    assert result.delivered == 1
    held = store.held_entries("slack")
    assert [e.event.report.id for e in held if isinstance(e.event, Event)] == ["a", "c"]
    assert {e.held_by for e in held} == {f"silence:{muted.id}"}
    assert store.counts()[("slack", "held")] == 2
    again = store.silence(muted.id)
    assert again is not None
    assert again.held == 2
    assert store.next_due("slack") is None  # nothing is due: the thread sleeps


def test_when_it_ends_by_itself_each_sink_gets_one_digest(store: AnyStore) -> None:
    clock, slack, hook = Clock(), Recorder("slack"), Recorder("hook")
    muted = silence("project_id=1", hours=4)
    store.add_silence(muted)
    queue(store, (event("a"), "slack"), (event("a"), "hook"), (event("b"), "slack"))
    drain = deliverer(store, clock, slack, hook)
    drain.drain("slack"), drain.drain("hook")
    clock.now = T0 + 2 * HOUR
    queue(store, (event("a", EventType.STATUS_CHANGED, status="resolved"), "slack"), now=clock.now)
    drain.drain("slack")
    assert (slack.singles, slack.digests, hook.singles, hook.digests) == ([], [], [], [])
    clock.now = muted.ends_at or 0.0  # it ends by itself
    queue(store, (event("d", title="after"), "slack"), now=clock.now)
    drain.drain("slack"), drain.drain("hook")
    note = "While muted (4 h, by alice: 'deploy')"
    assert slack.digests == [(note, ["a", "b", "a"])]  # one digest, oldest first
    assert hook.digests == [(note, ["a"])]
    assert slack.singles == ["d"]  # what came after the silence goes after its digest
    assert store.held_entries() == []
    assert ("slack", "held") not in store.counts()
    kinds = [c.kind for c in store.story("a")]
    assert kinds.count("held") == 3
    assert kinds.count("released") == 3


def test_a_silence_expired_by_hand_sends_nothing(store: AnyStore) -> None:
    clock, slack = Clock(), Recorder("slack")
    muted = silence("status=ready")
    store.add_silence(muted)
    queue(store, (event("a"), "slack"))
    drain = deliverer(store, clock, slack)
    drain.drain("slack")
    clock.now += 60
    assert store.expire_silence(muted.id, clock.now)
    clock.now = T0 + 10 * HOUR  # long past its end too: by hand comes first
    drain.drain("slack")
    assert (slack.singles, slack.digests) == ([], [])
    dropped = store.entries("dropped")
    assert [e.event.report.id for e in dropped if isinstance(e.event, Event)] == ["a"]
    assert dropped[0].last_error == f"dropped: silence {muted.id} was expired by hand"
    assert [c.kind for c in store.story("a")] == ["found", "held", "dropped"]


def test_a_drop_silence_drops_at_once_and_counts(store: AnyStore) -> None:
    clock, slack = Clock(), Recorder("slack")
    muted = silence("report_id=a", drop=True)
    store.add_silence(muted)
    queue(store, (event("a"), "slack"), (event("b"), "slack"))
    drain = deliverer(store, clock, slack)
    drain.drain("slack")
    clock.now = T0 + 5 * HOUR
    drain.drain("slack")
    assert slack.singles == ["b"]
    assert slack.digests == []
    assert [e.event.report.id for e in store.entries("dropped") if isinstance(e.event, Event)] == [
        "a"
    ]
    kept = store.silence(muted.id)
    assert kept is not None
    assert kept.held == 1


def test_a_standing_silence_from_the_config_drops(store: AnyStore) -> None:
    clock, slack = Clock(), Recorder("slack")
    standing = replace(silence("project_id=1"), id="config:1", ends_at=None, drop=True)
    queue(store, (event("a"), "slack"))
    deliverer(store, clock, slack, standing=[standing]).drain("slack")
    assert slack.singles == []
    assert store.entries("dropped")[0].held_by == "silence:config:1"


def test_sink_and_rule_matchers_hold_per_sink(store: AnyStore) -> None:
    clock, slack, hook = Clock(), Recorder("slack"), Recorder("hook")
    store.add_silence(silence("sink=slack"))
    store.add_silence(silence("rule!=all"))  # every entry here is routed by "all": never holds
    queue(store, (event("a"), "slack"), (event("a"), "hook"))
    drain = deliverer(store, clock, slack, hook)
    drain.drain("slack"), drain.drain("hook")
    assert slack.singles == []
    assert hook.singles == ["a"]


def test_reminders_are_held_like_any_event(store: AnyStore) -> None:
    """A reminder is announced to people like a change: a silence on ``event=reminder`` (or on
    its ``rule``, ``reminder:<name>``) holds it."""
    clock, slack = Clock(), Recorder("slack")
    store.add_silence(silence("event=reminder"))
    reminded = Reminded("waiting", 1, 3, T0 - 86400, "pending_input", T0)
    reminder = replace(event("a"), id="evt_reminder", type=EventType.REMINDER, reminded=reminded)
    store.enqueue_event(reminder, "slack", ("reminder:waiting",), T0)
    queue(store, (event("b"), "slack"))
    deliverer(store, clock, slack).drain("slack")
    assert slack.singles == ["b"]
    assert [e.event.report.id for e in store.held_entries() if isinstance(e.event, Event)] == ["a"]


def test_notices_and_the_cards_answers_are_never_held(store: AnyStore) -> None:
    clock, slack = Clock(), Recorder("slack")
    store.add_silence(silence("report_id=~.*"))
    notice = Notice.create(
        NoticeKind.SINK_FAILING, sink="hook", error="HTTP 500", since=T0, at=T0, hint="look"
    )
    store.enqueue_notice(notice, ["slack"], T0)
    answered = replace(event("a"), acted=(Acted(ReportAction.ACKNOWLEDGE, "U1", "alice", T0),))
    store.enqueue_event(answered, "slack", ("all",), T0)
    queue(store, (event("b"), "slack"))
    deliverer(store, clock, slack).drain("slack")
    assert slack.singles == ["sink_failing", "a"]
    assert [e.event.report.id for e in store.held_entries() if isinstance(e.event, Event)] == ["b"]


def test_held_entries_survive_a_restart(state_settings: StateSettings) -> None:
    clock, slack = Clock(), Recorder("slack")
    first = open_store(state_settings)
    muted = silence("status=ready", hours=1)
    first.add_silence(muted)
    queue(first, (event("a"), "slack"))
    deliverer(first, clock, slack).drain("slack")
    first.close()
    assert slack.singles == []
    clock.now = T0 + 2 * HOUR
    second = open_store(state_settings)  # a new process: nothing remembered but the state
    try:
        deliverer(second, clock, slack).drain("slack")
        assert slack.digests == [("While muted (1 h, by alice: 'deploy')", ["a"])]
        assert second.counts() == {("slack", "delivered"): 1}
    finally:
        second.close()


def test_the_summary_counts_each_report_once_by_where_it_ended() -> None:
    events = [
        (event("a", EventType.STATUS_CHANGED, status="ready"), ()),
        (event("a", EventType.STATUS_CHANGED, status="resolved"), ()),
        (event("b", EventType.STATUS_CHANGED, status="resolved"), ()),
        (event("c", EventType.STATUS_CHANGED, status="resolved"), ()),
        (event("d"), ()),
        (event("d", EventType.STATUS_CHANGED, status="resolved"), ()),
        (event("e", EventType.UPDATED), ()),
    ]
    assert held_summary(events) == "3 reports resolved · 1 new · 1 updated"


def test_the_webhook_batch_says_it_was_held() -> None:
    when = datetime(2026, 12, 4, tzinfo=UTC)
    links = Links("https://us.posthog.com")
    plain = webhook_batch_payload([(event("a"), ("all",))], links, when)
    held = webhook_batch_payload([(event("a"), ("all",))], links, when, "While muted (x)")
    assert "held" not in plain["data"]
    assert held["data"]["held"] == "While muted (x)"
    assert held["data"]["events"] == plain["data"]["events"]


def test_after_the_digest_each_living_card_shows_where_its_report_is(
    posthog: FakePostHog, slack: FakeSlack, once: Callable[..., int], tmp_path: Path
) -> None:
    """End to end (real notifier, the fake Slack over TCP): a report resolved while muted is in
    the digest when the silence ends, and its living card is edited to Resolved with no reply
    in its thread (the digest said it)."""
    rules = "- {name: all, match: {event: [new, status_changed, updated]}, sinks: [slack]}"
    run = functools.partial(once, rules=rules, first_run="notify", max_wait=0)
    found = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert run() == 0
    (card,) = [m for m in slack.messages if m.via == "api"]
    store = open_store(StateSettings(path=tmp_path / "state.db"))
    now = time.time()
    store.add_silence(silence(f"project_id={PROJECT}", starts_at=now - 1, ends_at=now + 2))
    store.close()
    posthog.update_report(PROJECT, found["id"], status="resolved")
    assert run() == 0
    assert len(slack.messages) == 1  # held

    def digested() -> bool:
        run()
        return any("While muted" in (m.text or "") for m in slack.messages)

    wait_for(digested, 20, "the digest when the silence ends")
    edits = [m for m in slack.messages if m.method == "chat.update" and m.ts == card.ts]
    assert edits, slack.messages
    assert "Resolved" in json.dumps(edits[-1].blocks)
    assert [m for m in slack.messages if m.thread_ts == card.ts] == []
