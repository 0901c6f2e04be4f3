"""Pure rule matching: (event, rules) → which sinks get it, and through which rules.

A rule's ``match`` block is a conjunction of conditions on the event type, on the report's
fields (any field the API sends; ``project_id`` is the project) and on the copy before the change
(``previous``); ``not`` inverts a whole block. A condition on a field the report lacks does not
match. Rules are evaluated in order; ``stop`` hides the event from later rules. A sink routed by
several rules receives the event once, with every rule's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from notifier.models import MISSING, Event, EventType, Report

DEFAULT_EVENTS: Final = frozenset({EventType.NEW, EventType.STATUS_CHANGED})


class Op(StrEnum):
    """The comparison a condition applies."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    IN = "in"  # the YAML list shorthand: membership
    EQUALS = "equals"
    CONTAINS = "contains"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class Condition:
    """``field <op> value``; for ``regex`` the value is a compiled pattern, for ``in`` a tuple."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class Match:
    """A block of conditions that must all hold. ``events=None`` means any event type."""

    events: frozenset[EventType] | None = None
    conditions: tuple[Condition, ...] = ()
    previous: Match | None = None
    negate: Match | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A named route from matching events to sinks."""

    name: str
    match: Match
    sinks: tuple[str, ...]
    stop: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """One sink that receives an event, and the names of the rules that sent it there."""

    sink: str
    rules: tuple[str, ...]


def _ordered(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` can be compared with < and >: two numbers or two strings."""
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def check(condition: Condition, value: Any) -> bool:
    """Apply one condition to a field value; a missing field never matches."""
    if value is MISSING:
        return False
    op, expected = condition.op, condition.value
    if op in (Op.EQ, Op.EQUALS):
        return bool(value == expected)
    if op is Op.NE:
        return bool(value != expected)
    if op is Op.IN:
        return any(value == candidate for candidate in expected)
    if op is Op.CONTAINS:
        if isinstance(value, str):
            return isinstance(expected, str) and expected in value
        if isinstance(value, tuple | list):
            return expected in value
        return False
    if op is Op.REGEX:
        return isinstance(value, str) and expected.search(value) is not None
    if not _ordered(value, expected):
        return False
    if op is Op.GT:
        return bool(value > expected)
    if op is Op.GTE:
        return bool(value >= expected)
    if op is Op.LT:
        return bool(value < expected)
    return bool(value <= expected)  # Op.LTE


def _field(report: Report, project_id: int, name: str) -> Any:
    if name == "project_id":
        return project_id
    return report.get(name)


def _report_matches(
    match: Match, event_type: EventType, report: Report, project_id: int, prev: Report | None
) -> bool:
    if match.events is not None and event_type not in match.events:
        return False
    if not all(check(c, _field(report, project_id, c.field)) for c in match.conditions):
        return False
    if match.previous is not None:
        if prev is None:
            return False
        if not _report_matches(match.previous, event_type, prev, project_id, None):
            return False
    return match.negate is None or not _report_matches(
        match.negate, event_type, report, project_id, prev
    )


def matches(match: Match, event: Event) -> bool:
    """Whether an event satisfies a match block (event type, fields, previous, not)."""
    return _report_matches(match, event.type, event.report, event.project_id, event.previous)


def top_level(match: Match) -> Match:
    """A rule's own block: without ``event:`` it sees only ``new`` and ``status_changed``."""
    if match.events is None:
        return Match(DEFAULT_EVENTS, match.conditions, match.previous, match.negate)
    return match


def route(event: Event, rules: Sequence[Rule]) -> list[Route]:
    """The sinks an event goes to, in the order rules first name them, each once."""
    by_sink: dict[str, list[str]] = {}
    for rule in rules:
        if not matches(top_level(rule.match), event):
            continue
        for sink in rule.sinks:
            names = by_sink.setdefault(sink, [])
            if rule.name not in names:
                names.append(rule.name)
        if rule.stop:
            break
    return [Route(sink, tuple(names)) for sink, names in by_sink.items()]


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a rule's regex; raises ``re.error`` with the reason when it is invalid."""
    return re.compile(pattern)


def referenced_sinks(rules: Iterable[Rule]) -> set[str]:
    """Every sink name some rule routes to."""
    return {sink for rule in rules for sink in rule.sinks}
