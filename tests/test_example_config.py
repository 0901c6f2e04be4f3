"""config.example.yaml, loaded as a user would (the file itself, with the environment
variables deploy/.env.example names, set to test values), notifies what its rule names say:
PostHog's own policy first (ready and actionable → the team channel), then needs-input and
resolved reports; a report PostHog judged not actionable goes nowhere. And the small things a
newcomer trips on (issue 13, item 7)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from notifier.config.load import load_config
from notifier.config.settings import Settings
from notifier.core.diff import compare
from notifier.core.events import Event, EventType
from notifier.core.report import Report
from notifier.core.rules import route
from notifier.cycle.pipeline import CyclePlan, Routed
from notifier.runtime.probes import readiness
from notifier.state.records import CycleWrite
from tests.helpers import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
PRICING = "Pricing page toggle confuses annual vs monthly"
#: Test values for the variables deploy/.env.example names (its placeholders are refused, as
#: they should be).
TEST_VALUES = {
    "POSTHOG_PERSONAL_API_KEY": "phx_example_key",
    "SLACK_BOT_TOKEN": "xoxb-example-token",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}


def env_example() -> dict[str, str]:
    """deploy/.env.example's VAR=value lines, as Compose's env_file reads them."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


@pytest.fixture(scope="module")
def example() -> Settings:
    names = env_example()
    assert set(TEST_VALUES) <= set(names)
    settings = load_config(EXAMPLE, {**names, **TEST_VALUES})
    assert settings.warnings == ()
    return settings


def status_change(before: str, after: str, **fields: Any) -> Event:
    item = {
        "id": f"r-{after}",
        "title": PRICING,
        "summary": "Visitors switch the toggle back and forth before leaving.",
        "status": after,
        "total_weight": 0.4,
        "signal_count": 2,
        "priority": "P2",
        "actionability": "immediately_actionable",
        **fields,
    }
    report = Report.from_api(item)
    previous = Report.from_api({**item, "status": before})
    return Event.create(
        EventType.STATUS_CHANGED, 12345, report, previous, compare(previous, report)
    )


def routes(settings: Settings, event: Event) -> dict[str, tuple[str, ...]]:
    return {r.sink: r.rules for r in route(event, settings.rules)}


def test_a_ready_actionable_report_reaches_the_team_channel(example: Settings) -> None:
    """Not about checkout, light, P2, straight from in_progress: PostHog's policy sends it to
    the team channel, and so does the example's first rule."""
    for actionability in ("immediately_actionable", "requires_human_input"):
        event = status_change("in_progress", "ready", actionability=actionability)
        got = routes(example, event)
        assert got.get("product-channel") == ("ready for the team",), (actionability, got)
    new = Event.create(EventType.NEW, 12345, status_change("x", "ready").report, None, {})
    assert routes(example, new).get("product-channel") == ("ready for the team",)


def test_needs_input_and_resolved_reports_have_their_rules(example: Settings) -> None:
    waiting = status_change("in_progress", "pending_input", actionability="requires_human_input")
    assert set(routes(example, waiting).values()) == {("needs input",)}
    assert "product-channel" in routes(example, waiting)
    resolved = status_change("ready", "resolved")
    assert set(routes(example, resolved).values()) == {("resolved",)}
    assert "product-channel" in routes(example, resolved)


def test_what_the_example_leaves_out(example: Settings) -> None:
    """Ready but not actionable, or still in research: no rule, nothing sent."""
    judged = status_change("in_progress", "ready", actionability="not_actionable")
    assert routes(example, judged) == {}
    assert routes(example, status_change("potential", "candidate")) == {}


def test_the_illustrative_conditions_stay_as_comments() -> None:
    """The conditions the old first rule required are still shown, commented out."""
    text = EXAMPLE.read_text()
    for example in (
        '# title: {regex: "(?i)checkout"}',
        "# total_weight: {gte: 1.0}",
        "# previous: {status: [in_progress, candidate]}",
        "# priority: [P0, P1]",
    ):
        assert example in text, example


# --- small things a newcomer trips on --------------------------------------------------------


def test_a_missing_config_names_where_it_looked_and_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOTIFIER_CONFIG", raising=False)
    result = cli("check", env={})
    assert result.returncode == 2
    err = result.stderr
    assert str(tmp_path / "config.yaml") in err
    assert "-c" in err
    assert "$NOTIFIER_CONFIG" in err
    assert "config.example.yaml" in err
    assert "Traceback" not in err
    given = cli("check", "-c", "elsewhere.yaml", env={})
    assert str(tmp_path / "elsewhere.yaml") in given.stderr


def test_heartbeat_files_are_git_ignored() -> None:
    patterns = (ROOT / ".gitignore").read_text().splitlines()
    assert "*.heartbeat" in patterns


def test_cycle_summaries_count_in_words() -> None:
    """One of a thing is singular in the cycle's log line: no "1 events", "1 requests"."""
    event = status_change("in_progress", "ready")
    write = CycleWrite(project_id=12345, upserts=(), deletes=(), outbox=(), now=0.0)
    routed = (Routed(event, ()),)
    one = CyclePlan(12345, reports=1, baseline=False, routed=routed, write=write, requests=1)
    line = one.summary(added=1, seconds=0.5)
    assert "1 report, 1 event (1 status_changed), 1 delivery queued" in line
    assert "1 request," in line
    for wrong in ("1 reports", "1 events", "1 deliveries", "1 requests"):
        assert wrong not in line
    two = CyclePlan(12345, reports=2, baseline=False, routed=routed * 2, write=write, requests=0)
    assert "2 reports, 2 events (2 status_changed), 0 deliveries queued" in two.summary(0, 0.1)
    first = CyclePlan(12345, reports=1, baseline=True, routed=(), write=write, requests=1)
    assert "recorded 1 existing report silently" in first.summary(0, 0.1)
    assert "1 request," in first.summary(0, 0.1)


def test_readiness_counts_projects_in_words() -> None:
    """The /readyz reason says "1 project", not "1 project(s)"."""
    polled = SimpleNamespace(last_success=1.0, last_error=None, failures=0)
    ready = {"now": 2.0, "started_at": 0.0, "interval": 60.0, "state_error": None, "config": "c"}
    assert readiness({7: polled}, **ready).reason == "1 project polled successfully"
    assert readiness({7: polled, 8: polled}, **ready).reason == "2 projects polled successfully"
