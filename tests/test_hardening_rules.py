"""Issue 16 item 6: a hostile rule cannot stall a cycle.

Regex searches are bounded one by one (``rules.REGEX_TIMEOUT``) and, together, by a budget per
cycle (``poll.routing_budget``): once it is spent, the cycle's remaining regex conditions count
as not matching, the cycle still commits, a metric counts it and one WARNING says so. ``check``
warns about patterns with nested or overlapping repeats. Real notifier, fake PostHog and webhook
receiver over TCP, real SQLite.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.cli.check import cmd_check
from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core import rules
from notifier.runtime.daemon import Notifier
from tests.factories import PROJECT, Notifiers, World

#: What an attacker can put in a report's title: each of the three patterns below gives up
#: after REGEX_TIMEOUT on it.
ATTACK = "a" * 2000 + "!"
HOSTILE = {"nested": "(a+)+$", "overlapping": "(a|aa)+$", "counted": "(.*a){12}$"}
REPORTS = 40
BUDGET = 0.5  # seconds: five searches that give up
DEADLINE = 5.0  # without the budget the cycle takes 3 x 40 x 0.1 = 12 s


def _rules(*regexes: str) -> str:
    hostile = [
        {"name": name, "match": {"title": {"regex": pattern}}, "sinks": ["slack"]}
        for name, pattern in zip(HOSTILE, regexes, strict=False)
    ]
    everything = {"name": "everything", "match": {}, "sinks": ["hook"]}
    return yaml.safe_dump([*hostile, everything], sort_keys=False)


def _notifier(
    world: World, load: Callable[[Path], Settings], notifiers: Notifiers, **poll: str
) -> Notifier:
    poll_extra = "\n".join(f"{key}: {value}" for key, value in poll.items())
    settings = load(world.make_config(rules=_rules(*HOSTILE.values()), poll_extra=poll_extra))
    notifier = notifiers.build(settings)
    assert notifier.poll(PROJECT) is not None  # the baseline: no reports yet
    return notifier


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_hostile_rules_cannot_stall_a_cycle(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three backtracking rules over 40 reports of attacker text: the cycle ends within its
    deadline and commits (snapshot saved, the rule without a regex delivers every report), the
    metric counts the exhausted budget once, and ONE warning names the project, how many events
    were routed without their regex conditions, and the slow rules. The next cycle is quiet."""
    notifier = _notifier(
        world,
        load,
        notifiers,
        deadline=f"{DEADLINE}s",
        routing_budget=f"{BUDGET}s",
        full_sync_every="0s",
    )
    for _ in range(REPORTS):
        world.posthog.add_report(PROJECT, title=ATTACK)
    caplog.clear()

    started = time.monotonic()
    plan = notifier.poll(PROJECT)
    took = time.monotonic() - started

    assert plan is not None, notifier.health[PROJECT].last_error
    assert took < DEADLINE, f"the cycle took {took:.1f}s"
    assert len(plan.events) == REPORTS
    assert len(notifier.store.snapshot(PROJECT)) == REPORTS  # committed
    assert [sink for _, sink, _ in plan.write.outbox] == ["hook"] * REPORTS
    assert notifier.drain_all().delivered == REPORTS
    assert len(world.receiver.received) == REPORTS
    assert world.slack.messages == []  # the hostile rules never matched

    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert f"project {PROJECT}" in warning
    assert "poll.routing_budget" in warning
    found = re.search(r"(\d+) of (\d+) events", warning)
    assert found is not None, warning
    assert int(found.group(2)) == REPORTS
    assert REPORTS - 5 <= int(found.group(1)) <= REPORTS
    slowest = warning.split("Slowest rules: ")[1]
    assert slowest.startswith(tuple(f"'{name}'" for name in HOSTILE))  # which, timing says
    assert "'everything'" not in warning  # no regex: never slow
    metrics = notifier.metrics.render()[0].decode()
    exhausted = f'notifier_routing_budget_exhausted_total{{project_id="{PROJECT}"}}'
    assert f"{exhausted} 1.0" in metrics

    caplog.clear()
    again = notifier.poll(PROJECT)  # a restarted pod would not repeat it: nothing is new
    assert again is not None
    assert again.events == ()
    assert _warnings(caplog) == []
    assert f"{exhausted} 1.0" in notifier.metrics.render()[0].decode()


def test_slow_searches_within_the_budget_make_one_warning(
    world: World,
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Searches that give up one by one, the budget not spent: every regex condition was
    tried, so nothing is routed without them and the metric stays 0, but the cycle still says
    so in ONE warning (not one per search) naming the slow rules."""
    monkeypatch.setattr(rules, "REGEX_TIMEOUT", 0.02)
    notifier = _notifier(world, load, notifiers, routing_budget="30s", full_sync_every="0s")
    for _ in range(4):
        world.posthog.add_report(PROJECT, title=ATTACK)
    caplog.clear()

    plan = notifier.poll(PROJECT)

    assert plan is not None
    assert len(plan.write.outbox) == 4
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "12 regex searches gave up" in warnings[0]
    for name in HOSTILE:
        assert f"'{name}'" in warnings[0]
    metrics = notifier.metrics.render()[0].decode()
    assert f'notifier_routing_budget_exhausted_total{{project_id="{PROJECT}"}} 0.0' in metrics


# --- `notifier check` ------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "posthog": {"host": "https://us.posthog.com", "api_key": "phx_test_key", "project_ids": [1]},
    "sinks": {"out": {"type": "console"}},
}


def _check(match: dict[str, Any]) -> Settings:
    document = {**BASE, "rules": [{"name": "hostile", "match": match, "sinks": ["out"]}]}
    return parse_config(yaml.safe_dump(document), source="test.yaml", env={})


def _regex_warnings(settings: Settings) -> list[str]:
    return [w for w in settings.warnings if ".regex:" in w]


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("(a+)+$", "nested"),
        ("(a+)+", "nested"),
        ("(a|aa)+$", "overlapping"),
        ("(aa|a)*", "overlapping"),
        ("(.*a){12}$", "nested"),
        (r"(\w+\s?)*$", "nested"),
        (r"^(\d+)*x", "nested"),
        (r"(x+x+)+y", "nested"),
        (r"((ab)+)+$", "nested"),
        (r"(?i)(a|Aa)+$", "overlapping"),
        (r"(\w+|\d+)+$", "overlapping"),
        (r"^([a-z0-9]+\.?)+@", "nested"),
    ],
)
def test_check_warns_on_backtracking_patterns(pattern: str, kind: str) -> None:
    """Nested or overlapping repeats: a warning naming the rule, its key path, the pattern,
    and the fixes (anchor, atomic group or possessive quantifier, a simpler pattern)."""
    warnings = _regex_warnings(_check({"title": {"regex": pattern}}))
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert warning.startswith('rules[0] "hostile".match.title.regex: ')
    assert repr(pattern) in warning
    assert kind in warning
    for fix in ("atomic group", "possessive", "simpler"):
        assert fix in warning


@pytest.mark.parametrize(
    "pattern",
    [
        "checkout|payment",
        r"^\[P0\]",
        r"(?i)error \d+",
        r"^(\d{1,3}\.){3}\d{1,3}$",
        r"(\w+\.)+com$",
        r"\b(P0|P1)\b",
        r"(P0|P1|Q)+",
        ".*error.*",
        r"(?i)(timeout|timed out)",
        r"^[A-Z]+-\d+$",
        r"(\s*,\s*\w+)*$",
        r"^(?:[a-z]+ )+done$",
        r"(?>a+)+$",
        r"(a++)+$",
        r"\p{Lu}+",
        r"(ab|ac)+",
    ],
)
def test_check_is_quiet_on_ordinary_patterns(pattern: str) -> None:
    """No false alarm on the patterns people write."""
    assert _regex_warnings(_check({"title": {"regex": pattern}})) == []


def test_check_names_the_key_path_in_previous_and_not() -> None:
    """A hostile pattern under ``previous`` or ``not`` is found too, with its own key path, and
    ``notifier check`` prints it as a warning (the configuration stays valid)."""
    settings = _check(
        {
            "event": "status_changed",
            "previous": {"summary": {"regex": "(a|aa)+$"}},
            "not": {"title": {"regex": "(a+)+$"}},
        }
    )
    where = 'rules[0] "hostile".match'
    warnings = _regex_warnings(settings)
    assert [w.split(": ", 1)[0] for w in warnings] == [
        f"{where}.previous.summary.regex",
        f"{where}.not.title.regex",
    ]
    out = io.StringIO()
    assert cmd_check(settings, out) == 0
    printed = out.getvalue()
    assert "test.yaml: valid" in printed
    assert f"warning: {where}.not.title.regex: " in printed
