"""Settling in a project's cycle (``core.settle``): the cycle's events against the project's
held changes, read from the state; what ends or starts a hold is committed with the cycle
(``CycleWrite.hold``/``release``), under its fence. No thread of its own: a hold is decided
in the cycles of its project, so it ends at the first cycle after ``poll.settle``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from notifier.core.events import Event
from notifier.core.settle import Settling, settle
from notifier.state.base import StateStore
from notifier.state.records import CycleWrite, SnapshotRow

log = logging.getLogger(__name__)

#: Nothing to settle: the events as they are.
NOTHING: Settling = Settling(())


def settle_events(
    store: StateStore,
    project_id: int,
    events: Sequence[Event],
    current: Mapping[str, SnapshotRow],
    *,
    now: float,
    seconds: float | None,
) -> tuple[list[Event], Settling]:
    """The events to route, and the holds to commit with the cycle. ``current``: the reports as
    the cycle leaves them; ``seconds``: ``poll.settle`` (None: no settling at all, the events
    as the diff gave them and the holds left as they are)."""
    if seconds is None:
        return list(events), NOTHING
    held = {h.report_id: h for h in store.held(project_id)}
    if not held and (seconds <= 0 or not events):
        return list(events), NOTHING  # the common cycle: one small read, nothing held
    reports = {rid: row.report for rid, row in current.items()}
    settling = settle(project_id, events, held, reports, now=now, settle=seconds)
    _log(project_id, settling, held, seconds)
    return list(settling.events), settling


def into(write: CycleWrite, settling: Settling) -> CycleWrite:
    """``write`` carrying the holds to save and to forget."""
    if not settling.hold and not settling.release:
        return write
    return replace(write, hold=settling.hold, release=settling.release)


def _log(project_id: int, settling: Settling, held: Mapping[str, object], seconds: float) -> None:
    for hold in settling.hold:
        if hold.report_id in held:
            continue
        log.info(
            "project %s: report %s went back from %s to %s (re-research or a reopen); held for "
            "poll.settle (%gs): announced then if it is still in research, not at all if it "
            "comes back unchanged",
            project_id,
            hold.report_id,
            hold.announced.status,
            hold.latest.status,
            seconds,
            extra={"event": "held", "project_id": project_id, "report_id": hold.report_id},
        )
    for rid in settling.release:
        log.info(
            "project %s: report %s is no longer held",
            project_id,
            rid,
            extra={"event": "hold_ended", "project_id": project_id, "report_id": rid},
        )
