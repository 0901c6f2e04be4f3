"""Pure rule matching: (event, rules) → which sinks get it, and through which rules.

A rule's ``match`` block is a conjunction of conditions on the event type, on the report's
fields (any field the API sends; ``project_id`` is the project) and on the copy before the change
(``previous``); ``not`` inverts a whole block. A condition on a field the report lacks does not
match. Rules are evaluated in order; ``stop`` hides the event from later rules. A sink routed by
several rules receives the event once, with every rule's name.

Regex conditions use the ``regex`` package, whose searches take a timeout: a pattern that would
backtrack catastrophically (``(a|aa)+$`` against a long title) gives up after
``REGEX_TIMEOUT`` seconds, counts as no match, and is reported with a warning — the only side
effect in this module. A cycle routes with a ``RegexBudget``: its searches together may take
``ROUTING_BUDGET`` seconds (``poll.routing_budget``); once that is spent, its remaining regex
conditions count as no match without being searched, and the timeouts are collected for one
warning per cycle instead of one per search. ``regex`` expands counted repeats when it compiles
(``a{1000000000}`` would take gigabytes), so ``compile_regex`` refuses patterns whose expansion
is too large, and verbose mode ``(?x)``, where that expansion cannot be told from the text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol

import regex

from notifier.core.events import Event, EventType
from notifier.core.report import MISSING, Report

DEFAULT_EVENTS: Final = frozenset({EventType.NEW, EventType.STATUS_CHANGED})

#: The longest one regex search may take, in seconds; a slower search counts as no match.
REGEX_TIMEOUT: Final = 0.1
#: The time all regex searches of one cycle may take together, in seconds, by default
#: (``poll.routing_budget``). Ordinary patterns route a cycle of 1,000 events in milliseconds,
#: so it is never reached by them; a hostile one adds at most this to a cycle, under a tenth
#: of the shortest cycle deadline (60 s).
ROUTING_BUDGET: Final = 5.0
#: The largest pattern ``compile_regex`` accepts, in ``regex_size`` units (about 300 bytes
#: and 2 µs of compiling each).
REGEX_MAX_SIZE: Final = 10_000
_QUANTIFIER: Final = regex.compile(r"\{(\d*)(?:,\d*)?\}")
_BRACED_ESCAPES: Final = {"p": "}", "P": "}", "N": "}", "x": "}", "u": "}", "U": "}", "g": ">"}
_CAP: Final = 10**12
#: An inline flag group that may turn verbose mode on: ``(?x)``, ``(?ix)``, ``(?x:...)``.
_VERBOSE: Final = regex.compile(r"\(\?[\w^-]*x")

log = logging.getLogger(__name__)


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


class Rule(Protocol):
    """A named route from matching events to sinks: what routing reads of a configured rule
    (``config.settings.RuleSettings``, which also carries its templates)."""

    @property
    def name(self) -> str: ...

    @property
    def match(self) -> Match: ...

    @property
    def sinks(self) -> tuple[str, ...]: ...

    @property
    def stop(self) -> bool: ...


class RegexBudget:
    """The time one cycle's regex searches may take together (``seconds``, read on ``clock``).

    Each search may take ``REGEX_TIMEOUT`` at most, and no more than what is left; once it is
    spent, every further regex condition counts as no match without being searched. What it
    cost is kept per rule (``route`` says which rule is being evaluated) for one warning at the
    end of the cycle."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.limit = REGEX_TIMEOUT  # one search's
        self.left = seconds
        self._clock = clock
        self.rule = ""  # the rule being evaluated
        self.spent: dict[str, float] = {}  # rule → seconds its searches took
        self.gave_up: dict[str, int] = {}  # rule → searches that hit their timeout
        self.skipped = 0  # regex conditions counted as no match because the budget ran out
        self.events = 0  # events routed with at least one such condition

    def search(self, pattern: regex.Pattern[str], value: str) -> bool:
        """Whether ``pattern`` is found in ``value`` within the time left; False when not,
        when the search gives up, or when no time is left."""
        if self.left <= 0:
            self.skipped += 1
            return False
        timeout = min(self.limit, self.left)
        started = self._clock()
        try:
            return pattern.search(value, timeout=timeout) is not None
        except TimeoutError:
            self.gave_up[self.rule] = self.gave_up.get(self.rule, 0) + 1
            if timeout < self.limit:  # cut short by the budget
                self.skipped += 1
            return False
        finally:
            took = self._clock() - started
            self.left -= took
            self.spent[self.rule] = self.spent.get(self.rule, 0.0) + took

    @property
    def exhausted(self) -> bool:
        """Whether some regex conditions were not (fully) searched for lack of time."""
        return self.skipped > 0

    def slowest(self, count: int = 3) -> list[tuple[str, float, int]]:
        """The rules whose searches took longest: (name, seconds, searches that gave up)."""
        ranked = sorted(self.spent.items(), key=lambda item: item[1], reverse=True)
        return [(name, took, self.gave_up.get(name, 0)) for name, took in ranked[:count]]


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


def check(condition: Condition, value: Any, budget: RegexBudget | None = None) -> bool:
    """Apply one condition to a field value; a missing field never matches. A regex search is
    charged to ``budget`` when there is one."""
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
        return isinstance(value, str) and _search(condition, value, budget)
    if not _ordered(value, expected):
        return False
    if op is Op.GT:
        return bool(value > expected)
    if op is Op.GTE:
        return bool(value >= expected)
    if op is Op.LT:
        return bool(value < expected)
    return bool(value <= expected)  # Op.LTE


def _search(condition: Condition, value: str, budget: RegexBudget | None) -> bool:
    """A bounded regex search: a timeout counts as no match, and is reported (with a budget:
    kept for the cycle's warning)."""
    pattern = condition.value
    if not isinstance(pattern, regex.Pattern):  # e.g. a re.Pattern built by hand
        return pattern.search(value) is not None
    if budget is not None:
        return budget.search(pattern, value)
    try:
        return pattern.search(value, timeout=REGEX_TIMEOUT) is not None
    except TimeoutError:
        log.warning(
            "regex %r on field %r gave up after %gs on a %d-character value (it backtracks "
            "too much); counted as no match. Simplify the pattern, e.g. avoid nested "
            "repeats like (a+)+ or overlapping alternatives like (a|aa)+",
            pattern.pattern,
            condition.field,
            REGEX_TIMEOUT,
            len(value),
        )
        return False


def _field(report: Report, project_id: int, name: str) -> Any:
    if name == "project_id":
        return project_id
    return report.get(name)


class Miss(StrEnum):
    """What failed first in a match block (``first_failure``)."""

    EVENT = "event"  # the event type is not one the block takes
    CONDITION = "condition"  # a field condition failed (``value`` MISSING: no such field)
    NO_PREVIOUS = "no_previous"  # the block has ``previous`` and the event has no previous copy
    NOT = "not"  # the ``not`` block matched


@dataclass(frozen=True, slots=True)
class Failure:
    """The first thing that failed in ``block``, in evaluation order; ``within`` is
    ``"previous"`` when it failed in the previous block. ``value``: the field's value, or the
    event type for ``EVENT``."""

    kind: Miss
    block: Match
    condition: Condition | None = None
    value: Any = None
    within: str = ""


def _first_failure(
    match: Match,
    event_type: EventType,
    report: Report,
    project_id: int,
    prev: Report | None,
    *,
    budget: RegexBudget | None,
    within: str = "",
) -> Failure | None:
    if match.events is not None and event_type not in match.events:
        return Failure(Miss.EVENT, match, value=event_type, within=within)
    for condition in match.conditions:
        value = _field(report, project_id, condition.field)
        if not check(condition, value, budget):
            return Failure(Miss.CONDITION, match, condition, value, within)
    if match.previous is not None:
        if prev is None:
            return Failure(Miss.NO_PREVIOUS, match, within=within)
        failed = _first_failure(
            match.previous, event_type, prev, project_id, None, budget=budget, within="previous"
        )
        if failed is not None:
            return failed
    if match.negate is not None and (
        _first_failure(match.negate, event_type, report, project_id, prev, budget=budget) is None
    ):
        return Failure(Miss.NOT, match, within=within)
    return None


def first_failure(match: Match, event: Event, budget: RegexBudget | None = None) -> Failure | None:
    """Why an event does not satisfy a match block: the first condition that failed (None when
    it matches). ``matches`` is this, so an explanation never disagrees with routing."""
    return _first_failure(
        match, event.type, event.report, event.project_id, event.previous, budget=budget
    )


def matches(match: Match, event: Event, budget: RegexBudget | None = None) -> bool:
    """Whether an event satisfies a match block (event type, fields, previous, not)."""
    return first_failure(match, event, budget) is None


def top_level(match: Match) -> Match:
    """A rule's own block: without ``event:`` it sees only ``new`` and ``status_changed``."""
    if match.events is None:
        return Match(DEFAULT_EVENTS, match.conditions, match.previous, match.negate)
    return match


def route(event: Event, rules: Sequence[Rule], budget: RegexBudget | None = None) -> list[Route]:
    """The sinks an event goes to, in the order rules first name them, each once. With a
    ``budget``, its regex searches are charged to it (and the event counted in
    ``budget.events`` when some of them were skipped)."""
    by_sink: dict[str, list[str]] = {}
    skipped = budget.skipped if budget is not None else 0
    for rule in rules:
        if budget is not None:
            budget.rule = rule.name
        if not matches(top_level(rule.match), event, budget):
            continue
        for sink in rule.sinks:
            names = by_sink.setdefault(sink, [])
            if rule.name not in names:
                names.append(rule.name)
        if rule.stop:
            break
    if budget is not None and budget.skipped > skipped:
        budget.events += 1
    return [Route(sink, tuple(names)) for sink, names in by_sink.items()]


def regex_size(pattern: str) -> int:
    """An over-estimate of a pattern's compiled size: its length (a group counts 4 more), with
    every counted repeat (``x{n}``, ``x{n,}``, ``x{n,m}``) multiplying what it repeats by ``n``,
    nested ones too. (``x{n,m}`` costs ``n``: ``regex`` expands only the mandatory copies.)

    Computed from the text alone, before ``regex`` sees it, so it must never under-estimate:
    anything it cannot make sense of counts as plain characters, and a ``{`` that is not a
    repeat to ``regex`` (in a set, a comment) may still be counted as one. Not valid for
    verbose mode, where spaces and comments may sit inside and before a repeat.
    """
    frames: list[list[int]] = [[0, 0]]  # per open group: [finished alternatives, sequence]
    last, i = 0, 0  # the size of the item a quantifier would repeat
    while i < len(pattern):
        char, frame = pattern[i], frames[-1]
        if char == "(":
            frames.append([0, 0])
            last, i = 0, i + 1
            continue
        if char == ")" and len(frames) > 1:  # a group costs 4 more: () repeated is not free
            frames.pop()
            last = min(frame[0] + frame[1] + 4, _CAP)
            frames[-1][1] = min(frames[-1][1] + last, _CAP)
            i += 1
            continue
        if char == "|":
            frame[0], frame[1], last, i = min(frame[0] + frame[1], _CAP), 0, 0, i + 1
            continue
        if char == "{" and (found := _QUANTIFIER.match(pattern, i)):
            times = int(found.group(1) or 0)
            frame[1] = min(frame[1] + last * max(times - 1, 0), _CAP)
            last, i = min(last * max(times, 1), _CAP), found.end()
            continue
        end = i + 1
        if char == "\\" and end < len(pattern):
            closer = _BRACED_ESCAPES.get(pattern[end])
            end += 1
            if closer and end < len(pattern) and pattern[end] in "{<":
                end = pattern.find(closer, end) + 1 or len(pattern)
        elif char == "[":  # a set: up to the first "]" that is not its first character
            start = end + (pattern[end : end + 1] == "^")
            while end < len(pattern) and (pattern[end] != "]" or end == start):
                end += 2 if pattern[end] == "\\" else 1
            end += 1
        if char not in "*+?":
            last = 1
            frame[1] = min(frame[1] + 1, _CAP)
        i = end
    while len(frames) > 1:  # unbalanced: regex will refuse it, but count it anyway
        inner = frames.pop()
        frames[-1][1] = min(frames[-1][1] + inner[0] + inner[1] + 4, _CAP)
    return frames[0][0] + frames[0][1]


def compile_regex(pattern: str) -> regex.Pattern[str]:
    """Compile a rule's regex (Python syntax); raises ``regex.error`` when it is invalid or its
    counted repeats would make it too large to compile safely."""
    if _VERBOSE.search(pattern):
        raise regex.error("verbose mode (?x) is not supported here; write the pattern without it")
    if regex_size(pattern) > REGEX_MAX_SIZE:
        raise regex.error(
            f"too large once its counted repeats are expanded (over {REGEX_MAX_SIZE} "
            "characters); use smaller counts, e.g. {1,} instead of {1000,}"
        )
    return regex.compile(pattern)
