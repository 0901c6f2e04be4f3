"""Quiet hours: named time intervals (issue 15), pure, in the shape of Alertmanager's top-level
``time_intervals`` so that one can be copied from there.

A ``TimeInterval`` holds when ANY of its entries holds; an ``IntervalEntry`` holds when ALL the
fields it gives hold — ``times``, ``weekdays``, ``days_of_month``, ``months``, ``years`` — read
in the local time of its ``location`` (an IANA zone; UTC by default) at that moment, so a DST
change moves the UTC instants and never the wall-clock hours. A time range is ``HH:MM`` to
``HH:MM``, the end exclusive and possibly ``24:00``; other ranges are inclusive
(``monday:friday``, ``1:5``, ``january:march``, ``2026:2027``), weekdays counted from Sunday as
Alertmanager does, and a day of the month may count from the end (``-1``: the last day).

Extension to Alertmanager: a time range whose start is after its end (``22:00``–``07:00``) spans
midnight: it is ``[22:00, 24:00) ∪ [00:00, 07:00)`` on the local date at that moment, the same as
writing the two ranges (Alertmanager rejects it).

PyYAML reads YAML 1.1, where an unquoted ``22:00`` is the sexagesimal integer 1320 and ``1:5``
is 65: ``parse_time`` and ``parse_range`` read such integers back (1320 → 22:00, 65 → 1:5).

``Quiet`` is what a sink or a rule says about them (``mute_during``, ``active_during``,
``on_mute``): whether a moment is muted, by what, and until when.
"""

from __future__ import annotations

import calendar
import difflib
import math
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as attribute
from datetime import datetime
from functools import lru_cache
from typing import Final, Literal

#: How far ahead ``next_change`` looks by default.
HORIZON: Final = 8 * 86400.0
WEEKDAYS: Final = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
RangeKind = Literal["weekdays", "days_of_month", "months", "years"]
_TIME: Final = re.compile(r"(\d{1,2}):(\d{2})")
_LIMITS: Final[dict[RangeKind, tuple[int, int]]] = {
    "weekdays": (0, 6),
    "days_of_month": (-31, 31),
    "months": (1, 12),
    "years": (1, 9999),
}
_EXAMPLES: Final[dict[RangeKind, str]] = {
    "weekdays": "monday:friday or saturday",
    "days_of_month": "'1:5', -1 (the last day) or '-7:-1'",
    "months": "january:march, '1:3' or december",
    "years": "'2026:2027' or 2026",
}


def format_minutes(minutes: int) -> str:
    """``1320`` → ``22:00``; ``1440`` → ``24:00``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_time(value: object) -> int:
    """``"22:00"`` → minutes since midnight (0-1440, ``24:00`` = 1440). An integer is what YAML
    1.1 made of an unquoted ``22:00`` (1320): read back as minutes. ``ValueError`` with the fix."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 60 <= value <= 1440:
            return value  # sexagesimal: 22:00 → 22 * 60 + 0
        raise ValueError(f'{value} is not a time of day; write it as "HH:MM", like "07:00"')
    text = value.strip() if isinstance(value, str) else str(value)
    found = _TIME.fullmatch(text) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f'{str(value)[:40]!r} is not a time of day; write "HH:MM", like "07:00"')
    hours, minutes = int(found.group(1)), int(found.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(
            f"{text!r} is not a time of day; hours 00-23, minutes 00-59 (or 24:00 "
            "for the end of the day)"
        )
    return hours * 60 + minutes


def _bound(kind: RangeKind, text: str) -> int:
    """One end of a range: a weekday or month name (any case) or a number."""
    word = text.strip().lower()
    names = {"weekdays": WEEKDAYS, "months": MONTHS}.get(kind, ())
    if word in names:
        return names.index(word) + (kind == "months")
    if kind != "weekdays" and re.fullmatch(r"-?\d+", word):
        return int(word)
    close = difflib.get_close_matches(word, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    what = {"weekdays": "weekday", "days_of_month": "day of the month", "months": "month"}
    raise ValueError(
        f"{text.strip()[:40]!r} is not a {what.get(kind, 'year')}; {hint}write {_EXAMPLES[kind]}"
    )


def range_text(kind: RangeKind, value: int) -> str:
    """YAML 1.1 made ``1:5`` the integer 65: give it back as ``1:5`` when it cannot be one
    value of ``kind`` (a year is never written that way: ``2026:2027`` stays text)."""
    high = _LIMITS[kind][1]
    if kind != "years" and value > high and value // 60 >= 1:
        return f"{value // 60}:{value % 60}"
    return str(value)


def parse_range(kind: RangeKind, value: object) -> tuple[int, int]:
    """``monday:friday``, ``saturday``, ``1:5``, ``-1``, ``january:march``, ``2026:2027`` →
    ``(first, last)``, inclusive: weekdays 0 (sunday) to 6, months 1 to 12, days of the month
    -31 to 31 without 0 (negative: from the end). ``ValueError`` with the fix."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"must be text or a number, like {_EXAMPLES[kind]}")
    text = range_text(kind, value) if isinstance(value, int) else value
    first, sep, last = text.partition(":")
    begin = _bound(kind, first)
    end = _bound(kind, last) if sep else begin
    low, high = _LIMITS[kind]
    for number in (begin, end):
        if not low <= number <= high or (kind == "days_of_month" and number == 0):
            extra = ", not 0" if kind == "days_of_month" else ""
            raise ValueError(
                f"{text.strip()!r}: {number} is out of range ({low} to {high}{extra}); write "
                f"{_EXAMPLES[kind]}"
            )
    same_sign = (begin > 0) == (end > 0)
    if begin > end and (kind != "days_of_month" or same_sign):
        fix = (
            '; weekdays count from sunday, so split it, like ["friday:saturday", sunday]'
            if kind == "weekdays"
            else f"; write it the other way round, {last.strip()}:{first.strip()}"
        )
        raise ValueError(f"{text.strip()!r}: the range ends before it starts{fix}")
    return begin, end


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def parse_location(value: object) -> str:
    """An IANA time zone name (``Europe/Berlin``, ``UTC``); ``ValueError`` with the fix, also
    for ``Local`` (the container's zone, usually UTC, is not what anyone means)."""
    text = value.strip() if isinstance(value, str) else ""
    if text.lower() == "local":
        raise ValueError(
            "'Local' is the machine's own time zone; write an IANA zone such as Europe/Berlin; "
            "a container's local zone is usually UTC"
        )
    try:
        _zone(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(text, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"{text[:40]!r} is not a known time zone; {hint}write an IANA zone such as "
            "Europe/Berlin, America/New_York or UTC"
        ) from None
    return text


@dataclass(frozen=True, slots=True)
class TimeRange:
    """``[start, end)`` in minutes of the local day (``end`` up to 1440); ``start > end``:
    spans midnight, ``[start, 1440) ∪ [0, end)``."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < 1440:
            raise ValueError(
                f"start_time {format_minutes(self.start)} is not a start; 24:00 is only an end "
                '(a range from midnight starts at "00:00")'
            )
        if self.start == self.end:
            raise ValueError(
                f"start_time and end_time are both {format_minutes(self.start)}: the range is "
                'empty; for the whole day write start_time: "00:00", end_time: "24:00"'
            )

    def holds(self, minute: int) -> bool:
        """Whether the minute of the day ``minute`` (0-1439) is in the range."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{format_minutes(self.start)}–{format_minutes(self.end)}"


Span = tuple[int, int]


def _in(value: int, spans: tuple[Span, ...]) -> bool:
    return any(begin <= value <= end for begin, end in spans)


@dataclass(frozen=True, slots=True)
class IntervalEntry:
    """One entry of a named interval: holds when every field it gives holds (an empty tuple:
    not given) in ``location``'s local time."""

    times: tuple[TimeRange, ...] = ()
    weekdays: tuple[Span, ...] = ()
    days_of_month: tuple[Span, ...] = ()
    months: tuple[Span, ...] = ()
    years: tuple[Span, ...] = ()
    location: str = "UTC"
    zone: zoneinfo.ZoneInfo = attribute(init=False, compare=False, repr=False)
    #: The minutes of the local day at which it may change: midnight, the ranges' ends.
    marks: tuple[int, ...] = attribute(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", _zone(self.location))
        ends = {0, *(r.start for r in self.times), *(r.end % 1440 for r in self.times)}
        object.__setattr__(self, "marks", tuple(sorted(ends)))

    def local(self, moment: float) -> datetime:
        """The wall-clock time in ``location`` at ``moment`` (Unix seconds)."""
        return datetime.fromtimestamp(moment, self.zone)

    def _date_holds(self, local: datetime) -> bool:
        """Whether the fields about the date hold on ``local``'s date."""
        if self.weekdays and not _in(local.isoweekday() % 7, self.weekdays):
            return False
        if self.months and not _in(local.month, self.months):
            return False
        if self.years and not _in(local.year, self.years):
            return False
        if self.days_of_month:
            size = calendar.monthrange(local.year, local.month)[1]
            spans = tuple(
                (b + size + 1 if b < 0 else b, e + size + 1 if e < 0 else e)
                for b, e in self.days_of_month
            )
            return _in(local.day, spans)
        return True

    def holds_at(self, local: datetime) -> bool:
        """Whether the entry holds at the local time ``local``."""
        if not self._date_holds(local):
            return False
        minute = local.hour * 60 + local.minute
        return not self.times or any(r.holds(minute) for r in self.times)

    def holds(self, moment: float) -> bool:
        """Whether the entry holds at ``moment`` (Unix seconds)."""
        return self.holds_at(self.local(moment))

    def next_boundary(self, moment: float) -> float:
        """The first whole minute after ``moment`` at which the entry may change: a range's
        start or end, local midnight (the next one only, on a day its date fields rule out), or
        a change of the zone's UTC offset (DST)."""
        minute = math.floor(moment / 60) * 60.0
        local = self.local(minute)
        now = local.hour * 60 + local.minute
        later = [mark for mark in self.marks if mark > now] if self._date_holds(local) else []
        candidate = minute + ((later[0] if later else 1440) - now) * 60
        offset = local.utcoffset()
        if self.local(candidate).utcoffset() == offset:
            return candidate
        low, high = minute, candidate  # offset(low) == offset != offset(high): find the change
        while high - low > 60:
            middle = low + math.floor((high - low) / 120) * 60
            low, high = (
                (middle, high) if self.local(middle).utcoffset() == offset else (low, middle)
            )
        return high


def _first_change(
    entries: Iterable[IntervalEntry],
    state: Callable[[float], object],
    moment: float,
    horizon: float,
) -> float | None:
    """The first instant after ``moment`` (within ``horizon`` seconds) at which ``state``
    differs from ``state(moment)``, when ``state`` depends only on ``entries``."""
    pending = [(entry, entry.next_boundary(moment)) for entry in entries]  # each one's next
    before, until = state(moment), moment + horizon
    while pending:
        at = min(when for _, when in pending)
        if at > until:
            return None
        if state(at) != before:
            return at
        pending = [(e, e.next_boundary(at) if when <= at else when) for e, when in pending]
    return None


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """A named interval (``name`` as written; looked up in lower case): holds when any entry
    holds. No entries: never."""

    name: str
    entries: tuple[IntervalEntry, ...]

    def contains(self, moment: float) -> bool:
        """Whether the interval holds at ``moment`` (Unix seconds)."""
        return any(entry.holds(moment) for entry in self.entries)

    def next_change(self, moment: float, horizon: float = HORIZON) -> float | None:
        """The first instant after ``moment`` at which ``contains`` flips (a whole minute), or
        None when it does not within ``horizon`` seconds."""
        return _first_change(self.entries, self.contains, moment, horizon)

    @property
    def location(self) -> str:
        """The zone its times are read in (the first entry's), for people."""
        return self.entries[0].location if self.entries else "UTC"


@dataclass(frozen=True, slots=True)
class Quiet:
    """What a sink or a rule says of quiet hours: muted while one of ``mute_during`` holds, or
    while none of ``active_during`` holds (when given); ``on_mute``: ``hold`` (one digest when
    it ends) or ``drop``. Names are matched in lower case; unknown ones are ignored here (the
    configuration rejects them)."""

    mute_during: tuple[str, ...] = ()
    active_during: tuple[str, ...] = ()
    on_mute: str = "hold"

    def __bool__(self) -> bool:
        return bool(self.mute_during or self.active_during)

    def _named(
        self, names: tuple[str, ...], known: Mapping[str, TimeInterval]
    ) -> list[TimeInterval]:
        return [known[name.lower()] for name in names if name.lower() in known]

    def muted_by(self, moment: float, intervals: Mapping[str, TimeInterval]) -> str | None:
        """Why ``moment`` is muted — the first ``mute_during`` interval that holds (``nights``)
        or ``outside workhours`` when no ``active_during`` interval holds — or None."""
        for interval in self._named(self.mute_during, intervals):
            if interval.contains(moment):
                return interval.name
        active = self._named(self.active_during, intervals)
        if active and not any(interval.contains(moment) for interval in active):
            return "outside " + ", ".join(interval.name for interval in active)
        return None

    def next_change(
        self, moment: float, intervals: Mapping[str, TimeInterval], horizon: float = HORIZON
    ) -> float | None:
        """The first instant after ``moment`` at which it becomes muted or unmuted (or stays
        muted for another reason), or None within ``horizon`` seconds."""
        named = self._named(self.mute_during + self.active_during, intervals)
        entries = [entry for interval in named for entry in interval.entries]
        return _first_change(entries, lambda at: self.muted_by(at, intervals), moment, horizon)

    def quiet_until(
        self, moment: float, intervals: Mapping[str, TimeInterval], horizon: float = HORIZON
    ) -> float | None:
        """When it stops being muted: None when ``moment`` is not muted or no end comes within
        ``horizon`` seconds."""
        if self.muted_by(moment, intervals) is None:
            return None
        named = self._named(self.mute_during + self.active_during, intervals)
        entries = [entry for interval in named for entry in interval.entries]
        return _first_change(
            entries, lambda at: self.muted_by(at, intervals) is None, moment, horizon
        )
