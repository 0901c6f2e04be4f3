"""One cycle for one project: list → settle what went missing → diff → route → commit.

``plan_cycle`` does all the reading and computing and changes nothing, so ``dry-run`` uses it as
is; ``commit`` writes the plan in one transaction. A cycle that fails anywhere before the commit
(any page, any parse error) raises and leaves the state as it was.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from notifier.config.settings import FirstRun
from notifier.core.diff import diff
from notifier.core.errors import SourceError
from notifier.core.events import Event, EventType
from notifier.core.rules import Route, Rule, route
from notifier.core.times import parse_instant
from notifier.posthog.client import PostHogClient
from notifier.posthog.listing import Listing
from notifier.state.store import CycleWrite, ProjectState, SnapshotRow, Store

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
    #: Events given recordings or judgments from their artefacts (``notifier.cycle.enrich``, after
    #: planning; ``plan_cycle`` itself never fetches them, so dry-run stays read-only).
    enriched: int = 0

    @property
    def events(self) -> tuple[Event, ...]:
        """The events, in order."""
        return tuple(r.event for r in self.routed)

    def summary(self, added: int, seconds: float) -> str:
        """The one log line a cycle ends with."""
        if self.baseline:
            return (
                f"project {self.project_id}: first cycle, recorded {self.reports} existing "
                f"reports silently (first_run: baseline); {self.requests} requests, {seconds:.2f}s"
            )
        kinds = Counter(e.type.value for e in self.events)
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        listing = "incremental listing" if self.incremental else "full listing"
        enriched = f", {self.enriched} enriched from artefacts" if self.enriched else ""
        return (
            f"project {self.project_id}: {self.reports} reports, {len(self.events)} events"
            f"{f' ({detail})' if detail else ''}, {added} deliveries queued{enriched}, "
            f"{listing}, {self.requests} requests, {seconds:.2f}s"
        )


def _cut_off(high_water: str | None, overlap: float) -> datetime | None:
    moment = parse_instant(high_water)
    return None if moment is None else moment - timedelta(seconds=overlap)


def _list(
    project_id: int,
    source: PostHogClient,
    state: ProjectState,
    store: Store,
    *,
    now: float,
    deadline: float | None,
    full_sync_every: float,
    cut_off: datetime | None,
) -> tuple[Listing, Mapping[str, tuple[str, bool]] | None]:
    """An incremental listing (down to ``cut_off``) when one is due and possible, else a full
    one; and the whole snapshot index if it was read (None otherwise). An incremental listing
    looks up the snapshot versions of each page's ids only (its cost follows the changes, not
    the project's size); a full one reads the whole index once."""
    full_due = (
        not state.baselined
        or state.full_sync_at is None
        or full_sync_every <= 0
        or now - state.full_sync_at >= full_sync_every
    )
    if not full_due and cut_off is not None and source.incremental(project_id):
        known = partial(store.snapshot_index, project_id)
        listing = source.list_changed(project_id, cut_off, deadline, known=known)
        if listing is not None:
            return listing, None
    index = store.snapshot_index(project_id)
    return source.list_reports(project_id, deadline, known=index), index


def _high_water(listing: Listing, stored: datetime | None) -> datetime | None:
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
    listing: Listing, index: Mapping[str, tuple[str, bool]] | None, store: Store, project_id: int
) -> list[str]:
    """Listed snapshot reports a listing that holds every report did not bring (none for an
    incremental listing that stopped at its cut-off: it says nothing about the others)."""
    if listing.partial:
        return []
    if index is None:  # an incremental listing that read to the end: it is complete
        index = store.snapshot_index(project_id)  # id → (version, listed): none parsed
    return [rid for rid, (_, listed) in index.items() if listed and rid not in listing.ids]


def plan_cycle(
    project_id: int,
    *,
    source: PostHogClient,
    store: Store,
    rules: Sequence[Rule],
    first_run: FirstRun,
    now: float,
    deadline: float | None = None,
    full_sync_every: float = 0.0,
    overlap: float = 60.0,
) -> CyclePlan:
    """Read PostHog and the snapshot and compute the cycle's outcome; writes nothing.

    With ``full_sync_every`` > 0, a cycle lists only what changed since the project's
    high-water mark (minus ``overlap``) unless a full listing is due; 0 lists everything always.
    """
    started = source.requests_here()
    state = store.project_state(project_id)
    cut_off = _cut_off(state.high_water, overlap)
    listing, index = _list(
        project_id,
        source,
        state,
        store,
        now=now,
        deadline=deadline,
        full_sync_every=full_sync_every,
        cut_off=cut_off,
    )
    baselined = state.baselined
    # The listing parsed only reports whose version differs from the snapshot's: only those,
    # and the listed reports a full listing did not bring, are loaded and compared.
    changed = listing.reports
    missing = _missing(listing, index, store, project_id)
    snapshot = store.snapshot_rows(project_id, [*changed, *missing])
    previous = {rid: row.report for rid, row in snapshot.items()}
    current = {rid: SnapshotRow(report, True) for rid, report in changed.items()}
    gone: set[str] = set()
    unresolved: list[str] = []
    for rid, row in snapshot.items():
        if rid in current:
            continue
        if not (row.listed and listing.complete and baselined):
            current[rid] = row  # we cannot tell: keep as is
            continue
        try:
            found = source.retrieve(project_id, rid, deadline)
        except SourceError as exc:
            log.warning(
                "project %s: report %s is missing from the listing and could not be fetched "
                "(%s); deciding next cycle",
                project_id,
                rid,
                exc,
                extra={"event": "retrieve_failed", "project_id": project_id, "report_id": rid},
            )
            unresolved.append(rid)
            current[rid] = row
            continue
        if found is None:
            gone.add(rid)
        else:
            # Skipped by paging (it is still listable): look for it again if it stays missing.
            # Hidden by the listing (e.g. suppressed): keep it, without fetching it every cycle.
            current[rid] = SnapshotRow(found, source.lists(found))

    reports = {rid: row.report for rid, row in current.items()}
    if baselined:
        events = diff(project_id, previous, reports, gone)
    elif first_run == "notify":
        events = diff(project_id, {}, reports)
    else:
        events = []
    routed = tuple(Routed(e, tuple(route(e, rules))) for e in events)

    upserts = [
        row
        for rid, row in current.items()
        if rid not in snapshot
        or snapshot[rid].listed != row.listed
        or snapshot[rid].report.version != row.report.version
    ]
    high_water = _high_water(listing, parse_instant(state.high_water))
    write = CycleWrite(
        project_id=project_id,
        upserts=upserts,
        deletes=sorted(gone),
        outbox=[(r.event, rt.sink, rt.rules) for r in routed for rt in r.routes],
        now=now,
        high_water=None if high_water is None else high_water.isoformat(),
        # a listing cut short is no full sync: removals still wait for one (skipped items do
        # not count, or a report PostHog can never serve would make every cycle a full one)
        full_sync=not listing.partial and not listing.cut_short,
    )
    missed = 0
    if baselined and not listing.partial and cut_off is not None:
        missed = sum(1 for e in events if e.report.id in listing.ids and _missed(e, cut_off))
    return CyclePlan(
        project_id=project_id,
        reports=listing.count
        if listing.partial and listing.count is not None
        else len(listing.ids),
        baseline=not baselined and first_run == "baseline",
        routed=routed,
        write=write,
        requests=source.requests_here() - started,
        unresolved=tuple(unresolved),
        incremental=listing.changed_first,
        missed=missed,
    )


#: Counted by PostHog from other tables: they change without ``updated_at`` moving, so only a
#: full listing can see them, by design (not a miss).
DERIVED_FIELDS: Final = frozenset({"artefact_count"})


def _missed(event: Event, cut_off: datetime) -> bool:
    """Whether an earlier (incremental) listing should have seen this listed report's change:
    it changed before ``cut_off``, and not only in fields that change without ``updated_at``."""
    if event.type is EventType.REMOVED or set(event.changes) <= DERIVED_FIELDS:
        return False
    moment = parse_instant(event.report.updated_at)
    return moment is not None and moment < cut_off


def commit(plan: CyclePlan, store: Store) -> int:
    """Write the plan in one transaction; returns how many outbox entries were added."""
    return store.commit_cycle(plan.write)
