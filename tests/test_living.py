"""Slack messages people act on, end to end: the real notifier (fake PostHog, real SQLite, the
real slack_sdk WebClient and httpx over TCP) against the fake Slack and webhook receiver.

One living message per report (posted once, then updated, with a thread of what changed), a
message deleted in Slack posted again and remembered across a restart, a flood as one digest or
one signed batch, Slack's pace (one post per second per channel, shared by the sinks; a 429
pauses the whole workspace), and a crash between a post and its record.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from notifier.config.settings import Settings, SlackSinkSettings, WebhookSinkSettings
from notifier.core.errors import StateError
from notifier.core.report import Links
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.sinks.registry import build_sinks
from notifier.sinks.slack.pace import Pacer, webhook_keys
from tests.factories import PROJECT, WEBHOOK_SECRET
from tests.fakes import FakeSlack, SlackMessage, WebhookReceiver

CHANNEL = "C0123456789"
OTHER_CHANNEL = "C0AAAAAAAA1"
EVERYTHING = "{event: [new, status_changed, updated, removed]}"
#: Arrival times are taken by the fake as requests come in; the pacer spaces posts from the
#: end of one to the start of the next, so this only absorbs clock granularity.
TOLERANCE = 0.05

Start = Callable[..., Notifier]


@pytest.fixture
def start(make_config: Callable[..., Path], load: Callable[[Path], Settings]) -> Iterator[Start]:
    """A notifier over the fakes (``first_run: notify``) whose sinks get the rule objects and a
    pacer (none by default: these tests count messages, except the pacing ones).
    ``broadcast``: rules whose thread replies go to the channel too; ``sinks``: settings to
    replace or add; ``route``: rule name → the sinks it sends to instead (sinks added here are
    unknown to the YAML); ``digest_after`` for every sink."""
    opened: list[Notifier] = []

    def make(
        rules: str,
        *,
        broadcast: tuple[str, ...] = (),
        sinks: dict[str, Any] | None = None,
        route: dict[str, tuple[str, ...]] | None = None,
        digest_after: int = 5,
        pacer: Pacer | None = None,
    ) -> Notifier:
        settings = load(make_config(rules=rules, first_run="notify", extra=NO_SELF_ALERTS))
        configured = {
            name: sink.model_copy(update={"digest_after": digest_after})
            if hasattr(sink, "digest_after")
            else sink
            for name, sink in {**settings.sinks, **(sinks or {})}.items()
        }
        rules = tuple(
            r.model_copy(
                update={
                    "reply_broadcast": r.name in broadcast,
                    "sinks": (route or {}).get(r.name, r.sinks),
                }
            )
            for r in settings.rules
        )
        settings = settings.model_copy(update={"sinks": configured, "rules": rules})
        built = build_sinks(
            settings.sinks,
            Links(settings.posthog.host),
            rules={rule.name: rule for rule in settings.rules},
            pacer=pacer if pacer is not None else Pacer(interval=0.0),
        )
        notifier = Notifier(settings, sinks=built)
        opened.append(notifier)
        return notifier

    yield make
    for notifier in opened:
        notifier.close()


NO_SELF_ALERTS = "self_alerts: {sinks: []}"


def cards(slack: FakeSlack) -> list[SlackMessage]:
    """Top-level messages posted through the Web API (not replies, not updates)."""
    return [
        m
        for m in slack.messages
        if m.via == "api" and m.method == "chat.postMessage" and m.thread_ts is None
    ]


def updates(slack: FakeSlack) -> list[SlackMessage]:
    return [m for m in slack.messages if m.method == "chat.update"]


def header(message: SlackMessage) -> str:
    assert message.blocks is not None
    return str(message.blocks[0]["text"]["text"])


def remembered(db: Path) -> list[tuple[str, int, str, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT sink, project_id, report_id, channel, ts FROM messages")
        return [tuple(row) for row in rows]


def test_a_report_is_one_message_updated_with_a_thread_of_its_changes(
    posthog: FakePostHog, slack: FakeSlack, start: Start, tmp_path: Path
) -> None:
    """candidate → in_progress → ready → resolved: ONE card, updated three times to the current
    state, and three thread replies saying what changed; only the change a `reply_broadcast`
    rule routes is broadcast. Each step is a fresh notifier (a restart): the card is
    remembered in the state file. The incoming webhook, which cannot edit, posts each event."""
    rules = f"""
    - {{name: progress, match: {EVERYTHING}, sinks: [slack, slack-hook]}}
    - {{name: ready, match: {{status: ready}}, sinks: [slack]}}
    """
    report = posthog.add_report(PROJECT, title="Checkout broken", status="candidate")
    for status in (None, "in_progress", "ready", "resolved"):
        if status is not None:
            posthog.update_report(PROJECT, report["id"], status=status)
        notifier = start(rules, broadcast=("ready",))
        assert notifier.once(max_wait=2) == 0
        notifier.close()

    [card] = cards(slack)
    assert card.channel_id == CHANNEL
    assert [m.ts for m in updates(slack)] == [card.ts] * 3
    replies = slack.replies(str(card.ts))
    assert [r.reply_broadcast for r in replies] == [False, True, False]
    assert "Still researching" in (replies[0].text or "")  # candidate → in_progress
    assert "🟡 Researching → 🟢 Ready for review" in (replies[1].text or "")
    assert "esearching" not in (replies[2].text or "")
    assert "Resolved" in (replies[2].text or "") or "Resolved" in json.dumps(replies[2].blocks)
    methods = [(m.method, m.thread_ts is not None) for m in slack.messages if m.via == "api"]
    assert (
        methods
        == [("chat.postMessage", False)]
        + [
            ("chat.update", False),
            ("chat.postMessage", True),
        ]
        * 3
    )  # the card is brought up to date before the thread says what changed
    now = slack.current(CHANNEL, str(card.ts))
    assert header(now).endswith("Resolved: Checkout broken")
    assert header(card).endswith(" Checkout broken")
    assert remembered(tmp_path / "state.db") == [
        ("slack", PROJECT, report["id"], CHANNEL, str(card.ts))
    ]
    assert len([m for m in slack.messages if m.via == "webhook"]) == 4


@pytest.mark.parametrize("gone", ["deleted", "cant_update_message"])
def test_a_message_that_cannot_be_updated_is_posted_again_and_remembered(
    posthog: FakePostHog, slack: FakeSlack, start: Start, tmp_path: Path, gone: str
) -> None:
    """A card deleted in Slack (chat.update: message_not_found) or too old to edit
    (cant_update_message) is replaced by a new card; the new ts is what a restarted notifier
    updates next."""
    rules = f"- {{name: all, match: {EVERYTHING}, sinks: [slack]}}"
    report = posthog.add_report(PROJECT, title="Flaky search", status="candidate")
    notifier = start(rules)
    assert notifier.once(max_wait=2) == 0
    [first] = cards(slack)
    if gone == "deleted":
        slack.delete(CHANNEL, str(first.ts))
    else:
        slack.fail_next("cant_update_message")
    posthog.update_report(PROJECT, report["id"], status="in_progress")
    assert notifier.once(max_wait=2) == 0
    notifier.close()
    _, second = cards(slack)
    assert second.ts != first.ts
    assert header(second).endswith("Flaky search")
    assert slack.replies(str(first.ts)) == slack.replies(str(second.ts)) == []
    assert remembered(tmp_path / "state.db")[0][-1] == second.ts

    posthog.update_report(PROJECT, report["id"], status="ready")
    restarted = start(rules)  # a new Store and Deliverer on the same file
    assert restarted.once(max_wait=2) == 0
    assert len(cards(slack)) == 2
    assert updates(slack)[-1].ts == second.ts
    [reply] = slack.replies(str(second.ts))
    assert "Ready for review" in (reply.text or "")


def test_forty_events_at_once_are_one_digest_and_one_signed_batch(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    start: Start,
    tmp_path: Path,
) -> None:
    """first_run: notify over 40 reports: Slack (bot and incoming webhook) gets one digest, the
    `batch: true` webhook one signal_report.batch payload (verified with standardwebhooks, the
    same webhook-id on its retry), every entry is delivered, and no living message is made."""
    for i in range(40):
        posthog.add_report(PROJECT, title=f"Report {i:02d}", status="ready")
    rules = f"- {{name: all, match: {EVERYTHING}, sinks: [slack, slack-hook, hook]}}"
    receiver.respond_next(503, headers={"Retry-After": "0"})
    notifier = start(rules, sinks={"hook": batch_hook(receiver)})
    assert notifier.once(max_wait=2) == 0

    [digest] = cards(slack)
    [hooked] = [m for m in slack.messages if m.via == "webhook"]
    for message in (digest, hooked):
        assert message.text == "40 signal report changes: 40 new"
        assert header(message) == "40 signal report changes"
        assert "and 20 more" in json.dumps(message.blocks)
    failed, batch = receiver.received
    assert failed.headers["webhook-id"] == batch.headers["webhook-id"]
    assert batch.headers["webhook-id"].startswith("batch_")
    payload = Webhook(WEBHOOK_SECRET).verify(batch.body, batch.headers)
    assert payload["type"] == "signal_report.batch"
    assert payload["data"]["count"] == 40
    titles = sorted(e["report"]["title"] for e in payload["data"]["events"])
    assert titles == [f"Report {i:02d}" for i in range(40)]
    assert {e["type"] for e in payload["data"]["events"]} == {"signal_report.new"}
    counts = notifier.store.counts()
    assert {sink: counts[(sink, "delivered")] for sink in ("slack", "slack-hook", "hook")} == {
        "slack": 40,
        "slack-hook": 40,
        "hook": 40,
    }
    assert remembered(tmp_path / "state.db") == []


def batch_hook(receiver: WebhookReceiver) -> WebhookSinkSettings:
    return WebhookSinkSettings(
        name="hook", url=receiver.url, secret=WEBHOOK_SECRET, timeout=2.0, batch=True
    )


def slack_sink(slack: FakeSlack, name: str, channel: str) -> SlackSinkSettings:
    return SlackSinkSettings(
        name=name, token=slack.token, channel=channel, api_url=slack.api_url, timeout=2.0
    )


def drain_together(notifier: Notifier, *names: str) -> None:
    """Each sink drained by its own thread at the same time, as the daemon does."""
    threads = [threading.Thread(target=notifier.deliverer.drain, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)


def test_one_channel_gets_at_most_one_post_per_second_from_every_sink(
    posthog: FakePostHog, slack: FakeSlack, start: Start
) -> None:
    """Two sinks posting to one channel from two threads share its pace: the channel never
    receives two posts (cards or replies) less than a second apart. A lower bound the pacer
    enforces, not a speed test; three posts keep it at about two seconds."""
    rules = """
    - {name: all, match: {event: [new, status_changed]}, sinks: [slack]}
    - {name: checkout, match: {title: {contains: Checkout}}, sinks: [hook]}
    """
    posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    posthog.add_report(PROJECT, title="Search slow", status="ready")
    notifier = start(
        rules,
        sinks={"also": slack_sink(slack, "also", CHANNEL)},
        route={"checkout": ("also",)},
        pacer=Pacer(interval=1.0),
    )
    assert notifier.poll(PROJECT) is not None
    drain_together(notifier, "slack", "also")
    arrivals = sorted(slack.arrivals(CHANNEL))
    assert len(arrivals) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= 1.0 - TOLERANCE, gaps
    assert notifier.store.counts()[("also", "delivered")] == 1


def test_a_429_pauses_every_sink_posting_to_that_workspace(
    posthog: FakePostHog, slack: FakeSlack, start: Start
) -> None:
    """Slack answers one sink 429 with Retry-After: 1. The other sink of the same workspace
    (same API URL and token, another channel) waits that second before it posts; the incoming
    webhook, another door into Slack, does not."""
    rules = f"- {{name: all, match: {EVERYTHING}, sinks: [slack]}}"
    posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    notifier = start(
        rules,
        sinks={"other": slack_sink(slack, "other", OTHER_CHANNEL)},
        route={"all": ("slack", "other", "slack-hook")},
    )
    assert notifier.poll(PROJECT) is not None
    slack.fail_next("ratelimited", retry_after=1)
    assert notifier.deliverer.drain("slack").retrying == 1
    [limited] = [c for c in slack.calls if c.status == 429]
    pacer = notifier.sinks["slack"]._pacer  # type: ignore[attr-defined]
    assert pacer is notifier.sinks["slack-hook"]._pacer  # type: ignore[attr-defined]
    assert pacer.paused_for(webhook_keys(slack.webhook_url)[1]) == 0  # another door: not paused
    assert notifier.deliverer.drain("slack-hook").delivered == 1
    assert notifier.deliverer.drain("other").delivered == 1
    [other] = slack.arrivals(OTHER_CHANNEL)
    [hook] = slack.arrivals(FakeSlack.webhook_channel)
    assert other - limited.received_at >= 1.0 - TOLERANCE
    assert hook < other  # it went first, while the bot sinks' workspace was paused


def test_a_crash_between_post_and_record_keeps_at_least_once_and_the_message(
    posthog: FakePostHog, slack: FakeSlack, start: Start, tmp_path: Path
) -> None:
    """The `delivered` mark fails after Slack accepted (the store fails, as on a full disk):
    the same notifier records it later without posting again, the new card included; a
    restart in between sends the entry again (at least once: the card updated again and a
    second reply) into the same remembered message, never a second card."""
    db = tmp_path / "state.db"
    rules = f"- {{name: all, match: {EVERYTHING}, sinks: [slack]}}"
    report = posthog.add_report(PROJECT, title="Checkout broken", status="candidate")
    notifier = start(rules)
    assert notifier.poll(PROJECT) is not None
    fail_marks(db)
    with pytest.raises(StateError, match="cannot record a delivery"):
        notifier.deliverer.drain("slack")
    [card] = cards(slack)
    assert remembered(db) == []
    heal(db)
    assert notifier.deliverer.drain("slack").delivered == 1  # recorded, not posted again
    assert len(slack.messages) == 1
    assert remembered(db) == [("slack", PROJECT, report["id"], CHANNEL, str(card.ts))]

    posthog.update_report(PROJECT, report["id"], status="in_progress")
    assert notifier.poll(PROJECT) is not None
    fail_marks(db)
    with pytest.raises(StateError):
        notifier.deliverer.drain("slack")
    notifier.close()  # the crash: what was accepted but not recorded is forgotten
    heal(db)
    restarted = start(rules)
    assert restarted.deliverer.drain("slack").delivered == 1
    assert cards(slack) == [card]
    assert [m.ts for m in updates(slack)] == [card.ts, card.ts]
    first, again = slack.replies(str(card.ts))
    assert first.text == again.text
    assert remembered(db) == [("slack", PROJECT, report["id"], CHANNEL, str(card.ts))]
    assert restarted.store.counts() == {("slack", "delivered"): 2}


def fail_marks(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER fail_marks BEFORE UPDATE ON outbox "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END"
        )


def heal(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER fail_marks")
