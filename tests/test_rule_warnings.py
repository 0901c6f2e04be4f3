"""Rules that can never match load, with a warning naming the rule and key (issue 13, item 2):
a status PostHog does not have, a field no report has, a number compared with text, `previous:`
on a rule that sees only new reports, a rule shadowed by an earlier `stop: true` rule. And
`notifier check --strict`, which exits 2 on any warning (for CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.config.load import load_config, parse_config
from tests.helpers import cli

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
EXAMPLE_ENV = {
    "POSTHOG_PERSONAL_API_KEY": "phx_example_key",
    "SLACK_BOT_TOKEN": "xoxb-example-token",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
STATUSES = (
    "potential, candidate, in_progress, pending_input, ready, resolved, failed, suppressed, deleted"
)


def document(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "posthog": {"host": "https://us.posthog.com", "api_key": "phx_k", "project_ids": [1]},
        "sinks": {"out": {"type": "console"}},
        "rules": [{"sinks": ["out"], **rule} for rule in rules],
    }


def rule_warnings(*rules: dict[str, Any]) -> list[str]:
    """The warnings about rules of a config with these rules (all sending to one console)."""
    text = yaml.safe_dump(document(*rules), sort_keys=False)
    settings = parse_config(text, source="test.yaml", env={})
    return [w for w in settings.warnings if w.startswith("rules")]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (
            {"status": "redy"},
            "rules[0] \"r\".match.status: 'redy' is not a status PostHog reports have, so this "
            f"condition never holds; did you mean 'ready'? Statuses: {STATUSES}",
        ),
        (
            {"status": ["ready", "pending-input"]},
            "rules[0] \"r\".match.status: 'pending-input' is not a status PostHog reports "
            "have, so this condition never holds for it; did you mean 'pending_input'? "
            f"Statuses: {STATUSES}",
        ),
        (
            {"event": "status_changed", "previous": {"status": "in_progres"}},
            "rules[0] \"r\".match.previous.status: 'in_progres' is not a status PostHog "
            "reports have, so this condition never holds; did you mean 'in_progress'? "
            f"Statuses: {STATUSES}",
        ),
        (
            {"priority": "p1"},
            "rules[0] \"r\".match.priority: 'p1' is not a priority PostHog reports have, so "
            "this condition never holds; did you mean 'P1'? Priorities: P0, P1, P2, P3, P4",
        ),
        (
            {"titel": {"contains": "checkout"}},
            "rules[0] \"r\".match.titel: no PostHog report has a field 'titel', and a "
            "condition on a missing field never holds; did you mean 'title'?",
        ),
        (
            {"not": {"sumary": {"contains": "[test]"}}},
            "rules[0] \"r\".match.not.sumary: no PostHog report has a field 'sumary', and a "
            "condition on a missing field never holds; did you mean 'summary'?",
        ),
        (
            {"severity": "high"},
            "rules[0] \"r\".match.severity: no PostHog report has a field 'severity', and a "
            "condition on a missing field never holds; fields: id, status, title, summary, "
            "total_weight, signal_count, relevant_user_count, artefact_count, priority, "
            "actionability, created_at, updated_at, project_id, signals_at_run, "
            "collapsed_note_count, already_addressed, is_suggested_reviewer, "
            "implementation_pr_merged, source_products, pull_requests, charts, metrics, "
            "suggested_prompts, work_state, repo_slug, scout_name, dismissal_reason, "
            "dismissal_note, implementation_pr_url, implementation_pr_state, tracker_issue_url, "
            "tracker_issue_reference, tracker_issue_error, refund_ineligibility_reason, "
            "billing_exempt_reason, assignee, refund, channel_id (if your PostHog sends "
            "'severity', ignore this)",
        ),
        (
            {"total_weight": {"gte": "high"}},
            "rules[0] \"r\".match.total_weight.gte: total_weight is a number and 'high' is "
            "text, so this condition never holds; compare with a number, like {gte: 1.0}",
        ),
        (
            {"signal_count": {"gt": "3"}},
            "rules[0] \"r\".match.signal_count.gt: signal_count is a number and '3' is "
            "text, so this condition never holds; write the number without quotes: 3",
        ),
        (
            {"title": {"gt": 3}},
            'rules[0] "r".match.title.gt: title is text and 3 is a number, so this '
            "condition never holds; quote it: '3'",
        ),
        (
            {"source_products": "session_replay"},
            'rules[0] "r".match.source_products: source_products is a list and '
            "'session_replay' is text, so this condition never holds; to find an item, "
            "write {contains: 'session_replay'}",
        ),
        (
            {"event": "new", "previous": {"status": "candidate"}},
            'rules[0] "r".match.previous: the rule sees only new reports (event: new), '
            "which have no previous copy, so it never matches; remove previous, or add "
            "status_changed to event",
        ),
    ],
)
def test_a_condition_that_never_holds_is_warned_about(match: dict[str, Any], expected: str) -> None:
    """Each mistake loads (a warning, not an error) and is named by rule, index and key."""
    assert rule_warnings({"name": "r", "match": match}) == [expected]


@pytest.mark.parametrize(
    "match",
    [
        {"status": ["ready", "pending_input"], "priority": [None, "P0"]},
        {"total_weight": {"gte": 1, "lt": 2.5}, "project_id": 1, "title": {"regex": "(?i)pay"}},
        {"event": ["new", "status_changed"], "previous": {"status": "in_progress"}},
        {"source_products": {"contains": "error_tracking"}, "already_addressed": False},
        {"updated_at": {"gte": "2025-01-01"}, "collapsed_note_count": {"gt": 0}},
    ],
)
def test_conditions_that_can_hold_are_not_warned_about(match: dict[str, Any]) -> None:
    assert rule_warnings({"name": "r", "match": match}) == []


def test_a_rule_after_a_catch_all_stop_rule_is_shadowed() -> None:
    """An earlier stop rule whose conditions are a subset of a later rule's hides every event
    from it; only the later rule is warned about, and only when that is certain."""
    found = rule_warnings(
        {"name": "ready", "match": {"status": "ready"}, "stop": True},
        {"name": "ready P0", "match": {"status": "ready", "priority": "P0"}},
        {"name": "pending", "match": {"status": "pending_input"}},  # not shadowed
        {"name": "updates", "match": {"event": "updated", "status": "ready"}},  # other events
    )
    assert found == [
        'rules[1] "ready P0": never sees an event: rules[0] "ready" has stop: true and matches '
        "every event this rule could match, so it stops them first; move this rule above it, "
        "or remove its stop"
    ]
    everything = rule_warnings(
        {"name": "all", "stop": True},
        {"name": "late", "match": {"event": "new"}},
    )
    assert everything == [
        'rules[1] "late": never sees an event: rules[0] "all" has stop: true and matches '
        "every event this rule could match, so it stops them first; move this rule above it, "
        "or remove its stop"
    ]


def test_a_sink_no_rule_sends_to_is_warned_about_once() -> None:
    raw = document({"name": "r"})
    raw["sinks"]["spare"] = {"type": "console"}
    settings = parse_config(yaml.safe_dump(raw), source="test.yaml", env={})
    assert [w for w in settings.warnings if "spare" in w] == [
        "sinks.spare: no rule sends to it; add it to a rule's sinks or remove it"
    ]


def test_the_example_config_has_no_rule_warnings() -> None:
    settings = load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert [w for w in settings.warnings if w.startswith("rules")] == []


def _config(tmp_path: Path, *rules: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    raw = document(*rules)
    raw["state"] = {"path": str(tmp_path / "state.db")}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_check_strict_exits_2_on_any_warning(tmp_path: Path) -> None:
    """Without --strict a warning never changes the exit code; with it, 2, warnings printed."""
    path = _config(tmp_path, {"name": "r", "match": {"status": "redy"}})
    plain = cli("check", "-c", str(path), env={})
    strict = cli("check", "--strict", "-c", str(path), env={})
    assert plain.returncode == 0, plain.stderr
    assert strict.returncode == 2
    for result in (plain, strict):
        assert "warning: rules[0] \"r\".match.status: 'redy' is not a status" in result.stdout
    assert "--strict: 1 warning; exit 2" in strict.stdout
    assert not (tmp_path / "state.db").exists()


def test_check_strict_exits_0_without_warnings(tmp_path: Path) -> None:
    path = _config(tmp_path, {"name": "r", "match": {"status": "ready"}})
    strict = cli("check", "--strict", "-c", str(path), env={})
    assert strict.returncode == 0, strict.stdout + strict.stderr
    assert "warning" not in strict.stdout
