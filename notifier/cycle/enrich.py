"""Enrichment from artefacts, opt-in per sink (``enrich: [artefacts]``).

After a cycle is planned and routed, and before its outbox entries are written, each report
about to be notified to a sink that asks for it is read once (not once per sink): up to three
session recordings from its ``session_replay`` signals (PostHog V6, ``posthog.signals``; on an
older server, which answers 404 there, from its ``video_segment`` artefacts, and the 404 is
remembered per project), the explanations of the latest priority and actionability
judgments and the latest suggested reviewers from its artefacts (``posthog.parse``; the Slack
sinks @-mention the reviewers they resolve, ``sinks.slack.people``). The enrichment is stored
in the outbox with the event, so delivery retries and restarts never fetch again, and only the
entries of sinks that ask for it carry it.

What it may cost, per cycle and project:

- never a request for ``removed`` events, events routed to no enriching sink, or reports with
  nothing to show (no artefacts, and no signals or none from session replay); a quiet cycle
  makes none; the signals (unpaginated, costly for PostHog) at most once per report;
- none for a sink that will send this cycle's events as one digest: more events routed to it
  than its ``digest_after`` (Slack sinks; webhook sinks with ``batch``), since a digest shows no
  recordings;
- at most ``MAX_PER_CYCLE`` reports (the first ones in the cycle's order), each one signals
  request and at most ``source.ARTEFACT_PAGES`` artefacts requests (one when the latest
  judgments and suggested reviewers are on the first page, as they are), plus the client's
  bounded retries, all in turn in the key's request budget;
- at most ``WINDOW`` seconds, and never past the cycle's deadline.

Failing to enrich never holds an event back: whatever goes wrong (refused scope, timeout, an
unreadable body, the budget or the time used up), the events go out without it, and the cycle
logs one WARNING with the reason and the fix.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from notifier.config.settings import SinkSettings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.events import NO_ENRICHMENT, Enrichment, Event, EventType, Recording
from notifier.core.report import Report
from notifier.cycle.pipeline import CyclePlan, Routed
from notifier.posthog.client import PostHogClient
from notifier.posthog.parse import judgments_found, parse_enrichment
from notifier.posthog.signals import SESSION_REPLAY, read_recordings

log = logging.getLogger(__name__)

#: Reports whose artefacts one cycle of one project fetches at most. Above the default
#: ``digest_after`` (5): a flood is digested anyway, and this bounds a sink that never digests.
MAX_PER_CYCLE: Final = 10
#: Seconds one cycle may spend enriching (within its deadline): notifications wait this long
#: at most for their recordings.
WINDOW: Final = 10.0
#: Failures after which the other reports are not tried this cycle (they would fail alike).
_SYSTEMIC: Final = frozenset(
    {
        SourceErrorKind.AUTH,
        SourceErrorKind.NOT_FOUND,
        SourceErrorKind.BAD_REQUEST,
        SourceErrorKind.THROTTLED,
    }
)


def _showing(plan: CyclePlan, sinks: Mapping[str, SinkSettings]) -> set[str]:
    """The sinks that ask for artefacts and will send this cycle's events one by one."""
    routed = Counter(rt.sink for r in plan.routed for rt in r.routes)
    showing = set()
    for name in routed:
        sink = sinks.get(name)
        if sink is None or not sink.wants_artefacts():
            continue
        threshold = sink.digest_threshold()  # above it: one digest, which has no recordings
        if threshold is None or routed[name] <= threshold:
            showing.add(name)
    return showing


@dataclass
class _Tally:
    """How enriching one cycle went."""

    wanted: int = 0
    enriched: int = 0  # events that got recordings or explanations
    failed: int = 0  # events that go out without, because fetching failed or was not tried
    capped: int = 0  # events over MAX_PER_CYCLE, not tried
    error: str | None = None  # the first failure
    stopped: bool = False  # no further report is tried this cycle

    def stop(self, reason: str) -> None:
        """A failure the other reports would share, or the time is up: try no more."""
        self.error = self.error or reason
        self.stopped = True


def enrich_plan(
    plan: CyclePlan,
    source: PostHogClient,
    sinks: Mapping[str, SinkSettings],
    *,
    cycle: CycleContext,
    window: float = WINDOW,
    cap: int = MAX_PER_CYCLE,
) -> CyclePlan:
    """The plan with each enrichment attached: to the routed events, and to the outbox entries
    of the sinks that ask for it (those of other sinks stay as they were). ``cycle`` is the
    plan's (its requests count in the plan's); enriching ends ``window`` seconds from now at
    the latest, and never past the cycle's deadline.

    Never raises: an event whose artefacts cannot be read goes without, and so does every
    event of the cycle should enriching itself break (logged with its traceback).
    """
    try:
        return _enrich(plan, source, sinks, cycle=cycle, window=window, cap=cap)
    except Exception:  # a bug in enriching must not hold the notifications back
        log.exception(
            "project %s: enriching the events failed; they go out without artefacts",
            plan.project_id,
            extra={"event": "enrich_failed", "project_id": plan.project_id},
        )
        return plan


def _enrich(
    plan: CyclePlan,
    source: PostHogClient,
    sinks: Mapping[str, SinkSettings],
    *,
    cycle: CycleContext,
    window: float,
    cap: int,
) -> CyclePlan:
    showing = _showing(plan, sinks)
    if not showing:
        return plan
    started = cycle.requests.made
    tally = _Tally()
    found = _fetch(plan, source, showing, cycle.within(window), tally, window=window, cap=cap)
    requests = cycle.requests.made - started
    _log(plan.project_id, tally, cap)
    if not any(e != NO_ENRICHMENT for e in found.values()):
        return replace(plan, requests=plan.requests + requests)
    return _attach(plan, found, sinks, requests=plan.requests + requests, enriched=tally.enriched)


def _fetch(
    plan: CyclePlan,
    source: PostHogClient,
    showing: set[str],
    cycle: CycleContext,
    tally: _Tally,
    *,
    window: float,
    cap: int,
) -> dict[str, Enrichment]:
    """Each report's enrichment (report id → enrichment), fetched once per report, for the
    events routed to a sink in ``showing``; within the cycle's (shortened) deadline."""
    found: dict[str, Enrichment] = {}
    seen: set[str] = set()  # report ids considered: one fetch per report
    for routed in plan.routed:
        event = routed.event
        if event.type is EventType.REMOVED or not any(rt.sink in showing for rt in routed.routes):
            continue
        if event.report.id in seen or not _worth(source, plan.project_id, event.report):
            continue  # fetched once per report; one with nothing to show costs nothing
        seen.add(event.report.id)
        tally.wanted += 1
        if tally.wanted > cap:
            tally.capped += 1
            continue
        if not tally.stopped and _out(cycle):
            tally.stop(_out_of_time(window))
        if tally.stopped:
            tally.failed += 1  # the others would fail alike, or there is no time left
            continue
        enrichment = _fetch_one(source, cycle, event.report, tally, window)
        if enrichment is not None:
            found[event.report.id] = enrichment
            tally.enriched += enrichment != NO_ENRICHMENT
    return found


def _out(cycle: CycleContext) -> bool:
    """Whether the (enriching) cycle's time is up."""
    left = cycle.time_left()
    return left is not None and left <= 0


def _fetch_one(
    source: PostHogClient, cycle: CycleContext, report: Report, tally: _Tally, window: float
) -> Enrichment | None:
    """One report's enrichment; None when it could not be read (told to ``tally``, which
    stops trying when the others would fail alike or the time is up)."""
    try:
        return _read(source, cycle, report)
    except SourceError as exc:
        tally.failed += 1
        reason = _reason(exc, cycle.project_id)
        if _out(cycle):
            tally.stop(f"{reason}; {_out_of_time(window)}")
        elif exc.kind in _SYSTEMIC:
            tally.stop(reason)
        else:
            tally.error = tally.error or reason
        return None


def _replays(report: Report) -> bool:
    """Whether the report may have session-replay signals: it has signals, and its
    ``source_products`` (V5+), when PostHog lists any, include ``session_replay``."""
    products = report.raw.get("source_products")
    if isinstance(products, tuple | list) and products and SESSION_REPLAY not in products:
        return False
    return report.signal_count != 0


def _worth(source: PostHogClient, project_id: int, report: Report) -> bool:
    """Whether the report may have anything to show: artefacts, or recordings in its signals."""
    if report.artefact_count != 0:
        return True
    return source.asks_signals(project_id) and _replays(report)


def _read(source: PostHogClient, cycle: CycleContext, report: Report) -> Enrichment:
    """The recordings from the report's signals (one request, V6), else from its
    ``video_segment`` artefacts (before V6), and the judgments from its artefacts (pages read
    until the latest of each is found, which is on the first page: artefacts come newest first;
    with the recordings from the artefacts, until three recordings are found too)."""
    project_id = cycle.project_id
    recordings: tuple[Recording, ...] | None = None  # None: from the artefacts
    unsure = False  # a bare 404 for the signals: an older server, or a report just deleted
    if source.asks_signals(project_id):
        signals = source.signals(project_id, report.id, cycle=cycle) if _replays(report) else []
        recordings = None if signals is None else read_recordings(signals)
        unsure = signals is None and source.asks_signals(project_id)
    items: list[Any] = []
    if report.artefact_count != 0:
        if recordings is None:
            items = source.artefacts(project_id, report.id, cycle=cycle)
        else:
            items = source.artefacts(project_id, report.id, cycle=cycle, enough=judgments_found)
        if unsure and items:  # the report is there: its server has no /signals/ endpoint
            source.lacks_signals(project_id)
    enrichment = parse_enrichment(items)
    if recordings:  # else an older report's video segments, if any
        enrichment = replace(enrichment, recordings=recordings)
    return enrichment


def _attach(
    plan: CyclePlan,
    found: Mapping[str, Enrichment],
    sinks: Mapping[str, SinkSettings],
    *,
    requests: int,
    enriched: int,
) -> CyclePlan:
    """The plan with the enrichments found attached to its routed events and to the outbox
    entries of the sinks that ask for them."""
    enrich_to = {name for name, sink in sinks.items() if sink.wants_artefacts()}

    def attach(event: Event) -> Event:
        enrichment = found.get(event.report.id, NO_ENRICHMENT)
        if enrichment == NO_ENRICHMENT or event.type is EventType.REMOVED:
            return event
        return replace(event, enrichment=enrichment)

    outbox = [
        (attach(event) if sink in enrich_to else event, sink, rules)
        for event, sink, rules in plan.write.outbox
    ]
    return replace(
        plan,
        routed=tuple(Routed(attach(r.event), r.routes) for r in plan.routed),
        write=replace(plan.write, outbox=outbox),
        requests=requests,
        enriched=enriched,
    )


def _out_of_time(window: float) -> str:
    return (
        f"out of time (enriching may take {window:g}s of a cycle at most, and never past "
        "poll.deadline)"
    )


def _reason(exc: SourceError, project_id: int) -> str:
    """The error's text without its ``project N: `` prefix (the WARNING names the project)."""
    return str(exc).removeprefix(f"project {project_id}: ")


def _log(project_id: int, tally: _Tally, cap: int) -> None:
    """One line per cycle at most of each: over the cap (INFO), failures (WARNING)."""
    if tally.capped:
        log.info(
            "project %s: %d events go out without recordings and judgments: a cycle fetches "
            "the artefacts of %d reports at most",
            project_id,
            tally.capped,
            cap,
            extra={"event": "enrich_capped", "project_id": project_id},
        )
    if not tally.failed:
        return
    reason = tally.error or "unknown"
    log.warning(
        "project %s: %d of %d events go out without recordings and judgments (enrich: "
        "[artefacts]) because their artefacts or signals could not be read: %s; the "
        "notifications are not held back, and later events try again",
        project_id,
        tally.failed,
        tally.wanted - tally.capped,
        reason,
        extra={
            "event": "enrich_failed",
            "project_id": project_id,
            "error": reason,
            "failed": tally.failed,
        },
    )
