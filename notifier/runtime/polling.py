"""Polling one project, as the daemon does it: the cycle (``cycle.pipeline``) run within its
deadline (one ``CycleContext`` from the PostHog client for its listing, fetches and artefacts),
enriched, committed, and its outcome counted.

``Poller.poll`` never raises for PostHog or state trouble: a failure is logged once per outage
(``ProjectHealth``), paused after repeated errors, reported through the self-alerts and counted
in the metrics; the next cycle starts from the unchanged state. A bug in a cycle is logged with
its traceback and treated the same way, so polling never stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from notifier.config.settings import Settings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, StateError
from notifier.core.outcomes import PollOutcome
from notifier.cycle.baseline import baseline_cycle
from notifier.cycle.enrich import WINDOW, enrich_plan
from notifier.cycle.names import name_plan
from notifier.cycle.pipeline import CyclePlan, commit, plan_cycle
from notifier.cycle.reminders import remind_plan
from notifier.delivery.selfalerts import SelfAlerts, source_hint
from notifier.posthog.client import PostHogClient
from notifier.runtime.doubles import DoubleCards
from notifier.runtime.metrics import Metrics
from notifier.runtime.project_health import ProjectHealth
from notifier.runtime.vitals import Vitals
from notifier.state.base import StateStore
from notifier.state.leases import SOLE, Holder

log = logging.getLogger("notifier.runtime.daemon")  # the poll's own log lines, as before


class Poller:
    """Runs the cycles of every configured project and keeps their health."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: PostHogClient,
        store: StateStore,
        metrics: Metrics,
        self_alerts: SelfAlerts,
        vitals: Vitals,
        wake: Callable[[Iterable[str]], None],
        after_cycle: Callable[[int, CyclePlan | None], None] | None = None,
        enrich_window: float = WINDOW,
        health: dict[int, ProjectHealth] | None = None,
        leases: Holder = SOLE,
    ) -> None:
        """``wake`` tells the delivery threads of these sinks that entries are due;
        ``enrich_window`` is how long a cycle may spend fetching artefacts; ``health`` is where
        each project's health is kept (shared with the probes); ``leases`` says which projects
        this replica polls (all of them, alone on its state)."""
        self._settings = settings
        self._source = source
        self._store = store
        self._metrics = metrics
        self._self_alerts = self_alerts
        self._vitals = vitals
        self._wake = wake
        self._after_cycle = after_cycle
        self._enrich_window = enrich_window
        self.health = health if health is not None else {}
        for pid in settings.posthog.project_ids:
            self.health.setdefault(pid, ProjectHealth())
        self._leases = leases
        #: Set by the daemon (not ``once``): asks each project once whether PostHog posts to
        #: Slack as well.
        self.doubles: DoubleCards | None = None

    @property
    def deadline_seconds(self) -> float:
        """The hard limit for one cycle."""
        poll = self._settings.poll
        return poll.deadline if poll.deadline is not None else max(60.0, 3 * poll.interval)

    def poll(self, project_id: int) -> CyclePlan | None:
        """One cycle for one project; None when it failed or was skipped (paused)."""
        health = self.health.setdefault(project_id, ProjectHealth())
        if not self._leases.holds(f"poll:{project_id}"):  # another replica's, for now
            self._vitals.cycle_attempted(project_id, None)  # the scheduler is alive all the same
            return None
        if time.time() < health.not_before:
            log.debug("project %s: paused after errors until %s", project_id, health.not_before)
            self._vitals.cycle_attempted(project_id, None)
            self._metrics.poll(project_id, PollOutcome.PAUSED, None)
            self._self_alerts.poll_paused(project_id)
            return None
        started = time.monotonic()
        self._vitals.cycle_attempted(project_id, time.time() + self.deadline_seconds)
        plan: CyclePlan | None = None
        outcome = PollOutcome.INTERNAL_ERROR  # until the cycle says otherwise
        try:
            plan, added = self._cycle(project_id, started + self.deadline_seconds)
        except (SourceError, StateError) as exc:
            outcome = PollOutcome.failed(exc)
            health.failed(project_id, exc, self._settings.poll.interval)
            self._self_alerts.poll_failed(
                project_id, health.last_error or str(exc), source_hint(exc, project_id)
            )
        except Exception as exc:  # a bug must not end polling, nor go unseen
            log.exception(
                "project %s: the cycle crashed; nothing was changed",
                project_id,
                extra={"event": "poll_failed", "project_id": project_id},
            )
            self._crashed(project_id, health, exc)
        else:
            outcome = PollOutcome.SUCCESS
            self._succeeded(project_id, plan, added, time.monotonic() - started)
        finally:
            health.cycles += 1
            self._metrics.poll(project_id, outcome, time.monotonic() - started)
            self._vitals.cycle_finished(project_id)
            if self._after_cycle is not None:
                self._after_cycle(project_id, plan)
        if plan is not None:
            self._wake({sink for _, sink, _ in plan.write.outbox})
        return plan

    def _cycle(self, project_id: int, deadline: float) -> tuple[CyclePlan, int]:
        """List, diff, route, enrich and commit; the plan and how many entries it queued."""
        settings = self._settings
        cycle = self._source.start_cycle(project_id, deadline)
        plan = self._baseline(project_id, cycle) or plan_cycle(
            project_id,
            source=self._source,
            store=self._store,
            rules=settings.rules,
            first_run=settings.first_run,
            now=time.time(),
            cycle=cycle,
            # on the state's schedule, the first cycle of a process too (`notifier once`)
            full_sync_every=settings.poll.full_sync_every,
            overlap=settings.poll.overlap,
            routing_budget=settings.poll.routing_budget,
            settle=settings.poll.settle,
        )
        plan = enrich_plan(  # recordings and judgments; never fails nor holds back a cycle
            plan, self._source, settings.sinks, cycle=cycle, window=self._enrich_window
        )
        plan = remind_plan(plan, self._store, settings.watches(), time.time())
        plan = name_plan(plan, self._source, cycle)  # the project's name; never fails
        return plan, commit(plan, self._store, self._leases.fence(f"poll:{project_id}"))

    def _baseline(self, project_id: int, cycle: CycleContext) -> CyclePlan | None:
        """A project's first cycle under ``first_run: baseline``, recorded page by page (its
        pages committed under the poll lease, in bounded memory); None once it is baselined."""
        if self._settings.first_run != "baseline":
            return None
        return baseline_cycle(
            project_id,
            source=self._source,
            store=self._store,
            rules=self._settings.rules,
            now=time.time(),
            cycle=cycle,
            fence=self._leases.fence(f"poll:{project_id}"),
            routing_budget=self._settings.poll.routing_budget,
        )

    def _crashed(self, project_id: int, health: ProjectHealth, exc: Exception) -> None:
        health.failures += 1
        health.last_error = "internal error"
        self._self_alerts.poll_failed(
            project_id, f"internal error ({type(exc).__name__})", source_hint(exc, project_id)
        )

    def _succeeded(self, project_id: int, plan: CyclePlan, added: int, took: float) -> None:
        self.health[project_id].succeeded(project_id)
        self._self_alerts.poll_succeeded(project_id)
        log.info(
            plan.summary(added, took),
            extra={"event": "cycle", "project_id": project_id, "duration_ms": round(took * 1000)},
        )
        self._count(project_id, plan)
        if self.doubles is not None:
            self.doubles.check(project_id)

    def _count(self, project_id: int, plan: CyclePlan) -> None:
        """Metrics of a committed cycle: its events and the project's reports by status."""
        events = [e.type.value for e in plan.events]
        last_success = self.health[project_id].last_success or time.time()
        if plan.without_regex:
            self._metrics.routing_budget_spent(project_id)
        if plan.missed:
            log.warning(
                "project %s: the full listing found %d changes the incremental listings missed "
                "(they are delivered now); if this repeats, raise poll.overlap",
                project_id,
                plan.missed,
                extra={"event": "missed_events", "project_id": project_id},
            )
        try:
            statuses = self._store.status_counts(project_id)
        except StateError:
            statuses = None  # the cycle is committed; the gauge waits for the next one
        self._metrics.poll_succeeded(
            project_id,
            last_success,
            events,
            statuses,
            incremental=plan.incremental,
            missed=plan.missed,
            late=plan.late,
        )
