"""Reminders in the cycle (``remind_plan``): after routing, the reminders that follow this
cycle's reports are updated and the due ones queued, in the plan the cycle commit writes at
once (``core.reminders`` decides; ``state.reminders`` keeps the rows).

Costs in proportion to change: one indexed read of the rows of the reports that changed and
one of the project's due rows; the snapshot is read only for the due reports this cycle did not
bring. A baseline (first_run: baseline) follows nothing: no event put a report anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from notifier.core.reminders import Watch, plan_reminders
from notifier.cycle.pipeline import CyclePlan
from notifier.state.base import StateStore

log = logging.getLogger(__name__)


def remind_plan(
    plan: CyclePlan, store: StateStore, watches: Sequence[Watch], now: float
) -> CyclePlan:
    """The plan with its reminders: rows followed, ended, and the due reminders' events in its
    outbox. Unchanged without reminders configured (rows left by a removed one end when due)."""
    if plan.baseline:
        return plan
    project_id, events = plan.project_id, plan.events
    due = store.due_reminders(project_id, now)
    if not watches and not due:
        return plan
    rows = [*store.tracked(project_id, [e.report.id for e in events]), *due]
    reports = {e.report.id: e.report for e in events}
    wanted = [row.report_id for row in due if row.report_id not in reports]
    if wanted:
        stored = store.snapshot_rows(project_id, wanted)
        reports |= {rid: row.report for rid, row in stored.items() if row.listed}
    reminders = plan_reminders(
        project_id, events=events, rows=rows, reports=reports, watches=watches, now=now
    )
    if not reminders:
        return plan
    if reminders.outbox:
        log.info(
            "project %s: %d reminder(s) due (%s)",
            project_id,
            len({event.id for event, _, _ in reminders.outbox}),
            ", ".join(sorted({e.reminded.name for e, _, _ in reminders.outbox if e.reminded})),
            extra={"event": "reminders_due", "project_id": project_id},
        )
    outbox = [*plan.write.outbox, *reminders.outbox]
    return replace(plan, write=replace(plan.write, outbox=outbox, reminders=reminders))
