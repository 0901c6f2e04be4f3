"""``time_intervals:``: named quiet hours (issue 15) in the shape of Alertmanager's top-level
``time_intervals``, so that one can be copied from there; and ``QuietHours``, the keys a sink or
a rule uses them with (``mute_during``, ``active_during``, ``on_mute``).

Values are checked by ``core.intervals``' parsers (each error says what to write) and kept in
their canonical text (``22:00``, ``monday:friday``); YAML 1.1 makes an unquoted ``22:00`` the
number 1320 and ``1:5`` the number 65, and both are read back. ``check_interval_names`` runs on
the raw document, like the other cross-reference checks: names a sink or rule uses that no
interval has, duplicate names (case-insensitive), and keys no interval model knows.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic.json_schema import WithJsonSchema

from notifier.config.match import choices
from notifier.config.types import Model, Text, inputs, listify, unique
from notifier.config.yamlload import Loc, Problem
from notifier.core.intervals import (
    IntervalEntry,
    Quiet,
    RangeKind,
    TimeInterval,
    TimeRange,
    format_minutes,
    parse_location,
    parse_range,
    parse_time,
    range_text,
)


def _time_of_day(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and not 60 <= value <= 1440:
        raise ValueError('is a number, not a time of day; write "HH:MM" in quotes, like "07:00"')
    return format_minutes(parse_time(value))


def _ranged(kind: RangeKind) -> Callable[[object], str]:
    def check(value: object) -> str:
        begin, end = parse_range(kind, value)
        if kind == "weekdays":
            return _WEEKDAY_WORDS[begin] + ("" if begin == end else f":{_WEEKDAY_WORDS[end]}")
        return str(begin) if begin == end else f"{begin}:{end}"

    return check


_WEEKDAY_WORDS: Final = (
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
)
_TEXT_OR_NUMBER: Final = {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
_ITEM: Final = WithJsonSchema(_TEXT_OR_NUMBER)
TimeOfDay = Annotated[
    str,
    BeforeValidator(_time_of_day),
    WithJsonSchema({**_TEXT_OR_NUMBER, "description": '"HH:MM" (quote it); 24:00 as an end'}),
]


def _or_single(schema: dict[str, Any]) -> None:
    """The JSON Schema of a list that also takes one value (``listify``): editors accept
    ``mute_during: nights`` and ``weekdays: saturday``."""
    array = {key: schema.pop(key) for key in ("type", "items") if key in schema}
    schema["anyOf"] = [array, array["items"]]


def _texts(kind: RangeKind) -> BeforeValidator:
    """A single value as a list of one, and numbers as the text ``core.intervals`` reads them
    as (YAML 1.1 made ``1:5`` the number 65), so that messages quote what was written."""

    def texts(value: object) -> object:
        value = listify(value)
        if not isinstance(value, list):
            return value
        return [
            range_text(kind, item) if isinstance(item, int) and not isinstance(item, bool) else item
            for item in value
        ]

    return BeforeValidator(texts)


_Lists: Final = (AfterValidator(unique),)
Weekdays = Annotated[
    tuple[Annotated[str, BeforeValidator(_ranged("weekdays")), _ITEM], ...],
    _texts("weekdays"),
    *_Lists,
    Field(
        json_schema_extra=_or_single,
        description="inclusive: monday:friday, saturday (any case); sunday is first",
    ),
]
DaysOfMonth = Annotated[
    tuple[Annotated[str, BeforeValidator(_ranged("days_of_month")), _ITEM], ...],
    _texts("days_of_month"),
    *_Lists,
    Field(json_schema_extra=_or_single, description="inclusive: '1:5', -1 (the last day), '-7:-1'"),
]
Months = Annotated[
    tuple[Annotated[str, BeforeValidator(_ranged("months")), _ITEM], ...],
    _texts("months"),
    *_Lists,
    Field(json_schema_extra=_or_single, description="inclusive: january:march, '1:3', december"),
]
Years = Annotated[
    tuple[Annotated[str, BeforeValidator(_ranged("years")), _ITEM], ...],
    _texts("years"),
    *_Lists,
    Field(json_schema_extra=_or_single, description="inclusive: '2026:2027', 2026"),
]


class TimeRangeSettings(Model):
    """``[start_time, end_time)`` in the entry's local time; a start after the end spans
    midnight (22:00 to 07:00)."""

    start_time: TimeOfDay
    end_time: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> TimeRangeSettings:
        self.time_range()  # start == end: ValueError with the fix
        return self

    def time_range(self) -> TimeRange:
        """The core range."""
        return TimeRange(parse_time(self.start_time), parse_time(self.end_time))


class TimeIntervalEntrySettings(Model):
    """One entry: holds when every field given holds, in ``location``'s local time."""

    times: tuple[TimeRangeSettings, ...] = Field(
        default=(), description="time ranges of the day; none: the whole day"
    )
    weekdays: Weekdays = ()
    days_of_month: DaysOfMonth = ()
    months: Months = ()
    years: Years = ()
    location: Annotated[str, BeforeValidator(parse_location)] = Field(
        default="UTC", description="IANA time zone the fields are read in, like Europe/Berlin"
    )

    def entry(self) -> IntervalEntry:
        """The core entry."""
        return IntervalEntry(
            times=tuple(r.time_range() for r in self.times),
            weekdays=tuple(parse_range("weekdays", text) for text in self.weekdays),
            days_of_month=tuple(parse_range("days_of_month", text) for text in self.days_of_month),
            months=tuple(parse_range("months", text) for text in self.months),
            years=tuple(parse_range("years", text) for text in self.years),
            location=self.location,
        )


def _entries(value: object) -> object:
    if isinstance(value, list | tuple) and not value:
        raise ValueError(
            "is empty; give one entry or more, like [{weekdays: [saturday, sunday]}] (an "
            "entry without fields holds all the time)"
        )
    return value


class TimeIntervalSettings(Model):
    """A named interval: holds when any of its entries holds."""

    name: Text = Field(description="what mute_during/active_during call it (any case)")
    time_intervals: Annotated[tuple[TimeIntervalEntrySettings, ...], BeforeValidator(_entries)] = (
        Field(json_schema_extra={"minItems": 1})
    )

    def interval(self) -> TimeInterval:
        """The core interval."""
        return TimeInterval(self.name, tuple(item.entry() for item in self.time_intervals))


@lru_cache(maxsize=16)
def compile_intervals(items: tuple[TimeIntervalSettings, ...]) -> dict[str, TimeInterval]:
    """The intervals by lower-cased name (the first of a name wins; the check refuses more).
    Cached: the result is shared, do not change it."""
    found: dict[str, TimeInterval] = {}
    for item in items:
        found.setdefault(item.name.lower(), item.interval())
    return found


IntervalNames = Annotated[tuple[Text, ...], BeforeValidator(listify), AfterValidator(unique)]


class QuietHours(Model):
    """Quiet hours of a sink or a rule: muted while one of ``mute_during`` holds, or while none
    of ``active_during`` holds (when given)."""

    mute_during: IntervalNames = Field(
        default=(),
        json_schema_extra=_or_single,
        description="names from time_intervals: while one holds, events are held (or dropped)",
    )
    active_during: IntervalNames = Field(
        default=(),
        json_schema_extra=_or_single,
        description="names from time_intervals: outside all of them, events are held (or dropped)",
    )
    on_mute: Literal["hold", "drop"] = Field(
        default="hold",
        description="hold: what arrives while muted is sent as one digest when it ends; "
        "drop: it is not sent",
    )

    def quiet(self) -> Quiet:
        """The core view of these keys."""
        return Quiet(self.mute_during, self.active_during, self.on_mute)


_QUIET_KEYS: Final = ("mute_during", "active_during")


def _names(value: object) -> list[object]:
    return [value] if isinstance(value, str) else value if isinstance(value, list) else []


def _unknown_keys(loc: Loc, block: object, known: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    for key in (k for k in block if k not in known) if isinstance(block, dict) else ():
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(known)}"
        problems.append(((*loc, str(key)), f"unknown key ({hint})"))
    return problems


def _defined(raw: dict[Any, Any]) -> tuple[list[str], list[Problem]]:
    """The interval names (as written), and the problems of the ``time_intervals`` blocks:
    duplicate names and unknown keys (pydantic's own are not reported for them)."""
    items = raw.get("time_intervals")
    names: list[str] = []
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        loc: Loc = ("time_intervals", index)
        problems += _unknown_keys(loc, item, inputs(TimeIntervalSettings))
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name.strip():
            if name.strip().lower() in seen:
                why = (
                    f"duplicate interval name {name.strip()!r} (also time_intervals"
                    f"[{seen[name.strip().lower()]}]; names ignore case); rename one"
                )
                problems.append(((*loc, "name"), why))
            seen.setdefault(name.strip().lower(), index)
            names.append(name.strip())
        entries = item.get("time_intervals") if isinstance(item, dict) else None
        for number, entry in enumerate(entries if isinstance(entries, list) else []):
            where = (*loc, "time_intervals", number)
            problems += _unknown_keys(where, entry, inputs(TimeIntervalEntrySettings))
            times = entry.get("times") if isinstance(entry, dict) else None
            for at, span in enumerate(times if isinstance(times, list) else []):
                problems += _unknown_keys((*where, "times", at), span, inputs(TimeRangeSettings))
    return names, problems


def check_interval_names(raw: dict[Any, Any]) -> list[Problem]:
    """On the raw document: names in ``sinks.*`` and ``rules[*]`` ``mute_during`` and
    ``active_during`` that no interval has (with "did you mean"), duplicate interval names and
    unknown keys in ``time_intervals``."""
    names, problems = _defined(raw)
    lowered = {name.lower() for name in names}
    users: list[tuple[Loc, Any]] = []
    sinks, rules = raw.get("sinks"), raw.get("rules")
    for sink, body in sinks.items() if isinstance(sinks, dict) else ():
        users.append((("sinks", str(sink)), body))
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        users.append((("rules", index), rule))
    for loc, block in users:
        for key in _QUIET_KEYS if isinstance(block, dict) else ():
            for i, name in enumerate(_names(block.get(key))):
                if not isinstance(name, str) or not name.strip() or name.strip().lower() in lowered:
                    continue
                hint = (
                    choices(name.strip(), names, "defined")
                    if names
                    else "none defined; add it under time_intervals:"
                )
                problems.append(
                    ((*loc, key, i), f"unknown time interval {name.strip()!r} ({hint})")
                )
    return problems
