"""The notifier watches itself (self_alerts): notices about a project it cannot poll and a sink
whose deliveries are dead-lettered, and their recoveries.

Pure rendering of each notice kind first (Block Kit limits, escaping, webhook body, console),
then the config, the store, and end to end against the fakes: ``Notifier.poll`` and
``drain_all`` driven by hand, with an injected clock for ``self_alerts.after``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Notice, NoticeKind, outbox_item_from_json
from notifier.core.report import Report
from notifier.render import (
    notice_console_text,
    notice_fallback_text,
    notice_slack_message,
    notice_text_only,
    notice_webhook_body,
)
from notifier.render.blocks import MAX_BLOCKS_JSON, MAX_HEADER
from notifier.runtime.daemon import Notifier
from notifier.state.store import Store
from tests.factories import PROJECT, WEBHOOK_SECRET, Notifiers, World
from tests.fakes import FakeSlack, WebhookReceiver, block_errors
from tests.helpers import cli, running, wait_for

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
HOSTILE = "<!channel> & <https://evil.example|click here> \x1b[2J\u202e" * 200


def notice(kind: NoticeKind, *, error: str = "HTTP 503", lasted: float = 900) -> Notice:
    about: dict[str, Any] = (
        {"project_id": PROJECT} if kind.value.startswith("source") else {"sink": "slack"}
    )
    return Notice.create(
        kind, **about, error=error, since=T0, at=T0 + lasted, hint="Check posthog.host."
    )


# --- the model -----------------------------------------------------------------------------


def test_notice_ids_are_deterministic_per_kind_subject_and_start() -> None:
    """The same outage gives the same id (a notice queued twice is queued once); the recovery,
    another subject or another outage give other ids. JSON round-trips."""
    failing = notice(NoticeKind.SOURCE_FAILING)
    assert failing.id.startswith("ntc_")
    assert notice(NoticeKind.SOURCE_FAILING, lasted=5000).id == failing.id
    assert notice(NoticeKind.SOURCE_RECOVERED).id != failing.id
    assert notice(NoticeKind.SINK_FAILING).id != failing.id
    other = Notice.create(
        NoticeKind.SOURCE_FAILING, project_id=PROJECT, error="", since=T0 + 0.5, at=T0, hint=""
    )
    assert other.id != failing.id
    assert failing.since == "2023-11-14T22:13:20.000Z"
    assert Notice.from_json(failing.to_json()) == failing
    assert outbox_item_from_json(failing.to_json()) == failing
    with pytest.raises(ValueError, match="exactly one"):
        Notice.create(NoticeKind.SINK_FAILING, error="", since=T0, at=T0, hint="")


def test_outbox_rows_without_the_discriminator_are_events() -> None:
    """Rows written before notices existed (no ``object`` key) still decode as events."""
    report = Report.from_api({"id": "r1", "status": "ready", "title": "T"})
    event = Event.create(EventType.NEW, PROJECT, report, None, {})
    data = event.to_json()
    assert "object" not in data
    assert outbox_item_from_json(data) == event


# --- rendering -----------------------------------------------------------------------------

HEADERS = {
    NoticeKind.SOURCE_FAILING: f"⚠️ Notifier cannot poll PostHog project {PROJECT}",
    NoticeKind.SOURCE_RECOVERED: f"✅ Polling PostHog project {PROJECT} recovered",
    NoticeKind.SINK_FAILING: "⚠️ Notifier cannot deliver to sink slack",
    NoticeKind.SINK_RECOVERED: "✅ Delivery to sink slack recovered",
}


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_slack_message_for_each_kind(kind: NoticeKind) -> None:
    """A clear header, the error, since when (UTC and how long), what to do, a context line;
    valid Block Kit."""
    message = notice_slack_message(notice(kind, error="HTTP 503 from PostHog", lasted=2280))
    assert block_errors(list(message.blocks)) == []
    header = message.blocks[0]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert header["text"]["text"] == HEADERS[kind]
    text = message.blocks_json()
    assert "HTTP 503 from PostHog" in text
    assert "Check posthog.host." in text
    if kind.failing:
        assert "*Error:*" in text
        assert "Since 2023-11-14 22:13 UTC (failing for 38 min)" in text
    else:
        assert "*Last error:*" in text
        assert "Failed from 2023-11-14 22:13 UTC until 22:51 UTC (38 min)" in text
    assert message.blocks[-1]["type"] == "context"
    assert message.text == f"{HEADERS[kind]}: HTTP 503 from PostHog"


def test_timing_spans_days_and_hours() -> None:
    """Durations read as minutes, hours or days; a recovery on another day shows its date."""
    long = notice_slack_message(notice(NoticeKind.SOURCE_RECOVERED, lasted=2 * 86400 + 7300))
    assert "until 2023-11-17 00:15 UTC (2 d 2 h)" in long.blocks_json()
    short = notice_slack_message(notice(NoticeKind.SINK_FAILING, lasted=12))
    assert "(failing for 12 s)" in short.blocks_json()


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_hostile_error_text_is_escaped_and_cut(kind: NoticeKind) -> None:
    """An error quoting PostHog or a receiver cannot ping, disguise a link, drive a terminal or
    break a Block Kit limit."""
    message = notice_slack_message(notice(kind, error=HOSTILE))
    assert block_errors(list(message.blocks)) == []
    assert len(message.blocks_json()) <= MAX_BLOCKS_JSON
    assert len(message.blocks[0]["text"]["text"]) <= MAX_HEADER
    for text in (
        message.blocks_json(),
        message.text,
        notice_text_only(notice(kind, error=HOSTILE)),
    ):
        assert "<!channel>" not in text
        assert "<https://" not in text
        assert "\x1b" not in text
        assert "\u202e" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click here&gt;" in message.blocks_json()
    assert len(notice_fallback_text(notice(kind, error=HOSTILE))) <= 300


def test_webhook_body() -> None:
    """``{"type": "notifier.<kind>", "timestamp": …, "data": {the notice}}``, compact JSON."""
    failing = notice(NoticeKind.SINK_FAILING, error="channel_not_found")
    body = notice_webhook_body(failing, datetime.fromtimestamp(T0 + 901, UTC))
    assert b" " not in body.replace(b"Check posthog.host.", b"")
    assert json.loads(body) == {
        "type": "notifier.sink_failing",
        "timestamp": "2023-11-14T22:28:21Z",
        "data": {
            "notice_id": failing.id,
            "kind": "sink_failing",
            "project_id": None,
            "sink": "slack",
            "error": "channel_not_found",
            "since": "2023-11-14T22:13:20.000Z",
            "at": "2023-11-14T22:28:20.000Z",
            "hint": "Check posthog.host.",
        },
    }


def test_console_text() -> None:
    """A few plain lines; colour only when asked for, never from the error text."""
    text = notice_console_text(notice(NoticeKind.SOURCE_FAILING, error=HOSTILE), color=False)
    lines = text.splitlines()
    assert lines[0] == HEADERS[NoticeKind.SOURCE_FAILING]
    assert lines[1].startswith("   error: <!channel>")
    assert lines[2] == "   Since 2023-11-14 22:13 UTC (failing for 15 min)"
    assert lines[3] == "   what to do: Check posthog.host."
    assert "\x1b" not in text
    coloured = notice_console_text(notice(NoticeKind.SOURCE_RECOVERED), color=True)
    assert coloured.startswith("\x1b[32m✅")


# --- config --------------------------------------------------------------------------------

BASE = """
posthog: {host: https://us.posthog.com, api_key: phx_test_key, project_ids: [1]}
sinks:
  team: {type: console}
  ops: {type: console}
rules: [{name: r, sinks: [team]}]
"""


def test_config_defaults_and_values() -> None:
    """Omitted: 15 minutes, no sink (the log, /metrics and /readyz only). ``sinks: []``: the
    same, said on purpose; a sink only named for self-alerts is in use (no "no rule sends to
    it" warning)."""
    default = parse_config(BASE, source="c")
    assert default.self_alerts.after == 900
    assert default.self_alerts.sinks is None
    assert default.self_alerts.targets(list(default.sinks)) == ()
    off = parse_config(BASE + "self_alerts: {sinks: []}", source="c")
    assert off.self_alerts.targets(list(off.sinks)) == ()
    both = parse_config(BASE + "self_alerts: {after: 5m, sinks: [ops, team, ops]}", source="c")
    assert both.self_alerts.after == 300
    assert both.self_alerts.sinks == ("ops", "team")
    assert both.warnings == ()
    one = parse_config(BASE + "self_alerts: {sinks: ops}", source="c")
    assert one.warnings == (
        "self_alerts.sinks: only 'ops', so its own failures cannot be reported; add a second sink",
    )


def test_config_errors_have_key_paths() -> None:
    """Unknown sinks and keys, bad durations: each with its key path, all at once."""
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + "self_alerts: {after: soon, sinks: [ops, opz], snks: 1}", source="c")
    assert caught.value.problems == [
        "self_alerts.after: invalid duration (got 'soon'); use a number of seconds or 500ms, "
        "90s, 5m, 1h, 1d",
        "self_alerts.sinks[1]: unknown sink 'opz' (did you mean 'ops'? defined: team, ops)",
        "self_alerts.snks: unknown key (did you mean 'sinks'?)",
    ]


# --- the store -----------------------------------------------------------------------------


def test_store_queues_a_notice_once_per_sink(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    try:
        failing = notice(NoticeKind.SINK_FAILING)
        assert store.enqueue_notice(failing, ["hook", "ops"], T0) == 2
        assert store.enqueue_notice(failing, ["hook"], T0 + 1) == 0
        [entry] = store.pending("hook")
        assert entry.event == failing
        assert entry.rules == ()
        assert entry.next_attempt_at == T0
    finally:
        store.close()


# --- end to end ----------------------------------------------------------------------------


class Clock:
    """The self-alert clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


Start = Callable[..., Notifier]


@pytest.fixture
def start(
    world: World, load: Callable[[Path], Settings], clock: Clock, notifiers: Notifiers
) -> Start:
    """A Notifier for the config ``make_config(**config)`` writes, with the hand clock and
    PostHog retries that do not sleep."""

    def build(**config: Any) -> Notifier:
        return notifiers.build(load(world.make_config(**config)), waits=[], alert_clock=clock)

    return build


def notices(slack: FakeSlack, via: str) -> list[str]:
    """Headers of the notices Slack accepted ``via`` api or webhook."""
    return [
        m.blocks[0]["text"]["text"]
        for m in slack.messages
        if m.via == via and m.blocks and "about itself" in json.dumps(m.blocks[-1])
    ]


def hook_types(receiver: WebhookReceiver) -> list[str]:
    return [body["type"] for body in receiver.bodies()]


def self_alert_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "self_alert"]


def test_posthog_failing_past_after_is_reported_once_then_its_recovery(
    world: World, start: Start, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Failing polls say nothing until ``after``; then one source_failing to every sink (signed
    webhook of type notifier.source_failing); later failures add nothing; the next good cycle
    sends one source_recovered."""
    notifier = start(extra="self_alerts: {after: 1s, sinks: [slack, slack-hook, hook]}")
    assert notifier.poll(PROJECT) is not None  # the baseline
    world.posthog.fail_next(500, times=10_000)
    assert notifier.poll(PROJECT) is None
    clock.advance(0.5)
    assert notifier.poll(PROJECT) is None
    notifier.drain_all()
    assert world.slack.messages == []
    assert world.receiver.received == []

    clock.advance(0.6)  # 1.1 s since the first failure
    assert notifier.poll(PROJECT) is None
    notifier.drain_all()
    failing = HEADERS[NoticeKind.SOURCE_FAILING]
    assert notices(world.slack, "api") == [failing]
    assert notices(world.slack, "webhook") == [failing]
    assert hook_types(world.receiver) == ["notifier.source_failing"]
    hook = world.receiver.received[0]
    Webhook(WEBHOOK_SECRET).verify(hook.body, hook.headers)  # raises if the signature is wrong
    data = hook.json()["data"]
    assert data["project_id"] == PROJECT
    assert data["sink"] is None
    assert "HTTP 500" in data["error"]
    assert "status.posthog.com" in data["hint"]
    [logged] = self_alert_logs(caplog)
    assert logged.levelno == logging.WARNING
    assert logged.project_id == PROJECT  # type: ignore[attr-defined]

    for _ in range(3):  # still failing: nothing more
        clock.advance(60)
        assert notifier.poll(PROJECT) is None
    notifier.drain_all()
    assert len(world.receiver.received) == 1
    assert len(world.slack.messages) == 2

    world.posthog.clear_faults()
    clock.advance(60)
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    recovered = HEADERS[NoticeKind.SOURCE_RECOVERED]
    assert notices(world.slack, "api") == [failing, recovered]
    assert notices(world.slack, "webhook") == [failing, recovered]
    assert hook_types(world.receiver) == ["notifier.source_failing", "notifier.source_recovered"]
    assert world.receiver.bodies()[1]["data"]["since"] == data["since"]
    assert [r.levelno for r in self_alert_logs(caplog)] == [logging.WARNING, logging.INFO]
    assert notifier.poll(PROJECT) is not None  # and a good cycle after that: nothing
    notifier.drain_all()
    assert len(world.receiver.received) == 2


def test_a_project_paused_after_errors_is_reported_too(
    world: World, start: Start, clock: Clock
) -> None:
    """A refused key pauses the project; the skipped cycles still count towards ``after``, and
    the notice says what to do about the key."""
    notifier = start(extra="self_alerts: {after: 10m, sinks: [hook]}")
    world.posthog.fail_next(403, times=10_000)
    assert notifier.poll(PROJECT) is None
    clock.advance(601)
    assert notifier.poll(PROJECT) is None  # skipped: paused after the refusal
    notifier.drain_all()
    assert hook_types(world.receiver) == ["notifier.source_failing"]
    assert "posthog.api_key" in world.receiver.bodies()[0]["data"]["hint"]


def test_an_alerted_outage_survives_a_restart(world: World, start: Start, clock: Clock) -> None:
    """Outages are kept in the state file: after a restart the same outage is not reported
    again, and its recovery still is (so is `notifier once` from cron)."""
    config = {"extra": "self_alerts: {after: 1s, sinks: [hook]}"}
    first = start(**config)
    world.posthog.fail_next(500, times=10_000)
    first.poll(PROJECT)
    clock.advance(2)
    first.poll(PROJECT)
    first.drain_all()
    first.close()
    assert hook_types(world.receiver) == ["notifier.source_failing"]

    second = start(**config)  # the same config file, written again
    clock.advance(3600)
    assert second.poll(PROJECT) is None
    second.drain_all()
    assert hook_types(world.receiver) == ["notifier.source_failing"]
    world.posthog.clear_faults()
    assert second.poll(PROJECT) is not None
    second.drain_all()
    assert hook_types(world.receiver) == ["notifier.source_failing", "notifier.source_recovered"]


def test_a_sink_dead_lettering_is_reported_through_the_others(
    world: World, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack dead-lettering reports → one sink_failing, at once, through the webhook only (a
    sink cannot report its own failure); more dead letters in the same outage add nothing; the
    next delivery to Slack → sink_recovered."""
    notifier = start(first_run="notify", extra="self_alerts: {sinks: [slack, hook]}")
    world.posthog.add_report(PROJECT, title="one")
    world.posthog.add_report(PROJECT, title="two")
    world.slack.fail_next("channel_not_found", times=2)
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    notifier.drain_all()
    assert world.slack.messages == []
    assert hook_types(world.receiver) == [
        "signal_report.new",
        "signal_report.new",
        "notifier.sink_failing",
    ]
    data = world.receiver.bodies()[2]["data"]
    assert data["sink"] == "slack"
    assert data["project_id"] is None
    assert data["error"].startswith("channel_not_found: the bot cannot see channel")
    assert "notifier outbox retry --sink slack" in data["hint"]
    [logged] = self_alert_logs(caplog)
    assert logged.levelno == logging.WARNING
    assert logged.sink == "slack"  # type: ignore[attr-defined]

    world.posthog.add_report(PROJECT, title="three")
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    notifier.drain_all()
    assert len(world.slack.messages) == 1  # the report; Slack is not told about itself
    assert hook_types(world.receiver)[3:] == ["signal_report.new", "notifier.sink_recovered"]
    assert "notifier outbox retry --sink slack" in world.receiver.bodies()[4]["data"]["hint"]


def test_notices_that_fail_cause_no_more_notices(world: World, start: Start) -> None:
    """Every sink dead-lettering: each is reported once to the others, those notices are
    dead-lettered too, and that is the end of it (no loop)."""
    rules = "- {name: all, match: {}, sinks: [slack, slack-hook, hook]}"
    every = "self_alerts: {sinks: [slack, slack-hook, hook]}"
    notifier = start(first_run="notify", rules=rules, extra=every)
    world.posthog.add_report(PROJECT, title="one")
    world.slack.fail_next("channel_not_found", times=100)
    world.slack.webhook_fail_next(404, "no_service", times=100)
    world.receiver.respond_next(410, times=100)
    notifier.poll(PROJECT)
    for _ in range(4):
        notifier.drain_all()
    assert notifier.deliverer.next_due() is None
    dead = notifier.store.entries("dead")
    kinds = sorted((e.sink, e.event.sink) for e in dead if isinstance(e.event, Notice))
    assert kinds == [
        ("hook", "slack"),
        ("hook", "slack-hook"),
        ("slack", "hook"),
        ("slack", "slack-hook"),
        ("slack-hook", "hook"),
        ("slack-hook", "slack"),
    ]
    assert len(dead) == 3 + 6


def test_an_empty_sink_list_turns_self_alerts_off(world: World, start: Start, clock: Clock) -> None:
    """``self_alerts: {sinks: []}``: neither a failing project nor a dead-lettering sink is
    reported."""
    notifier = start(first_run="notify", extra="self_alerts: {after: 0s, sinks: []}")
    world.posthog.add_report(PROJECT, title="one")
    world.slack.fail_next("channel_not_found")
    notifier.poll(PROJECT)
    world.posthog.fail_next(500, times=10_000)
    clock.advance(60)
    notifier.poll(PROJECT)
    notifier.drain_all()
    notifier.drain_all()
    assert not [
        e
        for state in ("pending", "dead", "delivered")
        for e in notifier.store.entries(state)
        if isinstance(e.event, Notice)
    ]
    assert hook_types(world.receiver) == ["signal_report.new"]


def test_the_daemon_wakes_the_sinks_for_a_notice(
    world: World, load: Callable[[Path], Settings]
) -> None:
    """`notifier run`: a poll thread queues the notice and the idle delivery threads send it at
    once (no waiting for their 30 s timer)."""
    settings = load(world.make_config(extra="self_alerts: {after: 50ms, sinks: [hook]}"))
    world.posthog.fail_next(401, times=10_000)
    with running(settings):  # stopped, closed and its thread joined on the way out
        wait_for(
            lambda: "notifier.source_failing" in hook_types(world.receiver),
            15,
            "a source_failing webhook",
            poll=0.02,
        )
    assert hook_types(world.receiver) == ["notifier.source_failing"]
    assert world.slack.messages == []


def test_recovery_is_not_lost_when_it_cannot_be_queued(tmp_path: Path) -> None:
    """If the recovered notice cannot be queued (the state database failing), the outage is
    kept and the next success queues it: the recovery is reported late, never lost."""
    from notifier.config.settings import SelfAlertSettings  # noqa: PLC0415
    from notifier.delivery.selfalerts import SelfAlerts  # noqa: PLC0415

    store = Store(tmp_path / "s.db")
    now = [1000.0]
    alerts = SelfAlerts(
        SelfAlertSettings(after=10, sinks=("hook",)), ["hook"], store, clock=lambda: now[0]
    )
    try:
        alerts.poll_failed(PROJECT, "HTTP 500", "wait")
        now[0] += 20
        alerts.poll_failed(PROJECT, "HTTP 500", "wait")
        kinds = lambda: [e.event.kind.value for e in store.entries("pending")]  # noqa: E731
        assert kinds() == ["source_failing"]
        store._conn().execute(
            "CREATE TRIGGER full BEFORE INSERT ON outbox BEGIN "
            "SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        alerts.poll_succeeded(PROJECT)
        assert kinds() == ["source_failing"]
        store._conn().execute("DROP TRIGGER full")
        alerts.poll_succeeded(PROJECT)
        assert kinds() == ["source_failing", "source_recovered"]
        alerts.poll_succeeded(PROJECT)
        assert kinds() == ["source_failing", "source_recovered"]
    finally:
        store.close()


# --- issue 13, item 5: operator notices stay out of product channels ------------------------


def _notices_queued(notifier: Notifier) -> list[Notice]:
    return [
        e.event
        for state in ("pending", "dead", "delivered")
        for e in notifier.store.entries(state)
        if isinstance(e.event, Notice)
    ]


def test_by_default_self_alerts_reach_no_sink(
    world: World, start: Start, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """``self_alerts.sinks`` not set: a failing project and a dead-lettering sink are logged
    (once each, WARNING) and queue nothing for any sink."""
    notifier = start(first_run="notify", extra="self_alerts: {after: 0s}")
    world.posthog.add_report(PROJECT, title="one")
    world.slack.fail_next("channel_not_found")
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    world.posthog.fail_next(500, times=10_000)
    for _ in range(3):
        clock.advance(60)
        assert notifier.poll(PROJECT) is None
    notifier.drain_all()
    assert _notices_queued(notifier) == []
    assert notices(world.slack, "api") == notices(world.slack, "webhook") == []
    assert hook_types(world.receiver) == ["signal_report.new"]
    logged = self_alert_logs(caplog)
    assert sorted(r.notice for r in logged) == ["sink_failing", "source_failing"]  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING and "told no sink" in r.getMessage() for r in logged)


def test_check_suggests_naming_a_sink_for_self_alerts(world: World) -> None:
    """`check` says where notices go and suggests an operators' sink; named, it lists it."""
    unset = cli("check", "-c", str(world.make_config()), env=world.env)
    assert unset.returncode == 0, unset.stderr
    assert "Self-alerts  " in unset.stdout
    assert "the log, /metrics and /readyz only" in unset.stdout
    assert "advice: self_alerts.sinks is not set" in unset.stdout
    named = world.make_config(extra="self_alerts: {sinks: [hook]}")
    shown = cli("check", "-c", str(named), env=world.env).stdout
    assert "→ the log, /metrics, /readyz and hook" in shown
    assert "advice: self_alerts.sinks" not in shown


def test_a_sink_failing_notice_names_no_other_sinks_address(world: World, start: Start) -> None:
    """A webhook answering 410: the notice in Slack names the sink, the status and what to
    do, and carries neither the receiver's URL nor its host and port."""
    notifier = start(
        first_run="notify",
        rules="- {name: all, match: {}, sinks: [hook]}",
        extra="self_alerts: {sinks: [slack]}",
    )
    world.posthog.add_report(PROJECT, title="one")
    world.receiver.respond_next(410, body=b"gone from internal-bridge.corp:9443/v1/hooks")
    assert notifier.poll(PROJECT) is not None
    notifier.drain_all()
    notifier.drain_all()
    [message] = [m for m in world.slack.messages if m.via == "api"]
    seen = json.dumps(message.blocks) + (message.text or "")
    host, port = world.receiver.url.split("//")[1].split("/")[0].split(":")
    assert "Notifier cannot deliver to sink hook" in seen
    assert "HTTP 410" in seen
    assert "notifier outbox retry --sink hook" in seen
    for leak in (world.receiver.url, f"{host}:{port}", port, "internal-bridge.corp:9443"):
        assert leak not in seen, leak
    [failing] = _notices_queued(notifier)
    assert port not in failing.error


def test_the_daemon_says_once_where_notices_go(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The default changed: a daemon started without ``self_alerts.sinks`` says once where
    notices go now (not at every cycle; `once` from cron and reloads do not repeat it)."""
    with running(load(make_config())) as notifier:
        wait_for(lambda: notifier.health[PROJECT].last_success is not None, 20, "a cycle")
    started = [r.getMessage() for r in caplog.records if "self_alerts.sinks" in r.getMessage()]
    assert len(started) == 1
    assert "the log, /metrics and /readyz only" in started[0]
    assert "no longer to every sink" in started[0]
