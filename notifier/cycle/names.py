"""The project's name on a cycle's events (``name_plan``), so cards read "Storefront" rather
than "project 12345".

Costs in proportion to change: a cycle with no routed event asks nothing; one with events asks
the client, which keeps a name 6 h and a failure 1 h (``posthog.projects``), so at most one
request per project every few hours. Never fails nor holds back a cycle: without its name, an
event goes out with ``project_name`` None and its card shows the project id.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from notifier.core.context import CycleContext
from notifier.core.events import Event
from notifier.cycle.pipeline import CyclePlan, Routed
from notifier.posthog.client import PostHogClient

log = logging.getLogger(__name__)


def name_plan(plan: CyclePlan, source: PostHogClient, cycle: CycleContext) -> CyclePlan:
    """The plan with the project's name on its routed events and its outbox entries; the plan
    as it was when no event is routed or the name is not known."""
    if not plan.write.outbox:  # routed events and reminders
        return plan
    before = cycle.requests.made
    try:
        name = source.project_name(plan.project_id, cycle)
    except Exception:  # a bug here must not hold the notifications back
        log.exception(
            "project %s: reading the project's name failed; cards show the project id",
            plan.project_id,
            extra={"event": "project_name_failed", "project_id": plan.project_id},
        )
        name = None
    requests = plan.requests + cycle.requests.made - before
    if name is None:
        return replace(plan, requests=requests)

    def named(event: Event) -> Event:
        return replace(event, project_name=name)

    return replace(
        plan,
        routed=tuple(Routed(named(r.event), r.routes) for r in plan.routed),
        write=replace(
            plan.write,
            outbox=[(named(event), sink, rules) for event, sink, rules in plan.write.outbox],
        ),
        requests=requests,
    )
