"""Reminders (issue 15, item 3): a report that stays where a ``reminders:`` entry watches for
it is announced again ``after`` the event that put it there, then every ``every``, at most
``max`` times; any move stops them, and they survive restarts (the rows live in the state and
are written by the cycle commit). On a living Slack card a reminder is a thread reply shown in
the channel (a bump), never a second card.

The planning is pure (``core.reminders``); the cycle tests run the real cycle — the real
PostHog client against the fake PostHog over TCP, ``plan_cycle``, ``remind_plan`` and the
commit — on a real SQLite file and a real PostgreSQL database, with the cycle's clock given by
the test and the store reopened between cycles.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError
from notifier.core.events import Event, EventType, Reminded
from notifier.core.reminders import Tracked, Watch, plan_reminders
from notifier.core.rules import Condition, Match, Op
from notifier.cycle.pipeline import commit, plan_cycle
from notifier.cycle.reminders import remind_plan
from notifier.demo.simulator import FakePostHog
from notifier.posthog.client import PostHogClient
from notifier.render.text import headline
from notifier.render.thread import thread_reply
from notifier.render.webhook import webhook_payload
from notifier.state.store import open_store
from tests.factories import API_KEY, LINKS, PROJECT, World, report
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import cli, wait_for

HOUR = 3600.0
DAY = 24 * HOUR
T0 = 1_800_000_000.0
REMINDERS = """
reminders:
  - name: waiting
    match: {status: pending_input}
    after: 24h
    every: 12h
    max: 2
    sinks: [slack, hook]
"""
PENDING = Match(conditions=(Condition("status", Op.EQ, "pending_input"),))
WAITING = Watch("waiting", PENDING, after=DAY, every=12 * HOUR, max=2, sinks=("slack",))


def changed(rid: str, status: str, kind: EventType = EventType.STATUS_CHANGED) -> Event:
    previous = None if kind is EventType.NEW else report(id=rid, status="in_progress")
    after = report(id=rid, status=status)
    changes = {"status": ("in_progress", status)} if kind is EventType.STATUS_CHANGED else {}
    return Event.create(kind, 1, after, previous, changes)


class Plans:
    """``plan_reminders`` over time, its rows carried from one call to the next."""

    def __init__(self, *watches: Watch) -> None:
        self.watches = watches
        self.rows: dict[tuple[str, str], Tracked] = {}
        self.reports = {"a": report(id="a", status="pending_input")}

    def at(self, now: float, *events: Event) -> list[Event]:
        for event in events:
            self.reports[event.report.id] = event.report
        plan = plan_reminders(
            1,
            events=events,
            rows=list(self.rows.values()),
            reports=self.reports,
            watches=self.watches,
            now=now,
        )
        for key in plan.deletes:
            del self.rows[key]
        self.rows |= {row.key: row for row in plan.upserts}
        return [event for event, _sink, _rules in plan.outbox]


def test_after_then_every_at_most_max() -> None:
    plans = Plans(WAITING)
    assert plans.at(T0, changed("a", "pending_input")) == []
    assert plans.at(T0 + DAY - 1) == []
    (first,) = plans.at(T0 + DAY)
    assert first.type is EventType.REMINDER
    assert first.reminded == Reminded("waiting", 1, 2, T0, "pending_input", T0 + DAY)
    assert plans.at(T0 + DAY + 12 * HOUR - 1) == []
    (second,) = plans.at(T0 + DAY + 12 * HOUR)
    assert second.reminded is not None
    assert second.reminded.count == 2
    assert second.id != first.id
    assert plans.at(T0 + 30 * DAY) == []  # max reached: it waits for the report to move
    assert plans.rows[("a", "waiting")].next_at is None


def test_a_move_stops_it_and_a_new_matching_status_starts_a_new_count() -> None:
    plans = Plans(WAITING)
    plans.at(T0, changed("a", "pending_input"))
    assert len(plans.at(T0 + DAY)) == 1
    assert plans.at(T0 + DAY + HOUR, changed("a", "ready")) == []
    assert plans.rows == {}
    assert plans.at(T0 + 10 * DAY) == []
    plans.at(T0 + 11 * DAY, changed("a", "pending_input"))
    assert plans.at(T0 + 12 * DAY - 1) == []
    (again,) = plans.at(T0 + 12 * DAY)
    assert again.reminded is not None
    assert (again.reminded.count, again.reminded.since) == (1, T0 + 11 * DAY)


def test_an_update_in_the_same_status_keeps_the_clock_and_removal_forgets() -> None:
    plans = Plans(WAITING)
    plans.at(T0, changed("a", "pending_input"))
    plans.at(T0 + HOUR, changed("a", "pending_input", EventType.UPDATED))
    assert plans.rows[("a", "waiting")].since == T0
    assert len(plans.at(T0 + DAY)) == 1
    plans.at(T0 + DAY + 1, Event.create(EventType.REMOVED, 1, plans.reports["a"], None, {}))
    assert plans.rows == {}


def test_a_reminder_no_longer_configured_ends_when_due() -> None:
    plans = Plans(WAITING)
    plans.at(T0, changed("a", "pending_input"))
    plans.watches = ()
    assert plans.at(T0 + DAY) == []
    assert plans.rows == {}


def test_words_everywhere() -> None:
    event = Plans(WAITING)
    event.at(T0, changed("a", "pending_input"))
    (reminder,) = event.at(T0 + DAY)
    assert headline(reminder) == "Reminder 1 of 2: still needs your input after 1 d"
    reply = thread_reply(reminder, ("reminder:waiting",), LINKS)
    assert "⏰ *Reminder 1 of 2: still needs your input after 1 d*" in json.dumps(
        reply.blocks, ensure_ascii=False
    )
    payload = webhook_payload(reminder, ("reminder:waiting",), LINKS, reminder_time())
    assert payload["type"] == "signal_report.reminder"
    assert payload["data"]["reminder"]["count"] == 1
    assert Event.from_json(reminder.to_json()).reminded == reminder.reminded


def reminder_time() -> object:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(T0 + DAY, UTC)


# -- the configuration --------------------------------------------------------------------------

HEAD = """posthog:
  host: https://us.posthog.com
  api_key: ${POSTHOG_PERSONAL_API_KEY}
  project_ids: [1]
sinks:
  out: {type: console}
rules:
  - {name: all, sinks: [out]}
"""


def test_the_config_reads_reminders_and_reports_every_problem_at_once() -> None:
    good = HEAD + REMINDERS.replace("[slack, hook]", "[out]")
    settings = parse_config(good, source="c.yaml", env={"POSTHOG_PERSONAL_API_KEY": API_KEY})
    (watch,) = settings.watches()
    assert (watch.after, watch.every, watch.max, watch.sinks) == (DAY, 12 * HOUR, 2, ("out",))
    bad = (
        HEAD
        + REMINDERS
        + """  - name: waiting
    match: {event: new}
    after: 0s
    max: 0
    sinks: out
  - name: no-match
    after: 1h
    sinks: [out]
"""
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(bad, source="c.yaml", env={"POSTHOG_PERSONAL_API_KEY": API_KEY})
    said = "\n".join(caught.value.problems)
    for expected in (
        "reminders[0].sinks[0]",
        "unknown sink 'slack'",
        "duplicate reminder name 'waiting'",
        "reminders[1].match.event",
        "reminders[1].after",
        "reminders[1].max",
        "reminders[2].match",
    ):
        assert expected in said, said


# -- the real cycle, a clock in the test's hands, restarts between cycles -----------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(
    request: pytest.FixtureRequest,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    tmp_path: Path,
) -> Settings:
    state = (
        f"path: {tmp_path / 'state.db'}"
        if request.param == "sqlite"
        else f"url: {request.getfixturevalue('postgres_url')}"
    )
    return load(make_config(extra=REMINDERS, state=state))


@pytest.fixture
def source(settings: Settings) -> Iterator[PostHogClient]:
    client = PostHogClient(settings.posthog)
    yield client
    client.close()


def cycle(settings: Settings, source: PostHogClient, now: float) -> list[tuple[str, str]]:
    """One cycle in a new process (a store opened for it alone); the reminders it queued as
    (report id, sink)."""
    store = open_store(settings.state)
    try:
        plan = plan_cycle(
            PROJECT,
            source=source,
            store=store,
            rules=settings.rules,
            first_run=settings.first_run,
            now=now,
        )
        plan = remind_plan(plan, store, settings.watches(), now)
        commit(plan, store)
        return [
            (event.report.id, sink)
            for event, sink, _ in plan.write.outbox
            if event.type is EventType.REMINDER
        ]
    finally:
        store.close()


def test_the_cycle_reminds_across_restarts_and_stops_when_the_report_moves(
    posthog: FakePostHog, settings: Settings, source: PostHogClient
) -> None:
    assert cycle(settings, source, T0) == []  # the baseline
    stuck = posthog.add_report(PROJECT, title="Needs a decision", status="pending_input")
    other = posthog.add_report(PROJECT, title="Researching", status="in_progress")
    assert cycle(settings, source, T0 + 60) == []  # found: followed from now
    assert cycle(settings, source, T0 + 60 + DAY - 1) == []
    at_due = cycle(settings, source, T0 + 60 + DAY)
    assert at_due == [(stuck["id"], "slack"), (stuck["id"], "hook")]
    assert cycle(settings, source, T0 + 60 + DAY + 1) == []  # once per due time
    assert cycle(settings, source, T0 + 60 + DAY + 12 * HOUR) == [
        (stuck["id"], "slack"),
        (stuck["id"], "hook"),
    ]
    assert cycle(settings, source, T0 + 60 + 10 * DAY) == []  # max: 2
    posthog.update_report(PROJECT, stuck["id"], status="ready")
    posthog.update_report(PROJECT, other["id"], status="pending_input")
    assert cycle(settings, source, T0 + 11 * DAY) == []
    assert cycle(settings, source, T0 + 12 * DAY) == [(other["id"], "slack"), (other["id"], "hook")]
    store = open_store(settings.state)
    try:
        assert [(r.report_id, r.sent) for r in store.reminders()] == [(other["id"], 1)]
        told = [(c.kind, c.detail.get("count")) for c in store.story(stuck["id"])]
        assert [t for t in told if t[0] == "reminded"] == [("reminded", 1), ("reminded", 2)]
        (first,) = [c for c in store.story(stuck["id"]) if c.kind == "reminded"][:1]
        assert first.detail["sinks"] == ["slack", "hook"]
    finally:
        store.close()


# -- end to end: a living Slack card gets a thread reply and a bump ------------------------------


def test_a_living_card_gets_a_thread_reply_and_a_bump(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    once: Callable[..., int],
) -> None:
    quick = functools.partial(
        once,
        extra=REMINDERS.replace("24h", "1s").replace("12h", "1s"),
        max_wait=0,
    )
    assert quick() == 0
    stuck = posthog.add_report(PROJECT, title="Needs a decision", status="pending_input")
    assert quick() == 0
    (card,) = [m for m in slack.messages if m.via == "api"]
    assert card.thread_ts is None

    def replies() -> list[object]:
        quick()
        return [m for m in slack.messages if m.thread_ts == card.ts]

    wait_for(lambda: len(replies()) == 2, 30, "two reminders in the card's thread")
    for _ in range(3):
        quick()
    bumps = [m for m in slack.messages if m.thread_ts == card.ts]
    assert len(bumps) == 2  # max: 2
    assert all(m.reply_broadcast for m in bumps)
    assert "Reminder 1 of 2" in (bumps[0].text or "")
    assert len([m for m in slack.messages if m.thread_ts is None and m.via == "api"]) == 1
    types = [json.loads(r.body)["type"] for r in receiver.received]
    assert types.count("signal_report.reminder") == 2
    assert all(r.headers.get("webhook-id") for r in receiver.received)
    assert stuck["id"]


def test_dry_run_shows_the_reminders_due_and_sends_none(world: World) -> None:
    """`notifier dry-run` lists the reminders due now with what each sink would get, and
    writes nothing: the next real cycle still sends them."""
    extra = REMINDERS.replace("24h", "1s").replace("12h", "1h")
    config = world.make_config(extra=extra)
    assert cli("once", "--max-wait", "0", "-c", str(config), env=world.env).returncode == 0
    stuck = world.posthog.add_report(PROJECT, title="Needs a decision", status="pending_input")
    assert cli("once", "--max-wait", "0", "-c", str(config), env=world.env).returncode == 0
    sent = len(world.slack.messages)

    def planned() -> str:
        return cli("dry-run", "-c", str(config), env=world.env).stdout

    wait_for(lambda: "1 reminder due:" in planned(), 20, "the reminder due in dry-run")
    out = planned()
    assert "Reminder 1 of 2: still needs your input after" in out
    assert "  → slack (slack) by reminder:waiting\n" in out
    assert "  → hook (webhook) by reminder:waiting\n" in out
    assert stuck["id"] in out
    assert len(world.slack.messages) == sent
    assert cli("once", "--max-wait", "0", "-c", str(config), env=world.env).returncode == 0
    assert len([m for m in world.slack.messages if m.reply_broadcast]) == 1
