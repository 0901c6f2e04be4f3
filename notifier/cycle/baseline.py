"""A project's first cycle under ``first_run: baseline``, recorded page by page.

``plan_cycle`` holds a whole listing in memory before one commit: at 100,000 reports, over
300 MB. Here each listing page is committed as it is read (``CycleWrite.baseline_page``, under
the poll lease's fence like any cycle commit), so memory follows the page size, not the
project's size. The project is marked baselined — with its high-water mark and full-listing
time — only by the last commit, once the whole listing is recorded (``CyclePlan.write``,
committed by the caller like any plan).

An attempt that fails (a page PostHog refuses, a crash, a lost lease) leaves the pages it
recorded and the project not baselined; the next cycle lists everything again and finishes:
pages already recorded are compared by version (unchanged reports are not even parsed),
reports recorded by an earlier attempt and not listed now are fetched by id (forgotten when
gone, kept otherwise), and every report is recorded silently as it is now — except a report
created after the first attempt began (the start is kept in the state,
``ProjectState.baseline_started``): it appeared while the notifier was running, so it is
announced, like any new report. Such reports are held until the last
commit, which writes their snapshot rows and their events together: announced exactly once,
however many attempts it takes. ``created_at`` (PostHog's clock) is compared with the start
(this host's clock), so a clock skew moves the line by as much.

``first_run: notify`` keeps ``plan_cycle``'s path: it announces every report, and needs the
whole listing for that.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from notifier.core.context import CycleContext
from notifier.core.diff import diff
from notifier.core.report import Report
from notifier.core.rules import ROUTING_BUDGET, Rule
from notifier.core.times import parse_instant
from notifier.cycle.pipeline import (
    CyclePlan,
    Missing,
    high_water_of,
    resolve_missing,
    route_events,
)
from notifier.posthog.client import PostHogClient
from notifier.posthog.listing import Listing
from notifier.state.base import StateStore
from notifier.state.store import CycleWrite, Fence, SnapshotRow

log = logging.getLogger(__name__)


class _Recorder:
    """Commits each page of a baseline as it is read; holds back the reports to announce."""

    def __init__(
        self,
        project_id: int,
        store: StateStore,
        *,
        earlier: set[str],
        start: datetime,
        now: float,
        fence: Fence | None,
    ) -> None:
        self._project_id = project_id
        self._store = store
        self._earlier = earlier  # recorded by an earlier attempt
        self._start = start
        self._now = now
        self._fence = fence
        self.announce: dict[str, Report] = {}  # created after the start, not recorded yet

    def page(self, reports: Sequence[Report]) -> None:
        """Record one page's reports (those parsed: new or changed since an earlier attempt)."""
        rows: list[SnapshotRow] = []
        for report in reports:
            self.announce.pop(report.id, None)  # a repeat: its latest copy and place win
            if report.id not in self._earlier and self._created_since(report):
                self.announce[report.id] = report
            else:
                rows.append(SnapshotRow(report, True))
        if rows:
            self._store.commit_cycle(self._write(rows))

    def _created_since(self, report: Report) -> bool:
        created = parse_instant(report.created_at)
        return created is not None and created >= self._start

    def _write(self, rows: Sequence[SnapshotRow]) -> CycleWrite:
        return CycleWrite(
            self._project_id,
            rows,
            [],
            [],
            now=self._now,
            fence=self._fence,
            baseline_page=True,
        )


def baseline_cycle(
    project_id: int,
    *,
    source: PostHogClient,
    store: StateStore,
    rules: Sequence[Rule],
    now: float,
    cycle: CycleContext | None = None,
    fence: Fence | None = None,
    routing_budget: float = ROUTING_BUDGET,
) -> CyclePlan | None:
    """Record the project's baseline page by page and return the plan of its last commit
    (mark the project baselined, forget what is gone, announce the reports created since the
    start); None when the project is already baselined (a regular cycle is due).

    Writes as it goes (unlike ``plan_cycle``): the start of the baseline (first attempt), then
    each page, each under ``fence``. Raises ``SourceError`` / ``StateError`` (``LeaseLost``)
    like a cycle; what was committed stays, and the next call carries on.
    """
    state = store.project_state(project_id)
    if state.baselined:
        return None
    cycle = source.start_cycle(project_id) if cycle is None else cycle
    began = cycle.requests.made
    started = state.baseline_started
    if started is None:  # the first attempt: the start is kept, whatever happens next
        store.commit_cycle(
            CycleWrite(project_id, [], [], [], now=now, fence=fence, baseline_page=True)
        )
        started = now
    earlier = store.snapshot_index(project_id)  # what earlier attempts recorded
    recorder = _Recorder(
        project_id,
        store,
        earlier=set(earlier),
        start=datetime.fromtimestamp(started, UTC),
        now=now,
        fence=fence,
    )
    listing = source.list_reports(project_id, known=earlier, cycle=cycle, on_page=recorder.page)
    kept, settled = _not_listed(source, cycle, store, listing, earlier)
    events = diff(project_id, {}, recorder.announce)
    routed, budget = route_events(project_id, events, rules, routing_budget)
    mark = high_water_of(listing, None)
    if events:
        log.info(
            "project %s: %d reports created since the notifier first started (%s) are "
            "announced; the %d that existed before are recorded silently",
            project_id,
            len(events),
            datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
            len(listing.ids) - len(events),
            extra={"event": "baseline_new_reports", "project_id": project_id},
        )
    write = CycleWrite(
        project_id=project_id,
        upserts=[*kept, *(SnapshotRow(report, True) for report in recorder.announce.values())],
        deletes=sorted(settled.gone),
        outbox=[(r.event, rt.sink, rt.rules) for r in routed for rt in r.routes],
        now=now,
        high_water=None if mark is None else mark.isoformat(),
        full_sync=not listing.partial and not listing.cut_short,
        listing=source.listing_key(),  # what it asked for (cycle.fullsync)
    )
    return CyclePlan(
        project_id=project_id,
        reports=len(listing.ids) - len(events),
        baseline=True,
        routed=routed,
        write=write,
        requests=cycle.requests.made - began,
        unresolved=tuple(settled.unresolved),
        without_regex=budget.events,
    )


def _not_listed(
    source: PostHogClient,
    cycle: CycleContext,
    store: StateStore,
    listing: Listing,
    earlier: Mapping[str, tuple[str, bool]],
) -> tuple[list[SnapshotRow], Missing]:
    """Reports an earlier attempt recorded that this listing did not bring: fetched by id, as a
    regular full cycle does (``pipeline.resolve_missing``), so that those gone are forgotten and
    those paging skipped or the listing now hides are kept; the rows to rewrite, and the
    outcome."""
    missing = store.snapshot_rows(
        cycle.project_id, [rid for rid in earlier if rid not in listing.ids]
    )
    settled = resolve_missing(source, cycle, listing, missing, baselined=True)
    kept = [
        row
        for rid, row in settled.current.items()
        if row.listed != missing[rid].listed or row.report.version != missing[rid].report.version
    ]
    return kept, settled
