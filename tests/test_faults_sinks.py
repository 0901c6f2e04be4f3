"""Sink faults end to end, through the outbox: a real cycle queues each change for Slack (bot
token), a Slack incoming webhook and a signed webhook; the fakes fail as the real services do.

What each sink *says* about a failure is pinned in test_sinks.py; here the promise is what the
outbox does with it: transient failures are retried until the sink recovers (the same
``webhook-id`` every time), permanent ones are dead-lettered with the reason at once, the other
sinks never wait, and `notifier outbox` shows it all and puts dead entries back in line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import DeliverySettings, Settings
from notifier.delivery.drain import backoff
from notifier.demo.simulator import FakePostHog
from notifier.runtime.daemon import Notifier
from notifier.sinks.slack.incoming import HINTS as WEBHOOK_HINTS
from notifier.state.store import OutboxEntry, Store
from tests.factories import PROJECT, World
from tests.fakes import FakeSlack, SlackCall, WebhookReceiver
from tests.helpers import cli, wait_for

ALL_SINKS = (
    "- {name: all, match: {event: [new, status_changed, updated, removed]}, "
    "sinks: [slack, slack-hook, hook]}"
)
HTML_503 = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
#: These tests count what each sink receives; the notices a dead letter causes through the other
#: sinks (self_alerts) are pinned in test_self_alerts.py.
NO_SELF_ALERTS = "self_alerts: {sinks: []}"

RunOnce = Callable[..., int]


@pytest.fixture
def run_once(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> Iterator[RunOnce]:
    """`notifier once` in-process against the fakes; every change goes to all three sinks.
    ``sink_timeout`` and ``give_up_after`` (seconds) override the config."""

    def run(
        *,
        max_wait: float = 5.0,
        sink_timeout: float | None = None,
        give_up_after: float | None = None,
        **config: Any,
    ) -> int:
        defaults = {"rules": ALL_SINKS, "first_run": "notify", "extra": NO_SELF_ALERTS}
        settings = load(make_config(**{**defaults, **config}))
        # these tests follow each entry: no digests (those are pinned in test_living.py)
        sinks = {
            name: sink.model_copy(update={"digest_after": 0})
            if hasattr(sink, "digest_after")
            else sink
            for name, sink in settings.sinks.items()
        }
        settings = settings.model_copy(update={"sinks": sinks})
        if sink_timeout is not None:
            sinks = {
                name: sink.model_copy(update={"timeout": sink_timeout})
                if hasattr(sink, "timeout")
                else sink
                for name, sink in settings.sinks.items()
            }
            settings = settings.model_copy(update={"sinks": sinks})
        if give_up_after is not None:
            delivery = settings.delivery.model_copy(update={"give_up_after": give_up_after})
            settings = settings.model_copy(update={"delivery": delivery})
        notifier = Notifier(settings)
        try:
            return notifier.once(max_wait=max_wait)
        finally:
            notifier.close()

    return run


@pytest.fixture
def outbox(tmp_path: Path) -> Callable[[str], dict[str, OutboxEntry]]:
    """The sink's outbox entries by report title (every state)."""

    def entries(sink: str) -> dict[str, OutboxEntry]:
        store = Store(tmp_path / "state.db")
        try:
            found = [
                e for state in ("pending", "dead", "delivered") for e in store.entries(state, sink)
            ]
        finally:
            store.close()
        return {e.event.report.title or "": e for e in sorted(found, key=lambda e: e.id)}

    return entries


Outbox = Callable[[str], dict[str, OutboxEntry]]


def posts(slack: FakeSlack) -> list[SlackCall]:
    """Every chat.postMessage attempt, accepted or not."""
    return [c for c in slack.calls if c.via == "api" and c.method == "chat.postMessage"]


def hook_posts(slack: FakeSlack) -> list[SlackCall]:
    """Every incoming-webhook attempt, accepted or not."""
    return [c for c in slack.calls if c.via == "webhook"]


def titles(slack: FakeSlack, via: str) -> list[str]:
    """Titles of the accepted Slack messages that came ``via`` api or webhook, in order."""
    return [next(t for t in TITLES if t in (m.text or "")) for m in slack.messages if m.via == via]


def hooked(receiver: WebhookReceiver) -> list[str]:
    """Titles of the webhook deliveries the receiver accepted (2xx), in order."""
    return [r.json()["data"]["report"]["title"] for r in receiver.received if r.status < 300]


TITLES = [f"Report {chr(ord('A') + i)}" for i in range(12)]


def add(posthog: FakePostHog, count: int, start: int = 0) -> list[str]:
    """``count`` new reports titled ``Report A``, ``Report B``…; returns the titles."""
    names = TITLES[start : start + count]
    for name in names:
        posthog.add_report(PROJECT, title=name)
    return names


# --- Slack Web API ----------------------------------------------------------------------------


def test_transient_slack_errors_retry_the_same_entry_until_delivered(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """ok:false transient codes, HTTP 5xx (even an HTML page) and a 429 are retried on the same
    entry until Slack recovers: one message, in order, the other sinks undisturbed."""
    add(world.posthog, 2)
    world.slack.fail_next("internal_error")
    world.slack.fail_next("service_unavailable")
    world.slack.fail_next("request_timeout")
    world.slack.fail_next("fatal_error", status=500)
    world.slack.fail_next("proxy", status=503, raw=HTML_503)
    world.slack.fail_next("ratelimited", retry_after=0)
    assert run_once() == 0
    assert titles(world.slack, "api") == ["Report A", "Report B"]
    assert [c.error for c in posts(world.slack)][:6] == [
        "internal_error",
        "service_unavailable",
        "request_timeout",
        "fatal_error",
        "proxy",
        "ratelimited",
    ]
    entries = outbox("slack")
    assert (entries["Report A"].state, entries["Report A"].attempts) == ("delivered", 7)
    assert (entries["Report B"].state, entries["Report B"].attempts) == ("delivered", 1)
    assert titles(world.slack, "webhook") == ["Report A", "Report B"]
    assert hooked(world.receiver) == ["Report A", "Report B"]


def test_permanent_slack_errors_dead_letter_each_entry_with_its_reason(
    world: World, run_once: RunOnce, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Each permanent code dead-letters its entry at once (one attempt, the code and a hint in
    the reason and in an ERROR log) and the next entry goes; the other sinks get everything."""
    codes = [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "token_revoked",
        "account_inactive",
        "missing_scope",
        "some_new_error",
    ]
    names = add(world.posthog, len(codes) + 1)
    for code in codes:
        world.slack.fail_next(code)
    with caplog.at_level(logging.ERROR):
        assert run_once() == 1  # something was dead-lettered
    entries = outbox("slack")
    for name, code in zip(names, codes, strict=False):
        entry = entries[name]
        assert (entry.state, entry.attempts) == ("dead", 1)
        assert entry.last_error is not None
        assert entry.last_error.startswith(f"{code}: ")
        assert len(entry.last_error) > len(code) + 20  # says what to do, not just the code
        [log] = [r for r in caplog.records if code in r.getMessage()]
        assert log.levelno == logging.ERROR
        assert "dead letter" in log.getMessage()
        assert name in log.getMessage()
        assert "sink slack" in log.getMessage()
    assert entries[names[-1]].state == "delivered"
    assert titles(world.slack, "api") == [names[-1]]
    assert titles(world.slack, "webhook") == names
    assert hooked(world.receiver) == names


def test_refused_blocks_go_once_as_text_only(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """invalid_blocks / msg_blocks_too_long: the same attempt posts the message again as text
    only, and that counts as delivered (bot token and incoming webhook alike)."""
    add(world.posthog, 1)
    world.slack.fail_next("invalid_blocks")
    world.slack.webhook_fail_next(400, "msg_blocks_too_long")
    assert run_once() == 0
    for via, sink in (("api", "slack"), ("webhook", "slack-hook")):
        [message] = [m for m in world.slack.messages if m.via == via]
        assert message.blocks is None
        assert "Report A" in (message.text or "")
        entry = outbox(sink)["Report A"]
        assert (entry.state, entry.attempts) == ("delivered", 1)
    assert len(posts(world.slack)) == 2
    assert len(hook_posts(world.slack)) == 2


def test_blocks_and_text_both_refused_is_dead_after_one_text_retry(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """When the text-only retry is refused too the entry is dead, after exactly two posts,
    with both reasons."""
    add(world.posthog, 1)
    world.slack.fail_next("msg_blocks_too_long")
    world.slack.fail_next("no_text")
    world.slack.webhook_fail_next(400, "invalid_blocks")
    world.slack.webhook_fail_next(400, "invalid_payload")
    assert run_once() == 1
    api, hook = outbox("slack")["Report A"], outbox("slack-hook")["Report A"]
    assert (api.state, api.attempts, hook.state, hook.attempts) == ("dead", 1, "dead", 1)
    assert api.last_error is not None
    assert api.last_error.startswith("msg_blocks_too_long: ")
    assert "no_text" in api.last_error
    assert hook.last_error is not None
    assert hook.last_error.startswith("invalid_blocks: ")
    assert "invalid_payload" in hook.last_error
    assert len(posts(world.slack)) == 2
    assert len(hook_posts(world.slack)) == 2
    assert world.slack.messages == []


def test_refused_blocks_then_ratelimited_text_is_retried_later(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """A text-only retry that is rate limited is a transient failure, not a dead letter: the
    next attempt goes through."""
    add(world.posthog, 1)
    world.slack.fail_next("invalid_blocks")
    world.slack.fail_next("ratelimited", retry_after=0)
    assert run_once() == 0
    entry = outbox("slack")["Report A"]
    assert (entry.state, entry.attempts) == ("delivered", 2)
    assert titles(world.slack, "api") == ["Report A"]


# --- Slack incoming webhook -------------------------------------------------------------------


def test_slack_webhook_error_bodies(world: World, run_once: RunOnce, outbox: Outbox) -> None:
    """Server trouble (500 rollup_error, a 502 page, 503, 429 + Retry-After) is retried on the
    same entry; each documented refusal body dead-letters its entry with the body and a hint."""
    refusals = [
        (404, "no_service"),
        (410, "channel_is_archived"),
        (403, "invalid_token"),
        (403, "action_prohibited"),
        (400, "user_not_found"),
        (404, "channel_not_found"),
        (400, "invalid_payload"),
    ]
    names = add(world.posthog, 1)
    world.slack.webhook_fail_next(500, "rollup_error")
    world.slack.webhook_fail_next(502, "<html><body>Bad Gateway</body></html>")
    world.slack.webhook_fail_next(503, "")
    world.slack.webhook_fail_next(429, "rate limited", headers={"Retry-After": "0"})
    assert run_once() == 0
    entry = outbox("slack-hook")["Report A"]
    assert (entry.state, entry.attempts) == ("delivered", 5)
    names += add(world.posthog, len(refusals) + 1, start=1)
    for status, body in refusals:
        world.slack.webhook_fail_next(status, body)
    assert run_once() == 1
    entries = outbox("slack-hook")
    for name, (status, body) in zip(names[1:], refusals, strict=False):
        entry = entries[name]
        assert (entry.state, entry.attempts) == ("dead", 1)
        assert entry.last_error == f"HTTP {status} {body}: {WEBHOOK_HINTS[body]}"
    assert entries[names[-1]].state == "delivered"
    assert titles(world.slack, "webhook") == [names[0], names[-1]]
    assert titles(world.slack, "api") == names
    assert hooked(world.receiver) == names


# --- signed webhook ---------------------------------------------------------------------------


def test_webhook_transient_statuses_retry_with_the_same_webhook_id(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """408, 429, 500, 502, 503 and 504 are retried on the same entry until the receiver
    accepts it; every attempt carries the same webhook-id and event id, and order holds."""
    add(world.posthog, 2)
    statuses = [408, 429, 500, 502, 503, 504]
    for status in statuses:
        world.receiver.respond_next(status, body=b"try later")
    assert run_once() == 0
    attempts = [
        r for r in world.receiver.received if r.json()["data"]["report"]["title"] == "Report A"
    ]
    assert [r.status for r in attempts] == [*statuses, 204]
    assert len({r.headers["webhook-id"] for r in attempts}) == 1
    assert len({r.json()["data"]["event_id"] for r in attempts}) == 1
    assert hooked(world.receiver) == ["Report A", "Report B"]
    assert outbox("hook")["Report A"].attempts == len(statuses) + 1
    assert titles(world.slack, "api") == ["Report A", "Report B"]


def test_webhook_permanent_statuses_are_dead_lettered_and_redirects_not_followed(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """410 Gone, redirects (301/302/307/308: never followed) and other 4xx dead-letter their
    entry at once with the reason; the entry after them is delivered."""
    refusals = [
        (410, "endpoint gone"),
        (301, "redirects are not followed"),
        (302, "redirects are not followed"),
        (307, "redirects are not followed"),
        (308, "redirects are not followed"),
        (400, "rejected the delivery"),
        (401, "refused our credentials"),
        (404, "rejected the delivery"),
    ]
    names = add(world.posthog, len(refusals) + 1)
    for status, _ in refusals:
        world.receiver.respond_next(status, headers={"Location": world.receiver.url + "/moved"})
    assert run_once() == 1
    entries = outbox("hook")
    for name, (status, reason) in zip(names, refusals, strict=False):
        entry = entries[name]
        assert (entry.state, entry.attempts) == ("dead", 1)
        assert entry.last_error is not None
        assert f"HTTP {status}" in entry.last_error
        assert reason in entry.last_error
    assert entries[names[-1]].state == "delivered"
    assert {r.path for r in world.receiver.received} == {"/hook"}  # no Location was requested
    assert len(world.receiver.received) == len(names)
    assert titles(world.slack, "api") == names


def test_retry_after_is_waited_for_while_other_sinks_go_on(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """Slack's 429 and the receiver's 503 ask for 1 s: neither is retried sooner, entries behind
    them wait (order per sink), and the incoming webhook delivers meanwhile."""
    add(world.posthog, 2)
    world.slack.fail_next("ratelimited", retry_after=1)
    world.receiver.respond_next(503, headers={"Retry-After": "1"})
    assert run_once() == 0
    first, second = posts(world.slack)[0], posts(world.slack)[1]
    assert first.error == "ratelimited"
    assert second.received_at - first.received_at >= 1.0
    refused, accepted = world.receiver.received[0], world.receiver.received[1]
    assert (refused.status, accepted.status) == (503, 204)
    assert accepted.received_at - refused.received_at >= 1.0
    assert accepted.headers["webhook-id"] == refused.headers["webhook-id"]
    assert titles(world.slack, "api") == ["Report A", "Report B"]
    assert hooked(world.receiver) == ["Report A", "Report B"]
    webhook_done = max(m.received_at for m in world.slack.messages if m.via == "webhook")
    assert webhook_done < second.received_at  # did not wait for the Slack API
    assert outbox("slack")["Report A"].attempts == 2


def test_slow_sinks_time_out_and_deliver_later(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """Each sink answers its first request after its timeout: a transient failure, retried;
    the slow request landed after all, so the receiver sees the event twice, with one
    webhook-id to de-duplicate by (at least once)."""
    add(world.posthog, 1)
    world.slack.stall_next(1.0, times=2)  # the Web API post, then the incoming webhook post
    world.receiver.stall_next(1.0)
    assert run_once(sink_timeout=0.3) == 0
    for sink in ("slack", "slack-hook", "hook"):
        entry = outbox(sink)["Report A"]
        assert (entry.state, entry.attempts) == ("delivered", 2)
    # the stalled request is answered 1 s after it arrived
    wait_for(lambda: len(world.receiver.received) >= 2, 5, "the stalled request", poll=0.02)
    first, second = world.receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.json()["data"]["event_id"] == second.json()["data"]["event_id"]


def test_a_sink_failing_past_give_up_after_is_dead_lettered(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """A receiver that keeps answering 503 is retried until give_up_after, then dead-lettered
    with the number of attempts and the last error."""
    add(world.posthog, 1)
    world.receiver.respond_next(503, times=1000)
    assert run_once(give_up_after=0.5, max_wait=2) == 1
    entry = outbox("hook")["Report A"]
    assert entry.state == "dead"
    assert entry.attempts >= 3
    assert entry.last_error is not None
    assert entry.last_error.startswith(f"gave up after {entry.attempts} attempts: ")
    assert "would fall past delivery.give_up_after; last error: " in entry.last_error
    assert entry.last_error.endswith("HTTP 503")  # no "will retry" in a dead letter
    assert titles(world.slack, "api") == ["Report A"]


def test_retry_after_zero_is_not_a_request_per_round_trip(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """A receiver answering 503 with Retry-After: 0 forever is retried no faster than
    min(backoff_initial, 1 s) apart (0.05 s here), not in a tight loop, until give_up_after."""
    assert backoff(1, DeliverySettings(), retry_after=0.0) == 1.0
    assert backoff(1, DeliverySettings(), retry_after=30.0) == 30.0
    add(world.posthog, 1)
    world.receiver.respond_next(503, headers={"Retry-After": "0"}, times=1000)
    assert run_once(give_up_after=0.5, max_wait=2) == 1
    entry = outbox("hook")["Report A"]
    assert entry.state == "dead"
    assert 2 <= entry.attempts <= 0.5 / 0.05 + 2  # was ~90 with no floor
    assert len(world.receiver.received) == entry.attempts


# --- `notifier outbox` ------------------------------------------------------------------------


def test_outbox_lists_pending_and_dead_and_retry_requeues_one_sink(
    world: World, run_once: RunOnce, outbox: Outbox
) -> None:
    """`outbox` shows a table (header, sink, report title, age, attempts, next attempt, last
    error) of pending and dead entries; `outbox retry --sink` re-queues only that sink's dead
    entries, which then go out with their original webhook-id."""
    world.posthog.add_report(PROJECT, title="Checkout \x1b[2Jbroken\nfor everyone")
    world.slack.fail_next("channel_not_found")
    world.slack.webhook_fail_next(404, "no_service")
    world.receiver.respond_next(410)
    assert run_once() == 1
    world.posthog.add_report(PROJECT, title="Report B")
    world.receiver.respond_next(503, headers={"Retry-After": "600"})
    world.slack.fail_next("channel_not_found")
    assert run_once(max_wait=0) == 1
    config = str(world.make_config(rules=ALL_SINKS, first_run="notify"))

    listing = cli("outbox", "-c", config, env=world.env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == "1 pending, 4 dead"
    header = lines[2].split()
    assert header[:4] == ["STATE", "SINK", "EVENT", "REPORT"]
    assert header[4:] == ["AGE", "TRIES", "NEXT", "TRY", "LAST", "ERROR"]
    rows = lines[3:8]
    assert all("\x1b" not in row for row in rows)  # a title cannot drive the terminal
    [pending] = [row for row in rows if row.startswith("pending")]
    assert pending.split()[:4] == ["pending", "hook", "new", "Report"]
    assert " in 9m " in pending
    assert "HTTP 503" in pending
    dead = [row for row in rows if row.startswith("dead")]
    assert len(dead) == 4
    assert all("for everyone (" in row for row in dead[:3])  # one row, newline or not
    assert any(row.split()[1] == "slack-hook" and "no_service" in row for row in dead)
    assert any(row.split()[1] == "hook" and "HTTP 410" in row for row in dead)
    assert sum(row.split()[1] == "slack" and "channel_not_found" in row for row in dead) == 2
    assert "`notifier outbox retry [--sink NAME]`" in listing.stdout

    unknown = cli("outbox", "retry", "--sink", "pager", "-c", config, env=world.env)
    assert unknown.returncode == 2
    assert "unknown sink 'pager'" in unknown.stderr
    requeued = cli("outbox", "retry", "--sink", "hook", "-c", config, env=world.env)
    assert requeued.returncode == 0, requeued.stderr
    assert requeued.stdout.startswith("requeued 1 dead entries for sink hook")
    only_hook = cli("outbox", "--sink", "hook", "-c", config, env=world.env)
    assert only_hook.stdout.splitlines()[0] == "2 pending, 0 dead"
    assert " now " in only_hook.stdout  # the re-queued entry is due at once

    first_id = world.receiver.received[0].headers["webhook-id"]
    assert run_once(max_wait=0) == 1  # Report B still waits for its Retry-After
    retried = world.receiver.received[-1]
    assert (retried.status, retried.headers["webhook-id"]) == (204, first_id)
    assert outbox("slack")["Report B"].state == "dead"  # other sinks' dead entries stay
    assert cli("outbox", "retry", "-c", config, env=world.env).stdout.startswith(
        "requeued 3 dead entries;"
    )
