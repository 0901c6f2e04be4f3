"""`notifier explain`: each rule's verdict with the first condition that failed, in words;
built on the code routing runs (a property test holds them together); the CLI on a saved
report and on a report the state knows; and the SIGHUP log line naming the changed rules."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.config.match import compile_match
from notifier.config.settings import Settings
from notifier.core.events import Event, EventType
from notifier.core.explain import explain, rule_changes
from notifier.core.report import Report
from notifier.core.rules import Match, matches, route, top_level
from notifier.runtime.metrics import Metrics
from notifier.runtime.service import reloaded
from tests.factories import PROJECT, RAW, World, new, status_changed, updated
from tests.helpers import cli, wait_for
from tests.test_example_config import EXAMPLE, TEST_VALUES, env_example
from tests.test_reload import TO_HOOK, daemon


@dataclass(frozen=True)
class R:
    """A rule as routing reads it."""

    name: str
    match: Match
    sinks: tuple[str, ...] = ("hook",)
    stop: bool = False


def block(raw: dict[str, Any]) -> Match:
    problems: list[Any] = []
    match = compile_match(raw, ("match",), problems, fields_only=False)
    assert match is not None, problems
    return match


def why(raw: dict[str, Any], event: Event) -> str | None:
    found = explain(event, [R("r", block(raw))])
    return found.verdicts[0].failed


# --- the first failing condition, for each kind ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "event", "expected"),
    [
        ({}, updated(), "event: updated is not one of new, status_changed"),
        ({"event": "removed"}, new(), "event: new is not removed"),
        ({"status": "ready"}, new(status="in_progress"), "status: 'in_progress' is not 'ready'"),
        ({"status": {"ne": "ready"}}, new(), "status: 'ready' is what the rule excludes (ne"),
        ({"priority": ["P0", "P1"]}, new(priority="P3"), "priority: 'P3' is not one of 'P0', 'P1'"),
        ({"total_weight": {"gte": 1.0}}, new(total_weight=0.4), "total_weight: 0.4 is not ≥ 1.0"),
        ({"total_weight": {"gt": 3}}, new(), "total_weight: 2.35 is not > 3"),
        ({"signal_count": {"lt": 2}}, new(), "signal_count: 7 is not < 2"),
        ({"signal_count": {"lte": 6}}, new(), "signal_count: 7 is not ≤ 6"),
        ({"label": {"gte": 1}}, new(label="high"), "label: 'high' cannot be compared with 1"),
        ({"title": {"equals": "x"}}, new(), "title: 'Checkout button unresponsive on Safari' is"),
        (
            {"title": {"contains": "[test]"}},
            new(),
            "title: 'Checkout button unresponsive on Safari' does not contain '[test]'",
        ),
        ({"title": {"regex": "(?i)pricing"}}, new(), "title: no match for regex '(?i)pricing'"),
        ({"signal_count": {"regex": "7"}}, new(), "signal_count: 7 is not text, so regex"),
        (
            {"previous": {"status": "in_progress"}},
            new(),
            "previous.status: no previous copy (a new report)",
        ),
        (
            {"previous": {"status": "candidate"}},
            status_changed(),
            "previous.status: 'in_progress' is not 'candidate'",
        ),
        ({"not": {"status": "ready"}}, new(), "not: the inner block matched"),
        ({"titel": {"contains": "checkout"}}, new(), "a field the report lacks: titel"),
        (
            {"previous": {"priority": "P0"}},
            status_changed(),
            "a field the previous copy lacks: previous.priority",
        ),
        ({"status": "ready", "total_weight": {"gte": 9}}, new(), "total_weight: 2.35 is not ≥ 9"),
    ],
)
def test_the_first_failing_condition_in_words(
    raw: dict[str, Any], event: Event, expected: str
) -> None:
    """Each kind of condition says what it wanted and what the report had; the first that
    fails is named, not the ones after it."""
    failed = why(raw, event)
    assert failed is not None
    assert failed.startswith(expected), failed


def test_a_matching_rule_names_its_sinks_and_stop_hides_the_rest() -> None:
    """A stop rule routes and hides later rules, which are still judged for the reader."""
    rules = [
        R("miss", block({"status": "resolved"}), ("a",)),
        R("hit", block({"status": "ready"}), ("b", "c"), stop=True),
        R("hidden match", block({}), ("d",)),
        R("hidden miss", block({"status": "failed"}), ("e",)),
    ]
    found = explain(new(), rules)
    assert [v.matched for v in found.verdicts] == [False, True, True, False]
    assert found.sinks == ("b", "c")
    assert found.stopped_by == "hit"
    assert [v.hidden_by for v in found.verdicts] == [None, None, "hit", "hit"]
    assert [r.sink for r in route(new(), rules)] == list(found.sinks)


# --- explanation never disagrees with routing ------------------------------------------------


def example_rules() -> list[Any]:
    """The example config's rules and rules made of its illustrative (commented) conditions,
    one of them stopping."""
    from notifier.config.load import load_config  # noqa: PLC0415

    configured = load_config(EXAMPLE, {**env_example(), **TEST_VALUES}).rules
    illustrative = [
        R("checkout", block({"title": {"regex": "(?i)checkout"}, "total_weight": {"gte": 1.0}})),
        R("urgent", block({"priority": ["P0", "P1"], "not": {"title": {"contains": "[test]"}}})),
        R("left research", block({"previous": {"status": ["in_progress", "candidate"]}})),
        R("updates", block({"event": ["updated", "removed"]}), stop=True),
        R("after stop", block({"status": {"ne": "ready"}})),
    ]
    return [*configured, *illustrative]


RULES = example_rules()
STATUSES = ["potential", "candidate", "in_progress", "ready", "pending_input", "resolved", "failed"]
reports = st.fixed_dictionaries(
    {"id": st.just(RAW["id"]), "status": st.sampled_from(STATUSES)},
    optional={
        "title": st.sampled_from(["Checkout fails", "[test] checkout", "Pricing", ""]),
        "total_weight": st.one_of(st.floats(0, 3, allow_nan=False), st.text(max_size=3)),
        "priority": st.sampled_from(["P0", "P1", "P2", "P4"]),
        "actionability": st.sampled_from(["immediately_actionable", "not_actionable"]),
    },
)


@settings(max_examples=300, deadline=None)
@given(reports, st.one_of(st.none(), reports), st.sampled_from(list(EventType)))
def test_explain_agrees_with_routing(
    now: dict[str, Any], before: dict[str, Any] | None, kind: EventType
) -> None:
    """For random reports and the example's rules, each rule's verdict is ``matches``, and
    the sinks are ``route``'s."""
    previous = None if kind is EventType.NEW or before is None else Report.from_api(before)
    event = Event.create(kind, PROJECT, Report.from_api(now), previous, {})
    found = explain(event, RULES)
    for rule, verdict in zip(RULES, found.verdicts, strict=True):
        assert verdict.matched == matches(top_level(rule.match), event)
        assert (verdict.failed is None) == verdict.matched
    assert list(found.sinks) == [r.sink for r in route(event, RULES)]


# --- the command -------------------------------------------------------------------------------

RULES_YAML = """
- {name: ready ones, match: {status: ready, total_weight: {gte: 1.0}}, sinks: [slack]}
- {name: checkout, match: {title: {regex: "(?i)checkout"}}, sinks: [hook], stop: true}
- {name: everything, match: {}, sinks: [slack-hook]}
"""


def saved(tmp_path: Path, name: str, **fields: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({**RAW, **fields}))
    return path


def test_explain_a_report_file_that_is_routed(world: World, tmp_path: Path) -> None:
    config = world.make_config(rules=RULES_YAML)
    result = cli(
        "explain", "--report", str(saved(tmp_path, "r.json")), "-c", str(config), env=world.env
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status_changed event, project 4242" in out
    assert "✓ ready for" not in out
    assert "✓ ready ones\n    matched → slack\n" in out
    assert "✓ checkout\n    matched → hook\n    stop:" in out
    assert "· everything\n    not seen: rule 'checkout' stopped the event" in out
    assert "\n→ would be sent to: slack, hook\n" in out


def test_explain_a_report_file_sent_nowhere(world: World, tmp_path: Path) -> None:
    config = world.make_config(rules=RULES_YAML.replace("match: {}", "match: {status: failed}"))
    report_file = saved(tmp_path, "r.json", title="Pricing \x1b[31mtoggle", total_weight=0.4)
    previous = saved(tmp_path, "p.json", status="ready")
    result = cli(
        "explain", "--report", str(report_file), "--previous", str(previous),
        "-c", str(config), env=world.env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("updated event")  # same status as the previous copy: an update
    assert "✗ ready ones\n    event: updated is not one of new, status_changed\n" in out
    assert "\x1b" not in out
    assert out.rstrip().endswith("→ would be sent nowhere")
    status = cli(
        "explain", "--report", str(report_file), "--event", "new", "-c", str(config), env=world.env
    ).stdout
    assert "✗ ready ones\n    total_weight: 0.4 is not ≥ 1.0\n" in status
    assert "✗ checkout\n    title: no match for regex '(?i)checkout'\n" in status


def test_explain_needs_a_report_or_an_id(world: World) -> None:
    config = world.make_config()
    result = cli("explain", "-c", str(config), env=world.env)
    assert result.returncode == 2
    assert "give either REPORT_ID" in result.stderr


@pytest.fixture
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if getattr(request, "param", "sqlite") == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


@pytest.mark.parametrize("state", ["sqlite", "postgresql"], indirect=True)
def test_explain_a_delivered_report_from_the_state(
    world: World, once: Callable[..., int], state: str
) -> None:
    """After a cycle delivered a new report: its snapshot, its outbox entries per sink, its
    living message, and today's rules on its snapshot."""
    rules = (
        "- {name: to both, match: {event: [new, status_changed, updated]}, sinks: [slack, hook]}"
    )
    world.posthog.add_report(PROJECT, title="old")
    assert once(rules=rules, state=state) == 0
    fresh = world.posthog.add_report(PROJECT, title="Checkout broken", status="ready")
    assert once(rules=rules, state=state) == 0
    wait_for(lambda: len(world.slack.messages) == 1, what="the Slack message")
    config = world.make_config(rules=rules, state=state)
    result = cli("explain", fresh["id"][:8], "-c", str(config), env=world.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"project {PROJECT}, report {fresh['id']}" in out
    assert "status ready" in out
    assert ", listed" in out
    assert "    hook: new delivered" in out
    assert "    slack: new delivered" in out
    assert "1 attempt, rules to both" in out
    assert "    slack: channel C0123456789, ts " in out
    assert "actions from Slack: none" in out
    assert "✓ to both\n    matched → slack, hook" in out
    unknown = cli("explain", "nope", "-c", str(config), env=world.env)
    assert unknown.returncode == 1
    assert "no report with an id starting 'nope'" in unknown.stdout


def test_explain_an_id_without_a_state_creates_nothing(world: World) -> None:
    state = world.make_config().parent / "data" / "state.db"
    config = world.make_config(state=f"path: {state}")
    result = cli("explain", "abc", "-c", str(config), env=world.env)
    assert result.returncode == 1
    assert f"no state at {state} yet" in result.stdout
    assert not state.parent.exists()


# --- the reload log ----------------------------------------------------------------------------


def test_rule_changes_in_words() -> None:
    old = {"a": {"match": 1, "sinks": 1}, "b": {"match": 1, "sinks": 1}, "c": {"match": 1}}
    new = {"c": {"match": 2}, "a": {"match": 2, "sinks": 2}, "d": {"match": 1}}
    assert rule_changes(old, new) == (
        "rules added: d; removed: b; changed: c (match), a (match, sinks); order changed: c, a"
    )
    assert rule_changes(old, old) is None


def test_a_reload_logs_which_rules_changed(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():  # reloaded() reads the file as `notifier run` does
        monkeypatch.setenv(name, value)
    before = """
- {name: a, match: {}, sinks: [hook]}
- {name: b, match: {}, sinks: [hook]}
- {name: c, match: {status: ready}, sinks: [hook]}
"""
    after = """
- {name: c, match: {status: ready}, sinks: [hook, slack], stop: true}
- {name: d, match: {}, sinks: [hook]}
- {name: a, match: {status: failed}, sinks: [hook]}
"""
    current = load(make_config(rules=before))
    path = make_config(rules=after)
    with caplog.at_level(logging.INFO, logger="notifier"):
        assert reloaded(path, current, Metrics()) is not None
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reload:")]
    assert lines == [
        "reload: rules added: d; removed: b; changed: c (sinks, stop), a (match); "
        "order changed: c, a"
    ]


def test_sighup_logs_the_changed_rules(world: World) -> None:
    with daemon(world) as running:
        world.make_config(rules=TO_HOOK.replace("match: {}", "match: {status: ready}"))
        running.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: rules" in running.text(), what="the reload's rule changes")
        assert "reload: rules changed: to hook (match)" in running.text()
