"""The only module that wires the pieces: settings → store, PostHog client, sinks, deliverer.

``Notifier.poll`` runs one project's cycle and never raises for PostHog trouble; ``once`` is the
single-pass mode; ``run`` is the daemon: an APScheduler interval job per project and one delivery
thread per sink, so a slow sink delays neither polling nor the other sinks. ``stop`` (set by
SIGTERM/SIGINT in the CLI) lets in-flight work finish and returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor as _Reader
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.config.settings import Settings
from notifier.core.errors import SourceError, StateError
from notifier.core.models import Links
from notifier.cycle.enrich import WINDOW, enrich_plan
from notifier.cycle.pipeline import CyclePlan, commit, plan_cycle
from notifier.delivery.drain import Deliverer, DrainResult
from notifier.delivery.selfalerts import SelfAlerts, source_hint
from notifier.posthog.budget import RequestBudget
from notifier.posthog.client import PostHogClient
from notifier.runtime.metrics import Live, Metrics
from notifier.runtime.probes import (
    HealthServer,
    Heartbeat,
    Verdict,
    heartbeat_path,
    liveness,
    project_ready,
    readiness,
    write_heartbeat,
)
from notifier.runtime.project_health import ProjectHealth
from notifier.sinks.base import Sink
from notifier.sinks.registry import build_sinks
from notifier.state.store import Store

log = logging.getLogger(__name__)

#: How long a report's living Slack message is remembered without a change (at least).
LIVING_MESSAGES_KEPT: Final = 30 * 24 * 3600.0


class Notifier:
    """The assembled notifier: one store, one PostHog client, the configured sinks."""

    def __init__(
        self,
        settings: Settings,
        *,
        sinks: Mapping[str, Sink] | None = None,
        transport: httpx.BaseTransport | None = None,
        after_cycle: Callable[[int, CyclePlan | None], None] | None = None,
        metrics: Metrics | None = None,
        alert_clock: Callable[[], float] = time.time,
        budget: RequestBudget | None = None,
    ) -> None:
        """``alert_clock`` is the clock self-alerts measure outages with (tests advance it)."""
        self.settings = settings
        self.links = Links(settings.posthog.host)
        self.metrics = metrics or Metrics()
        self.store = Store(settings.state.path)
        self._cancel = threading.Event()  # set on stop: abandons PostHog retries and waits
        if budget is None:
            budget = RequestBudget(
                settings.posthog.requests_per_minute,
                settings.posthog.requests_per_hour,
                on_wait=self.metrics.budget_waited,
            )
        budget.bind(self._cancel)  # a budget kept across a reload serves this notifier now
        self.budget = budget
        self.source = PostHogClient(
            settings.posthog,
            transport=transport,
            cancel=self._cancel,
            on_response=self.metrics.posthog_request,
            budget=self.budget,
        )
        self.sinks: Mapping[str, Sink] = (
            sinks
            if sinks is not None
            else build_sinks(
                settings.sinks,
                self.links,
                rules={rule.name: rule for rule in settings.rules},
                cancel=self._cancel,
            )
        )
        self._wake = {name: threading.Event() for name in self.sinks}
        self.self_alerts = SelfAlerts(
            settings.self_alerts,
            list(self.sinks),
            self.store,
            wake=self._wake_sinks,
            clock=alert_clock,
        )
        self.deliverer = Deliverer(
            self.store,
            self.sinks,
            settings.delivery,
            on_attempt=self.metrics.delivery,
            on_settled=self.self_alerts.delivery_settled,
        )
        self.health = {pid: ProjectHealth() for pid in settings.posthog.project_ids}
        self._synced: set[int] = set()  # projects fully listed since this notifier started
        self.enrich_window = WINDOW  # seconds a cycle may spend fetching artefacts
        self._after_cycle = after_cycle
        # -- health: set by run(); the heartbeat file is read by `notifier healthcheck`
        self.heartbeat_path = heartbeat_path(settings.state.path)
        self.started_at: float | None = None
        self.http: HealthServer | None = None
        self._beat: Heartbeat | None = None
        self._beat_lock = threading.Lock()
        self._running: dict[int, float] = {}  # project → its running cycle's deadline (Unix)
        self._beat_failing = False
        # Scrapes and probes read the state from this one thread: each thread that touches the
        # store keeps a connection open, and the HTTP server makes a thread per request.
        self._reader = _Reader(max_workers=1, thread_name_prefix="state-reader")
        self.metrics.start(settings.posthog.project_ids, self.sinks)
        self.metrics.watch(self._live_metrics)

    def close(self) -> None:
        """Release connections and files."""
        if self.http is not None:
            self.http.close()
            self.http = None
        self._reader.shutdown(wait=True, cancel_futures=True)
        for sink in self.sinks.values():
            sink.close()
        self.source.close()
        self.store.close()

    @property
    def deadline_seconds(self) -> float:
        """The hard limit for one cycle."""
        poll = self.settings.poll
        return poll.deadline if poll.deadline is not None else max(60.0, 3 * poll.interval)

    # -- polling ------------------------------------------------------------------------------

    def poll(self, project_id: int) -> CyclePlan | None:
        """One cycle for one project. PostHog or state trouble is logged, never raised."""
        health = self.health.setdefault(project_id, ProjectHealth())
        started = time.monotonic()
        if time.time() < health.not_before:
            log.debug("project %s: paused after errors until %s", project_id, health.not_before)
            self._cycle_attempted(project_id, None)
            self.metrics.poll(project_id, "paused", None)
            self.self_alerts.poll_paused(project_id)
            return None
        self._cycle_attempted(project_id, time.time() + self.deadline_seconds)
        plan: CyclePlan | None = None
        outcome = "internal_error"
        try:
            plan = plan_cycle(
                project_id,
                source=self.source,
                store=self.store,
                rules=self.settings.rules,
                first_run=self.settings.first_run,
                now=time.time(),
                deadline=started + self.deadline_seconds,
                # the first cycle of each project in a process lists everything
                full_sync_every=(
                    self.settings.poll.full_sync_every if project_id in self._synced else 0.0
                ),
                overlap=self.settings.poll.overlap,
            )
            plan = enrich_plan(  # recordings and judgments; never fails nor holds back a cycle
                plan,
                self.source,
                self.settings.sinks,
                deadline=started + self.deadline_seconds,
                window=self.enrich_window,
            )
            added = commit(plan, self.store)
        except (SourceError, StateError) as exc:
            outcome = exc.kind.value if isinstance(exc, SourceError) else "state_error"
            health.failed(project_id, exc, self.settings.poll.interval)
            self.self_alerts.poll_failed(
                project_id, health.last_error or str(exc), source_hint(exc, project_id)
            )
        except Exception as exc:  # a bug must not end polling, nor go unseen
            health.failures += 1
            health.last_error = "internal error"
            log.exception(
                "project %s: the cycle crashed; nothing was changed",
                project_id,
                extra={"event": "poll_failed", "project_id": project_id},
            )
            self.self_alerts.poll_failed(
                project_id,
                f"internal error ({type(exc).__name__})",
                source_hint(exc, project_id),
            )
        else:
            outcome = "success"
            if not plan.incremental:
                self._synced.add(project_id)
            health.succeeded(project_id)
            self.self_alerts.poll_succeeded(project_id)
            log.info(
                plan.summary(added, time.monotonic() - started),
                extra={
                    "event": "cycle",
                    "project_id": project_id,
                    "duration_ms": round((time.monotonic() - started) * 1000),
                },
            )
            self._count_success(project_id, plan)
        finally:
            health.cycles += 1
            self.metrics.poll(project_id, outcome, time.monotonic() - started)
            self._cycle_finished(project_id)
            if self._after_cycle is not None:
                self._after_cycle(project_id, plan)
        if plan is not None:
            self._wake_sinks({sink for _, sink, _ in plan.write.outbox})
        return plan

    def _wake_sinks(self, names: Iterable[str]) -> None:
        """Have these sinks' delivery threads look at the outbox now."""
        for name in names:
            if name in self._wake:
                self._wake[name].set()

    def _count_success(self, project_id: int, plan: CyclePlan) -> None:
        """Metrics of a committed cycle: its events and the project's reports by status."""
        events = [e.type.value for e in plan.events]
        last_success = self.health[project_id].last_success or time.time()
        if plan.missed:
            log.warning(
                "project %s: the full listing found %d changes the incremental listings missed "
                "(they are delivered now); if this repeats, raise poll.overlap",
                project_id,
                plan.missed,
                extra={"event": "missed_events", "project_id": project_id},
            )
        try:
            statuses = self.store.status_counts(project_id)
        except StateError:
            statuses = None  # the cycle is committed; the gauge waits for the next one
        self.metrics.poll_succeeded(
            project_id,
            last_success,
            events,
            statuses,
            incremental=plan.incremental,
            missed=plan.missed,
        )

    # -- health -------------------------------------------------------------------------------

    def _cycle_attempted(self, project_id: int, deadline: float | None) -> None:
        """A cycle starts (``deadline``: when it must end) or is skipped (None, paused)."""
        now = time.time()
        self.metrics.cycle_attempted(now)
        with self._beat_lock:
            if deadline is not None:
                self._running[project_id] = deadline
            self._beat_now(last_attempt=now)

    def _cycle_finished(self, project_id: int) -> None:
        with self._beat_lock:
            self._running.pop(project_id, None)
            self._beat_now(last_finished=time.time())

    def _beat_now(
        self, *, last_attempt: float | None = None, last_finished: float | None = None
    ) -> None:
        """Update the heartbeat (under ``_beat_lock``) and write it, when running."""
        beat = self._beat
        if beat is None:
            return  # `once` and tests calling poll(): no daemon, no heartbeat
        self._beat = beat = replace(
            beat,
            last_attempt=last_attempt or beat.last_attempt,
            last_finished=last_finished or beat.last_finished,
            busy_until=max(self._running.values(), default=None),
        )
        try:
            write_heartbeat(self.heartbeat_path, beat)
        except OSError as exc:
            if not self._beat_failing:
                log.warning(
                    "cannot write the heartbeat %s (%s): `notifier healthcheck` will report "
                    "this process unhealthy; check that state.path's directory is writable",
                    self.heartbeat_path,
                    exc.strerror or exc,
                    extra={"event": "heartbeat_failed"},
                )
            self._beat_failing = True
        else:
            if self._beat_failing:
                log.info("the heartbeat %s is written again", self.heartbeat_path)
            self._beat_failing = False

    def _read_state(self) -> tuple[dict[tuple[str, str], int] | None, str | None]:
        """Outbox counts read on the reader thread, or None and why the state is unreadable."""
        try:
            return self._reader.submit(self.store.counts).result(timeout=10), None
        except StateError as exc:
            return None, str(exc)
        except TimeoutError:
            return None, "state database: no answer within 10 s (locked or a slow disk)"
        except RuntimeError:  # the reader was shut down: the notifier is closing
            return None, "the notifier is shutting down"

    def _ready_by_project(self, now: float) -> dict[int, bool]:
        interval, started = self.settings.poll.interval, self.started_at or now
        return {
            pid: project_ready(h, now, started, interval) is None for pid, h in self.health.items()
        }

    def _live_metrics(self) -> Live:
        """What /metrics reads at scrape time."""
        counts, _ = self._read_state()
        return Live(
            outbox=counts,
            sinks=list(self.sinks),
            ready=self._ready_by_project(time.time()),
            failures={pid: h.failures for pid, h in self.health.items()},
        )

    def live(self) -> Verdict:
        """``/healthz``: the rule `notifier healthcheck` applies to the heartbeat file."""
        beat = self._beat
        if beat is None:
            return Verdict(False, "the daemon is not running")
        return liveness(beat, time.time())

    def ready(self) -> Verdict:
        """``/readyz``: state readable, every project polled successfully (or in its first
        interval)."""
        now = time.time()
        _, state_error = self._read_state()
        return readiness(
            self.health,
            now=now,
            started_at=self.started_at or now,
            interval=self.settings.poll.interval,
            state_error=state_error,
            config=self.settings.source,
        )

    def scrape(self, accept: str) -> tuple[bytes, str]:
        """``/metrics``: the exposition and its content type."""
        return self.metrics.render(accept)

    # -- delivery -----------------------------------------------------------------------------

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

        Returns the exit code: 0 when every poll and every delivery succeeded.
        """
        polls_ok = all(self.poll(pid) is not None for pid in self.settings.posthog.project_ids)
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

    def _delivery_loop(self, name: str, stop: threading.Event) -> None:
        wake = self._wake[name]
        while not stop.is_set():
            wake.clear()
            try:
                self.deliverer.drain(name, stop)
                due = self.store.next_due(name)
            except StateError as exc:
                log.error("sink %s: %s", name, exc, extra={"event": "delivery_failed"})
                due = time.time() + 5
            except Exception:  # keep the sink's thread alive whatever happens
                log.exception("sink %s: delivery loop error", name)
                due = time.time() + 5
            timeout = 30.0 if due is None else min(30.0, max(0.0, due - time.time()))
            if timeout > 0:
                wake.wait(timeout)

    def run(self, stop: threading.Event, max_cycles: int | None = None) -> None:
        """The daemon. Returns when ``stop`` is set (or after ``max_cycles`` per project, with
        the outbox drained of everything due).

        Raises ``NotifierError`` before starting anything when ``http.listen`` cannot be bound.
        """
        if self.settings.http.listen is not None:
            self.http = HealthServer(self.settings.http.listen, self)  # may raise: bind
        self.started_at = time.time()
        with self._beat_lock:
            self._beat = Heartbeat(
                started_at=self.started_at, interval=self.settings.poll.interval, pid=os.getpid()
            )
            self._beat_now()
        try:
            self._run(stop, max_cycles)
        finally:
            with self._beat_lock:
                self._beat = None
            if self.http is not None:
                self.http.close()
                self.http = None

    def _run(self, stop: threading.Event, max_cycles: int | None) -> None:
        poll = self.settings.poll
        for warning in self.settings.warnings:
            log.warning("config: %s", warning, extra={"event": "config_warning"})
        projects = self.settings.posthog.project_ids
        scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={
                "default": ThreadPoolExecutor(max_workers=min(poll.concurrency, len(projects)))
            },
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(poll.interval)),
            },
        )
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        for pid in projects:
            scheduler.add_job(
                self.poll,
                IntervalTrigger(seconds=poll.interval, jitter=poll.jitter or None),
                args=(pid,),
                id=f"poll-{pid}",
                name=f"poll project {pid}",
                next_run_time=datetime.now(UTC),
            )
        scheduler.add_job(
            self.housekeeping, IntervalTrigger(hours=1), id="housekeeping", name="housekeeping"
        )
        self.warn_orphans()
        workers = [
            threading.Thread(
                target=self._delivery_loop, args=(name, stop), name=f"deliver-{name}", daemon=True
            )
            for name in self.sinks
        ]
        for worker in workers:
            worker.start()
        scheduler.start()
        served = (
            f"; /healthz, /readyz and /metrics on {self.http.url}" if self.http is not None else ""
        )
        log.info(
            "notifier running: %d projects every %.0fs, %d sinks, %d rules%s",
            len(projects),
            poll.interval,
            len(self.sinks),
            len(self.settings.rules),
            served,
            extra={"event": "started"},
        )
        try:
            while not stop.wait(0.2):
                if max_cycles is not None and self._finished(max_cycles):
                    break
        finally:
            stop.set()
            self._cancel.set()
            scheduler.shutdown(wait=True)
            for event in self._wake.values():
                event.set()
            # A send still in flight after this is abandoned: its entry stays pending and goes
            # out again on the next start (at-least-once).
            give_up = time.monotonic() + 5
            for worker in workers:
                worker.join(timeout=max(0.0, give_up - time.monotonic()))
            log.info("notifier stopped", extra={"event": "stopped"})

    def housekeeping(self) -> None:
        """Forget delivered outbox entries older than ``delivery.keep_delivered``; dead ones
        stay until retried."""
        now, keep = time.time(), self.settings.delivery.keep_delivered
        try:
            # a living message stays editable at least LIVING_MESSAGES_KEPT, whatever the audit
            # trail's retention
            pruned = self.store.prune(
                before=now - keep, messages_before=now - max(keep, LIVING_MESSAGES_KEPT)
            )
        except StateError as exc:
            log.warning("housekeeping: %s", exc)
            return
        if pruned:
            log.info("housekeeping: forgot %d delivered outbox entries", pruned)

    def warn_orphans(self) -> None:
        """Say so when the outbox holds entries for sinks the config no longer has."""
        for (sink, state), count in sorted(self.store.counts().items()):
            if sink not in self.sinks and state in ("pending", "dead"):
                log.warning(
                    "outbox: %d %s entries for sink %r, which the config no longer defines; "
                    "they wait until it is defined again (see `notifier outbox`)",
                    count,
                    state,
                    sink,
                    extra={"event": "orphaned_outbox", "sink": sink},
                )

    def _finished(self, max_cycles: int) -> bool:
        if any(h.cycles < max_cycles for h in self.health.values()):
            return False
        due = self.deliverer.next_due()
        return due is None or due > time.time() + 5
