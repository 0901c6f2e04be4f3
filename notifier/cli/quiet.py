"""Quiet hours in words, for `notifier check`: whether a sink or a rule is muted now and until
when, or when it will be next and for how long, in the local time of the interval that mutes it
(``core.intervals``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from notifier.core.intervals import HORIZON, Quiet, TimeInterval
from notifier.core.times import format_span


def zone_of(reason: str, intervals: Mapping[str, TimeInterval]) -> str:
    """The zone of the interval behind ``reason`` (``nights``, ``outside workhours``)."""
    name = reason.removeprefix("outside ").split(", ")[0]
    interval = intervals.get(name.lower())
    return interval.location if interval is not None else "UTC"


def local_time(moment: float, zone: str, now: float, *, dated: bool = True) -> str:
    """``Fri 4 Dec 22:00 Europe/Berlin``; not ``dated``: ``07:00 Europe/Berlin`` on the day of
    ``now`` in that zone."""
    where = ZoneInfo(zone)
    local = datetime.fromtimestamp(moment, where)
    today = dated is False and local.date() == datetime.fromtimestamp(now, where).date()
    day = "" if today else f"{local:%a} {local.day} {local:%b} "
    return f"{day}{local:%H:%M} {zone}"


def quiet_line(quiet: Quiet, intervals: Mapping[str, TimeInterval], now: float) -> str | None:
    """``quiet hours: muted now (nights) until 07:00 Europe/Berlin`` or ``quiet hours: muted
    during nights (next: Fri 4 Dec 22:00 Europe/Berlin, for 9 h)``; None without quiet hours."""
    if not quiet:
        return None
    dropped = "; dropped while muted (on_mute: drop)" if quiet.on_mute == "drop" else ""
    reason = quiet.muted_by(now, intervals)
    if reason is not None:
        until = quiet.quiet_until(now, intervals)
        if until is None:
            return (
                f"quiet hours: muted now ({reason}) for more than {format_span(HORIZON)}{dropped}"
            )
        at = local_time(until, zone_of(reason, intervals), now, dated=False)
        return f"quiet hours: muted now ({reason}) until {at}{dropped}"
    during = []
    if quiet.mute_during:
        during.append(f"muted during {', '.join(quiet.mute_during)}")
    if quiet.active_during:
        during.append(f"active during {', '.join(quiet.active_during)} only")
    starts = quiet.next_change(now, intervals)
    reason = None if starts is None else quiet.muted_by(starts, intervals)
    if starts is None or reason is None:
        return f"quiet hours: {'; '.join(during)} (not within {format_span(HORIZON)}){dropped}"
    ends = quiet.quiet_until(starts, intervals)
    span = f"for {format_span(ends - starts)}" if ends else f"for more than {format_span(HORIZON)}"
    at = local_time(starts, zone_of(reason, intervals), now)
    return f"quiet hours: {'; '.join(during)} (next: {at}, {span}){dropped}"


def quiet_text(
    quiet: Quiet, intervals: Mapping[str, TimeInterval], now: float, *, indent: int
) -> str:
    """``quiet_line`` as `notifier check` prints it under a sink or a rule (indented, with its
    newline), or "" without quiet hours."""
    line = quiet_line(quiet, intervals, now)
    return f"  {'':<{indent}} {line}\n" if line else ""
