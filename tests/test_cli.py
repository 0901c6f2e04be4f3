"""The `notifier` command as a user runs it: a config file, exit codes, output. Commands run in
this process (`cli.app.main`); `--version`, the demo, one `once` and the signals run the real
process, since that is what they test."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from notifier import __version__
from notifier.demo.simulator import FakePostHog
from tests.factories import API_KEY, PROJECT
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import assert_no_secrets, cli, inject, run_notifier, wait_for


def test_version() -> None:
    """--version prints the version and exits 0."""
    result = run_notifier("--version", env={})
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_check_summarises_a_valid_config(
    make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """`check` exits 0 and names projects, sinks and rules without showing a secret."""
    path = make_config()
    result = cli("check", "-c", str(path), "--log-level", "debug", env=env)
    assert result.returncode == 0, result.stderr
    assert str(PROJECT) in result.stdout
    for sink in ("slack", "slack-hook", "hook"):
        assert sink in result.stdout
    assert "everything" in result.stdout
    assert_no_secrets(result.stdout + result.stderr, env)


def test_check_reports_every_problem_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    """A config with several mistakes gets all of them, each with its key path; exit 2."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"""
posthog:
  host: https://us.posthog.com
  api_key: {API_KEY}
  project_ids: [1]
poll: {{interval: soon}}
sinks:
  team:
    typ: slack
rules:
  - name: r
    match: {{title: {{regex: "(unclosed"}}}}
    sinks: [pager]
"""
    )
    result = cli("check", "-c", str(path), "--log-level", "debug", env=env)
    assert result.returncode == 2
    err = result.stderr
    assert "poll.interval" in err
    assert "sinks.team" in err
    assert "rules[0].match.title.regex" in err
    assert "rules[0].sinks[0]" in err
    assert "pager" in err
    assert API_KEY not in err
    assert_no_secrets(result.stdout + err, env)


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    """No config file: exit 2 with the path it looked for."""
    result = cli("check", "-c", str(tmp_path / "nope.yaml"), env={})
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr


def test_once_delivers_and_logs_no_secret(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    """`once` at DEBUG level delivers a new report to every sink and never logs a secret."""
    posthog.add_report(PROJECT, title="Checkout broken")
    path = make_config(
        first_run="notify",
        rules="- {name: all, match: {}, sinks: [slack, slack-hook, hook]}",
    )
    result = run_notifier("once", "-c", str(path), "--log-level", "debug", env=env)
    assert result.returncode == 0, result.stderr
    assert [m.via for m in slack.messages].count("api") == 1
    assert [m.via for m in slack.messages].count("webhook") == 1
    assert len(receiver.received) == 1
    assert_no_secrets(result.stdout + result.stderr, env)
    state = (path.parent / "state.db").read_bytes()
    for name in ("POSTHOG_PERSONAL_API_KEY", "SLACK_BOT_TOKEN", "WEBHOOK_SECRET"):
        assert env[name].encode() not in state


def test_once_exits_1_when_a_delivery_is_dead(
    posthog: FakePostHog,
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    """A permanent Slack error dead-letters the entry, logs the reason and exits 1; `outbox`
    shows it and `outbox retry` puts it back so the next `once` delivers it. The other sinks
    hear that Slack failed, and (from the next run: outages are kept) that it recovered."""
    posthog.add_report(PROJECT, title="x")
    path = make_config(
        first_run="notify",
        rules="- {name: all, match: {}, sinks: [slack]}",
        extra="self_alerts: {sinks: [slack, slack-hook, hook]}",
    )
    slack.fail_next("channel_not_found")
    result = cli("once", "-c", str(path), env=env)
    assert result.returncode == 1
    assert "channel_not_found" in result.stderr
    listing = cli("outbox", "-c", str(path), env=env)
    assert "dead" in listing.stdout
    assert "channel_not_found" in listing.stdout
    assert cli("outbox", "retry", "--sink", "slack", "-c", str(path), env=env).returncode == 0
    assert cli("once", "-c", str(path), env=env).returncode == 0
    assert len([m for m in slack.messages if m.via == "api"]) == 1
    notices = [(m.text or "").split(":")[0] for m in slack.messages if m.via == "webhook"]
    assert notices == [
        "⚠️ Notifier cannot deliver to sink slack",
        "✅ Delivery to sink slack recovered",
    ]


def test_dry_run_prints_and_changes_nothing(
    posthog: FakePostHog,
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    """`dry-run` shows each event, its sinks and payloads; it sends and stores nothing."""
    path = make_config()
    assert cli("once", "-c", str(path), env=env).returncode == 0
    posthog.add_report(PROJECT, title="Only a rehearsal")
    db = path.parent / "state.db"
    before = sqlite3.connect(db).execute("SELECT COUNT(*) FROM reports").fetchone()
    result = cli("dry-run", "-c", str(path), "--log-level", "debug", env=env)
    assert result.returncode == 0, result.stderr
    assert "Only a rehearsal" in result.stdout
    assert "→ slack (slack)" in result.stdout
    assert "→ hook (webhook)" in result.stdout
    assert slack.messages == []
    after = sqlite3.connect(db).execute("SELECT COUNT(*) FROM reports").fetchone()
    assert before == after
    assert_no_secrets(result.stdout + result.stderr, env)
    assert cli("once", "-c", str(path), env=env).returncode == 0
    assert len(slack.messages) == 1  # the real run still sees the event


def test_test_sink_sends_a_sample(
    slack: FakeSlack,
    receiver: WebhookReceiver,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    """`test-sink NAME` posts a sample to that sink only; an unknown name is exit 2."""
    path = make_config()
    result = cli("test-sink", "hook", "-c", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert len(receiver.received) == 1
    body = json.loads(receiver.received[0].body)
    assert body["type"] == "signal_report.status_changed"
    assert slack.messages == []
    assert cli("test-sink", "pager", "-c", str(path), env=env).returncode == 2


@pytest.mark.timeout(60)
def test_run_stops_cleanly_on_sigterm_mid_cycle(
    posthog: FakePostHog, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """SIGTERM while a cycle waits on PostHog: the daemon exits 0 within 10 s."""
    posthog.add_report(PROJECT)
    path = make_config()
    process = subprocess.Popen(
        [sys.executable, "-m", "notifier", "run", "-c", str(path)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(posthog.requests) >= 1)
        posthog.stall_seconds = 2.0
        wait_for(lambda: len(posthog.requests) >= 2)  # the next cycle is now in flight
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    _, err = process.communicate()
    assert code == 0, err
    assert "SIGTERM" in err
    assert_no_secrets(err, env)


def test_demo_runs_without_config() -> None:
    """`notifier demo` needs no config or credentials and prints messages about reports."""
    result = run_notifier("demo", "--cycles", "3", "--interval", "0.3", env={})
    assert result.returncode == 0, result.stderr
    assert "New signal report" in result.stdout
    assert "cycle 3/3" in result.stdout


def test_demo_shows_a_reminder() -> None:
    """The demo's built-in reminder: a report left ready for review is announced again, once,
    and the cycle that sent it says so."""
    result = run_notifier("demo", "--cycles", "6", "--interval", "0.3", env={})
    assert result.returncode == 0, result.stderr
    assert "announced again after 0.9s" in result.stdout
    assert result.stdout.count("Reminder 1 of 1: still ready for review after ") >= 1
    assert re.search(r"── cycle \d/6: \d+ events?, \d+ reminders?\n", result.stdout)
    assert "Reminder 2 of" not in result.stdout


MESSAGE_RULES = """
- name: ready reports
  match: {status: ready}
  sinks: [slack, hook]
  reply_broadcast: true
  template: {body: "*{{ report.title }}* is ready"}
- {name: rest, sinks: [slack-hook], reply_broadcast: true}
"""


def test_check_says_how_each_sink_delivers(
    make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """`check` says per sink whether it keeps living messages or posts new ones, its digest,
    batch and enrich settings and "template: ok"; per rule reply_broadcast and its template;
    and warns about a reply_broadcast that cannot work."""
    path = make_config(rules=MESSAGE_RULES)
    inject(
        path,
        "    channel: C0123456789",
        "    channel: C0123456789\n    digest_after: 0\n    enrich: [artefacts]",
    )
    inject(
        path,
        "    type: slack_webhook",
        "    type: slack_webhook\n"
        '    template: {text: "{{ event.title }}", title: "{{ report.title }}"}',
    )
    inject(path, "    type: webhook", "    type: webhook\n    batch: true")
    result = cli("check", "-c", str(path), env=env)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    slack = lines.index(next(line for line in lines if line.startswith("slack ")))
    assert lines[slack + 1 : slack + 3] == [
        "living messages: one per report, updated in place, changes as thread replies",
        "digest_after 0: never a digest; enrich: artefacts",
    ]
    hook = lines.index(next(line for line in lines if line.startswith("slack-hook ")))
    assert lines[hook + 1 : hook + 3] == [
        "new messages: one per event (an incoming webhook cannot edit or thread)",
        "digest_after 5: one digest message when more than 5 events arrive at once; "
        "enrich: none; template (title, text): ok",
    ]
    webhook = lines.index(next(line for line in lines if line.startswith("hook ")))
    assert lines[webhook + 1 : webhook + 3] == [
        "one request per event",
        "batch: one signal_report.batch request when more than 5 events arrive at once; "
        "enrich: none",
    ]
    assert (
        "ready reports                  → slack, hook; reply_broadcast: thread replies also go "
        "to the channel; template (body): ok"
    ) in lines
    assert (
        'warning: rules[1] "rest".reply_broadcast: none of its sinks (slack-hook) is a slack '
        "(bot token) sink, the only kind that keeps one message per report with thread "
        "replies; it has no effect"
    ) in lines
    assert_no_secrets(result.stdout + result.stderr, env)


def test_check_lists_every_template_problem(
    make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """Broken templates on two rules: `check` exits 2 and lists both, each with the rule's
    index, name, part and line."""
    rules = """
- {name: ready reports, sinks: [slack], template: {body: "ok\\n{{ reprot.title }}"}}
- {name: needs input, sinks: [slack], template: {title: "{% if %}"}}
"""
    path = make_config(rules=rules)
    result = cli("check", "-c", str(path), env=env)
    assert result.returncode == 2
    err = result.stderr
    assert err.startswith(f"error: {path}: 2 problems:")
    assert "  - rules[0] \"ready reports\".template.body, line 2: 'reprot' is undefined" in err
    assert '  - rules[1] "needs input".template.title, line 1: Expected an expression' in err


def test_dry_run_applies_rule_templates(
    posthog: FakePostHog,
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    """`dry-run` prints what the sinks would send, templates included (compose_event)."""
    rules = """
- name: all
  match: {event: [new, status_changed]}
  sinks: [slack]
  template: {body: "Rehearsed: {{ report.title }}"}
"""
    path = make_config(rules=rules)
    assert cli("once", "-c", str(path), env=env).returncode == 0
    posthog.add_report(PROJECT, title="Only a rehearsal")
    result = cli("dry-run", "-c", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "→ slack (slack) by rules: all" in result.stdout
    assert '"text": "Rehearsed: Only a rehearsal"' in result.stdout
    assert slack.messages == []
