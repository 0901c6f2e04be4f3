"""Why an event goes where it goes: each rule's verdict, in words (``notifier explain``).

Built on ``rules.first_failure``, the function ``rules.matches`` (and so ``rules.route``) is
made of, so an explanation cannot disagree with routing. Every rule is evaluated, also those a
``stop`` rule hides from the event, so the explanation can say what they would have done.
``rule_changes`` says which rules a reloaded configuration adds, removes or changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.core.report import MISSING
from notifier.core.rules import (
    Condition,
    Failure,
    Miss,
    Op,
    RegexBudget,
    Rule,
    first_failure,
    top_level,
)

#: The longest a value is quoted in an explanation.
MAX_SHOWN: Final = 80
_SYMBOLS: Final = {Op.GT: ">", Op.GTE: "≥", Op.LT: "<", Op.LTE: "≤"}


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's answer for an event. ``failed``: the first condition that failed, in words
    (None when it matched); ``hidden_by``: the earlier ``stop`` rule that matched, so this one
    does not see the event whatever its own answer."""

    rule: str
    matched: bool
    sinks: tuple[str, ...]
    stop: bool
    failed: str | None = None
    hidden_by: str | None = None

    @property
    def routes(self) -> bool:
        """Whether this rule sends the event to its sinks."""
        return self.matched and self.hidden_by is None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every rule's verdict, in order, and the sinks the event goes to (as ``route`` orders
    them: in the order rules first name them)."""

    verdicts: tuple[Verdict, ...]
    sinks: tuple[str, ...]
    stopped_by: str | None


def explain(event: Event, rules: Sequence[Rule], budget: RegexBudget | None = None) -> Explanation:
    """Each rule's verdict for ``event`` and where it would be sent."""
    verdicts: list[Verdict] = []
    sinks: dict[str, None] = {}
    stopped_by: str | None = None
    for rule in rules:
        if budget is not None:
            budget.rule = rule.name
        failure = first_failure(top_level(rule.match), event, budget)
        verdict = Verdict(
            rule.name,
            failure is None,
            tuple(rule.sinks),
            rule.stop,
            None if failure is None else describe(failure, event),
            stopped_by,
        )
        verdicts.append(verdict)
        if verdict.routes:
            sinks.update(dict.fromkeys(rule.sinks))
            if rule.stop:
                stopped_by = rule.name
    return Explanation(tuple(verdicts), tuple(sinks), stopped_by)


def shown(value: Any) -> str:
    """A value as an explanation quotes it: ``'ready'``, ``0.4``, cut to ``MAX_SHOWN``."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _events(events: frozenset[EventType]) -> str:
    names = [kind.value for kind in EventType if kind in events]
    return names[0] if len(names) == 1 else "one of " + ", ".join(names)


def describe(failure: Failure, event: Event) -> str:
    """The failure in words: ``status: 'in_progress' is not 'ready'``."""
    prefix = f"{failure.within}." if failure.within else ""
    if failure.kind is Miss.EVENT:
        assert failure.block.events is not None  # an EVENT failure has them
        return f"event: {event.type.value} is not {_events(failure.block.events)}"
    if failure.kind is Miss.NOT:
        return f"{prefix}not: the inner block matched"
    if failure.kind is Miss.NO_PREVIOUS:
        inner = failure.block.previous
        field = f".{inner.conditions[0].field}" if inner and inner.conditions else ""
        why = "a new report" if event.type is EventType.NEW else "none was kept"
        return f"previous{field}: no previous copy ({why})"
    condition = failure.condition
    assert condition is not None  # a CONDITION failure has one
    if failure.value is MISSING:
        copy = "the previous copy" if failure.within else "the report"
        return f"a field {copy} lacks: {prefix}{condition.field}"
    return f"{prefix}{condition.field}: {_unmet(condition, failure.value)}"


def _unmet(condition: Condition, value: Any) -> str:
    """What is wrong with ``value`` for ``condition``, which it failed."""
    op, expected, got = condition.op, condition.value, shown(value)
    if op in (Op.EQ, Op.EQUALS):
        return f"{got} is not {shown(expected)}"
    if op is Op.NE:
        return f"{got} is what the rule excludes (ne {shown(expected)})"
    if op is Op.IN:
        return f"{got} is not one of {', '.join(map(shown, expected))}"
    if op is Op.CONTAINS:
        if not isinstance(value, str | tuple | list):
            return f"{got} is neither text nor a list, so it cannot contain {shown(expected)}"
        return f"{got} does not contain {shown(expected)}"
    if op is Op.REGEX:
        pattern = getattr(expected, "pattern", expected)
        if not isinstance(value, str):
            return f"{got} is not text, so regex {shown(pattern)} cannot match it"
        return f"no match for regex {shown(pattern)}"
    symbol = _SYMBOLS[op]
    if _comparable(value, expected):
        return f"{got} is not {symbol} {shown(expected)}"
    return (
        f"{got} cannot be compared with {shown(expected)} ({symbol} needs two numbers or two texts)"
    )


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def rule_changes(
    old: Mapping[str, Mapping[str, object]], new: Mapping[str, Mapping[str, object]]
) -> str | None:
    """``rules added: a; removed: b; changed: c (match, sinks)`` between two configurations'
    rules (name → aspect → value), or None when they are the same."""
    parts: list[str] = []
    added = [name for name in new if name not in old]
    removed = [name for name in old if name not in new]
    changed = []
    for name, aspects in new.items():
        before = old.get(name)
        if before is not None:
            differ = [key for key in aspects if aspects[key] != before.get(key)]
            if differ:
                changed.append(f"{name} ({', '.join(differ)})")
    if added:
        parts.append("added: " + ", ".join(added))
    if removed:
        parts.append("removed: " + ", ".join(removed))
    if changed:
        parts.append("changed: " + ", ".join(changed))
    kept = [name for name in new if name in old]
    if kept != [name for name in old if name in new]:
        parts.append("order changed: " + ", ".join(kept))
    return "rules " + "; ".join(parts) if parts else None
