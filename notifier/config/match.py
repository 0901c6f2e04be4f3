"""Rules' ``match`` blocks, from raw YAML to ``rules.Match``, collecting every problem.

Used by ``notifier.config.load``: a block is a mapping of field conditions (value → eq, list → in,
``{op: value}``) plus ``event``, ``previous`` (field conditions only) and ``not``. Regexes are
compiled here with the ``regex`` engine, so a bad pattern is a config error with its key path.
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Callable
from typing import Any, Final

import regex

from notifier.config.yamlload import Loc, Problem
from notifier.core.events import CHANGES, EventType
from notifier.core.rules import Condition, Match, Op, compile_regex

OPS: Final = {op.value: op for op in Op}
EVENTS: Final = [event.value for event in CHANGES]


def choices(word: str, choices: list[str], label: str = "valid") -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    listed = f"{label}: {', '.join(choices)}"
    return f"did you mean {close[0]!r}? {listed}" if close else listed


def unknown_sinks(loc: Loc, value: object, defined: list[str]) -> list[Problem]:
    """A ``sinks`` value (a name or a list of names) checked against the sinks ``defined``:
    each unknown name at ``(*loc, i)``, with the closest defined one."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    problems: list[Problem] = []
    for i, sink in enumerate(names):
        if isinstance(sink, str) and sink.strip() not in [*defined, ""]:
            hint = choices(sink.strip(), defined, "defined") if defined else "none defined"
            problems.append(((*loc, i), f"unknown sink {sink.strip()!r} ({hint})"))
    return problems


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


# --- regexes that backtrack ----------------------------------------------------------------

Chars = frozenset[str]
#: Characters the overlap tests try, besides the pattern's own: Latin ones and a few of other
#: scripts (digits, letters, spaces and line separators).
_SAMPLE: Final = "".join(map(chr, range(0x250))) + "\u0416\u0660\u2028\u2029\u3000\u4e2d"
_WIDE: Final = 10  # a counted repeat with more choices than this backtracks like an open one
_HEAD: Final = 4  # characters of two alternatives compared before calling them overlapping
_REPEATS: Final = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


#: ``\d``, ``\s``, ``\w`` (and ``\D``… their complements), as ``re`` reads them in text.
_CATEGORIES: Final[dict[str, Callable[[str], bool]]] = {
    "DIGIT": str.isdecimal,
    "SPACE": str.isspace,
    "WORD": _word,
}
_FLAG_I: Final = regex.compile(r"\(\?[a-zA-Z]*i")  # (?i) or (?i:…), maybe among other flags


def regex_conditions(match: Match, path: str = "") -> list[tuple[str, str]]:
    """``(key path, pattern)`` of every regex condition of a compiled block, ``previous`` and
    ``not`` included: ``("title", …)``, ``("not.previous.summary", …)``."""
    found = [
        (f"{path}{c.field}", c.value.pattern)
        for c in match.conditions
        if c.op is Op.REGEX and isinstance(getattr(c.value, "pattern", None), str)
    ]
    if match.previous is not None:
        found += regex_conditions(match.previous, f"{path}previous.")
    if match.negate is not None:
        found += regex_conditions(match.negate, f"{path}not.")
    return found


def backtracking(pattern: str) -> list[str]:
    """What makes ``pattern`` liable to backtrack catastrophically: ``nested`` (inside a
    repeat, a repeat that can also match what follows it, as in ``(a+)+``, ``(\\w+\\s?)*`` or
    ``(.*a){12}``) and ``overlapping`` (inside a repeat, alternatives that can start alike, as
    in ``(a|aa)+``); empty when neither. Atomic groups and possessive repeats are safe.

    Read from the standard library's parse of the pattern (``re`` syntax; a pattern using
    syntax only ``regex`` knows, like ``\\p{L}``, is not judged). A heuristic: it may call an
    unusual pattern risky, but none of the usual ones."""
    with warnings.catch_warnings():  # sre_parse is re._parser under its old, typed name
        warnings.simplefilter("ignore", DeprecationWarning)
        import sre_parse  # noqa: PLC0415

    try:
        parsed = sre_parse.parse(regex.sub(r"\(\?<(?![=!])", "(?P<", pattern))
        scan = _Scan(pattern, fold=bool(parsed.state.flags & re.IGNORECASE))
        scan.sequence(list(parsed.data), frozenset(), loop=False)
    except (re.error, RecursionError, OverflowError, ValueError):
        return []
    return sorted(scan.found)


class _Scan:
    """Walks ``sre_parse``'s tree (items are ``(opcode, argument)``), following which
    characters can come next at each point."""

    def __init__(self, pattern: str, *, fold: bool) -> None:
        self.fold = fold or bool(_FLAG_I.search(pattern))
        own = {c for ch in pattern for c in (ch, ch.lower(), ch.upper())}
        self.all: Chars = frozenset(_SAMPLE) | own
        self.found: set[str] = set()

    def sequence(self, items: list[Any], follow: Chars, *, loop: bool) -> None:
        """Check each item of a sequence, knowing what may follow it."""
        afters: list[Chars] = []
        after = follow
        for op, av in reversed(items):
            afters.append(after)
            chars, nullable = self.first_of(op, av)
            after = chars | after if nullable else chars
        for (op, av), after in zip(items, reversed(afters), strict=True):
            self.item(str(op), av, after, loop=loop)

    def item(self, name: str, av: Any, follow: Chars, *, loop: bool) -> None:
        if name in _REPEATS:
            low, high, sub = av
            body = list(sub.data)
            wide = high - low > _WIDE  # open repeats too: their high is MAXREPEAT, 2**32 - 1
            lax = name != "POSSESSIVE_REPEAT"  # a possessive repeat never gives text back
            if loop and wide and lax and self.first(body, frozenset()) & follow:
                self.found.add("nested")
            if name == "POSSESSIVE_REPEAT":  # (?>…) around it: its iterations never split anew
                self.sequence(body, self.first(body, frozenset()) | follow, loop=False)
            elif high > 1:
                self.sequence(body, self.first(body, frozenset()) | follow, loop=True)
            else:
                self.sequence(body, follow, loop=loop)
        elif name == "BRANCH":
            heads = [self.head(list(alt.data), follow) for alt in av[1]]
            if loop and any(_alike(a, b) for i, a in enumerate(heads) for b in heads[i + 1 :]):
                self.found.add("overlapping")
            for alt in av[1]:
                self.sequence(list(alt.data), follow, loop=loop)
        elif name == "SUBPATTERN":
            self.sequence(list(av[3].data), follow, loop=loop)
        elif name == "ATOMIC_GROUP":
            self.sequence(list(av.data), follow, loop=False)
        elif name in ("ASSERT", "ASSERT_NOT"):
            self.sequence(list(av[1].data), frozenset(), loop=False)
        elif name == "GROUPREF_EXISTS":
            for sub in av[1:]:
                self.sequence(list(sub.data) if sub else [], follow, loop=loop)

    def first(self, items: list[Any], follow: Chars) -> Chars:
        """The characters a sequence can start with (``follow`` too when it can be empty)."""
        found: Chars = frozenset()
        for op, av in items:
            chars, nullable = self.first_of(op, av)
            found |= chars
            if not nullable:
                return found
        return found | follow

    def first_of(self, op: Any, av: Any) -> tuple[Chars, bool]:
        """The characters an item can start with, and whether it can match nothing."""
        name, single = str(op), self.single(op, av)
        if single is not None:
            return single, False
        if name in _REPEATS:
            chars, nullable = self.first_of_all(list(av[2].data))
            return chars, nullable or av[0] == 0
        if name == "SUBPATTERN":
            return self.first_of_all(list(av[3].data))
        if name == "ATOMIC_GROUP":
            return self.first_of_all(list(av.data))
        if name == "BRANCH":
            parts = [self.first_of_all(list(alt.data)) for alt in av[1]]
            return frozenset().union(*(c for c, _ in parts)), any(n for _, n in parts)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            return frozenset(), True
        return self.all, True  # a back reference, a condition: anything, maybe nothing

    def first_of_all(self, items: list[Any]) -> tuple[Chars, bool]:
        chars = self.first(items, frozenset())
        return chars, all(self.first_of(op, av)[1] for op, av in items)

    def head(self, items: list[Any], follow: Chars) -> list[Chars]:
        """The characters each of a sequence's first positions can hold, as far as it is a
        plain run of characters (then what comes next at the next position, and no further)."""
        found: list[Chars] = []
        for index, (op, av) in enumerate(items):
            if len(found) == _HEAD:
                return found
            if str(op) == "AT":
                continue
            single = self.single(op, av)
            if single is None:
                return [*found, self.first(items[index:], follow)]
            found.append(single)
        return [*found, follow]

    def single(self, op: Any, av: Any) -> Chars | None:
        """The characters a one-character item matches; None for any other item."""
        name = str(op)
        if name == "LITERAL":
            return self.literal(av)
        if name == "NOT_LITERAL":
            return self.all - self.literal(av)
        if name == "ANY":
            return self.all
        if name == "IN":
            return self.char_set(av)
        return None

    def literal(self, code: int) -> Chars:
        ch = chr(code)
        return frozenset({ch, ch.lower(), ch.upper(), ch.swapcase()} if self.fold else {ch})

    def char_set(self, items: list[Any]) -> Chars:
        found: set[str] = set()
        negate = False
        for op, av in items:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                found |= self.literal(av)
            elif name == "RANGE":
                low, high = av
                found |= {ch for ch in self.all if low <= ord(ch) <= high}
            elif name == "CATEGORY":  # CATEGORY_DIGIT, CATEGORY_NOT_DIGIT…
                kind = str(av).removeprefix("CATEGORY_")
                test = _CATEGORIES.get(kind.removeprefix("NOT_"))
                wanted = not kind.startswith("NOT_")
                found |= {ch for ch in self.all if test is None or test(ch) == wanted}
            else:
                return self.all  # something this scan does not know: anything
        if self.fold:
            found |= {c for ch in found for c in (ch.lower(), ch.upper())}
        return self.all - found if negate else frozenset(found)


def _alike(a: list[Chars], b: list[Chars]) -> bool:
    """Whether two alternatives' heads overlap at every position both have."""
    return all(x & y for x, y in zip(a, b, strict=False))
