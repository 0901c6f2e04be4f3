"""One cycle for one project: list → settle what went missing → diff → route → commit.

``plan_cycle`` does all the reading and computing and changes nothing, so ``dry-run`` uses it as
is; ``commit`` writes the plan in one transaction. A cycle that fails anywhere before the commit
(any page, any parse error) raises and leaves the state as it was.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from notifier.diff import diff
from notifier.errors import SourceError
from notifier.models import Event
from notifier.rules import Route, Rule, route
from notifier.settings import FirstRun
from notifier.source import PostHogClient
from notifier.store import CycleWrite, SnapshotRow, Store

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
    statuses: Mapping[str, int] = field(default_factory=dict)  # listed reports by status

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
        return (
            f"project {self.project_id}: {self.reports} reports, {len(self.events)} events"
            f"{f' ({detail})' if detail else ''}, {added} deliveries queued, "
            f"{self.requests} requests, {seconds:.2f}s"
        )


def plan_cycle(
    project_id: int,
    *,
    source: PostHogClient,
    store: Store,
    rules: Sequence[Rule],
    first_run: FirstRun,
    now: float,
    deadline: float | None = None,
) -> CyclePlan:
    """Read PostHog and the snapshot and compute the cycle's outcome; writes nothing."""
    listing = source.list_reports(project_id, deadline)
    requests = listing.requests
    index = store.snapshot_index(project_id)  # id → (version, listed): no report parsed
    baselined = store.is_baselined(project_id)
    # A listed report whose version equals its snapshot's cannot make an event and needs no
    # write: only the others are loaded and compared, so a cycle costs what changed.
    unchanged = {
        rid for rid, report in listing.reports.items() if index.get(rid) == (report.version, True)
    }
    wanted = [
        rid
        for rid, (_, was_listed) in index.items()
        if rid not in unchanged and (rid in listing.reports or was_listed)
    ]
    snapshot = store.snapshot_rows(project_id, wanted)
    previous = {rid: row.report for rid, row in snapshot.items()}

    current = {
        rid: SnapshotRow(report, True)
        for rid, report in listing.reports.items()
        if rid not in unchanged
    }
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
        finally:
            requests += 1
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
    write = CycleWrite(
        project_id=project_id,
        upserts=upserts,
        deletes=sorted(gone),
        outbox=[(r.event, rt.sink, rt.rules) for r in routed for rt in r.routes],
        now=now,
    )
    statuses = Counter(report.status for report in listing.reports.values())
    statuses.update(
        row.report.status
        for rid, row in current.items()
        if row.listed and rid not in listing.reports and rid not in gone
    )
    return CyclePlan(
        project_id=project_id,
        reports=len(listing.reports),
        statuses=MappingProxyType(dict(statuses)),
        baseline=not baselined and first_run == "baseline",
        routed=routed,
        write=write,
        requests=requests,
        unresolved=tuple(unresolved),
    )


def commit(plan: CyclePlan, store: Store) -> int:
    """Write the plan in one transaction; returns how many outbox entries were added."""
    return store.commit_cycle(plan.write)


def run_cycle(
    project_id: int,
    *,
    source: PostHogClient,
    store: Store,
    rules: Sequence[Rule],
    first_run: FirstRun,
    deadline: float | None = None,
) -> tuple[CyclePlan, int]:
    """Plan and commit one cycle."""
    plan = plan_cycle(
        project_id,
        source=source,
        store=store,
        rules=rules,
        first_run=first_run,
        now=time.time(),
        deadline=deadline,
    )
    return plan, commit(plan, store)
