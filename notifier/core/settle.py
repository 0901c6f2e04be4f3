"""Settling re-research: a report PostHog sends back into research is held, not announced.

PostHog re-researches reports it already finished (``ready → candidate → in_progress → ready``,
often within minutes), and people reopen resolved ones (``resolved → potential``). Only such
moves *back* are held: from a status people were told about (``ANNOUNCED``) into research
(``RESEARCH``). A held report is decided in each of its project's cycles:

- back in the status it was announced in: nothing is sent, unless something a person reads
  (``READ_FIELDS``) changed meanwhile — then one ``updated`` event (from the announced copy);
- still in research once ``settle`` seconds have passed since the move: the held
  ``status_changed`` is sent then, from the announced status to the one it is in by then;
- anywhere else (another announced status, ``suppressed``, ``failed``…): one ``status_changed``
  from the announced status, at once;
- removed: its ``removed`` event, at once.

Moves within research while held (``candidate → in_progress``) and updates there are folded
into that one decision. Every other event — forward moves included — passes untouched. Pure:
the caller loads the holds from the state and commits ``Settling.hold``/``release`` with the
cycle. Event ids follow from the announced and current versions, so a cycle recomputed after a
crash gives the same events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from notifier.core.diff import compare
from notifier.core.events import Event, EventType
from notifier.core.report import Report

#: Statuses people have been told about: a move from one of them back into research is held.
ANNOUNCED: Final = frozenset({"ready", "pending_input", "resolved"})
#: The research statuses.
RESEARCH: Final = frozenset({"potential", "candidate", "in_progress"})
#: What a person reads on a card: a flap that changed one of them still gets one ``updated``.
READ_FIELDS: Final = ("title", "summary", "priority", "actionability")
#: ``poll.settle``'s default: 15 minutes.
SETTLE: Final = 900.0


@dataclass(frozen=True, slots=True)
class Held:
    """A report held since ``since`` (Unix seconds) after moving back from ``announced`` (the
    copy people last heard about) into research; ``latest`` is its copy as last seen."""

    project_id: int
    report_id: str
    since: float
    announced: Report
    latest: Report

    def until(self, settle: float) -> float:
        """When it is announced if it is still in research."""
        return self.since + settle

    def due(self, now: float, settle: float) -> bool:
        """Whether its time is up: ``settle`` passed (or settling is off, or the wall clock
        stepped back by more than ``settle``: how long it was held cannot be told)."""
        return settle <= 0 or now - self.since >= settle or self.since - now > settle


@dataclass(frozen=True, slots=True)
class Settling:
    """A cycle's events once settled, and what it writes about holds."""

    events: tuple[Event, ...]
    hold: tuple[Held, ...] = ()  # new holds, or holds whose latest copy changed
    release: tuple[str, ...] = ()  # report ids whose hold ends


def moves_back(event: Event) -> bool:
    """A status change from an announced status into research (held when settling is on)."""
    if event.type is not EventType.STATUS_CHANGED or event.previous is None:
        return False
    return event.previous.status in ANNOUNCED and event.report.status in RESEARCH


def ending(held: Held, report: Report) -> Event | None:
    """The one event that ends a hold with the report as ``report``: ``status_changed`` from
    the announced copy when the status differs; ``updated`` when it is back where it was and
    something a person reads changed; else None (the flap leaves nothing to say)."""
    changes = compare(held.announced, report)
    if "status" in changes:
        kind = EventType.STATUS_CHANGED
    elif any(name in changes for name in READ_FIELDS):
        kind = EventType.UPDATED
    else:
        return None
    return Event.create(kind, held.project_id, report, held.announced, changes)


def _order(event: Event) -> tuple[str, str]:
    return (event.report.created_at or "", event.report.id)  # as ``diff`` orders them


@dataclass(slots=True)
class _Decisions:
    events: list[Event]
    hold: dict[str, Held]
    release: list[str]

    def end(self, held: Held, report: Report) -> None:
        self.release.append(held.report_id)
        event = ending(held, report)
        if event is not None:
            self.events.append(event)


def settle(
    project_id: int,
    events: Sequence[Event],
    held: Mapping[str, Held],
    current: Mapping[str, Report],
    *,
    now: float,
    settle: float,
) -> Settling:
    """Settle one cycle's ``events`` against the project's holds (report id → ``Held``).
    ``current``: the reports as this cycle leaves them (at least the changed ones), so a hold
    keeps its newest copy; ``settle`` seconds (0: nothing is held, holds end now)."""
    out = _Decisions([], {}, [])
    touched: set[str] = set()
    for event in events:
        rid = event.report.id
        hold = held.get(rid)
        if hold is None:
            if settle > 0 and moves_back(event):
                assert event.previous is not None  # moves_back says so
                out.hold[rid] = Held(project_id, rid, now, event.previous, event.report)
            else:
                out.events.append(event)
            continue
        touched.add(rid)
        if event.type in (EventType.REMOVED, EventType.NEW):
            out.release.append(rid)
            out.events.append(event)
        elif event.report.status in RESEARCH and not hold.due(now, settle):
            out.hold[rid] = replace(hold, latest=event.report)  # folded into the hold
        else:
            out.end(hold, event.report)
    for rid, hold in held.items():
        if rid in touched:
            continue
        latest = current.get(rid, hold.latest)
        if hold.due(now, settle):
            out.end(hold, latest)
        elif latest.version != hold.latest.version:
            out.hold[rid] = replace(hold, latest=latest)
    out.events.sort(key=_order)
    return Settling(tuple(out.events), tuple(out.hold.values()), tuple(out.release))
