"""When a cycle lists every report, and what a full listing finds that incremental ones could not.

The schedule lives in the state (``projects.full_sync_at``, ``projects.listing``), not in the
process, so `notifier once` from cron and a restarted daemon cost what a steady daemon cycle
costs. A full listing then finds two kinds of changes that incremental listings did not show:

- *late* ones, by design: a priority, an actionability or an artefact count that PostHog changed
  without moving ``updated_at`` (judgments are artefacts; writing one does not save the report),
  so no listing ordered by ``updated_at`` can reach them. ``notifier_late_changes_total``
  counts them: many say a shorter ``poll.full_sync_every`` would be worth its requests.
- *missed* ones, a fault: other changes whose ``updated_at`` is older than the incremental
  listings' cut-off (committed late, or not moving it). ``notifier_missed_events_total``;
  should stay 0 (if not, raise ``poll.overlap``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from notifier.core.events import Event, EventType
from notifier.core.times import parse_instant
from notifier.posthog.listing import Listing
from notifier.state.store import ProjectState

#: Fields PostHog changes without moving ``updated_at``: they come from artefacts (judgments,
#: and every artefact counted). Only a full listing (or a retrieve) sees them change.
QUIET_FIELDS: Final = frozenset({"priority", "actionability", "artefact_count"})
_NOT_CHANGES: Final = frozenset({EventType.NEW, EventType.REMOVED})


def full_listing_due(
    state: ProjectState, *, now: float, every: float, listing: str, cut_off: datetime | None
) -> bool:
    """Whether this cycle must list everything: always with ``every`` 0; for a project not
    baselined or without a high-water mark (``cut_off``); when the last full listing is
    ``every`` old; when it asked for another filter than ``listing`` (the snapshot was listed
    through it; also after an upgrade, which did not record one); and when its time lies more
    than ``every`` in the future (a wall clock stepped back, a replica's clock wrong), which
    would put the next one off for longer than configured."""
    if every <= 0 or not state.baselined or cut_off is None or state.full_sync_at is None:
        return True
    return abs(now - state.full_sync_at) >= every or state.listing != listing


def late_and_missed(
    events: Iterable[Event], listing: Listing, cut_off: datetime | None, *, baselined: bool
) -> tuple[int, int]:
    """How many of a cycle's events are late finds and how many are misses (see above): events
    about listed reports whose ``updated_at`` is older than ``cut_off``. Late finds are counted
    only by a full listing (an incremental one that read to the end, a project on one page,
    sees them at once: nothing was late); misses by any listing that holds every report."""
    if not baselined or listing.partial or cut_off is None:
        return 0, 0
    late = missed = 0
    for event in events:
        if event.type in _NOT_CHANGES or event.report.id not in listing.ids:
            continue  # new, removed, or a report that left the listing: nothing to reach
        moment = parse_instant(event.report.updated_at)
        if moment is None or moment >= cut_off:
            continue
        if set(event.changes) <= QUIET_FIELDS:
            late += not listing.changed_first
        else:
            missed += 1
    return late, missed
