"""The notifier assembled: settings → store, PostHog client, sinks, deliverer, and the parts
that run them.

``Notifier`` only wires: ``poll`` (``polling.Poller``) runs one project's cycle and never raises
for PostHog trouble; ``once`` is the single-pass mode; ``run`` is the daemon — the threads of
``workers.Workers``, the heartbeat and probes of ``vitals.Vitals`` on ``http.listen``. ``stop``
(set by SIGTERM/SIGINT in the CLI) lets in-flight work finish and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from notifier.config.settings import Settings
from notifier.core.report import Links
from notifier.core.secrets import remember
from notifier.cycle.enrich import WINDOW
from notifier.cycle.pipeline import CyclePlan
from notifier.delivery.drain import Deliverer, DrainResult
from notifier.delivery.holds import holds_of
from notifier.delivery.selfalerts import UNSET_WARNING, SelfAlerts
from notifier.posthog.budget import RequestBudget
from notifier.posthog.client import PostHogClient
from notifier.runtime import logs
from notifier.runtime.doubles import DoubleCards
from notifier.runtime.interactive import Interactivity
from notifier.runtime.leases import LeaseKeeper, holder, holding, shared_budget
from notifier.runtime.metrics import Metrics
from notifier.runtime.polling import Poller
from notifier.runtime.probes import HealthServer
from notifier.runtime.project_health import ProjectHealth
from notifier.runtime.vitals import Vitals
from notifier.runtime.workers import Doorbells, Workers
from notifier.sinks.base import Sink
from notifier.sinks.registry import build_sinks
from notifier.state.base import StateStore
from notifier.state.leases import Holder
from notifier.state.store import open_store

log = logging.getLogger(__name__)


class Notifier:
    """The assembled notifier: one store, one PostHog client, the configured sinks."""

    def __init__(
        self,
        settings: Settings,
        *,
        sinks: Mapping[str, Sink] | None = None,
        store: StateStore | None = None,
        source: PostHogClient | None = None,
        transport: httpx.BaseTransport | None = None,
        after_cycle: Callable[[int, CyclePlan | None], None] | None = None,
        metrics: Metrics | None = None,
        alert_clock: Callable[[], float] = time.time,
        budget: RequestBudget | None = None,
        enrich_window: float = WINDOW,
        health: dict[int, ProjectHealth] | None = None,
        leases: Holder | None = None,
    ) -> None:
        """Every part is built from ``settings`` unless given: ``sinks``, ``store``, ``source``
        (the PostHog client; ``transport`` for the one built here), ``metrics``, ``budget`` (a
        reload keeps the running one). ``after_cycle`` runs after every cycle; ``alert_clock``
        is the self-alerts' clock; ``enrich_window`` bounds the seconds a cycle spends fetching
        artefacts; ``health`` carries poll health over from another notifier (tests)."""
        remember(settings.secrets())  # every error from here on is scrubbed of them
        self.settings = settings
        self.links = Links(settings.posthog.host)
        self.metrics = metrics or Metrics()
        self.store = (
            store if store is not None else open_store(settings.state, first_run=settings.first_run)
        )
        self._cancel = threading.Event()  # set on stop: abandons PostHog retries and waits
        self.budget = (
            budget
            if budget is not None
            else RequestBudget(
                settings.posthog.requests_per_minute,
                settings.posthog.requests_per_hour,
                on_wait=self.metrics.budget_waited,
                shared=shared_budget(settings, self.store),
            )
        )
        self.budget.bind(self._cancel)  # a budget kept across a reload serves this notifier now
        self.source = (
            source
            if source is not None
            else PostHogClient(
                settings.posthog,
                transport=transport,
                cancel=self._cancel,
                on_response=self.metrics.posthog_request,
                budget=self.budget,
            )
        )
        self.sinks: Mapping[str, Sink] = (
            sinks
            if sinks is not None
            else build_sinks(
                settings.sinks,
                self.links,
                rules={rule.name: rule for rule in settings.rules},
                cancel=self._cancel,
                people=settings.people,
            )
        )
        self.health = health if health is not None else {}
        self.leases = leases if leases is not None else holder(settings, self.store, self.metrics)
        self.vitals = Vitals(
            settings, self.store, self.health, self.metrics, list(self.sinks), leases=self.leases
        )
        self._build_workers(after_cycle, alert_clock, enrich_window)
        self.http: HealthServer | None = None
        #: This notifier replaces one whose configuration was reloaded (how it announces itself).
        self.reload = False
        self.metrics.start(settings.posthog.project_ids, self.sinks)

    def _build_workers(
        self,
        after_cycle: Callable[[int, CyclePlan | None], None] | None,
        alert_clock: Callable[[], float],
        enrich_window: float,
    ) -> None:
        settings = self.settings
        doorbells = self.doorbells = Doorbells(self.sinks)
        self.self_alerts = SelfAlerts(
            settings.self_alerts,
            list(self.sinks),
            self.store,
            wake=doorbells.ring,
            clock=alert_clock,
        )
        self.deliverer = Deliverer(
            self.store,
            self.sinks,
            settings.delivery,
            on_attempt=self.metrics.delivery,
            on_settled=self.self_alerts.delivery_settled,
            leases=self.leases,
            holds=holds_of(settings, self.store),
        )
        self.poller = Poller(
            settings,
            source=self.source,
            store=self.store,
            metrics=self.metrics,
            self_alerts=self.self_alerts,
            vitals=self.vitals,
            wake=doorbells.ring,
            after_cycle=after_cycle,
            enrich_window=enrich_window,
            health=self.health,
            leases=self.leases,
        )
        self.workers = Workers(
            settings,
            store=self.store,
            deliverer=self.deliverer,
            doorbells=doorbells,
            poll=self.poller.poll,
            health=self.health,
            leases=self.leases,
        )

    def close(self) -> None:
        """Release connections and files."""
        if isinstance(self.leases, LeaseKeeper):
            self.leases.release_all()  # the others take its units at their next round
            logs.set_replica(None)  # this replica's lines are over
        if self.http is not None:
            self.http.close()
            self.http = None
        self.vitals.close()
        for sink in self.sinks.values():
            sink.close()
        self.source.close()
        self.store.close()

    @property
    def heartbeat_path(self) -> Path:
        """The heartbeat file `notifier healthcheck` reads (next to the state database)."""
        return self.vitals.heartbeat_path

    @property
    def started_at(self) -> float | None:
        """When ``run`` started (Unix seconds); None when the daemon is not running."""
        return self.vitals.started_at

    def poll(self, project_id: int) -> CyclePlan | None:
        """One cycle for one project. PostHog or state trouble is logged, never raised."""
        return self.poller.poll(project_id)

    def drain_all(self) -> DrainResult:
        """One pass over every sink's due entries."""
        total = DrainResult()
        for name in self.sinks:
            result = self.deliverer.drain(name)
            total = DrainResult(
                total.delivered + result.delivered,
                total.retrying + result.retrying,
                total.dead + result.dead,
            )
        return total

    def once(self, max_wait: float = 30.0, sleep: Callable[[float], None] = time.sleep) -> int:
        """Poll every project once, then deliver until nothing is due within ``max_wait``.

        Returns the exit code: 0 when every poll and every delivery succeeded. With replicas,
        only this one's share of the projects and sinks (its leases are given back after).
        """
        with holding(self.leases):
            return self._once(max_wait, sleep)

    def _once(self, max_wait: float, sleep: Callable[[float], None]) -> int:
        pids = self.settings.posthog.project_ids
        polled = [self.poll(p) for p in pids if self.leases.holds(f"poll:{p}")]  # each, always
        polls_ok = all(plan is not None for plan in polled)
        delivered = dead = 0
        while True:
            result = self.drain_all()
            delivered, dead = delivered + result.delivered, dead + result.dead
            due = self.deliverer.next_due()
            if due is None:
                break
            wait = due - time.time()
            if wait > max_wait:
                break
            sleep(max(0.0, wait))
        self.housekeeping()  # a cron job prunes too (the daemon's hourly job never runs here)
        pending = sum(
            n
            for (sink, state), n in self.store.counts().items()
            if state == "pending" and sink in self.sinks
        )
        log.info(
            "once: %d delivered, %d dead-lettered, %d still pending",
            delivered,
            dead,
            pending,
            extra={"event": "once_done"},
        )
        return 0 if polls_ok and dead == 0 and pending == 0 else 1

    def run(self, stop: threading.Event, max_cycles: int | None = None) -> None:
        """The daemon. Returns when ``stop`` is set (or after ``max_cycles`` per project, with
        the outbox drained of everything due).

        Raises ``NotifierError`` before starting anything when ``http.listen`` cannot be bound.
        """
        interactive = Interactivity.of(self.settings, self.source, self.store, self.doorbells.ring)
        if self.settings.http.listen is not None:
            self.http = HealthServer(  # may raise: bind
                self.settings.http.listen,
                self.vitals,
                details=self.settings.http.details,
                posts=interactive.posts(),
            )
        interactive.start()  # may raise: Slack refused the app token
        self.vitals.started()
        self.poller.doubles = DoubleCards(self.settings, self.source)
        try:
            for warning in self.settings.warnings:
                log.warning("config: %s", warning, extra={"event": "config_warning"})
            if not self.reload and self.settings.self_alerts.sinks is None and self.sinks:
                log.warning("%s", UNSET_WARNING, extra={"event": "config_warning"})
            self.workers.run(stop, self._cancel, max_cycles, announce=self._announce)
        finally:
            self.vitals.stopped()
            interactive.stop()
            if self.http is not None:
                self.http.close()
                self.http = None

    def _announce(self) -> None:
        served = (
            f"; /healthz, /readyz and /metrics on {self.http.url}" if self.http is not None else ""
        )
        log.info(
            "%s: %d projects every %.0fs, %d sinks, %d rules%s",
            "reloaded configuration running" if self.reload else "notifier running",
            len(self.settings.posthog.project_ids),
            self.settings.poll.interval,
            len(self.sinks),
            len(self.settings.rules),
            served,
            extra={"event": "started"},
        )

    def housekeeping(self) -> None:
        """Forget delivered outbox entries older than ``delivery.keep_delivered``."""
        self.workers.housekeeping()
