""" "Mute 4 h" on the Slack card (issue 15, item 1): a click makes a silence of that report —
``report_id=… project_id=…``, 4 hours, by the clicker, "muted from Slack" — and writes nothing
to PostHog; a double click or Slack's redelivery makes no second silence; the card and its
thread say who muted it and how to undo it; and what the report does meanwhile is held.

End to end through the running notifier (the fake Slack's Socket Mode, real SQLite), then the
real ``ActionHandler`` and ``Deliverer`` on both backends (a real SQLite file and a real
PostgreSQL database) with a clock moved by hand.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from notifier.config.settings import PostHogSettings, StateSettings
from notifier.core.actions import ReportAction
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.silences import Silence, parse_matcher
from notifier.delivery.drain import Deliverer
from notifier.delivery.holds import Holds
from notifier.demo.simulator import FakePostHog
from notifier.interact.handler import ActionHandler
from notifier.posthog.client import PostHogClient
from notifier.state.records import SnapshotRow
from notifier.state.store import CycleWrite, PostgresStore, Store, open_store
from tests.factories import API_KEY, PROJECT, block_actions_payload, report
from tests.fakes import FakeSlack
from tests.helpers import wait_for
from tests.holding import SETTINGS, T0, Clock
from tests.test_slack_actions import (
    card_of,
    click,
    daemon,  # noqa: F401 - the fixture
    text_of,
    thread,
    top_cards,
)

AnyStore = Store | PostgresStore
HOURS_4 = 4 * 3600.0
EVERYTHING = "- {name: all, match: {event: [new, status_changed, updated]}, sinks: [slack]}"


# --------------------------------------------------------------------------- end to end


def test_mute_from_the_card_makes_one_silence_and_holds_the_report(
    daemon: Callable[..., Any],  # noqa: F811 - the fixture imported above
    posthog: FakePostHog,
    slack: FakeSlack,
) -> None:
    ready = posthog.add_report(PROJECT, title="Pricing toggle confuses", status="ready")
    with daemon(rules=EVERYTHING) as notifier:
        wait_for(lambda: len(top_cards(slack)) == 1, 10, "the card")
        first = click(slack, ReportAction.MUTE)
        slack.click(first)  # Slack's redelivery of the very same payload
        click(slack, ReportAction.MUTE, user="U0BOB", name="bob", answer="bob")
        wait_for(lambda: "Muted for 4 h by <@U0" in text_of(card_of(slack)), 10, "the card")
        wait_for(lambda: len(slack.responses) == 2, 10, "the other two told")
        [muted] = notifier.store.silences(time.time())
        winner = muted.author
        wait_for(lambda: any(muted.id in text_of(m) for m in thread(slack)), 10, "the reply")
        [reply] = [m for m in thread(slack) if muted.id in text_of(m)]
        assert f"`notifier silence expire {muted.id}` to undo" in text_of(reply)
        posthog.update_report(PROJECT, ready["id"], total_weight=9.5, signal_count=40)
        held = [f"silence:{muted.id}"]
        wait_for(lambda: notifier.store.held_keys("slack") == held, 10, "the update held")
        assert "40 signals" not in text_of(card_of(slack))
        [record] = notifier.store.actions(report_id=ready["id"])
    assert winner in ("alice", "bob")
    assert muted.matchers_text() == f"report_id={ready['id']}, project_id={PROJECT}"
    assert (muted.comment, muted.drop, muted.ends_at) == (
        "muted from Slack",
        False,
        muted.starts_at + HOURS_4,
    )
    assert (record.action, record.outcome, record.user_name) == (ReportAction.MUTE, "done", winner)
    assert record.detail == f"silence {muted.id} for 4 h"
    told = [body["text"] for _, body in slack.responses]
    assert all(winner in text for text in told), told
    assert posthog.writes == []
    assert [r for r in posthog.requests if r.method == "POST"] == []


# --------------------------------------------------------------------------- both backends


@pytest.fixture
def store(state_settings: StateSettings) -> Iterator[AnyStore]:
    s = open_store(state_settings)
    s.commit_cycle(
        CycleWrite(
            1, [SnapshotRow(report(id="a", title="Checkout", status="ready"), True)], [], [], T0
        )
    )
    yield s
    s.close()


class Sink:
    """Records the deliveries that reach it, one by one or as a digest."""

    digest_after = 100

    def __init__(self) -> None:
        self.name = "slack"
        self.singles: list[Delivery] = []
        self.digests: list[list[Delivery]] = []

    def send(self, delivery: Delivery) -> None:
        self.singles.append(delivery)

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        self.digests.append(list(deliveries))

    def close(self) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def handler(store: AnyStore, posthog: FakePostHog, clock: Clock) -> Iterator[ActionHandler]:
    config = PostHogSettings(
        host=posthog.url, api_key=SecretStr(API_KEY), project_ids=(1,), timeout=2.0
    )
    made = ActionHandler(
        source=PostHogClient(config),
        store=store,
        owner_of=lambda _click: "slack",
        allowed=lambda _user: True,
        wake=lambda _sink: None,
        clock=clock,
    )
    yield made
    made.close()


def mute_payload(slack: FakeSlack, user: str = "alice", at: float = T0) -> dict[str, Any]:
    payload = block_actions_payload(
        "report.mute",
        "ra1|1|a|ready",
        user_id=f"U0{user.upper()}",
        user_name=user,
        response_url=slack.response_url(user),
    )
    payload["actions"][0]["action_ts"] = f"{at:.6f}"
    return payload


def update(rid: str) -> Event:
    return Event.create(EventType.UPDATED, 1, report(id=rid, title=f"Report {rid}"), None, {})


def test_a_mute_holds_the_report_then_its_digest_comes_when_it_ends(
    store: AnyStore, handler: ActionHandler, slack: FakeSlack, posthog: FakePostHog, clock: Clock
) -> None:
    """The card's answer goes out (it shows a decision), the report's next event is held, an
    other report's is not; 4 h later the held event comes as the silence's digest."""
    handler(mute_payload(slack))
    handler(mute_payload(slack))  # redelivered
    handler(mute_payload(slack, "bob", at=T0 + 2))  # a second person, same window
    [muted] = store.silences(T0)
    assert muted.matchers_text() == "report_id=a, project_id=1"
    assert (muted.author, muted.comment) == ("alice", "muted from Slack")
    assert (muted.starts_at, muted.ends_at) == (T0, T0 + HOURS_4)
    assert [name for name, _ in slack.responses] == ["alice", "bob"]
    assert all(
        f"Already muted by alice (silence {muted.id})" in b["text"] for _, b in slack.responses
    )
    assert posthog.requests == []  # the card is drawn from the state's copy: PostHog not asked
    store.commit_cycle(
        CycleWrite(
            1, [], [], [(update("a"), "slack", ("all",)), (update("b"), "slack", ("all",))], T0
        )
    )
    sink = Sink()
    deliverer = Deliverer(store, {"slack": sink}, SETTINGS, clock=clock, holds=Holds(store))
    deliverer.drain("slack")
    [answer, other] = sink.singles
    assert isinstance(answer.event, Event)
    assert isinstance(other.event, Event)
    assert [a.silence_id for a in answer.event.acted] == [muted.id]
    assert (answer.event.report.id, answer.event.report.title) == ("a", "Checkout")
    assert other.event.report.id == "b"
    assert store.held_keys("slack") == [f"silence:{muted.id}"]
    clock.now = T0 + HOURS_4
    deliverer.drain("slack")
    [digest] = sink.digests
    assert [d.event.report.id for d in digest if isinstance(d.event, Event)] == ["a"]
    assert digest[0].held == "While muted (4 h, by alice: 'muted from Slack')"


def test_a_report_already_muted_is_not_muted_twice_and_a_later_click_mutes_again(
    store: AnyStore, handler: ActionHandler, slack: FakeSlack, clock: Clock
) -> None:
    """A silence of the report added by hand answers the click (no second silence, no card
    update); the same card clicked once that silence is over makes a new one."""
    by_hand = Silence(
        id="sil_0000000000aa",
        matchers=(parse_matcher("report_id=a"),),
        starts_at=T0 - 60,
        ends_at=T0 + 3600,
        author="carol",
        comment="deploy",
    )
    store.add_silence(by_hand)
    handler(mute_payload(slack))
    assert [s.id for s in store.silences(T0)] == [by_hand.id]
    [(_, body)] = slack.responses
    assert body["text"] == (
        "Already muted by carol (silence sil_0000000000aa); "
        "`notifier silence expire sil_0000000000aa` to undo."
    )
    assert store.pending("slack") == []
    [record] = store.actions(report_id="a")
    assert (record.outcome, record.detail) == ("done", "already muted by silence sil_0000000000aa")
    clock.now = T0 + HOURS_4 + 1
    handler(mute_payload(slack, at=clock.now))
    active = [s for s in store.silences(clock.now) if s.active(clock.now)]
    assert [(s.author, s.starts_at) for s in active] == [("alice", clock.now)]
    assert len(store.pending("slack")) == 1  # the card's answer


def test_a_mute_the_state_cannot_record_mutes_nothing_and_says_so(
    tmp_path: Path, posthog: FakePostHog, slack: FakeSlack, clock: Clock
) -> None:
    """The state refusing the silence (a full disk): the clicker is told to try again, and
    the next click — once the state takes writes — mutes (the failed claim is taken over)."""
    db = tmp_path / "notifier.db"
    store = open_store(StateSettings(path=db))
    config = PostHogSettings(
        host=posthog.url, api_key=SecretStr(API_KEY), project_ids=(1,), timeout=2.0
    )
    handler = ActionHandler(
        source=PostHogClient(config),
        store=store,
        owner_of=lambda _click: None,  # not a card of ours any more: the clicker is told
        allowed=lambda _user: True,
        wake=lambda _sink: None,
        clock=clock,
    )
    try:
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TRIGGER full_disk BEFORE INSERT ON silences "
                "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
            )
        handler(mute_payload(slack))
        assert store.silences(T0) == []
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TRIGGER full_disk")
        handler(mute_payload(slack))
        [muted] = store.silences(T0)
    finally:
        handler.close()
        store.close()
    first, second = (body["text"] for _, body in slack.responses)
    assert "nothing was muted. Try again in a minute" in first
    assert second == (
        f"Muted for 4 h by alice (silence {muted.id}); "
        f"`notifier silence expire {muted.id}` to undo."
    )
