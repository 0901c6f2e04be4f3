"""Pure rule matching and routing: condition tables, `previous`, `not`, `stop`, de-duplication."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.core.events import Event, EventType
from notifier.core.report import MISSING, Report
from notifier.core.rules import Condition, Match, Op, check, matches, route


@dataclass(frozen=True)
class Rule:
    """The least a rule is for routing (``core.rules.Rule``); the configured one is
    ``config.settings.RuleSettings``."""

    name: str
    match: Match
    sinks: tuple[str, ...]
    stop: bool = False


def event(
    event_type: EventType = EventType.NEW,
    previous: dict[str, Any] | None = None,
    project_id: int = 1,
    **fields: Any,
) -> Event:
    data: dict[str, Any] = {
        "id": "r1",
        "status": "ready",
        "title": "Checkout broken",
        "total_weight": 2.0,
    }
    data.update(fields)
    report = Report.from_api(data)
    prev = Report.from_api({**data, **previous}) if previous is not None else None
    return Event.create(event_type, project_id, report, prev, {})


@pytest.mark.parametrize(
    ("op", "expected", "value", "result"),
    [
        (Op.EQ, "ready", "ready", True),
        (Op.EQ, "ready", "failed", False),
        (Op.NE, "ready", "failed", True),
        (Op.IN, ("P0", "P1"), "P1", True),
        (Op.IN, ("P0", "P1"), None, False),
        (Op.GT, 1.0, 2.0, True),
        (Op.GT, 2.0, 2.0, False),
        (Op.GTE, 2.0, 2.0, True),
        (Op.LT, 2, 1.5, True),
        (Op.LTE, 2, 3, False),
        (Op.GTE, 1.0, None, False),  # null never compares
        (Op.GTE, 1.0, "2", False),  # a string is not a number
        (Op.GT, 1, True, False),  # booleans are not numbers
        (Op.CONTAINS, "Safari", "Checkout on Safari", True),
        (Op.CONTAINS, "session_replay", ("session_replay", "errors"), True),
        (Op.CONTAINS, "x", 3, False),
        (Op.REGEX, re.compile("(?i)checkout"), "CHECKOUT fails", True),
        (Op.REGEX, re.compile("^x"), None, False),
        (Op.EQUALS, "a", "a", True),
        (Op.GT, "2026-01-01", "2026-02-01", True),  # ISO dates compare as strings
    ],
)
def test_condition_table(op: Op, expected: Any, value: Any, result: bool) -> None:
    """Each operator applied to a value."""
    assert check(Condition("f", op, expected), value) is result


@pytest.mark.parametrize("op", list(Op))
def test_missing_field_never_matches(op: Op) -> None:
    """A condition on a field the report lacks does not match, whatever the operator."""
    expected: Any = re.compile("x") if op is Op.REGEX else ("x",) if op is Op.IN else "x"
    assert check(Condition("f", op, expected), MISSING) is False


def test_default_events_are_new_and_status_changed() -> None:
    """A rule without `event:` sees new and status_changed, not updated or removed."""
    rule = Rule("r", Match(), ("s",))
    assert route(event(EventType.NEW), [rule])
    assert route(event(EventType.STATUS_CHANGED, previous={"status": "in_progress"}), [rule])
    assert route(event(EventType.UPDATED, previous={}), [rule]) == []
    assert route(event(EventType.REMOVED, previous={}), [rule]) == []


def test_previous_conditions() -> None:
    """`previous:` matches the copy before the change; a new report has none."""
    m = Match(previous=Match(conditions=(Condition("status", Op.IN, ("in_progress",)),)))
    assert matches(m, event(EventType.STATUS_CHANGED, previous={"status": "in_progress"}))
    assert not matches(m, event(EventType.STATUS_CHANGED, previous={"status": "candidate"}))
    assert not matches(m, event(EventType.NEW))


def test_not_inverts_a_block() -> None:
    """`not:` excludes events matching the inner block."""
    m = Match(negate=Match(conditions=(Condition("title", Op.REGEX, re.compile("test")),)))
    assert matches(m, event(title="Checkout"))
    assert not matches(m, event(title="a test report"))


def test_project_id_matches_the_project() -> None:
    """`project_id` is the event's project, not a report field."""
    m = Match(conditions=(Condition("project_id", Op.EQ, 42),))
    assert matches(m, event(project_id=42))
    assert not matches(m, event(project_id=1))


def test_any_report_field_can_be_matched() -> None:
    """Fields the notifier does not know (source_products) match through the raw report."""
    m = Match(conditions=(Condition("source_products", Op.CONTAINS, "session_replay"),))
    assert matches(m, event(source_products=["session_replay"]))
    assert not matches(m, event())


def test_two_rules_one_sink_is_one_route() -> None:
    """Two rules routing to the same sink give one route carrying both rule names."""
    rules = [Rule("a", Match(), ("slack", "hook")), Rule("b", Match(), ("slack",))]
    routes = route(event(), rules)
    assert [(r.sink, r.rules) for r in routes] == [("slack", ("a", "b")), ("hook", ("a",))]


def test_stop_hides_the_event_from_later_rules() -> None:
    """`stop: true` on a matching rule ends evaluation; a non-matching one does not."""
    heavy = Match(conditions=(Condition("total_weight", Op.GTE, 5.0),))
    rules = [
        Rule("heavy", heavy, ("pager",), stop=True),
        Rule("all", Match(), ("slack",), stop=True),
        Rule("never", Match(), ("hook",)),
    ]
    assert [r.sink for r in route(event(total_weight=9.0), rules)] == ["pager"]
    assert [r.sink for r in route(event(total_weight=1.0), rules)] == ["slack"]


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=6), st.booleans())
def test_each_sink_routed_at_most_once(sinks: list[str], stop: bool) -> None:
    """Whatever the rules, a sink appears at most once in an event's routes."""
    rules = [Rule(f"r{i}", Match(), (s,), stop=stop and i == 3) for i, s in enumerate(sinks)]
    names = [r.sink for r in route(event(), rules)]
    assert len(names) == len(set(names))
