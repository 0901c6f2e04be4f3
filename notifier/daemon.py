"""The only module that wires the pieces: settings → store, PostHog client, sinks, deliverer.

``Notifier.poll`` runs one project's cycle and never raises for PostHog trouble; ``once`` is the
single-pass mode; ``run`` is the daemon: an APScheduler interval job per project and one delivery
thread per sink, so a slow sink delays neither polling nor the other sinks. ``stop`` (set by
SIGTERM/SIGINT in the CLI) lets in-flight work finish and returns.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.delivery import Deliverer, DrainResult
from notifier.errors import SourceError, SourceErrorKind, StateError
from notifier.models import Links
from notifier.pipeline import CyclePlan, commit, plan_cycle
from notifier.settings import Settings
from notifier.sinks import build_sinks
from notifier.sinks.base import Sink
from notifier.source import PostHogClient
from notifier.store import Store

log = logging.getLogger(__name__)

#: Errors that will not heal by polling again at full rate: wait longer between attempts.
_PERSISTENT = frozenset(
    {SourceErrorKind.AUTH, SourceErrorKind.NOT_FOUND, SourceErrorKind.BAD_REQUEST}
)
_MAX_PAUSE = 3600.0


#: Numbers in an error message (seconds to wait, a timeout, an offset) do not make it a new error.
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class ProjectHealth:
    """How polling one project is going (runtime state, never persisted).

    ``failures`` counts failed cycles in a row and ``signature`` is the last error with its
    numbers masked: the same signature again is "still failing", not a new error.
    """

    failures: int = 0
    last_error: str | None = None
    not_before: float = 0.0
    last_success: float | None = None
    cycles: int = 0
    signature: str | None = None

    def succeeded(self, project_id: int) -> None:
        """Record a successful cycle; after a run of failures, say the project recovered."""
        if self.failures:
            log.info(
                "project %s: polling recovered after %d failure%s (last: %s)",
                project_id,
                self.failures,
                "" if self.failures == 1 else "s",
                self.last_error,
                extra={"event": "poll_recovered", "project_id": project_id},
            )
        self.failures, self.last_error, self.signature, self.not_before = 0, None, None, 0.0
        self.last_success = time.time()


def _summary(plan: CyclePlan, added: int, seconds: float) -> str:
    if plan.baseline:
        return (
            f"project {plan.project_id}: first cycle, recorded {plan.reports} existing reports "
            f"silently (first_run: baseline); {plan.requests} requests, {seconds:.2f}s"
        )
    kinds = Counter(e.type.value for e in plan.events)
    detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    return (
        f"project {plan.project_id}: {plan.reports} reports, {len(plan.events)} events"
        f"{f' ({detail})' if detail else ''}, {added} deliveries queued, "
        f"{plan.requests} requests, {seconds:.2f}s"
    )


class Notifier:
    """The assembled notifier: one store, one PostHog client, the configured sinks."""

    def __init__(
        self,
        settings: Settings,
        *,
        sinks: Mapping[str, Sink] | None = None,
        transport: httpx.BaseTransport | None = None,
        after_cycle: Callable[[int, CyclePlan | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.links = Links(settings.posthog.host)
        self.store = Store(settings.state.path)
        self._cancel = threading.Event()  # set on stop: abandons PostHog retries and waits
        self.source = PostHogClient(settings.posthog, transport=transport, cancel=self._cancel)
        self.sinks: Mapping[str, Sink] = (
            sinks if sinks is not None else build_sinks(settings.sinks, self.links)
        )
        self.deliverer = Deliverer(self.store, self.sinks, settings.delivery)
        self.health = {pid: ProjectHealth() for pid in settings.posthog.project_ids}
        self._after_cycle = after_cycle
        self._wake = {name: threading.Event() for name in self.sinks}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Release connections and files."""
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
            return None
        plan: CyclePlan | None = None
        try:
            plan = plan_cycle(
                project_id,
                source=self.source,
                store=self.store,
                rules=self.settings.rules,
                first_run=self.settings.first_run,
                now=time.time(),
                deadline=started + self.deadline_seconds,
            )
            added = commit(plan, self.store)
        except (SourceError, StateError) as exc:
            self._poll_failed(project_id, health, exc)
        except Exception:  # a bug must not end polling, nor go unseen
            health.failures += 1
            health.last_error = "internal error"
            log.exception(
                "project %s: the cycle crashed; nothing was changed",
                project_id,
                extra={"event": "poll_failed", "project_id": project_id},
            )
        else:
            health.succeeded(project_id)
            log.info(
                _summary(plan, added, time.monotonic() - started),
                extra={
                    "event": "cycle",
                    "project_id": project_id,
                    "duration_ms": round((time.monotonic() - started) * 1000),
                },
            )
        finally:
            health.cycles += 1
            if self._after_cycle is not None:
                self._after_cycle(project_id, plan)
        if plan is not None:
            for name in {sink for _, sink, _ in plan.write.outbox}:
                if name in self._wake:
                    self._wake[name].set()
        return plan

    def _poll_failed(
        self, project_id: int, health: ProjectHealth, exc: SourceError | StateError
    ) -> None:
        """Log a failed cycle and decide when to try again.

        The first failure, and any failure whose message differs from the previous one (numbers
        aside), is one ERROR with the cause and the fix; the same failure again is a WARNING
        "still failing (n in a row)". Credentials, not-found and bad-request errors do not heal
        by asking again: the project pauses, twice as long after each failure (up to an hour).
        A wait PostHog asked for (429 or 503 with ``Retry-After``) is honoured the same way.
        """
        health.failures += 1
        message = str(exc)
        if f"project {project_id}" not in message:
            message = f"project {project_id}: {message}"
        signature = _NUMBERS.sub("N", message)
        repeated = signature == health.signature
        health.signature, health.last_error = signature, message
        interval = self.settings.poll.interval
        pause = 0.0
        if isinstance(exc, SourceError):
            if exc.kind in _PERSISTENT:
                pause = min(_MAX_PAUSE, interval * 2 ** min(health.failures, 20))
            elif exc.retry_after is not None:
                pause = min(_MAX_PAUSE, exc.retry_after)
        if pause > 0:
            health.not_before = time.time() + pause
        after = f"; next attempt in {pause:.0f}s" if pause > interval else ""
        extra = {
            "event": "poll_failed",
            "project_id": project_id,
            "error": message,
            "failures": health.failures,
        }
        if repeated:
            log.warning(
                "poll still failing (%d in a row): %s%s",
                health.failures,
                message,
                after,
                extra=extra,
            )
            return
        run = f" ({health.failures} in a row)" if health.failures > 1 else ""
        log.error("poll failed%s: %s; nothing was changed%s", run, message, after, extra=extra)

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
        the outbox drained of everything due)."""
        poll = self.settings.poll
        for warning in self.settings.warnings:
            log.warning("config: %s", warning, extra={"event": "config_warning"})
        projects = self.settings.posthog.project_ids
        scheduler = BackgroundScheduler(
            timezone="UTC",
            executors={"default": ThreadPoolExecutor(max_workers=min(8, len(projects)))},
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
        log.info(
            "notifier running: %d projects every %.0fs, %d sinks, %d rules",
            len(projects),
            poll.interval,
            len(self.sinks),
            len(self.settings.rules),
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
        try:
            pruned = self.store.prune(before=time.time() - self.settings.delivery.keep_delivered)
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
