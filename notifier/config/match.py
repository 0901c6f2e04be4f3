"""Rules' ``match`` blocks, from raw YAML to ``rules.Match``, collecting every problem.

Used by ``notifier.config.load``: a block is a mapping of field conditions (value → eq, list → in,
``{op: value}``) plus ``event``, ``previous`` (field conditions only) and ``not``. Regexes are
compiled here with the ``regex`` engine, so a bad pattern is a config error with its key path.
"""

from __future__ import annotations

import difflib
from typing import Any, Final

import regex

from notifier.config.yamlload import Loc, Problem
from notifier.core.events import EventType
from notifier.core.rules import Condition, Match, Op, compile_regex

OPS: Final = {op.value: op for op in Op}
EVENTS: Final = [event.value for event in EventType]


def choices(word: str, choices: list[str], label: str = "valid") -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    listed = f"{label}: {', '.join(choices)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _operand(field: str, op: Op, value: Any, loc: Loc, problems: list[Problem]) -> Condition | None:
    problem = None
    if op is Op.REGEX and isinstance(value, str):
        try:
            value = compile_regex(value)
        except regex.error as exc:
            problem = f"invalid regex: {exc}"
    elif op is Op.REGEX:
        problem = "must be a regular expression in quotes"
    elif op is Op.IN:
        if not isinstance(value, list) or not value or not all(map(_scalar, value)):
            problem = "must be a non-empty list of values, like [P0, P1]"
        value = tuple(value) if isinstance(value, list) else value
    elif op in (Op.GT, Op.GTE, Op.LT, Op.LTE):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            problem = "must be a number (or text) to compare with, like 1.0"
    elif not _scalar(value):
        problem = "must be a single value; quote it if it is text"
    if problem is not None:
        problems.append((loc, problem))
        return None
    return Condition(field, op, value)


def _conditions(
    field: str, value: Any, loc: Loc, problems: list[Problem]
) -> list[Condition] | None:
    """A field's conditions: value → eq, list → in, ``{op: value, ...}`` → one per op."""
    if _scalar(value):
        return [Condition(field, Op.EQ, value)]
    if isinstance(value, list):
        condition = _operand(field, Op.IN, value, loc, problems)
        return [condition] if condition else None
    if not isinstance(value, dict) or not value:
        problems.append(
            (loc, "must be a value, a list of values or {operator: value}, like {gte: 1}")
        )
        return None
    found: list[Condition | None] = []
    for name, operand in value.items():
        op = OPS.get(name) if isinstance(name, str) else None
        if op is None:
            hint = choices(str(name), list(OPS))
            problems.append(((*loc, str(name)), f"unknown operator ({hint})"))
        found.append(_operand(field, op, operand, (*loc, name), problems) if op else None)
    return [c for c in found if c] if all(found) else None


def _events(value: Any, loc: Loc, problems: list[Problem]) -> frozenset[EventType] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        problems.append((loc, f"must be an event or a list of them ({', '.join(EVENTS)})"))
        return None
    bad = [(i, v) for i, v in enumerate(items) if v not in EVENTS]
    for i, v in bad:
        where = (*loc, i) if isinstance(value, list) else loc
        problems.append((where, f"unknown event {v!r} ({choices(str(v), EVENTS)})"))
    return None if bad else frozenset(EventType(v) for v in items)


def compile_match(
    block: Any, loc: Loc, problems: list[Problem], *, fields_only: bool
) -> Match | None:
    """A ``match`` block (or ``previous``/``not``) → ``Match``; ``None`` after problems."""
    if not isinstance(block, dict):
        problems.append((loc, "must be a mapping of conditions, like {status: ready}"))
        return None
    ok, events, conditions, inner = True, None, [], dict[str, Match | None]()
    for key, value in block.items():
        here = (*loc, str(key))
        if fields_only and key in ("event", "previous", "not"):
            problems.append((here, f"is not allowed here: {loc[-1]} holds field conditions only"))
            ok = False
        elif key == "event":
            events = _events(value, here, problems)
            ok = ok and events is not None
        elif key in ("previous", "not"):
            inner[key] = compile_match(value, here, problems, fields_only=key == "previous")
            ok = ok and inner[key] is not None
        else:
            found = _conditions(key, value, here, problems)
            conditions += found or []
            ok = ok and found is not None
    match = Match(events, tuple(conditions), inner.get("previous"), inner.get("not"))
    return match if ok else None


def regex_texts(block: Any) -> list[str]:
    """Every ``regex:`` operand in a raw match block, at any depth (a field named ``regex``
    too: counting one too many is harmless)."""
    if not isinstance(block, dict):
        return []
    found = [v for k, v in block.items() if k == "regex" and isinstance(v, str)]
    return found + [text for value in block.values() for text in regex_texts(value)]
