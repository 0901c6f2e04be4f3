"""Settling re-research (``poll.settle``): a report PostHog sends back from an announced status
(ready, pending_input, resolved) into research is held; a flap that comes back says nothing (or
one ``updated`` when what a person reads changed); one that stays is announced once after
``settle``; forward moves are never held; reopened and restored reports have their own words.

Real notifiers against the fake PostHog, Slack and webhook receiver over TCP; the state in a
real SQLite file and (``BOTH``) a real PostgreSQL database. Each ``once()`` is a new Notifier
on the same state: every step of a flap is a restart in the middle of it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notifier.cli.shared import EXIT_OK
from notifier.config.settings import Settings
from notifier.core.events import Event, EventType
from notifier.core.report import Report
from notifier.core.settle import Held, settle
from notifier.core.words import status_name
from notifier.demo.simulator import FakePostHog
from notifier.render.digest import digest_line
from notifier.render.slack import slack_message
from notifier.render.text import headline
from notifier.render.thread import thread_reply
from notifier.state.store import PostgresStore, open_store
from tests.factories import LINKS, PROJECT, World
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import cli, wait_for

Once = Callable[..., int]

#: one message per event per sink: the incoming webhook (Slack) and the signed webhook
RULES = """
- name: everything
  match: {event: [new, status_changed, updated, removed]}
  sinks: [slack-hook, hook]
"""


@pytest.fixture
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The config's state section: a SQLite file, or (``BOTH``) a PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


BOTH = pytest.mark.parametrize("state", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def once(once: Once, state: str) -> Once:
    """A new Notifier on the test's state, polling once and delivering (conftest's ``once``)."""
    return functools.partial(once, state=state, rules=RULES, max_wait=0)


def hooks(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """The webhook bodies received: ``{"type": "signal_report.…", "data": {...}}``."""
    return [json.loads(r.body) for r in receiver.received]


def kinds(receiver: WebhookReceiver) -> list[str]:
    return [str(body["type"]).removeprefix("signal_report.") for body in hooks(receiver)]


def sent(slack: FakeSlack, receiver: WebhookReceiver) -> tuple[int, int]:
    """Messages per sink: (Slack incoming webhook, signed webhook)."""
    return len([m for m in slack.messages if m.via == "webhook"]), len(receiver.received)


def step(posthog: FakePostHog, once: Once, report_id: str, **fields: Any) -> None:
    posthog.update_report(PROJECT, report_id, **fields)
    assert once() == 0


# -- the flap ---------------------------------------------------------------------------------


@BOTH
def test_a_flap_within_settle_sends_nothing(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """ready → candidate → in_progress → ready, with a restart between every step (default
    settle, 15 minutes): nothing at all is sent, and no hold is left behind."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once() == 0  # baseline
    for status in ("candidate", "in_progress", "ready"):
        step(posthog, once, report["id"], status=status, total_weight=2.0)
        assert sent(slack, receiver) == (0, 0), status
    assert once() == 0
    assert sent(slack, receiver) == (0, 0)


@BOTH
def test_a_flap_that_changed_the_title_sends_one_updated_per_sink(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """Re-research renamed the report: when it is back in ready, one ``updated`` per sink, from
    the copy people last heard about (ready, old title) to the new one; across restarts."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once() == 0
    step(posthog, once, report["id"], status="candidate")
    step(posthog, once, report["id"], status="in_progress", title="Checkout fails on Safari 17")
    assert sent(slack, receiver) == (0, 0)
    step(posthog, once, report["id"], status="ready")
    assert sent(slack, receiver) == (1, 1)
    body = hooks(receiver)[0]
    assert body["type"] == "signal_report.updated"
    assert body["data"]["changes"] == {  # type: ignore[index]
        "title": ["Checkout broken", "Checkout fails on Safari 17"]
    }
    assert body["data"]["previous"]["status"] == "ready"  # type: ignore[index]
    assert once() == 0
    assert sent(slack, receiver) == (1, 1)


def test_a_report_staying_in_research_past_settle_is_announced_once(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """settle 1s: held first, then one status_changed from ready to where it is by then; later
    cycles add nothing; its return to ready is a forward move, sent at once."""
    quick = functools.partial(once, poll_extra="settle: 1s")
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert quick() == 0
    posthog.update_report(PROJECT, report["id"], status="candidate")
    posthog.update_report(PROJECT, report["id"], status="in_progress")
    assert quick() == 0
    wait_for(lambda: quick() == 0 and receiver.received, 20, "the held change announced")
    assert kinds(receiver) == ["status_changed"]
    assert hooks(receiver)[0]["data"]["changes"]["status"] == ["ready", "in_progress"]
    assert quick() == 0
    assert sent(slack, receiver) == (1, 1)
    step(posthog, quick, report["id"], status="ready")
    assert kinds(receiver) == ["status_changed", "status_changed"]
    assert hooks(receiver)[1]["data"]["changes"]["status"] == ["in_progress", "ready"]


def test_forward_moves_are_never_held(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """candidate → in_progress → ready → resolved: each announced in its own cycle."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="candidate")
    assert once() == 0
    for number, status in enumerate(("in_progress", "ready", "resolved"), 1):
        step(posthog, once, report["id"], status=status)
        assert sent(slack, receiver) == (number, number), status
    moves = [body["data"]["changes"]["status"] for body in hooks(receiver)]
    assert moves == [["candidate", "in_progress"], ["in_progress", "ready"], ["ready", "resolved"]]


@pytest.mark.parametrize("end", ["pending_input", "failed", "suppressed"])
def test_a_held_report_that_moves_elsewhere_is_announced_at_once(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once, end: str
) -> None:
    """Held in research, then anything but research or its announced status: one
    status_changed from the announced status, in that cycle."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once() == 0
    step(posthog, once, report["id"], status="candidate")
    assert sent(slack, receiver) == (0, 0)
    step(posthog, once, report["id"], status=end)
    assert sent(slack, receiver) == (1, 1)
    assert hooks(receiver)[0]["data"]["changes"]["status"] == ["ready", end]


def test_a_held_report_that_is_removed_is_announced_at_once(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once() == 0
    step(posthog, once, report["id"], status="candidate")
    posthog.delete_report(PROJECT, report["id"])
    assert once() == 0
    assert kinds(receiver) == ["removed"]
    assert sent(slack, receiver) == (1, 1)
    assert once() == 0
    assert sent(slack, receiver) == (1, 1)


def test_settle_0_holds_nothing(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    off = functools.partial(once, poll_extra="settle: 0s")
    assert off() == 0
    for status in ("candidate", "in_progress", "ready"):
        step(posthog, off, report["id"], status=status)
    assert kinds(receiver) == ["status_changed"] * 3


# -- reopened and restored --------------------------------------------------------------------


def test_a_reopen_is_held_then_announced_as_reopened(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """resolved → potential is a move back: held; past settle, one "Reopened" status_changed
    (the event type rules match is unchanged)."""
    quick = functools.partial(once, poll_extra="settle: 1s")
    report = posthog.add_report(PROJECT, title="Checkout broken", status="resolved")
    assert quick() == 0
    step(posthog, quick, report["id"], status="potential")
    wait_for(lambda: quick() == 0 and receiver.received, 20, "the reopen announced")
    assert kinds(receiver) == ["status_changed"]
    [message] = [m for m in slack.messages if m.via == "webhook"]
    assert "Reopened: Resolved → Researching" in (message.text or "")
    assert "Reopened" in json.dumps(message.blocks)


def test_a_reopen_that_research_finishes_within_settle_is_one_reopened_message(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """resolved → potential → candidate → ready within settle: one "Reopened: resolved →
    ready" when it is ready, nothing before; reopened and resolved again: nothing."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="resolved")
    again = posthog.add_report(PROJECT, title="Login slow", status="resolved")
    assert once() == 0
    for status in ("potential", "candidate"):
        step(posthog, once, report["id"], status=status)
    step(posthog, once, again["id"], status="potential")
    assert sent(slack, receiver) == (0, 0)
    step(posthog, once, again["id"], status="resolved")
    step(posthog, once, report["id"], status="ready")
    assert sent(slack, receiver) == (1, 1)
    assert hooks(receiver)[0]["data"]["changes"]["status"] == ["resolved", "ready"]
    [message] = [m for m in slack.messages if m.via == "webhook"]
    assert "Reopened: Resolved → Ready for review" in (message.text or "")


def test_a_restored_report_is_announced_as_restored(
    posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver, once: Once
) -> None:
    """suppressed → ready is not held (suppressed was never 'announced' as live): sent at
    once, worded "Restored"."""
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once() == 0
    step(posthog, once, report["id"], status="suppressed")
    step(posthog, once, report["id"], status="ready")
    assert [body["data"]["changes"]["status"] for body in hooks(receiver)] == [
        ["ready", "suppressed"],
        ["suppressed", "ready"],
    ]
    restored = [m for m in slack.messages if m.via == "webhook"][-1]
    assert "Restored: Dismissed → Ready for review" in (restored.text or "")


def _moved(before: str, after: str) -> Event:
    old = Report.from_api({"id": "r1", "status": before, "title": "Checkout broken"})
    new = Report.from_api({"id": "r1", "status": after, "title": "Checkout broken"})
    return Event.create(EventType.STATUS_CHANGED, 1, new, old, {"status": (before, after)})


@pytest.mark.parametrize(
    ("before", "after", "word"),
    [
        ("resolved", "potential", "Reopened"),
        ("resolved", "ready", "Reopened"),
        ("suppressed", "ready", "Restored"),
        ("suppressed", "resolved", "Restored"),
        ("suppressed", "failed", "Restored"),
        ("ready", "resolved", None),
        ("in_progress", "ready", None),
    ],
)
def test_reopened_and_restored_wording(before: str, after: str, word: str | None) -> None:
    """The text headline (console, templates), the Slack card, its thread reply and a digest
    line say "Reopened"/"Restored"."""
    event = _moved(before, after)
    card = json.dumps(slack_message(event, (), LINKS).blocks, ensure_ascii=False)
    reply = json.dumps(thread_reply(event, (), LINKS).blocks, ensure_ascii=False)
    if word is None:
        assert headline(event) == f"{status_name(before)} → {status_name(after)}"
        assert "Reopened" not in card + reply
        assert "Restored" not in card + reply
        return
    assert headline(event) == f"{word}: {status_name(before)} → {status_name(after)}"
    assert f"*{word}*" in card
    assert f"*{word}*" in reply
    assert f"· {word}: " in digest_line(event, LINKS)


# -- durable and visible ----------------------------------------------------------------------


def test_notifier_outbox_lists_held_changes(world: World) -> None:
    """`notifier outbox` shows what is held: the report, its move, how long, and until when."""
    config = world.make_config(rules=RULES)
    report = world.posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert cli("once", "-c", str(config), env=world.env).returncode == EXIT_OK
    world.posthog.update_report(PROJECT, report["id"], status="candidate")
    assert cli("once", "-c", str(config), env=world.env).returncode == EXIT_OK
    listing = cli("outbox", "-c", str(config), env=world.env)
    assert listing.returncode == EXIT_OK, listing.stderr
    out = listing.stdout
    assert "the outbox is empty" in out
    assert "1 held back in research (poll.settle 900s)" in out, out
    assert f"Checkout broken ({report['id'][:8]})" in out
    assert "ready → candidate" in out
    assert "in 14m" in out or "in 15m" in out, out


def test_check_says_what_settle_does(world: World) -> None:
    config = world.make_config(rules=RULES)
    assert "held 15 min (poll.settle)" in cli("check", "-c", str(config), env=world.env).stdout
    off = world.make_config(rules=RULES, poll_extra="settle: 0s")
    assert "Settle   off" in cli("check", "-c", str(off), env=world.env).stdout


def test_held_changes_move_to_postgresql_with_the_state(
    world: World, load: Callable[[Path], Settings], postgres_url: str
) -> None:
    """`notifier state migrate` carries a hold: replicas on PostgreSQL finish the flap
    silently, as the SQLite instance would have."""
    posthog, receiver = world.posthog, world.receiver
    config = world.make_config(rules=RULES)
    report = posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert cli("once", "-c", str(config), env=world.env).returncode == EXIT_OK
    posthog.update_report(PROJECT, report["id"], status="candidate")
    assert cli("once", "-c", str(config), env=world.env).returncode == EXIT_OK
    moved = cli("state", "migrate", "-c", str(config), "--to", postgres_url, env=world.env)
    assert moved.returncode == EXIT_OK, moved.stderr
    store = PostgresStore(postgres_url)
    try:
        [hold] = store.held(PROJECT)
    finally:
        store.close()
    assert (hold.report_id, hold.announced.status, hold.latest.status) == (
        report["id"],
        "ready",
        "candidate",
    )
    on_pg = world.make_config(rules=RULES, state=f"url: {postgres_url}")
    posthog.update_report(PROJECT, report["id"], status="ready")
    assert cli("once", "-c", str(on_pg), env=world.env).returncode == EXIT_OK
    assert receiver.received == []
    settings = load(on_pg)
    store = open_store(settings.state)
    try:
        assert store.held() == []
    finally:
        store.close()


# -- the decision itself (pure) ---------------------------------------------------------------


def _report(status: str, **fields: Any) -> Report:
    return Report.from_api({"id": "r1", "status": status, "title": "T", **fields})


def test_a_hold_ends_when_settle_has_passed_even_without_a_new_event() -> None:
    announced, latest = _report("ready"), _report("candidate", updated_at="b")
    hold = Held(1, "r1", 100.0, announced, latest)
    waiting = settle(1, [], {"r1": hold}, {}, now=150.0, settle=60.0)
    assert waiting.events == ()
    assert waiting.release == ()
    ended = settle(1, [], {"r1": hold}, {}, now=160.0, settle=60.0)
    assert [e.changes["status"] for e in ended.events] == [("ready", "candidate")]
    assert ended.release == ("r1",)
    # recomputed (a crash before the commit): the same event, the same id
    again = settle(1, [], {"r1": hold}, {}, now=170.0, settle=60.0)
    assert [e.id for e in again.events] == [e.id for e in ended.events]


def test_a_wall_clock_stepped_back_past_settle_ends_the_hold() -> None:
    hold = Held(1, "r1", 1000.0, _report("ready"), _report("candidate"))
    assert settle(1, [], {"r1": hold}, {}, now=900.0, settle=60.0).release == ("r1",)
    assert settle(1, [], {"r1": hold}, {}, now=990.0, settle=60.0).release == ()


def test_a_held_report_keeps_its_newest_copy() -> None:
    """A change the diff does not announce (untracked fields) still refreshes the copy the
    hold will announce."""
    hold = Held(1, "r1", 100.0, _report("ready"), _report("candidate", updated_at="a"))
    newer = _report("candidate", updated_at="b")
    kept = settle(1, [], {"r1": hold}, {"r1": newer}, now=110.0, settle=60.0)
    assert [h.latest.version for h in kept.hold] == [newer.version]
