"""Rules that can never match: warnings (the configuration still loads and runs), each naming
the rule, its index and the key, with "did you mean" where a close match exists.

- a value a field never has: a status PostHog does not have (``status: redy``), a priority,
  an actionability or a work state it does not have;
- a field no report has (``titel``): the report model's fields (``core.report.Report``), the
  one the rules add (``project_id``) and the other fields PostHog documents;
- a value of the wrong type: a number field compared with text (``total_weight: {gte:
  high}``), a text field ordered against a number, a list compared with one value…;
- ``previous:`` on a rule that sees only ``event: new`` (a new report has no previous copy);
- a rule shadowed by an earlier ``stop: true`` rule, when that is certain: the earlier rule
  sees every event type the later one does and its conditions are a subset of the later one's.

Conditions are judged as ``core.rules.check`` applies them: a missing field never matches, and
``gt``/``gte``/``lt``/``lte`` compare two numbers or two texts only.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Final

from notifier.core.events import EventType
from notifier.core.report import STATUSES, Report
from notifier.core.rules import Condition, Match, Op, Rule, top_level

_ORDER: Final = (Op.GT, Op.GTE, Op.LT, Op.LTE)
_SHORTHAND: Final = (Op.EQ, Op.IN)  # ``field: value`` and ``field: [a, b]``: the key alone


def _kind(annotation: object) -> str:
    text = str(annotation)
    return "number" if "int" in text or "float" in text else "text"


#: Every field a rule may name and what it holds: number, text, bool, list or any.
FIELDS: Final[dict[str, str]] = {
    **{f.name: _kind(f.type) for f in fields(Report) if f.name not in ("raw", "_version")},
    "project_id": "number",  # the event's, not the report's (``core.rules._field``)
    **dict.fromkeys(("signals_at_run", "collapsed_note_count"), "number"),
    **dict.fromkeys(
        ("already_addressed", "is_suggested_reviewer", "implementation_pr_merged"), "bool"
    ),
    **dict.fromkeys(
        ("source_products", "pull_requests", "charts", "metrics", "suggested_prompts"), "list"
    ),
    **dict.fromkeys(
        (
            "work_state",
            "repo_slug",
            "scout_name",
            "dismissal_reason",
            "dismissal_note",
            "implementation_pr_url",
            "implementation_pr_state",
            "tracker_issue_url",
            "tracker_issue_reference",
            "tracker_issue_error",
            "refund_ineligibility_reason",
            "billing_exempt_reason",
        ),
        "text",
    ),
    **dict.fromkeys(("assignee", "refund", "channel_id"), "any"),
}
#: The values PostHog documents for a field: (the field in words, its values' heading, values).
VALUES: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "status": ("status", "Statuses", STATUSES),
    "priority": ("priority", "Priorities", ("P0", "P1", "P2", "P3", "P4")),
    "actionability": (
        "actionability",
        "Actionability values",
        ("immediately_actionable", "requires_human_input", "not_actionable"),
    ),
    "work_state": ("work state", "Work states", ("unclaimed", "working", "in_review", "done")),
}
_KINDS: Final = {"number": "a number", "text": "text", "bool": "true or false", "list": "a list"}


def rule_warnings(where: str, match: Match) -> list[str]:
    """The conditions of a rule's ``match`` block that never hold (``where``: the rule, as
    ``checks.rule_where`` names it), and ``previous`` on a rule that sees only new reports."""
    found = _block(f"{where}.match", match)
    if match.previous is not None and (top_level(match).events or set()) <= {EventType.NEW}:
        found.append(
            f"{where}.match.previous: the rule sees only new reports (event: new), which have "
            "no previous copy, so it never matches; remove previous, or add status_changed "
            "to event"
        )
    return found


def shadowed(rules: Sequence[Rule], where: Sequence[str]) -> list[str]:
    """Rules that never see an event because an earlier ``stop: true`` rule matches every
    event they could (``where``: each rule's name for messages)."""
    found = []
    for late, rule in enumerate(rules):
        early = next(
            (i for i in range(late) if rules[i].stop and _covers(rules[i].match, rule.match)),
            None,
        )
        if early is not None:
            found.append(
                f"{where[late]}: never sees an event: {where[early]} has stop: true and "
                "matches every event this rule could match, so it stops them first; move "
                "this rule above it, or remove its stop"
            )
    return found


def _covers(early: Match, late: Match) -> bool:
    """Whether every event ``late`` matches is certainly matched by ``early`` too."""
    first, second = top_level(early), top_level(late)
    return (
        (second.events or set()) <= (first.events or set())
        and all(c in second.conditions for c in first.conditions)
        and first.previous in (None, second.previous)
        and first.negate in (None, second.negate)
    )


def _block(path: str, match: Match) -> list[str]:
    found = [w for c in match.conditions for w in _condition(path, c)]
    if match.previous is not None:
        found += _block(f"{path}.previous", match.previous)
    if match.negate is not None:
        found += _block(f"{path}.not", match.negate)
    return found


def _condition(path: str, condition: Condition) -> list[str]:
    name, op = condition.field, condition.op
    key = f"{path}.{name}" if op in _SHORTHAND else f"{path}.{name}.{op.value}"
    kind = FIELDS.get(name)
    if kind is None:
        close = difflib.get_close_matches(name, list(FIELDS), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"fields: {', '.join(FIELDS)} (if your PostHog sends {name!r}, ignore this)"
        )
        return [
            f"{path}.{name}: no PostHog report has a field {name!r}, and a condition on a "
            f"missing field never holds; {hint}"
        ]
    values = condition.value if op is Op.IN else (condition.value,)
    found = [w for v in values if (w := _mismatch(key, name, kind, op, v))]
    if found or op not in (Op.EQ, Op.EQUALS, Op.NE, Op.IN) or name not in VALUES:
        return found
    label, heading, known = VALUES[name]
    holds = "always holds" if op is Op.NE else "never holds"
    for value in (v for v in values if isinstance(v, str) and v not in known):
        close = difflib.get_close_matches(value, known, n=1) or [
            k for k in known if k.lower() == value.lower()
        ]
        mean = f"did you mean {close[0]!r}? " if close else ""
        found.append(
            f"{key}: {value!r} is not a {label} PostHog reports have, so this condition "
            f"{holds}{' for it' if len(values) > 1 else ''}; {mean}{heading}: {', '.join(known)}"
        )
    return found


def _mismatch(key: str, name: str, kind: str, op: Op, value: Any) -> str | None:
    """Why a field of ``kind`` never meets ``op value``; None when it can."""
    if value is None or kind == "any":
        return None
    if op is Op.REGEX:
        return (
            None
            if kind == "text"
            else f"{key}: {name} is {_KINDS[kind]} and a regex searches text only, so this "
            "condition never holds; use eq, gt… instead"
        )
    given = _what(value)
    if op is Op.CONTAINS:
        fix = _contains(kind, value)
    elif kind == "list":
        fix = None if op in _ORDER else f"to find an item, write {{contains: {value!r}}}"
    elif kind == "bool":
        fix = "write true or false without quotes" if given != _KINDS["bool"] else None
        fix = "true/false cannot be ordered; use eq" if op in _ORDER else fix
    else:
        fix = _scalar(kind, op, value, given)
    if fix is None:
        return None
    return (
        f"{key}: {name} is {_KINDS[kind]} and {value!r} is {given}, so this condition never "
        f"holds; {fix}"
    )


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return _KINDS["bool"]
    return _KINDS["number"] if isinstance(value, int | float) else _KINDS["text"]


def _contains(kind: str, value: Any) -> str | None:
    if kind in ("number", "bool"):
        return "contains finds text in text or an item in a list; use eq, gt… instead"
    if kind == "text" and not isinstance(value, str):
        return f"quote it: '{value}'"
    return None


def _scalar(kind: str, op: Op, value: Any, given: str) -> str | None:
    """A number or text field against ``value`` (eq, ne, in, gt…)."""
    if given == _KINDS[kind]:
        return None
    if kind == "text":
        return f"quote it: '{value}'"
    if isinstance(value, str) and _number(value) is not None:
        return f"write the number without quotes: {value.strip()}"
    like = f"{{{op.value}: 1.0}}" if op in _ORDER else "1.0"
    return f"compare with a number, like {like}"


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
