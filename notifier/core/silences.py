"""Silences: "do not deliver what matches these matchers for a while" (issue 15), pure.

A ``Matcher`` is ``field=value``, ``field!=value``, ``field=~regex`` or ``field!~regex`` over the
fields the rules see — every report field, ``report_id``, ``project_id``, the ``event`` type,
and where it is going: ``rule`` (holds when one of the routing rules matches) and ``sink``. As in
Alertmanager, a regex must match the whole value (it is anchored), and a field the report lacks
reads as the empty string (so ``priority!=`` holds only when there is one). Regexes are Python's
syntax, searched with a timeout like the rules' (``core.rules``): one that gives up counts as not
matching, so a pathological pattern delivers rather than silences.

A ``Silence`` holds when every matcher holds and it is ``active``: started, not past its end and
not expired by hand. Those added with `notifier silence add` are kept in the state
(``state.silences``) with an end; those written in the config (``silences:``) are standing: no
end, gone when removed from the config. ``drop``: what it holds is never delivered (no digest
when it ends); a standing one always drops (it never ends by itself).
"""

from __future__ import annotations

import difflib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any, Final, Literal

import regex

from notifier.core.events import Event, EventType
from notifier.core.report import MISSING, STATUSES
from notifier.core.rules import REGEX_TIMEOUT, compile_regex
from notifier.core.times import format_span

#: The fields a matcher may name, in the order an error lists them.
FIELDS: Final = (
    "report_id",
    "project_id",
    "event",
    "rule",
    "sink",
    "status",
    "title",
    "summary",
    "priority",
    "actionability",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "artefact_count",
    "created_at",
    "updated_at",
)
OPERATORS: Final = ("=", "!=", "=~", "!~")
_EVENTS: Final = tuple(t.value for t in EventType)
#: A matcher's text: a field name, an operator, then the value (quotes around it are dropped).
_MATCHER: Final = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
Origin = Literal["cli", "config"]


def new_silence_id() -> str:
    """``sil_`` and 12 random hex digits."""
    return "sil_" + secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class Matcher:
    """``field op value``; ``pattern`` is the compiled regex of ``=~`` and ``!~``."""

    field: str
    op: str
    value: str
    pattern: regex.Pattern[str] | None = attribute(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        plain = self.value and not any(ch in self.value for ch in " ,\"'") and self.value.strip()
        value = self.value if plain or not self.value else '"' + self.value + '"'
        return f"{self.field}{self.op}{value}"

    def holds(self, value: str) -> bool:
        """Whether one value satisfies the matcher."""
        if self.pattern is None:
            equal = value == self.value
        else:
            try:
                equal = self.pattern.fullmatch(value, timeout=REGEX_TIMEOUT) is not None
            except TimeoutError:
                return False  # a pathological pattern: deliver rather than silence
        return equal if self.op in ("=", "=~") else not equal

    def holds_any(self, values: Sequence[str]) -> bool:
        """For ``rule``: ``=``/``=~`` hold when some value is equal (matches); ``!=``/``!~``
        when none is."""
        if self.op in ("=", "=~"):
            return any(self.holds(v) for v in values)
        return all(self.holds(v) for v in values)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _close(word: str, choices: Sequence[str]) -> str:
    found = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {found[0]}?" if found else "no close match"


def parse_matcher(text: str) -> Matcher:
    """``status=ready``, ``title=~Checkout.*``… → a ``Matcher``; ``ValueError`` naming the text,
    what is wrong and what to write."""
    shown = f"`{text.strip()}`"
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{shown}: not a matcher; write field=value, field!=value, field=~regex or "
            f"field!~regex (e.g. status=ready); fields: {', '.join(FIELDS)}"
        )
    name, op, value = found.group(1), found.group(2), _unquote(found.group(3))
    if name not in FIELDS:
        raise ValueError(
            f"{shown}: unknown field {name} ({_close(name, FIELDS)}); fields: {', '.join(FIELDS)}"
        )
    if op in ("=", "!=") and value.startswith("="):
        raise ValueError(f"{shown}: one = is enough; did you mean {name}{op}{value[1:]}?")
    known = {"status": STATUSES, "event": _EVENTS}.get(name)
    if known and op in ("=", "!=") and value and value not in known:
        raise ValueError(
            f"{shown}: unknown {name} {value!r} ({_close(value, known)}); "
            f"{'statuses' if name == 'status' else 'events'}: {', '.join(known)}"
        )
    if op in ("=", "!="):
        return Matcher(name, op, value)
    try:
        pattern = compile_regex(value)
    except regex.error as exc:
        raise ValueError(
            f"{shown}: invalid regex: {exc}; write a Python regex, matched against the whole "
            "value (e.g. title=~Checkout.*)"
        ) from None
    return Matcher(name, op, value, pattern)


def _text(value: Any) -> str:
    """A field's value as a matcher compares it: missing and null read as ''."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def event_value(event: Event, name: str) -> str:
    """The value of one field (not ``rule`` nor ``sink``) for an event."""
    if name == "report_id":
        return event.report.id
    if name == "project_id":
        return str(event.project_id)
    if name == "event":
        return event.type.value
    return _text(event.report.get(name))


@dataclass(frozen=True, slots=True)
class Silence:
    """A silence: who muted what, why, from when until when (``ends_at`` None: standing, from
    the config), and how many events it held (``held``, counted by the delivery)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float | None
    author: str
    comment: str
    drop: bool = False
    expired_at: float | None = None  # expired by hand
    origin: Origin = "cli"
    held: int = 0

    def active(self, now: float) -> bool:
        """Started, not ended by itself, not expired by hand."""
        if now < self.starts_at or (self.expired_at is not None and now >= self.expired_at):
            return False
        return self.ends_at is None or now < self.ends_at

    @property
    def ended_at(self) -> float | None:
        """When it ended or ends: by hand, else by itself (None: standing)."""
        return self.expired_at if self.expired_at is not None else self.ends_at

    def state(self, now: float) -> str:
        """``active``, ``expired``, ``expired by hand`` or ``pending`` (not started yet)."""
        if self.active(now):
            return "active"
        if self.expired_at is not None and now >= self.expired_at:
            return "expired by hand"
        return "pending" if now < self.starts_at else "expired"

    def matches(self, event: Event, rules: Sequence[str], sink: str) -> bool:
        """Whether every matcher holds for ``event`` going to ``sink`` through ``rules`` (the
        routing rules' names). Says nothing of whether the silence is active."""
        for matcher in self.matchers:
            if matcher.field == "rule":
                ok = matcher.holds_any(rules)
            elif matcher.field == "sink":
                ok = matcher.holds(sink)
            else:
                ok = matcher.holds(event_value(event, matcher.field))
            if not ok:
                return False
        return True

    def matchers_text(self) -> str:
        """``status=ready, title=~Checkout.*``."""
        return ", ".join(map(str, self.matchers))

    def describe(self) -> str:
        """``status=ready, title=~Checkout.* · 4 h by alice: 'deploy'``."""
        if self.ends_at is None:
            span = f"standing ({self.origin})"
        else:
            span = f"{format_span(self.ends_at - self.starts_at)} by {self.author}"
        return f"{self.matchers_text()} · {span}: {self.comment!r}"
