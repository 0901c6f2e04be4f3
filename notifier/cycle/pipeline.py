"""One cycle for one project: list → settle what went missing → diff → route → commit.

``plan_cycle`` does all the reading and computing and changes nothing, so ``dry-run`` uses it as
is; ``commit`` writes the plan in one transaction. A cycle that fails anywhere before the commit
(any page, any parse error) raises and leaves the state as it was. Its requests run in one
``CycleContext`` (``notifier.core.context``): the caller's (its deadline, the notifier's stop
event), or one without a deadline.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from notifier.config.settings import FirstRun
from notifier.core.context import CycleContext
from notifier.core.diff import diff
from notifier.core.errors import SourceError
from notifier.core.events import Event
from notifier.core.rules import ROUTING_BUDGET, RegexBudget, Route, Rule, route
from notifier.core.times import parse_instant
from notifier.core.words import counted
from notifier.cycle.echo import absorb_echoes
from notifier.cycle.fullsync import full_listing_due, late_and_missed
from notifier.cycle.settle import into, settle_events
from notifier.posthog.client import PostHogClient
from notifier.posthog.listing import Listing
from notifier.state.base import StateStore
from notifier.state.store import CycleWrite, Fence, ProjectState, SnapshotRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Routed:
    """An event and where it goes."""

    event: Event
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """Everything one cycle found and would write."""

    project_id: int
    reports: int
    baseline: bool  # the project's first cycle, recorded silently (first_run: baseline)
    routed: tuple[Routed, ...]
    write: CycleWrite
    requests: int
    unresolved: tuple[str, ...] = field(default=())  # missing ids whose retrieve failed
    incremental: bool = False  # listed most recently updated first, from the high-water mark
    #: Events of a full listing about reports that changed before the previous high-water mark
    #: (minus the overlap): earlier listings missed them. Should stay 0.
    missed: int = 0
    #: Changes only a full listing could find (``cycle.fullsync``: priority, actionability
    #: changed without ``updated_at``), announced up to ``poll.full_sync_every`` late.
    late: int = 0
    #: Events given recordings or judgments from their artefacts (``notifier.cycle.enrich``, after
    #: planning; ``plan_cycle`` itself never fetches them, so dry-run stays read-only).
    enriched: int = 0
    #: Events routed without some of their regex conditions (counted as no match): the cycle's
    #: regex searches took ``poll.routing_budget`` before they were all made. Should stay 0.
    without_regex: int = 0

    @property
    def events(self) -> tuple[Event, ...]:
        """The events, in order."""
        return tuple(r.event for r in self.routed)

    def summary(self, added: int, seconds: float) -> str:
        """The one log line a cycle ends with."""
        requests = counted(self.requests, "request")
        if self.baseline:
            return (
                f"project {self.project_id}: first cycle, recorded "
                f"{counted(self.reports, 'existing report')} silently (first_run: baseline); "
                f"{requests}, {seconds:.2f}s"
            )
        kinds = Counter(e.type.value for e in self.events)
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        listing = "incremental listing" if self.incremental else "full listing"
        enriched = f", {self.enriched} enriched from artefacts" if self.enriched else ""
        if self.without_regex:
            enriched += f", {self.without_regex} routed without their regex conditions"
        return (
            f"project {self.project_id}: {counted(self.reports, 'report')}, "
            f"{counted(len(self.events), 'event')}{f' ({detail})' if detail else ''}, "
            f"{counted(added, 'delivery', 'deliveries')} queued{enriched}, "
            f"{listing}, {requests}, {seconds:.2f}s"
        )


def _cut_off(high_water: str | None, overlap: float) -> datetime | None:
    moment = parse_instant(high_water)
    return None if moment is None else moment - timedelta(seconds=overlap)


def _list(
    cycle: CycleContext,
    source: PostHogClient,
    state: ProjectState,
    store: StateStore,
    *,
    now: float,
    full_sync_every: float,
    cut_off: datetime | None,
) -> tuple[Listing, Mapping[str, tuple[str, bool]] | None]:
    """An incremental listing (down to ``cut_off``) when one is due and possible, else a full
    one; and the whole snapshot index if it was read (None otherwise). An incremental listing
    looks up the snapshot versions of each page's ids only (its cost follows the changes, not
    the project's size); a full one reads the whole index once."""
    full_due = full_listing_due(
        state, now=now, every=full_sync_every, listing=source.listing_key(), cut_off=cut_off
    )
    project_id = cycle.project_id
    if not full_due and cut_off is not None and source.incremental(project_id):
        known = partial(store.snapshot_index, project_id)
        listing = source.list_changed(project_id, cut_off, known=known, cycle=cycle)
        if listing is not None:
            return listing, None
    index = store.snapshot_index(project_id)
    return source.list_reports(project_id, known=index, cycle=cycle), index


def high_water_of(listing: Listing, stored: datetime | None) -> datetime | None:
    """The next high-water mark: the newest ``updated_at`` listed, moved back by the listing's
    own duration (a report that changed on a page already read while later pages were fetched
    is older than what those pages show, and the next incremental listing must reach it);
    never below the stored one."""
    mark = listing.high_water
    if mark is not None:
        mark -= timedelta(seconds=listing.seconds)
    if stored is not None and (mark is None or stored > mark):
        return stored
    return mark


def _missing(
    listing: Listing,
    index: Mapping[str, tuple[str, bool]] | None,
    store: StateStore,
    project_id: int,
) -> list[str]:
    """Listed snapshot reports a listing that holds every report did not bring (none for an
    incremental listing that stopped at its cut-off: it says nothing about the others)."""
    if listing.partial:
        return []
    if index is None:  # an incremental listing that read to the end: it is complete
        index = store.snapshot_index(project_id)  # id → (version, listed): none parsed
    return [rid for rid, (_, listed) in index.items() if listed and rid not in listing.ids]


@dataclass(slots=True)
class Missing:
    """The reports as the cycle leaves them, and those it found gone or could not decide."""

    current: dict[str, SnapshotRow]
    gone: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)


def resolve_missing(
    source: PostHogClient,
    cycle: CycleContext,
    listing: Listing,
    snapshot: Mapping[str, SnapshotRow],
    *,
    baselined: bool,
) -> Missing:
    """The changed reports listed, and every loaded snapshot report the listing did not bring:
    fetched by id when a complete listing of a baselined project should have brought it, else
    kept as is (we cannot tell)."""
    settled = Missing({rid: SnapshotRow(report, True) for rid, report in listing.reports.items()})
    for rid, row in snapshot.items():
        if rid in settled.current:
            continue
        if row.listed and listing.complete and baselined:
            _look_up(source, cycle, rid, row, settled)
        else:
            settled.current[rid] = row  # we cannot tell: keep as is
    return settled


def _look_up(
    source: PostHogClient, cycle: CycleContext, rid: str, row: SnapshotRow, settled: Missing
) -> None:
    """Fetch a listed report the listing did not bring: gone, still there, or undecided (kept
    as is until the next cycle)."""
    project_id = cycle.project_id
    try:
        found = source.retrieve(project_id, rid, cycle=cycle)
    except SourceError as exc:
        log.warning(
            "project %s: report %s is missing from the listing and could not be fetched "
            "(%s); deciding next cycle",
            project_id,
            rid,
            exc,
            extra={"event": "retrieve_failed", "project_id": project_id, "report_id": rid},
        )
        settled.unresolved.append(rid)
        settled.current[rid] = row
        return
    if found is None:
        settled.gone.add(rid)
    else:
        # Skipped by paging (it is still listable): look for it again if it stays missing.
        # Hidden by the listing (e.g. suppressed): keep it, without fetching it every cycle.
        settled.current[rid] = SnapshotRow(found, source.lists(found))


def _events(
    project_id: int,
    snapshot: Mapping[str, SnapshotRow],
    settled: Missing,
    *,
    baselined: bool,
    first_run: FirstRun,
) -> list[Event]:
    """What changed since the snapshot; on a project's first cycle, nothing (``baseline``) or
    every report as new (``notify``)."""
    reports = {rid: row.report for rid, row in settled.current.items()}
    if baselined:
        previous = {rid: row.report for rid, row in snapshot.items()}
        return diff(project_id, previous, reports, settled.gone)
    if first_run == "notify":
        return diff(project_id, {}, reports)
    return []


def route_events(
    project_id: int, events: Sequence[Event], rules: Sequence[Rule], seconds: float
) -> tuple[tuple[Routed, ...], RegexBudget]:
    """Route the events with one regex budget of ``seconds``; say once if it ran out or if
    searches gave up."""
    budget = RegexBudget(seconds, time.monotonic)
    routed = tuple(Routed(e, tuple(route(e, rules, budget))) for e in events)
    slow = "; ".join(
        f"'{name}' {took:.2f}s" + (f" ({n} gave up)" if n else "")
        for name, took, n in budget.slowest()
    )
    if budget.exhausted:
        log.warning(
            "project %s: regex searches took the whole poll.routing_budget (%gs) in this cycle, "
            "so %d of %d events were routed without some of their regex conditions (counted as "
            "no match; every event is saved and the other rules still apply). Slowest rules: "
            "%s. Simplify their patterns (`notifier check` warns about the risky ones)",
            project_id,
            seconds,
            budget.events,
            len(events),
            slow,
            extra={"event": "routing_budget_exhausted", "project_id": project_id},
        )
    elif budget.gave_up:
        log.warning(
            "project %s: %d regex searches gave up after %gs each in this cycle (counted as no "
            "match). Slowest rules: %s. Simplify their patterns (`notifier check` warns about "
            "the risky ones)",
            project_id,
            sum(budget.gave_up.values()),
            budget.limit,
            slow,
            extra={"event": "regex_timeouts", "project_id": project_id},
        )
    return routed, budget


def _write(
    listing: Listing,
    snapshot: Mapping[str, SnapshotRow],
    settled: Missing,
    *,
    project_id: int,
    routed: Sequence[Routed],
    high_water: str | None,
    now: float,
) -> CycleWrite:
    """What the cycle writes: the rows that differ from the snapshot, the reports gone, the
    outbox entries, and the next high-water mark."""
    upserts = [
        row
        for rid, row in settled.current.items()
        if rid not in snapshot
        or snapshot[rid].listed != row.listed
        or snapshot[rid].report.version != row.report.version
    ]
    mark = high_water_of(listing, parse_instant(high_water))
    return CycleWrite(
        project_id=project_id,
        upserts=upserts,
        deletes=sorted(settled.gone),
        outbox=[(r.event, rt.sink, rt.rules) for r in routed for rt in r.routes],
        found=[r.event for r in routed],
        now=now,
        high_water=None if mark is None else mark.isoformat(),
        # a listing cut short is no full sync: removals still wait for one (skipped items do
        # not count, or a report PostHog can never serve would make every cycle a full one)
        full_sync=not listing.partial and not listing.cut_short,
    )


def plan_cycle(
    project_id: int,
    *,
    source: PostHogClient,
    store: StateStore,
    rules: Sequence[Rule],
    first_run: FirstRun,
    now: float,
    cycle: CycleContext | None = None,
    full_sync_every: float = 0.0,
    overlap: float = 60.0,
    routing_budget: float = ROUTING_BUDGET,
    settle: float | None = None,
) -> CyclePlan:
    """Read PostHog and the snapshot and compute the cycle's outcome; writes nothing.

    ``cycle`` carries the deadline, the stop event and the request count (None: a new cycle
    without a deadline). With ``full_sync_every`` > 0, a cycle lists only what changed since
    the project's high-water mark (minus ``overlap``) unless a full listing is due; 0 lists
    everything always. The cycle's regex searches together may take ``routing_budget``
    seconds; then its remaining regex conditions count as no match. ``settle``: how long a
    move back into research is held (``cycle.settle``; None: holds are left as they are).
    """
    cycle = source.start_cycle(project_id) if cycle is None else cycle
    started = cycle.requests.made
    state = store.project_state(project_id)
    cut_off = _cut_off(state.high_water, overlap)
    listing, index = _list(
        cycle, source, state, store, now=now, full_sync_every=full_sync_every, cut_off=cut_off
    )
    baselined = state.baselined
    # The listing parsed only reports whose version differs from the snapshot's: only those,
    # and the listed reports a full listing did not bring, are loaded and compared.
    missing = _missing(listing, index, store, project_id)
    snapshot = store.snapshot_rows(project_id, [*listing.reports, *missing])
    settled = resolve_missing(source, cycle, listing, snapshot, baselined=baselined)
    events = _events(project_id, snapshot, settled, baselined=baselined, first_run=first_run)
    events, holds = settle_events(  # re-research held back (poll.settle; None: not at all)
        store, project_id, events, settled.current, now=now, seconds=settle
    )
    events, echoes = absorb_echoes(store, project_id, events)  # moves made from Slack cards
    routed, budget = route_events(project_id, events, rules, routing_budget)
    write = _write(
        listing,
        snapshot,
        settled,
        project_id=project_id,
        routed=routed,
        high_water=state.high_water,
        now=now,
    )
    write = replace(into(write, holds), absorbed=echoes)
    write = replace(write, listing=source.listing_key())  # kept with a full listing only
    late, missed = late_and_missed(events, listing, cut_off, baselined=baselined)
    return CyclePlan(
        project_id=project_id,
        reports=listing.count
        if listing.partial and listing.count is not None
        else len(listing.ids),
        baseline=not baselined and first_run == "baseline",
        routed=routed,
        write=write,
        requests=cycle.requests.made - started,
        unresolved=tuple(settled.unresolved),
        incremental=listing.changed_first,
        missed=missed,
        late=late,
        without_regex=budget.events,
    )


def commit(plan: CyclePlan, store: StateStore, fence: Fence | None = None) -> int:
    """Write the plan in one transaction (under ``fence``, the project's polling lease, with
    replicas); returns how many outbox entries were added."""
    return store.commit_cycle(replace(plan.write, fence=fence) if fence else plan.write)
