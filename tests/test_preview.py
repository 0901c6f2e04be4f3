"""`notifier preview`: what each sink would receive, as the user runs it (a subprocess), and
proof that it is what the sinks send (``compose_event``'s output). Nothing is ever sent: every
test also asserts that the fake PostHog, Slack and webhook receiver saw no request."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from notifier.cli import preview as preview_module
from notifier.cli.preview import run_preview
from notifier.cli.samples import sample_named
from notifier.config.settings import Settings
from notifier.core.events import CHANGES, Event, EventType
from notifier.core.report import Links
from notifier.core.rules import route
from notifier.demo.simulator import FakePostHog
from notifier.render import SlackMessage, block_kit_builder_url
from notifier.sinks.compose import compose_event
from tests.factories import PROJECT
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import assert_no_secrets, cli

BUILDER = "Block Kit Builder: "
READY = sample_named("ready")  # the sample the single-event tests use
SAMPLE_ID = READY.event(PROJECT).report.id
ONE = ("--sample", "ready")
TEMPLATED_RULES = """
- name: ready reports
  match: {event: [new, status_changed, updated, removed], status: ready}
  sinks: [slack, slack-hook, hook]
  reply_broadcast: true
  template:
    body: |
      *{{ report.title }}* is {{ report.status }}
      {% if changes.status is defined %}(was {{ changes.status.before }}){% endif %}
"""
HOSTILE_TITLE = "<!channel> \x1b[31mCheckout\x1b[0m <https://evil.example|click> & pay"


@pytest.fixture
def untouched(posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver) -> Iterator[None]:
    """After the test: no request reached PostHog, Slack or the webhook receiver."""
    yield
    assert posthog.requests == []
    assert slack.calls == []
    assert receiver.received == []


def inject(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def sections(stdout: str) -> dict[str, str]:
    """Each sink's part of the output (after its ``── name …`` line), by sink name."""
    found: dict[str, str] = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith("── "):
            name = line.split()[1]
            found[name] = line + "\n"
        elif name is not None:
            found[name] += line + "\n"
    return found


def slack_part(section: str) -> tuple[dict[str, Any], str]:
    """The Block Kit JSON of a Slack sink's section and its Block Kit Builder URL."""
    body = section.split("\n", 1)[1]
    payload, _, url = body.partition(BUILDER)
    return json.loads(payload), url.strip()


def json_part(section: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(section.split("\n", 1)[1])
    return data


def run(path: Path, env: dict[str, str], *args: str) -> tuple[str, str, int]:
    result = cli("preview", "-c", str(path), *args, env=env)
    assert_no_secrets(result.stdout + result.stderr, env)
    return result.stdout, result.stderr, result.returncode


@pytest.mark.parametrize("event_type", [t.value for t in CHANGES])  # what rules route
def test_preview_each_event_type(
    event_type: str,
    make_config: Callable[..., Path],
    env: dict[str, str],
    untouched: None,
) -> None:
    """For each event type: the routed sinks print Block Kit JSON with a Block Kit Builder link
    and the webhook JSON of that type; a sink no rule routes to is named as not sent. Nothing
    is sent, PostHog is not asked, no state file appears."""
    path = make_config()  # rule "everything": every event type → slack, hook
    out, err, code = run(path, env, *ONE, "--event", event_type)
    assert code == 0, err
    assert out.startswith(f"Preview: {event_type} event, project {PROJECT}, report {SAMPLE_ID}")
    assert "Rules matching:\n  everything → slack, hook\n" in out
    parts = sections(out)
    assert list(parts) == ["slack", "slack-hook", "hook"]
    message, url = slack_part(parts["slack"])
    assert set(message) == {"text", "blocks"}
    assert message["blocks"][0]["type"] == "header"
    assert url == block_kit_builder_url(SlackMessage(message["text"], tuple(message["blocks"])))
    assert url.startswith("https://app.slack.com/block-kit-builder#")
    assert "would not be sent (no matching rule routes to it)" in parts["slack-hook"]
    assert BUILDER not in parts["slack-hook"]
    body = json_part(parts["hook"])
    assert body["type"] == f"signal_report.{event_type}"
    data = body["data"]
    assert (data["report"]["id"], data["project_id"], data["rules"]) == (
        SAMPLE_ID,
        PROJECT,
        ["everything"],
    )
    if event_type == "new":
        assert data["previous"] is None
    elif event_type == "status_changed":
        assert data["previous"]["status"] == "in_progress"
        assert data["changes"]["status"] == ["in_progress", "ready"]
    elif event_type == "updated":
        assert data["previous"]["status"] == data["report"]["status"]
        assert data["changes"]["total_weight"][0] < data["changes"]["total_weight"][1]
    else:
        assert data["previous"] == data["report"]
    assert not (path.parent / "state.db").exists()


def test_preview_defaults_to_status_changed(
    make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """Without --event, the sample's in_progress → ready change."""
    out, err, code = run(make_config(), env, *ONE)
    assert code == 0, err
    assert out.startswith("Preview: status_changed event")
    assert "changes: status Researching → Ready for review" in out


def test_preview_of_a_hostile_report_file(
    tmp_path: Path, make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """A report saved from the API whose title tries to ping the channel, disguise a link and
    colour the terminal: in Slack's JSON it is escaped (pings nobody, links nowhere); the
    webhook carries it as PostHog sent it; no escape sequence reaches the terminal."""
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "id": "rep-1\x1b[2J",
                "status": "ready",
                "title": HOSTILE_TITLE,
                "summary": "<!here> look",
                "total_weight": "2.5",
            }
        )
    )
    path = make_config()
    out, err, code = run(path, env, "--report", str(report))
    assert code == 0, err
    assert f"(from {report}; nothing is sent)" in out
    assert "\x1b" not in out
    parts = sections(out)
    message, _ = slack_part(parts["slack"])
    slack_json = json.dumps(message, ensure_ascii=False)
    for raw in ("<!channel>", "<!here>", "<https://evil.example"):
        assert raw not in slack_json
    assert "&lt;!channel&gt;" in message["text"]
    assert "&lt;!channel&gt;" in message["blocks"][0]["text"]["text"]
    assert "&lt;https://evil.example|click&gt; &amp; pay" in slack_json
    data = json_part(parts["hook"])["data"]
    assert data["report"]["title"] == HOSTILE_TITLE
    assert data["report"]["id"] == "rep-1\x1b[2J"
    assert data["previous"]["status"] == "in_progress"


@pytest.mark.parametrize(
    ("event_type", "status", "check"),
    [
        ("new", "candidate", lambda d: d["previous"] is None),
        ("status_changed", "pending_input", lambda d: d["previous"]["status"] == "in_progress"),
        ("status_changed", "resolved", lambda d: d["changes"] == {"status": ["ready", "resolved"]}),
        (
            "updated",
            "ready",
            lambda d: d["changes"] == {"total_weight": [1.5, 2.0], "signal_count": [3, 4]},
        ),
        ("removed", "ready", lambda d: d["previous"] == d["report"] and d["changes"] == {}),
    ],
)
def test_preview_of_a_report_file_per_event_type(
    event_type: str,
    status: str,
    check: Callable[[dict[str, Any]], bool],
    tmp_path: Path,
    make_config: Callable[..., Path],
    env: dict[str, str],
    untouched: None,
) -> None:
    """The report becomes the current copy; previous is derived: another status for
    status_changed, smaller numbers for updated, none for new, the same copy for removed."""
    report = tmp_path / "report.json"
    item = {"id": "r9", "status": status, "title": "t", "total_weight": 2.0, "signal_count": 4}
    report.write_text(json.dumps(item))
    out, err, code = run(make_config(), env, "--report", str(report), "--event", event_type)
    assert code == 0, err
    data = json_part(sections(out)["hook"])["data"]
    assert data["report"] == item
    assert check(data), data


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id": "r1", "status": ', "not JSON: Expecting value at line 1, column 24"),
        (b'{"count": 1, "results": [{"id": "r1"}]}', "this is a listing (it has 'results')"),
        (b'{"title": "no id"}', "a report has no 'id': it must be one report as PostHog's API"),
        (b'{"id": "r1"}', "report r1 has no 'status'"),
        (b"[1, 2]", "a report must be a JSON object, got list"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0); save it as UTF-8 JSON"),
        (None, "cannot read the file: No such file or directory"),
    ],
)
def test_preview_refuses_a_bad_report_file(
    content: bytes | None,
    expected: str,
    tmp_path: Path,
    make_config: Callable[..., Path],
    env: dict[str, str],
    untouched: None,
) -> None:
    """A file that is not one report: exit 2, the file named, what is wrong, no traceback."""
    report = tmp_path / "report.json"
    if content is not None:
        report.write_bytes(content)
    out, err, code = run(make_config(), env, "--report", str(report))
    assert code == 2
    assert err.startswith(f"error: --report {report}: 1 problem:\n  - {expected}"), err
    assert "Traceback" not in err
    assert out == ""


def test_preview_of_one_sink(
    make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """--sink NAME shows that sink only, even one no rule routes to; an unknown name exits 2."""
    path = make_config()
    out, err, code = run(path, env, *ONE, "--sink", "hook")
    assert code == 0, err
    assert list(sections(out)) == ["hook"]
    out, err, code = run(path, env, *ONE, "--sink", "slack-hook")
    assert code == 0, err
    assert list(sections(out)) == ["slack-hook"]
    assert "as it would look with no rule" in out
    assert slack_part(sections(out)["slack-hook"])[0]["blocks"]
    out, err, code = run(path, env, "--sink", "pager")
    assert code == 2
    assert "preview --sink: unknown sink 'pager' (defined: slack, slack-hook, hook)" in err


def test_preview_when_no_rule_matches(
    make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """No rule matches: it says so, and still shows every sink's rendering with no rule."""
    path = make_config(rules="- {name: failures, match: {status: failed}, sinks: [slack]}")
    out, err, code = run(path, env, *ONE)
    assert code == 0, err
    assert "No rule matches this event: it would not be sent." in out
    assert "Rules matching" not in out
    parts = sections(out)
    assert list(parts) == ["slack", "slack-hook", "hook"]
    for name in ("slack", "slack-hook"):
        assert "as it would look with no rule" in parts[name]
        message, url = slack_part(parts[name])
        assert message["blocks"]
        assert url
    assert json_part(parts["hook"])["data"]["rules"] == []


def test_preview_shows_a_stop_rule(
    make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """A matching rule with stop: true hides the later rules, and the preview says which."""
    rules = """
- {name: first, match: {status: ready}, sinks: [hook], stop: true}
- {name: second, sinks: [slack]}
"""
    out, err, code = run(make_config(rules=rules), env, *ONE)
    assert code == 0, err
    assert "  first → hook\n  (stop: later rules do not see it after 'first')\n" in out
    assert "second →" not in out
    assert "would not be sent" in sections(out)["slack"]


def test_preview_needs_neither_posthog_nor_state(
    tmp_path: Path, make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """PostHog unreachable and the state directory missing: preview works all the same."""
    path = make_config()
    text = path.read_text()
    host = next(line for line in text.splitlines() if line.startswith("  host: "))
    inject(path, host, "  host: http://127.0.0.1:9")
    inject(path, str(tmp_path / "state.db"), str(tmp_path / "missing" / "dir" / "state.db"))
    out, err, code = run(path, env, *ONE)
    assert code == 0, err
    assert "http://127.0.0.1:9/project/4242/inbox/reports/" in out
    assert not (tmp_path / "missing").exists()


def test_preview_refuses_an_invalid_config(
    make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """A broken template is a config error for preview too: exit 2 with its place."""
    path = make_config(rules='- {name: r, sinks: [slack], template: {title: "{{ reprot }}"}}')
    out, err, code = run(path, env, *ONE)
    assert code == 2
    assert "rules[0] \"r\".template.title, line 1: 'reprot' is undefined" in err
    assert out == ""


def test_preview_shows_sample_artefacts_for_enriched_sinks(
    tmp_path: Path, make_config: Callable[..., Path], env: dict[str, str], untouched: None
) -> None:
    """A sink with enrich: [artefacts] is previewed with sample recordings and judgments (the
    sample only: a report file's artefacts are not fetched)."""
    path = make_config()
    inject(path, "    channel: C0123456789", "    channel: C0123456789\n    enrich: [artefacts]")
    out, err, code = run(path, env, *ONE)
    assert code == 0, err
    parts = sections(out)
    assert "with sample artefacts (enrich)" in parts["slack"].splitlines()[0]
    assert "Watch recording" in parts["slack"]
    assert "Watch recording" not in parts["slack-hook"]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"id": "r1", "status": "ready", "artefact_count": 3}))
    out, err, code = run(path, env, "--report", str(report))
    assert code == 0, err
    assert "artefacts not fetched by preview (enrich)" in sections(out)["slack"]
    assert "Watch recording" not in out


# --- previews match what is sent -----------------------------------------------------------


def templated_config(make_config: Callable[..., Path]) -> Path:
    path = make_config(rules=TEMPLATED_RULES)
    inject(
        path,
        "  slack-hook:\n    type: slack_webhook\n",
        "  slack-hook:\n    type: slack_webhook\n"
        '    template: {title: "Sink title {{ report.signal_count }}"}\n',
    )
    return path


@pytest.mark.parametrize("event_type", [t.value for t in CHANGES])  # what rules route
def test_preview_is_what_compose_event_gives_each_sink(
    event_type: str,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    env: dict[str, str],
    untouched: None,
) -> None:
    """The Slack JSON, its Block Kit Builder link and the webhook body that `preview` prints are
    exactly ``compose_event``'s output for the sink (the function the sinks send with), the
    routed rules and their templates; the rule's template shows in the message."""
    path = templated_config(make_config)
    out, err, code = run(path, env, *ONE, "--event", event_type)
    assert code == 0, err
    settings = load(path)
    event = preview_module.sample_preview_event(READY, event_type, PROJECT)
    assert event.report.id == SAMPLE_ID
    if event_type == "status_changed":
        assert event == READY.event(PROJECT)
    links = Links(settings.posthog.host)
    templates = {r.name: r.templates for r in settings.rules if r.templates is not None}
    assert list(templates) == ["ready reports"]
    routes = {rt.sink: rt.rules for rt in route(event, settings.rules)}
    assert routes == dict.fromkeys(("slack", "slack-hook", "hook"), ("ready reports",))
    parts = sections(out)
    for name in ("slack", "slack-hook"):
        message, url = slack_part(parts[name])
        sent = compose_event(
            settings.sinks[name], event, routes[name], links, templates, timestamp=datetime.now(UTC)
        )
        assert isinstance(sent, dict)
        assert message == sent
        assert url == block_kit_builder_url(SlackMessage(sent["text"], tuple(sent["blocks"])))
        blocks = json.dumps(message["blocks"], ensure_ascii=False)
        assert "*Pricing page toggle confuses annual vs monthly* is ready" in blocks
        assert "Sink title" not in blocks  # the rule's template replaces the sink's
    body = json_part(parts["hook"])
    sent = compose_event(
        settings.sinks["hook"], event, routes["hook"], links, templates, timestamp=datetime.now(UTC)
    )
    assert isinstance(sent, dict)
    assert {**body, "timestamp": None} == {**sent, "timestamp": None}


def test_preview_sends_every_payload_through_compose_event(
    monkeypatch: pytest.MonkeyPatch,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    untouched: None,
) -> None:
    """Every payload the preview prints is what ``compose_event`` returned for that sink, called
    with the routed rules and every templated rule's templates."""
    settings = load(templated_config(make_config))
    calls: list[tuple[str, Event, tuple[str, ...], dict[str, Any]]] = []

    def spy(
        sink: Any, event: Event, rules: Any, links: Links, rule_templates: Any, **kw: Any
    ) -> Any:
        calls.append((sink.name, event, tuple(rules), dict(rule_templates)))
        return f"<<composed for {sink.name}>>"

    monkeypatch.setattr(preview_module, "compose_event", spy)
    out = io.StringIO()
    run_preview(settings, out, event_type="new", sample_name="ready", now=datetime.now(UTC))
    assert [c[0] for c in calls] == ["slack", "slack-hook", "hook"]
    for name, event, rules, templates in calls:
        assert f"<<composed for {name}>>\n" in out.getvalue()
        assert event.type is EventType.NEW
        assert rules == ("ready reports",)
        assert templates == {"ready reports": settings.rules[0].templates}


def test_enriched_preview_is_compose_event_of_the_enriched_event(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    env: dict[str, str],
    untouched: None,
) -> None:
    """With enrich: [artefacts], the preview is compose_event of the sample event carrying the
    sample artefacts, as a delivery with enrichment would carry them."""
    path = make_config()
    inject(path, "    channel: C0123456789", "    channel: C0123456789\n    enrich: [artefacts]")
    out, err, code = run(path, env, *ONE, "--sink", "slack")
    assert code == 0, err
    settings = load(path)
    event = replace(READY.event(PROJECT), enrichment=READY.enrichment)
    sent = compose_event(
        settings.sinks["slack"],
        event,
        ("everything",),
        Links(settings.posthog.host),
        {},
        timestamp=datetime.now(UTC),
    )
    assert slack_part(sections(out)["slack"])[0] == sent


# --- the built-in samples against the example configuration --------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
EXAMPLE_ENV = {
    "POSTHOG_PERSONAL_API_KEY": "phx_example_key",
    "SLACK_BOT_TOKEN": "xoxb-example-token",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def test_preview_of_the_example_does_not_flatter_it(untouched: None) -> None:
    """`notifier preview -c config.example.yaml`: several ordinary samples, none about checkout;
    each with the rules it matches (ready and actionable → the team channel, needs input,
    resolved), and one the example sends nowhere shown as matching nothing."""
    state = EXAMPLE.parent / "notifier-state.db"
    existed = state.exists()
    out, err, code = run(EXAMPLE, EXAMPLE_ENV)
    assert code == 0, err
    assert out.startswith("Preview of 9 built-in samples (nothing is sent;")
    assert "checkout" not in out.lower()
    overview = out.split("\n\n", 1)[0] + "\n"
    assert (
        "  ready: Pricing page toggle confuses annual vs monthly (in_progress → ready)\n"
        "    ready for the team → product-channel, incident-bridge\n"
    ) in overview
    assert "  needs-input: " in overview
    assert "(in_progress → pending_input)\n    needs input → product-channel, team-hook\n" in out
    assert "(ready → resolved)\n    resolved → product-channel, stdout\n" in overview
    assert "(in_progress → ready)\n    no rule matches: it would not be sent\n" in overview
    for quiet in ("(candidate → in_progress)", "(ready → suppressed)", "(removed, ready)"):
        assert f"{quiet}\n    no rule matches: it would not be sent\n" in overview
    assert out.count("Preview: status_changed event") == 7
    assert out.count("No rule matches this event") == 5
    assert state.exists() == existed


def test_preview_of_one_sample(make_config: Callable[..., Path], env: dict[str, str]) -> None:
    """--sample NAME previews that sample alone; a sample matching nothing shows every sink's
    rendering; an unknown name is a usage error listing the names."""
    path = make_config(rules="- {name: ready, match: {status: ready}, sinks: [slack]}")
    out, err, code = run(path, env, "--sample", "resolved")
    assert code == 0, err
    assert out.startswith("Preview: status_changed event")
    assert "Signup form rejects emails with a plus sign" in out
    assert "No rule matches this event" in out
    assert list(sections(out)) == ["slack", "slack-hook", "hook"]
    out, err, code = run(path, env, "--sample", "nope")
    assert code == 2
    assert "invalid choice: 'nope'" in err
