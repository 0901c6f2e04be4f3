"""Sinks against real local servers: Slack Web API, Slack incoming webhook, signed webhook."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from notifier.config.settings import (
    ConsoleSinkSettings,
    RuleSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    WebhookSinkSettings,
)
from notifier.core.errors import SinkError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Report
from notifier.core.times import parse_retry_after
from notifier.render import (
    digest_message,
    slack_message,
    thread_reply,
    webhook_batch_body,
    webhook_body,
)
from notifier.render.templates import Templates, compile_templates
from notifier.sinks.base import MessageRef
from notifier.sinks.compose import compose_event
from notifier.sinks.console import ConsoleSink
from notifier.sinks.registry import build_sinks
from notifier.sinks.slack.bot import SlackSink
from notifier.sinks.slack.incoming import SlackWebhookSink
from notifier.sinks.slack.pace import Pacer, bot_keys, webhook_keys
from notifier.sinks.webhook import WebhookSink, batch_id
from tests import factories
from tests.factories import LINKS, RAW, new
from tests.fakes import FakeSlack, WebhookReceiver

CHANNEL = "C0123456789"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENT = new()
FIXED = datetime(2026, 1, 15, 16, 40, 11, tzinfo=UTC)


def delivery(sink: str = "sink") -> Delivery:
    return factories.delivery(EVENT, sink)


def failure(send: Callable[[Delivery], None]) -> SinkError:
    with pytest.raises(SinkError) as caught:
        send(delivery())
    return caught.value


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def slack_sink(slack: FakeSlack, **overrides: Any) -> SlackSink:
    fields = {"token": slack.token, "channel": CHANNEL, "api_url": slack.api_url, "timeout": 2.0}
    return SlackSink(SlackSinkSettings(name="slack", **{**fields, **overrides}), LINKS)


def hook_sink(slack: FakeSlack, url: str | None = None, timeout: float = 2.0) -> SlackWebhookSink:
    settings = SlackWebhookSinkSettings(name="hook", url=url or slack.webhook_url, timeout=timeout)
    return SlackWebhookSink(settings, LINKS)


def webhook_sink(
    receiver: WebhookReceiver,
    *,
    url: str | None = None,
    clock: Callable[[], datetime] | None = None,
    timeout: float = 2.0,
    headers: dict[str, str] | None = None,
) -> WebhookSink:
    settings = WebhookSinkSettings(
        name="hook",
        url=url or receiver.url,
        secret=SECRET,
        headers=headers or {"x-team": "growth"},
        timeout=timeout,
    )
    if clock is None:
        return WebhookSink(settings, LINKS)
    return WebhookSink(settings, LINKS, clock=clock)


# --- Slack Web API ------------------------------------------------------------------------


def test_slack_posts_the_card(slack: FakeSlack) -> None:
    """chat.postMessage carries the channel, the fallback text and the rendered blocks."""
    slack_sink(slack).send(delivery())
    [message] = slack.messages
    expected = slack_message(EVENT, ["ready-reports"], LINKS)
    assert (message.via, message.channel, message.text) == ("api", CHANNEL, expected.text)
    assert message.blocks == json.loads(json.dumps(list(expected.blocks)))
    assert slack.calls[0].params["unfurl_links"] is False


def test_slack_ratelimited_is_transient_with_retry_after(slack: FakeSlack) -> None:
    """HTTP 429 ratelimited: retry later, after Retry-After; the sink itself does not retry."""
    slack.fail_next("ratelimited", retry_after=7)
    error = failure(slack_sink(slack).send)
    assert (error.permanent, error.retry_after) == (False, 7.0)
    assert "ratelimited" in str(error)
    assert len(slack.calls) == 1


@pytest.mark.parametrize(("code", "status"), [("internal_error", 200), ("fatal_error", 500)])
def test_slack_server_trouble_is_transient(slack: FakeSlack, code: str, status: int) -> None:
    """Slack-side errors and HTTP 5xx are worth retrying."""
    slack.fail_next(code, status=status)
    error = failure(slack_sink(slack).send)
    assert not error.permanent
    assert code in str(error)


def test_slack_channel_not_found_is_permanent(slack: FakeSlack) -> None:
    """An unknown channel is dead-lettered with what to do, naming the channel."""
    slack.channels = {"C999999999"}
    error = failure(slack_sink(slack).send)
    assert error.permanent
    assert str(error).startswith(f"channel_not_found: the bot cannot see channel {CHANNEL}")
    assert "invite the bot" in str(error)


def test_slack_bad_token_is_permanent_and_never_shown(slack: FakeSlack) -> None:
    """invalid_auth is permanent, and the token appears nowhere in the error."""
    error = failure(slack_sink(slack, token="xoxb-wrong-but-secret").send)
    assert error.permanent
    assert str(error).startswith("invalid_auth:")
    assert "xoxb-wrong-but-secret" not in str(error)


def test_slack_unknown_code_is_permanent(slack: FakeSlack) -> None:
    """A code the notifier does not know is not retried forever."""
    slack.fail_next("some_new_error")
    error = failure(slack_sink(slack).send)
    assert error.permanent
    assert "some_new_error" in str(error)


def test_slack_invalid_blocks_retries_once_as_text(slack: FakeSlack) -> None:
    """Refused blocks: the same message goes out at once as text only, with the link."""
    slack.fail_next("invalid_blocks")
    slack_sink(slack).send(delivery())
    [message] = slack.messages
    assert message.blocks is None
    assert message.text is not None
    assert "Checkout button unresponsive on Safari" in message.text
    assert RAW["id"] in message.text
    assert len(slack.calls) == 2


def test_slack_blocks_refused_twice_is_permanent(slack: FakeSlack) -> None:
    """When the text-only retry fails too, the delivery is dead-lettered."""
    slack.fail_next("msg_blocks_too_long")
    slack.fail_next("no_text")
    error = failure(slack_sink(slack).send)
    assert error.permanent
    assert str(error).startswith("msg_blocks_too_long:")
    assert len(slack.calls) == 2


def test_slack_timeout_is_transient(slack: FakeSlack) -> None:
    """A Slack that does not answer in time is retried later."""
    slack.stall_seconds = 3
    error = failure(slack_sink(slack, timeout=0.3).send)
    assert not error.permanent
    assert "did not answer within 0.3 s" in str(error)


def test_slack_unreachable_is_transient() -> None:
    """Connection refused is a transient failure."""
    settings = SlackSinkSettings(
        name="slack", token="xoxb-x", channel=CHANNEL, api_url=closed_port_url(), timeout=1
    )
    error = failure(SlackSink(settings, LINKS).send)
    assert not error.permanent
    assert "cannot reach Slack" in str(error)


# --- Slack incoming webhook ---------------------------------------------------------------


def test_slack_webhook_ok(slack: FakeSlack) -> None:
    """HTTP 200 "ok" is success; the card arrives with its blocks."""
    hook_sink(slack).send(delivery())
    [message] = slack.messages
    assert message.via == "webhook"
    assert message.blocks == json.loads(
        json.dumps(list(slack_message(EVENT, ["ready-reports"], LINKS).blocks))
    )


def test_slack_webhook_no_service_is_permanent_without_the_url(slack: FakeSlack) -> None:
    """404 no_service is permanent with a hint; the secret URL is not in the message."""
    slack.webhook_fail_next(404, "no_service")
    error = failure(hook_sink(slack).send)
    assert error.permanent
    assert "no_service" in str(error)
    assert "create a new webhook URL" in str(error)
    assert slack.webhook_path not in str(error)
    wrong = slack.origin + "/services/T000/B000/WRONGSECRET"
    error = failure(hook_sink(slack, url=wrong).send)
    assert error.permanent
    assert "WRONGSECRET" not in str(error)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_slack_webhook_server_errors_are_transient(slack: FakeSlack, status: int) -> None:
    """5xx and 429 from the webhook are retried later."""
    slack.webhook_fail_next(status, "rollup_error")
    error = failure(hook_sink(slack).send)
    assert not error.permanent
    assert f"HTTP {status}" in str(error)


def test_slack_webhook_archived_channel_is_permanent(slack: FakeSlack) -> None:
    """410 channel_is_archived stops the sink with a hint."""
    slack.webhook_fail_next(410, "channel_is_archived")
    error = failure(hook_sink(slack).send)
    assert error.permanent
    assert "archived" in str(error)


def test_slack_webhook_invalid_blocks_retries_as_text(slack: FakeSlack) -> None:
    """A blocks refusal from the webhook is retried once as text only."""
    slack.webhook_fail_next(400, "invalid_blocks")
    hook_sink(slack).send(delivery())
    [message] = slack.messages
    assert message.blocks is None
    assert "Checkout button" in (message.text or "")


def test_slack_webhook_timeout_is_transient(slack: FakeSlack) -> None:
    """A webhook that stalls past the timeout is retried later."""
    slack.stall_seconds = 3
    error = failure(hook_sink(slack, timeout=0.3).send)
    assert not error.permanent
    assert slack.webhook_path not in str(error)


# --- signed webhook -----------------------------------------------------------------------


def test_webhook_body_is_signed_and_verifies(receiver: WebhookReceiver) -> None:
    """The exact rendered bytes arrive with Standard Webhooks headers that verify."""
    now = datetime.now(UTC)
    webhook_sink(receiver, clock=lambda: now).send(delivery())
    [request] = receiver.received
    assert request.body == webhook_body(EVENT, ["ready-reports"], LINKS, now)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("posthog-signal-notifier/")
    assert request.headers["x-team"] == "growth"
    assert request.headers["webhook-timestamp"] == str(int(now.timestamp()))
    verified = Webhook(SECRET).verify(request.body, request.headers)
    assert verified["data"]["report"] == RAW


def test_webhook_id_is_stable_across_attempts(receiver: WebhookReceiver) -> None:
    """A retry keeps webhook-id (the receiver's idempotency key) but re-signs a new timestamp."""
    moments = iter([FIXED, FIXED, FIXED + timedelta(minutes=5)])
    sink = webhook_sink(receiver, clock=lambda: next(moments))
    receiver.respond_next(503, headers={"Retry-After": "5"})
    error = failure(sink.send)
    assert (error.permanent, error.retry_after) == (False, 5.0)
    sink.send(delivery())
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith(EVENT.id)
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


def test_webhook_503_with_http_date_retry_after(receiver: WebhookReceiver) -> None:
    """Retry-After as an HTTP date becomes seconds from the sink's clock."""
    receiver.respond_next(503, headers={"Retry-After": "Thu, 15 Jan 2026 16:41:11 GMT"})
    error = failure(webhook_sink(receiver, clock=lambda: FIXED).send)
    assert (error.permanent, error.retry_after) == (False, 60.0)
    assert "HTTP 503" in str(error)


def test_webhook_410_is_permanent(receiver: WebhookReceiver) -> None:
    """410 Gone means stop sending."""
    receiver.respond_next(410)
    error = failure(webhook_sink(receiver).send)
    assert error.permanent
    assert "endpoint gone" in str(error)


def test_webhook_redirect_is_not_followed(receiver: WebhookReceiver) -> None:
    """A 302 is a permanent failure, and its Location is never requested."""
    receiver.respond_next(302, headers={"Location": receiver.url + "/elsewhere"})
    error = failure(webhook_sink(receiver).send)
    assert error.permanent
    assert "redirects are not followed" in str(error)
    assert len(receiver.received) == 1


@pytest.mark.parametrize(("status", "permanent"), [(400, True), (408, False), (501, False)])
def test_webhook_other_statuses(receiver: WebhookReceiver, status: int, permanent: bool) -> None:
    """Other 4xx are permanent; 408 and every 5xx are transient."""
    receiver.respond_next(status, body=b"nope")
    error = failure(webhook_sink(receiver).send)
    assert error.permanent is permanent
    assert f"HTTP {status}" in str(error)


def test_webhook_errors_hide_secrets(receiver: WebhookReceiver) -> None:
    """Neither the URL's query nor header values show up, even when the receiver echoes them."""
    receiver.respond_next(400, body=b"bad header Bearer header-secret-value at /hook?token=q1")
    sink = webhook_sink(
        receiver,
        url=receiver.url + "?token=query-secret-1",
        headers={"authorization": "Bearer header-secret-value"},
    )
    error = failure(sink.send)
    assert "header-secret-value" not in str(error)
    assert "query-secret-1" not in str(error)
    assert "webhook sink hook (http://127.0.0.1:" in str(error)


def test_webhook_timeout_and_refused_are_transient(receiver: WebhookReceiver) -> None:
    """A stalled receiver and a closed port are both retried later."""
    receiver.stall_seconds = 3
    error = failure(webhook_sink(receiver, timeout=0.3).send)
    assert not error.permanent
    assert "no answer within 0.3 s" in str(error)
    error = failure(webhook_sink(receiver, url=closed_port_url() + "hook").send)
    assert not error.permanent
    assert "cannot connect" in str(error)


# --- console, registry, Retry-After -------------------------------------------------------


def test_console_sink_prints_and_flushes() -> None:
    """The console sink writes the rendered text plus a blank line, uncoloured off a TTY."""
    stream = io.StringIO()
    ConsoleSink(ConsoleSinkSettings(name="console"), LINKS, stream=stream).send(delivery())
    text = stream.getvalue()
    assert text.startswith("🟢 Ready for review  Checkout button unresponsive on Safari\n")
    assert text.endswith("rules: ready-reports\n\n")
    assert "\x1b" not in text


def test_build_sinks_uses_the_registry(slack: FakeSlack, receiver: WebhookReceiver) -> None:
    """Each settings type builds its sink, keyed and named by the sink name."""
    built = build_sinks(
        {
            "a": SlackSinkSettings(name="a", token="xoxb-1", channel=CHANNEL),
            "b": SlackWebhookSinkSettings(name="b", url=slack.webhook_url),
            "c": WebhookSinkSettings(name="c", url=receiver.url),
            "d": ConsoleSinkSettings(name="d"),
        },
        LINKS,
    )
    kinds = {name: type(sink) for name, sink in built.items()}
    assert kinds == {"a": SlackSink, "b": SlackWebhookSink, "c": WebhookSink, "d": ConsoleSink}
    assert [sink.name for sink in built.values()] == ["a", "b", "c", "d"]
    for sink in built.values():
        sink.close()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Thu, 15 Jan 2026 16:42:11 GMT", 120.0),
        ("Thu, 15 Jan 2026 16:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    """Delta-seconds or an HTTP date, never negative; unreadable values are None."""
    assert parse_retry_after(value, FIXED) == seconds


# --- living messages (bot token) -------------------------------------------------------------

PROGRESS = Event.create(
    EventType.STATUS_CHANGED,
    1,
    Report.from_api({**RAW, "status": "resolved"}),
    Report.from_api(RAW),
    {"status": ("ready", "resolved")},
)


def living(slack: FakeSlack, **rules: RuleSettings) -> SlackSink:
    settings = SlackSinkSettings(
        name="slack", token=slack.token, channel=CHANNEL, api_url=slack.api_url, timeout=2.0
    )
    return SlackSink(settings, LINKS, rules=rules, pacer=Pacer(interval=0.0))


def rule(name: str, *, broadcast: bool = False, templates: Templates | None = None) -> RuleSettings:
    compiled = compile_templates(templates, f'rules[0] "{name}"') if templates else None
    return RuleSettings(name=name, sinks=("slack",), reply_broadcast=broadcast, templates=compiled)


def test_slack_living_message_posts_then_updates_and_replies_in_its_thread(
    slack: FakeSlack,
) -> None:
    """No card yet: post it and return its (channel id, ts). A card: chat.update it to the
    current state, then reply in its thread with what changed, broadcast when a routing rule
    has reply_broadcast."""
    sink = living(slack, quiet=rule("quiet"), loud=rule("loud", broadcast=True))
    card = sink.send_report(delivery(), None)
    first = delivery().event
    assert isinstance(first, Event)
    assert card == MessageRef(CHANNEL, str(slack.messages[0].ts), first.report.updated_at)
    later = Delivery(outbox_id=2, sink="slack", event=PROGRESS, rules=("quiet",))
    assert sink.send_report(later, card) == card._replace(shown=PROGRESS.report.updated_at)
    update, reply = slack.messages[1:]
    assert (update.method, update.ts, update.thread_ts) == ("chat.update", card.ts, None)
    assert update.blocks == json.loads(
        json.dumps(list(slack_message(PROGRESS, ["quiet"], LINKS).blocks))
    )
    assert (reply.method, reply.thread_ts, reply.reply_broadcast) == (
        "chat.postMessage",
        card.ts,
        False,
    )
    assert reply.blocks == json.loads(
        json.dumps(list(thread_reply(PROGRESS, ["quiet"], LINKS).blocks))
    )
    sink.send_report(replace(later, rules=("quiet", "loud")), card)
    assert slack.messages[-1].reply_broadcast is True


def test_an_older_event_delivered_late_does_not_roll_the_card_back(slack: FakeSlack) -> None:
    """The card shows a newer copy of the report than the event (a dead letter retried by hand
    after later changes went out): no chat.update, only the thread reply, the card unchanged."""
    sink = living(slack)
    card = sink.send_report(delivery(), None)
    newer = card._replace(shown="2099-01-01T00:00:00Z")
    late = Delivery(outbox_id=2, sink="slack", event=PROGRESS, rules=())
    assert sink.send_report(late, newer) == newer
    assert [(m.method, m.thread_ts) for m in slack.messages[1:]] == [("chat.postMessage", card.ts)]


def test_a_thread_reply_goes_to_its_card_s_channel(slack: FakeSlack) -> None:
    """A sink configured with a channel name: the card's channel is the id Slack answered,
    and the reply is posted there (not to the configured name, which may now be another
    channel), so the thread stays whole."""
    settings = SlackSinkSettings(
        name="slack", token=slack.token, channel="#alerts", api_url=slack.api_url, timeout=2.0
    )
    sink = SlackSink(settings, LINKS, pacer=Pacer(interval=0.0))
    try:
        card = sink.send_report(delivery(), None)
        assert card.channel.startswith("C")
        later = Delivery(outbox_id=2, sink="slack", event=PROGRESS, rules=())
        sink.send_report(later, card)
    finally:
        sink.close()
    update, reply = slack.messages[1:]
    assert (update.channel, reply.channel) == (card.channel, card.channel)
    assert "reply_broadcast" not in slack.calls[2].params  # only sent when asked


@pytest.mark.parametrize("code", ["message_not_found", "cant_update_message", "edit_window_closed"])
def test_slack_living_message_gone_is_posted_anew(slack: FakeSlack, code: str) -> None:
    """A card Slack cannot update any more is replaced by a new card (no reply under the old
    one) whose ts is returned to be remembered."""
    sink = living(slack)
    card = sink.send_report(delivery(), None)
    slack.fail_next(code)
    again = sink.send_report(replace(delivery(), event=PROGRESS), card)
    assert again.ts != card.ts
    assert [m.method for m in slack.messages] == ["chat.postMessage", "chat.postMessage"]
    assert slack.messages[-1].thread_ts is None
    assert "Resolved" in json.dumps(slack.messages[-1].blocks)


def test_slack_living_message_update_errors_are_sink_errors(slack: FakeSlack) -> None:
    """Other chat.update refusals fail the delivery as usual: transient or permanent."""
    sink = living(slack)
    card = sink.send_report(delivery(), None)
    slack.fail_next("internal_error")
    with pytest.raises(SinkError) as caught:
        sink.send_report(delivery(), card)
    assert not caught.value.permanent
    slack.fail_next("is_archived")
    with pytest.raises(SinkError) as caught:
        sink.send_report(delivery(), card)
    assert caught.value.permanent
    assert len(slack.messages) == 1


def test_slack_living_message_in_another_channel_starts_a_new_card(slack: FakeSlack) -> None:
    """When the sink has been pointed at another channel (by id), the old card is left alone."""
    sink = living(slack)
    moved = sink.send_report(delivery(), MessageRef("C0OLDCHAN01", "1.000100"))
    assert moved.channel == CHANNEL
    assert [m.method for m in slack.messages] == ["chat.postMessage"]


def test_slack_update_with_refused_blocks_drops_them_for_text(slack: FakeSlack) -> None:
    """A refused card update goes once more as text only, clearing the old blocks."""
    sink = living(slack)
    card = sink.send_report(delivery(), None)
    slack.fail_next("invalid_blocks")
    sink.send_report(replace(delivery(), event=PROGRESS), card)
    assert slack.calls[2].params["blocks"] == []
    assert slack.messages[1].method == "chat.update"


def test_slack_digest_is_one_post(slack: FakeSlack) -> None:
    """send_digest posts digest_message for every delivery; the incoming webhook too."""
    many = [replace(delivery(), outbox_id=i) for i in range(7)]
    living(slack).send_digest(many)
    hook_sink(slack).send_digest(many)
    expected = digest_message([(EVENT, ("ready-reports",))] * 7, LINKS)
    assert [m.text for m in slack.messages] == [expected.text, expected.text]
    assert [m.via for m in slack.messages] == ["api", "webhook"]


# --- templates (compose_event) -------------------------------------------------------------


def test_rule_templates_then_sink_templates_shape_the_card(slack: FakeSlack) -> None:
    """The first routing rule with templates wins, else the sink's: title after the status
    colour, body for the summary, fallback text. The sink posts exactly what compose_event
    (and so `notifier preview`) shows."""
    fancy = rule(
        "fancy",
        templates=Templates(
            title="Look: {{ report.title }}", body="*{{ report.signal_count }}* signals", text="hi"
        ),
    )
    plain_rule = rule("plain")
    sink_templates = compile_templates(Templates(title="From the sink"), "sinks.slack")
    settings = SlackSinkSettings(
        name="slack",
        token=slack.token,
        channel=CHANNEL,
        api_url=slack.api_url,
        templates=sink_templates,
    )
    sink = SlackSink(settings, LINKS, rules={"fancy": fancy, "plain": plain_rule})
    sink.send(replace(delivery(), rules=("plain", "fancy")))
    sink.send(replace(delivery(), rules=("plain",)))
    templated, by_sink = slack.messages
    assert templated.text == "hi"
    assert templated.blocks is not None
    assert templated.blocks[0]["text"]["text"].endswith(
        "Look: Checkout button unresponsive on Safari"
    )
    assert templated.blocks[2]["text"]["text"] == "*7* signals"
    assert by_sink.blocks is not None
    assert by_sink.blocks[0]["text"]["text"].endswith(" From the sink")
    preview = compose_event(
        settings,
        EVENT,
        ("plain", "fancy"),
        LINKS,
        {"fancy": fancy.templates},  # type: ignore[dict-item]
        timestamp=FIXED,
    )
    assert preview == {"text": templated.text, "blocks": templated.blocks}


def test_a_template_failing_at_send_time_sends_the_default_and_warns(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """A template that cannot render this report never fails the delivery: the default card
    goes out and a WARNING names the templates (the rule) and the sink."""
    broken = rule("broken", templates=Templates(title="{{ report.no_such_field }}"))
    with caplog.at_level(logging.WARNING):
        living(slack, broken=broken).send(replace(delivery(), rules=("broken",)))
    [message] = slack.messages
    default = slack_message(EVENT, ["broken"], LINKS)
    assert message.blocks == json.loads(json.dumps(list(default.blocks)))
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 'rules[0] "broken"' in warning.getMessage()
    assert "sink slack" in warning.getMessage()


# --- webhook batches ------------------------------------------------------------------------


def test_webhook_batch_is_one_signed_post_with_a_stable_id(receiver: WebhookReceiver) -> None:
    """With batch: true the sink digests: one signal_report.batch body, signed, whose
    webhook-id depends only on the events it carries. Without batch it never digests."""
    settings = WebhookSinkSettings(name="hook", url=receiver.url, secret=SECRET, batch=True)
    now = datetime.now(UTC)
    sink = WebhookSink(settings, LINKS, clock=lambda: now)
    assert sink.digest_after == 5
    assert WebhookSink(settings.model_copy(update={"batch": False}), LINKS).digest_after == 0
    many = [
        replace(delivery("hook"), outbox_id=i, event=event)
        for i, event in enumerate([EVENT, PROGRESS])
    ]
    sink.send_digest(many)
    sink.send_digest(list(reversed(many)))
    sink.send_digest(many[:1])
    first, again, other = receiver.received
    body = Webhook(SECRET).verify(first.body, first.headers)
    assert body["type"] == "signal_report.batch"
    assert body["data"]["count"] == 2
    assert first.body == webhook_batch_body(
        [(EVENT, ("ready-reports",)), (PROGRESS, ("ready-reports",))], LINKS, now
    )
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == batch_id(many)
    assert other.headers["webhook-id"] != first.headers["webhook-id"]


# --- pacing ----------------------------------------------------------------------------------


class FakeTime:
    """A monotonic clock that only moves when the pacer waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        self.now += seconds
        return False


def test_pacer_spaces_posts_per_channel_from_the_end_of_the_last() -> None:
    """A channel's next post waits until a full interval after the previous post ended;
    other channels do not wait; a refused post (turn unused) does not hold the next."""
    t = FakeTime()
    pacer = Pacer(interval=1.0, clock=t.clock, wait=t.wait)
    with pacer.post("a", "ws"):
        t.now += 0.25  # the request takes a quarter of a second
    with pacer.post("b", "ws"):
        pass
    with pacer.post("a", "ws") as turn:
        turn.used = False
    assert t.waits == [1.0]
    with pacer.post("a", "ws"):
        pass
    assert t.waits == [1.0]  # the refused post did not count
    with pacer.post("a", "ws"):
        pass
    assert t.waits == [1.0, 1.0]


def test_pacer_pause_holds_the_workspace_and_long_ones_go_back_to_the_outbox() -> None:
    """A 429 pauses every channel of the workspace (updates too) for Retry-After; another
    workspace goes on; a pause longer than max_wait is a transient SinkError carrying the
    time left, so the outbox waits instead of the thread."""
    t = FakeTime()
    pacer = Pacer(interval=1.0, clock=t.clock, wait=t.wait, max_wait=10.0)
    pacer.pause("ws", 3.0)
    pacer.ready("other")
    assert t.waits == []
    with pacer.post("c", "ws"):
        pass
    assert t.waits == [3.0]
    pacer.pause("ws", None)  # no Retry-After: a second
    pacer.ready("ws")
    assert t.waits == [3.0, 1.0]
    pacer.pause("ws", 60.0)
    with pytest.raises(SinkError) as caught:
        pacer.ready("ws")
    assert (caught.value.permanent, caught.value.retry_after) == (False, 60.0)
    assert pacer.paused_for("ws") == 60.0


def test_pacer_waits_end_when_the_notifier_stops() -> None:
    """A wait is cut short by the stop event (real clock, no sleeping through it)."""
    cancel = threading.Event()
    pacer = Pacer(interval=5.0, cancel=cancel)
    with pacer.post("a", "ws"):
        pass
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(SinkError, match="stopping") as caught, pacer.post("a", "ws"):
        pass
    assert time.monotonic() - started < 2.0
    assert not caught.value.permanent


def test_pacing_keys_hide_secrets_and_group_workspaces() -> None:
    """Bot sinks: channel by (API URL, channel), workspace by API URL and token (hashed);
    incoming webhooks: channel by URL (hashed), workspace by host and team id."""
    a_channel, a_workspace = bot_keys("https://slack.com/api/", "xoxb-secret-1", "C1")
    b_channel, b_workspace = bot_keys("https://slack.com/api/", "xoxb-secret-1", "C2")
    assert a_workspace == b_workspace
    assert a_channel != b_channel
    assert "xoxb-secret-1" not in repr((a_channel, a_workspace))
    hook_a = webhook_keys("https://hooks.slack.com/services/T1/B1/secretA")
    hook_b = webhook_keys("https://hooks.slack.com/services/T1/B2/secretB")
    hook_c = webhook_keys("https://hooks.slack.com/services/T2/B3/secretC")
    assert hook_a[1] == hook_b[1] != hook_c[1]
    assert hook_a[0] != hook_b[0]
    assert "secretA" not in repr(hook_a)


def test_build_sinks_shares_one_pacer_between_sinks(slack: FakeSlack) -> None:
    """Every Slack sink of one notifier paces through the same pacer."""
    built = build_sinks(
        {
            "a": SlackSinkSettings(name="a", token="xoxb-1", channel=CHANNEL),
            "b": SlackWebhookSinkSettings(name="b", url=slack.webhook_url),
        },
        LINKS,
    )
    assert built["a"]._pacer is built["b"]._pacer  # type: ignore[attr-defined]
