"""`notifier explain`'s verdicts on one event: each rule's, with the first condition that failed
(``core.explain``, built on the code routing runs), then, for each sink the event goes to,
whether a silence or quiet hours would hold it now. That second answer is the delivery's own
``Holds.verdict`` (``delivery.holds``) on the entry the cycle would queue, with the silences
active now, so it cannot disagree with the drain; only the "until when" is worked out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from notifier.cli.preview import DEFAULT_EVENT, derive_event
from notifier.cli.quiet import local_time, zone_of
from notifier.cli.silence import utc_minute
from notifier.config.settings import Settings
from notifier.core.diff import compare
from notifier.core.events import Event, EventType
from notifier.core.explain import Explanation, explain
from notifier.core.intervals import HORIZON, Quiet
from notifier.core.report import Report
from notifier.core.rules import Route, route
from notifier.core.secrets import clip
from notifier.core.silences import Silence
from notifier.core.times import format_span
from notifier.render.text import describe_changes, one_line, title_of

if TYPE_CHECKING:
    from notifier.delivery.holds import Verdict
    from notifier.state.base import StateStore


def event_of(report: Report, kind: str | None, previous: Report | None, project_id: int) -> Event:
    """The event to explain: of ``kind`` with ``previous`` when given, else a plausible one."""
    if previous is None:
        return derive_event(report, EventType(kind or DEFAULT_EVENT), project_id)
    if kind is None:
        changed = previous.status != report.status
        kind = (EventType.STATUS_CHANGED if changed else EventType.UPDATED).value
    return Event.create(EventType(kind), project_id, report, previous, compare(previous, report))


def write_explanation(settings: Settings, event: Event, out: TextIO) -> Explanation:
    """The event, then one block per rule and where it would be sent."""
    found = explain(event, settings.rules)
    report_id = one_line(event.report.id)[:100]
    out.write(
        f"{event.type.value} event, project {event.project_id}, report {report_id}: "
        f"{clip(title_of(event.report), 200)}\n"
    )
    if event.changes:
        out.write(f"  changes: {clip(one_line(describe_changes(event.changes)), 300)}\n")
    out.write("\n")
    if not found.verdicts:
        out.write("no rules are configured\n")
    for verdict in found.verdicts:
        if verdict.hidden_by is not None:
            mark, head = "·", f"not seen: rule {verdict.hidden_by!r} stopped the event"
            what = "would match" if verdict.matched else f"would not match: {verdict.failed}"
            out.write(f"{mark} {verdict.rule}\n    {head} (on its own it {line(what)})\n")
        elif verdict.matched:
            out.write(f"✓ {verdict.rule}\n    matched → {', '.join(verdict.sinks)}\n")
            if verdict.stop:
                out.write("    stop: the rules after this one do not see the event\n")
        else:
            out.write(f"✗ {verdict.rule}\n    {line(verdict.failed or '')}\n")
    where = ", ".join(found.sinks) if found.sinks else ""
    out.write(f"\n→ would be sent to: {where}\n" if where else "\n→ would be sent nowhere\n")
    return found


def line(text: str) -> str:
    """Text built from a report's values, on one printable line, cut to a readable length."""
    return clip(one_line(text), 400)


def write_holds(
    settings: Settings,
    event: Event,
    store: StateStore,
    now: float,
    out: TextIO,
    *,
    unread: str | None = None,
) -> None:
    """For each sink the event goes to, what would hold it if it were queued ``now``: the
    active silences (the state's and the config's standing ones) and quiet hours. ``unread``:
    why the state's silences were not consulted (``store`` is then an empty one)."""
    from notifier.delivery.holds import holds_of  # noqa: PLC0415
    from notifier.state.records import OutboxEntry  # noqa: PLC0415

    routes = route(event, settings.rules)
    if not routes:
        return
    holds = holds_of(settings, store)
    active = holds.active(now)
    out.write("\nsilences and quiet hours, now:\n")
    for where in routes:
        entry = OutboxEntry(0, where.sink, event, where.rules, "pending", 0, now, now, None)
        verdict = holds.verdict(entry, active, now)
        if verdict is None:
            out.write(f"  {where.sink}: nothing holds it: it would go out at once\n")
        else:
            out.write(f"  {where.sink}: {_held(settings, verdict, where, active, now)}\n")
    if unread is not None:
        out.write(f"  (the config's silences only: the state's were not consulted — {unread})\n")


def _held(
    settings: Settings, verdict: Verdict, where: Route, active: Sequence[Silence], now: float
) -> str:
    """``held by silence sil_… (until …, by alice: 'deploy')``, ``held: quiet hours (nights)
    until 07:00 Europe/Berlin`` or ``would be dropped: …``."""
    from notifier.delivery.holds import QUIET_PREFIX  # noqa: PLC0415
    from notifier.state.holds import silence_of  # noqa: PLC0415

    silence_id = silence_of(verdict.held_by)
    if silence_id is not None:
        silence = next((s for s in active if s.id == silence_id), None)
        said = clip(_silence(silence), 240) if silence is not None else f"silence {silence_id}"
        if silence is not None and silence.ends_at is None:
            return f"would be dropped: {said} (a standing silence drops what it holds)"
        if verdict.drop:
            return f"would be dropped: {said}, made with --drop"
        return f"held by {said}; one digest when it ends"
    said = _quiet(settings, where, now, verdict.held_by.removeprefix(QUIET_PREFIX))
    if verdict.drop:
        return f"would be dropped: {said}; on_mute: drop"
    return f"held: {said}; one digest when they end"


def _silence(silence: Silence) -> str:
    """``silence sil_… (until 2026-… UTC, by alice: 'deploy')``; standing: ``(in the config:
    'comment')``."""
    if silence.ends_at is None:
        return f"silence {silence.id} (in the config: {silence.comment!r})"
    until = utc_minute(silence.ends_at)
    return f"silence {silence.id} (until {until}, by {silence.author}: {silence.comment!r})"


def _quiet(settings: Settings, where: Route, now: float, reason: str) -> str:
    """``quiet hours (nights) until 07:00 Europe/Berlin``: when the quiet hours that mute the
    sink end — or, when its routing rules' do (``delivery.quiet``: the sink first, then all the
    rules), when the first of them wakes — in the zone of the interval that mutes it."""
    intervals = settings.intervals()
    sink = settings.sinks.get(where.sink)
    quiet = sink.quiet() if sink is not None else Quiet()
    quiets = (
        [quiet]
        if quiet.muted_by(now, intervals) is not None
        else [rule.quiet() for rule in settings.rules if rule.name in where.rules]
    )
    reasons, ends = [reason], []
    for each in quiets:
        end, why = each.quiet_until(now, intervals), each.muted_by(now, intervals)
        if why is not None:
            reasons += [why] if why not in reasons else []
            ends += [(end, zone_of(why, intervals))] if end is not None else []
    said = f"quiet hours ({clip(one_line(', '.join(reasons)), 120)})"
    if not ends:
        return f"{said} for more than {format_span(HORIZON)}"
    end, zone = min(ends)
    return f"{said} until {local_time(end, zone, now, dated=False)}"
