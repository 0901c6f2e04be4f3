"""Quiet hours (issue 15): named time intervals in Alertmanager's shape (``core.intervals``),
each field and range form, negative days of the month, ranges spanning midnight, DST changes in
Europe/Berlin on both sides (2026-03-29 and 2026-10-25) with the clock given as an argument,
``next_change`` against a minute-by-minute scan, ``Quiet``; the configuration (``time_intervals``,
``mute_during``/``active_during``/``on_mute`` on sinks and rules) through the real loader,
including YAML 1.1's sexagesimal ``22:00``, with every problem reported at once; and the line
`notifier check` prints.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from notifier.cli.quiet import quiet_line
from notifier.cli.shared import EXIT_OK
from notifier.config.load import parse_config
from notifier.core.errors import ConfigError
from notifier.core.intervals import (
    IntervalEntry,
    Quiet,
    TimeInterval,
    TimeRange,
    parse_location,
    parse_range,
    parse_time,
)
from tests.factories import API_KEY
from tests.helpers import cli

ROOT = Path(__file__).resolve().parent.parent
ENV = {"POSTHOG_PERSONAL_API_KEY": API_KEY}
BERLIN = "Europe/Berlin"


def utc(*parts: int) -> float:
    """Unix seconds of a UTC date and time."""
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def hm(text: str) -> int:
    return parse_time(text)


def interval(name: str = "x", **fields: object) -> TimeInterval:
    return TimeInterval(name, (IntervalEntry(**fields),))  # type: ignore[arg-type]


def nights(location: str = BERLIN, **fields: object) -> TimeInterval:
    return interval("nights", times=(TimeRange(0, hm("07:00")),), location=location, **fields)


# -- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minutes"),
    [("22:00", 1320), ("07:05", 425), ("7:05", 425), ("00:00", 0), ("24:00", 1440), (1320, 1320)],
)
def test_times_of_day_and_yaml_sexagesimal(value: object, minutes: int) -> None:
    assert parse_time(value) == minutes


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("25:00", "hours 00-23"),
        ("12:60", "minutes 00-59"),
        ("24:30", "24:00 for the end"),
        ("noon", 'write "HH:MM"'),
        (30, 'write it as "HH:MM"'),
        (True, "is not a time of day"),
    ],
)
def test_bad_times_say_what_to_write(value: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        parse_time(value)


@pytest.mark.parametrize(
    ("kind", "value", "span"),
    [
        ("weekdays", "monday:friday", (1, 5)),
        ("weekdays", "Saturday", (6, 6)),
        ("weekdays", "sunday:saturday", (0, 6)),
        ("days_of_month", "1:5", (1, 5)),
        ("days_of_month", 65, (1, 5)),  # YAML 1.1: an unquoted 1:5
        ("days_of_month", "-3:-1", (-3, -1)),
        ("days_of_month", "25:-1", (25, -1)),
        ("days_of_month", -1, (-1, -1)),
        ("months", "january:march", (1, 3)),
        ("months", "1:3", (1, 3)),
        ("months", 63, (1, 3)),
        ("months", "December", (12, 12)),
        ("years", "2026:2027", (2026, 2027)),
        ("years", 2026, (2026, 2026)),
    ],
)
def test_ranges_in_every_form(kind: str, value: object, span: tuple[int, int]) -> None:
    assert parse_range(kind, value) == span  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "value", "said"),
    [
        ("weekdays", "satruday", "did you mean 'saturday'?"),
        ("weekdays", "friday:monday", '["friday:saturday", sunday]'),
        ("weekdays", 3, "is not a weekday"),
        ("days_of_month", 0, "not 0"),
        ("days_of_month", "1:32", "out of range (-31 to 31"),
        ("days_of_month", "5:1", "the other way round, 1:5"),
        ("days_of_month", "-1:-3", "ends before it starts"),
        ("months", "13", "out of range (1 to 12)"),
        ("months", "janury", "did you mean 'january'?"),
        ("years", "2027:2026", "ends before it starts"),
    ],
)
def test_bad_ranges_say_what_to_write(kind: str, value: object, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        parse_range(kind, value)  # type: ignore[arg-type]


def test_locations() -> None:
    assert parse_location(" Europe/Berlin ") == BERLIN
    with pytest.raises(ValueError, match="such as Europe/Berlin; a container's local zone is"):
        parse_location("Local")
    with pytest.raises(ValueError, match="did you mean 'Europe/Berlin'"):
        parse_location("Europe/Berln")
    with pytest.raises(ValueError, match="not a known time zone"):
        parse_location("../etc/passwd")


def test_empty_and_backwards_time_ranges() -> None:
    with pytest.raises(ValueError, match="the range is empty; for the whole day write start_time"):
        TimeRange(hm("07:00"), hm("07:00"))
    with pytest.raises(ValueError, match="24:00 is only an end"):
        TimeRange(1440, 60)


# -- each field --------------------------------------------------------------------------------


def test_times_end_exclusive() -> None:
    work = interval(times=(TimeRange(hm("09:00"), hm("17:00")),))
    assert work.contains(utc(2026, 12, 4, 9, 0))
    assert work.contains(utc(2026, 12, 4, 16, 59, 59))
    assert not work.contains(utc(2026, 12, 4, 17, 0))
    assert not work.contains(utc(2026, 12, 4, 8, 59, 59))
    late = interval(times=(TimeRange(hm("23:00"), hm("24:00")),))
    assert late.contains(utc(2026, 12, 4, 23, 59, 59))
    assert not late.contains(utc(2026, 12, 5, 0, 0))


def test_weekdays() -> None:
    weekend = interval(weekdays=(parse_range("weekdays", "saturday"), (0, 0)))
    assert [weekend.contains(utc(2026, 12, day, 12)) for day in range(4, 9)] == [
        False,  # Fri
        True,  # Sat
        True,  # Sun
        False,  # Mon
        False,
    ]


def test_days_of_month_count_from_the_end() -> None:
    last = interval(days_of_month=((-1, -1),))
    assert last.contains(utc(2026, 2, 28, 12))
    assert not last.contains(utc(2026, 2, 27, 12))
    assert last.contains(utc(2028, 2, 29, 12))  # a leap year
    assert not last.contains(utc(2028, 2, 28, 12))
    assert last.contains(utc(2026, 12, 31, 0))
    tail = interval(days_of_month=((25, -1),))  # from the 25th to the last day
    assert tail.contains(utc(2026, 4, 30, 1))
    assert not tail.contains(utc(2026, 4, 24, 23))
    head = interval(days_of_month=((1, 5),))
    assert head.contains(utc(2026, 12, 5, 23, 59))
    assert not head.contains(utc(2026, 12, 6))


def test_months_years_and_all_fields_together() -> None:
    assert interval(months=((11, 12),)).contains(utc(2026, 12, 4))
    assert not interval(months=((1, 3),)).contains(utc(2026, 12, 4))
    assert interval(years=((2026, 2026),)).contains(utc(2026, 12, 31, 23, 59))
    assert not interval(years=((2026, 2026),)).contains(utc(2027, 1, 1))
    every = {
        "times": (TimeRange(hm("09:00"), hm("17:00")),),
        "weekdays": ((1, 5),),
        "days_of_month": ((1, 7),),
        "months": ((12, 12),),
        "years": ((2026, 2026),),
    }
    assert interval(**every).contains(utc(2026, 12, 4, 10))  # Friday the 4th, 10:00
    assert not interval(**every).contains(utc(2026, 12, 5, 10))  # Saturday
    assert not interval(**every).contains(utc(2026, 12, 8, 10))  # the 8th
    assert not interval(**every).contains(utc(2026, 12, 4, 17))  # 17:00


def test_any_entry_holds_and_no_entries_never() -> None:
    either = TimeInterval(
        "x", (IntervalEntry(weekdays=((6, 6),)), IntervalEntry(times=(TimeRange(0, 60),)))
    )
    assert either.contains(utc(2026, 12, 5, 12))
    assert either.contains(utc(2026, 12, 4, 0, 30))
    assert not either.contains(utc(2026, 12, 4, 12))
    assert not TimeInterval("none", ()).contains(utc(2026, 12, 4))
    assert TimeInterval("always", (IntervalEntry(),)).contains(utc(2026, 12, 4))


def test_location_is_local_time() -> None:
    tokyo = interval(times=(TimeRange(hm("09:00"), hm("17:00")),), location="Asia/Tokyo")
    assert tokyo.contains(utc(2026, 12, 4, 0, 0))  # 09:00 JST
    assert not tokyo.contains(utc(2026, 12, 4, 9, 0))  # 18:00 JST
    friday_tokyo = interval(weekdays=((5, 5),), location="Asia/Tokyo")
    assert friday_tokyo.contains(utc(2026, 12, 3, 15, 0))  # Thu 15:00 UTC is Fri 00:00 JST


def test_midnight_spanning_range_is_the_two_ranges() -> None:
    """22:00–07:00 is [22:00, 24:00) ∪ [00:00, 07:00) on the local date at that moment."""
    weekdays = ((1, 5),)
    spanning = interval(times=(TimeRange(1320, 420),), weekdays=weekdays, location=BERLIN)
    two = interval(times=(TimeRange(1320, 1440), TimeRange(0, 420)), weekdays=weekdays)
    two = TimeInterval("two", (IntervalEntry(two.entries[0].times, weekdays, location=BERLIN),))
    start = utc(2026, 3, 23)
    for step in range(0, 14 * 24 * 4):  # two weeks in quarter hours, across the DST change
        at = start + step * 900
        assert spanning.contains(at) == two.contains(at), datetime.fromtimestamp(at, UTC)
    assert spanning.contains(utc(2026, 12, 4, 21, 30))  # Fri 22:30 CET
    assert not spanning.contains(utc(2026, 12, 4, 23, 30))  # Sat 00:30 CET: a Saturday


# -- DST ----------------------------------------------------------------------------------------


def test_nights_across_the_spring_dst_change() -> None:
    """2026-03-29 02:00 CET → 03:00 CEST: nights 00:00–07:00 Berlin ends an hour earlier in UTC."""
    night = nights()
    assert night.contains(utc(2026, 3, 28, 5, 59))
    assert not night.contains(utc(2026, 3, 28, 6, 0))
    assert not night.contains(utc(2026, 3, 28, 22, 59))  # 23:59 CET
    assert night.contains(utc(2026, 3, 28, 23, 0))  # 00:00 CET
    assert night.contains(utc(2026, 3, 29, 4, 59))
    assert not night.contains(utc(2026, 3, 29, 5, 0))
    assert night.next_change(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 5, 0)
    assert night.next_change(utc(2026, 3, 28, 12)) == utc(2026, 3, 28, 23, 0)
    assert night.next_change(utc(2026, 3, 29, 5, 0)) == utc(2026, 3, 29, 22, 0)  # 00:00 CEST
    gap = interval(times=(TimeRange(hm("02:00"), hm("03:00")),), location=BERLIN)
    assert not any(gap.contains(utc(2026, 3, 29, 0, 0) + m * 60) for m in range(180))


def test_nights_across_the_autumn_dst_change() -> None:
    """2026-10-25 03:00 CEST → 02:00 CET: nights 00:00–07:00 Berlin ends an hour later in UTC,
    and 02:00–03:00 happens twice."""
    night = nights()
    assert night.contains(utc(2026, 10, 24, 22, 0))
    assert not night.contains(utc(2026, 10, 24, 21, 59))
    assert night.contains(utc(2026, 10, 25, 5, 59))
    assert not night.contains(utc(2026, 10, 25, 6, 0))
    assert night.next_change(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 6, 0)
    assert night.next_change(utc(2026, 10, 24, 21, 0)) == utc(2026, 10, 24, 22, 0)
    twice = interval(times=(TimeRange(hm("02:00"), hm("03:00")),), location=BERLIN)
    assert twice.contains(utc(2026, 10, 25, 0, 0))
    assert twice.contains(utc(2026, 10, 25, 1, 59))
    assert twice.next_change(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 2, 0)


def _scanned(item: TimeInterval, moment: float, horizon: float) -> float | None:
    """``next_change`` the slow way: minute by minute."""
    before, at = item.contains(moment), math.floor(moment / 60) * 60 + 60
    while at <= moment + horizon:
        if item.contains(at) != before:
            return at
        at += 60
    return None


@pytest.mark.parametrize(
    "item",
    [
        nights(),
        interval(times=(TimeRange(1320, 420),), weekdays=((1, 5),), location=BERLIN),
        interval(times=(TimeRange(hm("02:30"), hm("02:45")),), location=BERLIN),
        interval(weekdays=((6, 6), (0, 0)), location="America/New_York"),
        interval(days_of_month=((-1, -1),), times=(TimeRange(hm("23:15"), 1440),)),
        TimeInterval(
            "two zones",
            (nights("Asia/Kolkata").entries[0], interval(months=((11, 11),)).entries[0]),
        ),
    ],
)
@pytest.mark.parametrize(
    "moment",
    [utc(2026, 3, 28, 20, 10, 30), utc(2026, 10, 24, 21, 0), utc(2026, 10, 30, 23, 59)],
)
def test_next_change_agrees_with_a_minute_scan(item: TimeInterval, moment: float) -> None:
    horizon = 3 * 86400.0
    found = item.next_change(moment, horizon)
    assert found == _scanned(item, moment, horizon)
    if found is not None:
        assert item.contains(found) != item.contains(found - 60)


def test_next_change_none_and_jumps_whole_days(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TimeInterval("always", (IntervalEntry(),)).next_change(utc(2026, 12, 4)) is None
    assert TimeInterval("never", ()).next_change(utc(2026, 12, 4)) is None
    assert nights().next_change(utc(2026, 12, 4, 12), horizon=3600) is None
    calls = 0
    step = IntervalEntry.next_boundary

    def counted(self: IntervalEntry, moment: float) -> float:
        nonlocal calls
        calls += 1
        return step(self, moment)

    monkeypatch.setattr(IntervalEntry, "next_boundary", counted)
    later = interval(years=((2030, 2030),), times=(TimeRange(0, 60), TimeRange(600, 660)))
    assert later.next_change(utc(2026, 12, 4)) is None  # 8 days: one step a day, not a minute
    assert calls < 20
    calls = 0
    assert nights().next_change(utc(2026, 12, 4, 12), horizon=8 * 86400) is not None
    assert calls < 10


# -- Quiet --------------------------------------------------------------------------------------

WEEKENDS = interval("Weekends", weekdays=((6, 6), (0, 0)), location=BERLIN)
WORKHOURS = interval(
    "workhours", times=(TimeRange(hm("09:00"), hm("17:00")),), weekdays=((1, 5),), location=BERLIN
)
NIGHTS = interval(
    "nights", times=(TimeRange(1320, 1440), TimeRange(0, 420)), weekdays=((1, 5),), location=BERLIN
)
KNOWN = {"nights": NIGHTS, "weekends": WEEKENDS, "workhours": WORKHOURS}


def test_quiet_muted_by_and_until() -> None:
    quiet = Quiet(mute_during=("nights", "WEEKENDS", "unknown"))
    friday_late = utc(2026, 12, 4, 22, 0)  # Fri 23:00 CET
    assert quiet.muted_by(friday_late, KNOWN) == "nights"
    assert quiet.muted_by(utc(2026, 12, 5, 12), KNOWN) == "Weekends"
    assert quiet.muted_by(utc(2026, 12, 4, 12), KNOWN) is None
    # nights, then the weekend, then Monday's night until 07:00 CET
    assert quiet.quiet_until(friday_late, KNOWN) == utc(2026, 12, 7, 6, 0)
    assert quiet.quiet_until(utc(2026, 12, 4, 12), KNOWN) is None
    assert quiet.next_change(utc(2026, 12, 4, 12), KNOWN) == utc(2026, 12, 4, 21, 0)
    office = Quiet(active_during=("workhours",), on_mute="drop")
    assert office.muted_by(utc(2026, 12, 4, 7, 59), KNOWN) == "outside workhours"
    assert office.muted_by(utc(2026, 12, 4, 8, 0), KNOWN) is None
    assert office.quiet_until(utc(2026, 12, 4, 17), KNOWN) == utc(2026, 12, 7, 8, 0)
    assert Quiet(active_during=("unknown",)).muted_by(friday_late, KNOWN) is None
    assert not Quiet()
    assert Quiet(mute_during=("nights",))


# -- configuration ------------------------------------------------------------------------------

HEAD = """posthog:
  host: https://us.posthog.com
  api_key: ${POSTHOG_PERSONAL_API_KEY}
  project_ids: [1]
"""
INTERVALS = """time_intervals:
  - name: Nights
    time_intervals:
      - times:
          - start_time: 22:00
            end_time: 24:00
          - start_time: 00:00
            end_time: 07:00
        weekdays: ["monday:friday"]
        days_of_month: [1:5, -1]
        months: [1:3, december]
        location: Europe/Berlin
  - name: weekends
    time_intervals:
      - weekdays: saturday
      - weekdays: [Sunday]
"""
USERS = """sinks:
  out:
    type: console
    mute_during: nights
    on_mute: drop
rules:
  - name: all
    sinks: [out]
    active_during: [WEEKENDS]
"""


def test_config_reads_yaml_sexagesimal_times_and_ranges() -> None:
    settings = parse_config(HEAD + INTERVALS + USERS, source="c.yaml", env=ENV)
    quoted = INTERVALS
    for plain in ("22:00", "24:00", "00:00", "07:00", "1:5", "1:3"):
        quoted = quoted.replace(f" {plain}", f' "{plain}"').replace(f"[{plain}", f'["{plain}"')
    assert '"22:00"' in quoted
    assert '["1:5"' in quoted
    assert '["1:3"' in quoted
    same = parse_config(HEAD + quoted + USERS, source="c.yaml", env=ENV)
    assert settings.time_intervals == same.time_intervals
    (entry,) = settings.time_intervals[0].time_intervals
    assert [(r.start_time, r.end_time) for r in entry.times] == [
        ("22:00", "24:00"),
        ("00:00", "07:00"),
    ]
    assert (entry.days_of_month, entry.months) == (("1:5", "-1"), ("1:3", "12"))
    known = settings.intervals()
    assert sorted(known) == ["nights", "weekends"]
    assert known["nights"].entries[0].times == (TimeRange(1320, 1440), TimeRange(0, 420))
    assert settings.sinks["out"].quiet() == Quiet(("nights",), (), "drop")
    assert settings.rules[0].quiet() == Quiet((), ("WEEKENDS",), "hold")
    assert settings.rules[0].quiet().muted_by(utc(2026, 12, 4, 12), known) == "outside weekends"


def test_config_problems_are_reported_at_once() -> None:
    bad = (
        INTERVALS.replace('["monday:friday"]', '["monday:friday", satruday]')
        .replace("location: Europe/Berlin", "location: Europe/Berln")
        .replace("end_time: 07:00", 'end_time: "7h"')
        .replace("end_time: 24:00", "end_time: 22:00")
        .replace(
            "weekdays: [Sunday]", "weekdays: [Sunday]\n        location: Local\n        weekday: 1"
        )
        + "  - name: NIGHTS\n    time_intervals: []\n"
    )
    users = USERS.replace("mute_during: nights", "mute_during: [nigths]").replace(
        "on_mute: drop", "on_mute: dorp"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(
            HEAD + bad + users.replace("[WEEKENDS]", "[weekend]"), source="c.yaml", env=ENV
        )
    entry = "time_intervals[0].time_intervals[0]"
    assert caught.value.problems == [
        "sinks.out.mute_during[0]: unknown time interval 'nigths' (did you mean 'Nights'? "
        "defined: Nights, weekends, NIGHTS)",
        "sinks.out.on_mute: must be one of 'hold' or 'drop' (got 'dorp'); did you mean 'drop'?",
        "rules[0].active_during[0]: unknown time interval 'weekend' (did you mean 'weekends'? "
        "defined: Nights, weekends, NIGHTS)",
        f"{entry}.location: 'Europe/Berln' is not a known time zone; did you mean "
        "'Europe/Berlin'? write an IANA zone such as Europe/Berlin, America/New_York or UTC",
        f"{entry}.times[0]: start_time and end_time are both 22:00: the range is empty; for the "
        'whole day write start_time: "00:00", end_time: "24:00"',
        f'{entry}.times[1].end_time: \'7h\' is not a time of day; write "HH:MM", like "07:00"',
        f"{entry}.weekdays[1]: 'satruday' is not a weekday; did you mean 'saturday'? write "
        "monday:friday or saturday",
        "time_intervals[1].time_intervals[1].location: 'Local' is the machine's own time zone; "
        "write an IANA zone such as Europe/Berlin; a container's local zone is usually UTC",
        "time_intervals[1].time_intervals[1].weekday: unknown key (did you mean 'weekdays'?)",
        "time_intervals[2].name: duplicate interval name 'NIGHTS' (also time_intervals[0]; "
        "names ignore case); rename one",
        "time_intervals[2].time_intervals: is empty; give one entry or more, like [{weekdays: "
        "[saturday, sunday]}] (an entry without fields holds all the time)",
    ]


def test_interval_names_need_intervals() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + USERS, source="c.yaml", env=ENV)
    assert caught.value.problems[0] == (
        "sinks.out.mute_during[0]: unknown time interval 'nights' (none defined; add it under "
        "time_intervals:)"
    )


def test_schema_takes_time_intervals_in_both_forms() -> None:
    schema = json.loads((ROOT / "config.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    doc = yaml.safe_load(HEAD.replace("${POSTHOG_PERSONAL_API_KEY}", "k") + INTERVALS + USERS)
    assert list(validator.iter_errors(doc)) == []
    doc["sinks"]["out"]["mute_durin"] = "nights"
    assert list(validator.iter_errors(doc))


# -- notifier check -----------------------------------------------------------------------------


def test_quiet_line_words() -> None:
    plain = {"nights": interval("nights", times=(TimeRange(1320, 420),), location=BERLIN)}
    quiet = Quiet(mute_during=("nights",))
    friday_noon = utc(2026, 12, 4, 11, 0)
    assert quiet_line(quiet, plain, friday_noon) == (
        "quiet hours: muted during nights (next: Fri 4 Dec 22:00 Europe/Berlin, for 9 h)"
    )
    assert quiet_line(quiet, plain, utc(2026, 12, 4, 5, 0)) == (
        "quiet hours: muted now (nights) until 07:00 Europe/Berlin"
    )
    assert quiet_line(quiet, plain, utc(2026, 12, 4, 22, 0)) == (
        "quiet hours: muted now (nights) until Sat 5 Dec 07:00 Europe/Berlin"
    )
    office = Quiet(active_during=("workhours",), on_mute="drop")
    assert quiet_line(office, KNOWN, friday_noon) == (
        "quiet hours: active during workhours only (next: Fri 4 Dec 17:00 Europe/Berlin, "
        "for 2 d 16 h); dropped while muted (on_mute: drop)"
    )
    assert quiet_line(Quiet(mute_during=("x",)), {"x": TimeInterval("x", ())}, friday_noon) == (
        "quiet hours: muted during x (not within 8 d)"
    )
    assert quiet_line(Quiet(), KNOWN, friday_noon) is None


def test_check_prints_quiet_hours(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(HEAD + f"state:\n  path: {tmp_path / 'state.db'}\n" + INTERVALS + USERS)
    checked = cli("check", "-c", str(config), env=ENV)
    assert checked.returncode == EXIT_OK, checked.stderr
    lines = checked.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("  out ")))
    assert re.fullmatch(
        r" {23}quiet hours: (muted now \(Nights\) until .*|muted during nights \(next: .*\))"
        r"; dropped while muted \(on_mute: drop\)",
        lines[at + 1],
    ), lines[at + 1]
    assert any(
        re.fullmatch(r" {35}quiet hours: (muted now \(outside weekends\)|active during).*", line)
        for line in lines
    ), checked.stdout
    assert not (tmp_path / "state.db").exists()
