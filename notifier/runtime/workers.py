"""The daemon's threads: an APScheduler interval job per project, one delivery thread per sink
(so a slow sink delays neither polling nor the other sinks), and hourly housekeeping.

``Workers.run`` starts them, waits for ``stop`` (or for ``max_cycles`` per project with nothing
due), then stops them: in-flight polls finish, and a send still in flight after a short grace
is abandoned — its entry stays pending and goes out again on the next start (at-least-once).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Final

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from notifier.config.settings import Settings
from notifier.core.errors import StateError
from notifier.delivery.drain import Deliverer
from notifier.runtime.leases import LeaseKeeper
from notifier.runtime.project_health import ProjectHealth
from notifier.state.base import StateStore
from notifier.state.leases import SOLE, Holder

log = logging.getLogger("notifier.runtime.daemon")  # the daemon's own log lines, as before

#: How long a report's living Slack message is remembered without a change (at least).
LIVING_MESSAGES_KEPT: Final = 30 * 24 * 3600.0
#: How long a delivery thread sleeps when nothing is due (a new entry wakes it at once).
IDLE_WAIT: Final = 30.0
#: With replicas, a sink's thread looks at its outbox this often (one indexed read): entries
#: queued by another replica's cycle go out within it.
REPLICA_IDLE_WAIT: Final = 1.0
#: How long stopping waits for the delivery threads' sends in flight.
STOP_GRACE: Final = 5.0


class Doorbells:
    """One event per sink, rung when entries are queued for it so that its delivery thread
    looks at the outbox now instead of at its next timeout."""

    def __init__(self, sinks: Iterable[str]) -> None:
        self._events = {name: threading.Event() for name in sinks}

    def __iter__(self) -> Iterator[str]:
        return iter(self._events)

    def __getitem__(self, sink: str) -> threading.Event:
        return self._events[sink]

    def ring(self, names: Iterable[str]) -> None:
        """Wake these sinks' delivery threads (names of unknown sinks are ignored)."""
        for name in names:
            if name in self._events:
                self._events[name].set()

    def ring_all(self) -> None:
        """Wake every delivery thread (to see that the daemon stops)."""
        self.ring(self._events)


class Workers:
    """The threads that poll, deliver and keep the state tidy while the daemon runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: StateStore,
        deliverer: Deliverer,
        doorbells: Doorbells,
        poll: Callable[[int], object],
        health: Mapping[int, ProjectHealth],
        leases: Holder = SOLE,
    ) -> None:
        self._settings = settings
        self._leases = leases
        self._store = store
        self._deliverer = deliverer
        self._poll = poll
        self._health = health
        self._wake = doorbells
        #: Set when a reload replaces these workers: their stop is not the notifier's.
        self.handing_over = False

    def run(
        self,
        stop: threading.Event,
        cancel: threading.Event,
        max_cycles: int | None,
        announce: Callable[[], None],
    ) -> None:
        """Run until ``stop`` is set (or ``max_cycles`` are done); ``announce`` is called once
        everything runs; ``cancel`` is set on the way out, abandoning PostHog retries and
        pacing waits."""
        scheduler = self._scheduler()
        self.warn_orphans()
        workers = [
            threading.Thread(
                target=self._deliver, args=(name, stop), name=f"deliver-{name}", daemon=True
            )
            for name in self._wake
        ]
        if isinstance(self._leases, LeaseKeeper):  # replicas: take this one's share first
            self._leases.on_taken = self._wake.ring_all  # a sink taken over: drain it now
            self._leases.step()
            workers.append(
                threading.Thread(target=self._leases.run, args=(stop,), name="leases", daemon=True)
            )
        for worker in workers:
            worker.start()
        scheduler.start()
        announce()
        try:
            while not stop.wait(0.2):
                if max_cycles is not None and self._finished(max_cycles):
                    break
        finally:
            stop.set()
            cancel.set()
            scheduler.shutdown(wait=True)
            self._wake.ring_all()
            give_up = time.monotonic() + STOP_GRACE
            for worker in workers:
                worker.join(timeout=max(0.0, give_up - time.monotonic()))
            if self.handing_over:  # a reload: the new configuration's workers take over
                log.debug("previous configuration's workers stopped", extra={"event": "stopped"})
            else:
                log.info("notifier stopped", extra={"event": "stopped"})

    def _scheduler(self) -> BackgroundScheduler:
        """A scheduler with one interval job per project (the first at once) and housekeeping;
        a project's cycles never overlap, and missed runs coalesce."""
        poll = self._settings.poll
        projects = self._settings.posthog.project_ids
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
                self._poll,
                IntervalTrigger(seconds=poll.interval, jitter=poll.jitter or None),
                args=(pid,),
                id=f"poll-{pid}",
                name=f"poll project {pid}",
                next_run_time=datetime.now(UTC),
            )
        scheduler.add_job(
            self.housekeeping, IntervalTrigger(hours=1), id="housekeeping", name="housekeeping"
        )
        return scheduler

    def _deliver(self, name: str, stop: threading.Event) -> None:
        """One sink's delivery thread: drain what is due, sleep until the next entry is due or a
        cycle queues one."""
        wake = self._wake[name]
        while not stop.is_set():
            wake.clear()
            try:
                self._deliverer.drain(name, stop)
                due = self._store.next_due(name)
            except StateError as exc:
                log.error("sink %s: %s", name, exc, extra={"event": "delivery_failed"})
                due = time.time() + 5
            except Exception:  # keep the sink's thread alive whatever happens
                log.exception("sink %s: delivery loop error", name)
                due = time.time() + 5
            # replicas: a cycle committed by another replica rings no bell here, so look again
            idle = REPLICA_IDLE_WAIT if isinstance(self._leases, LeaseKeeper) else IDLE_WAIT
            timeout = idle if due is None else min(idle, max(0.0, due - time.time()))
            if timeout > 0:
                wake.wait(timeout)

    def housekeeping(self) -> None:
        """Forget delivered outbox entries older than ``delivery.keep_delivered``; dead ones
        stay until retried."""
        now, keep = time.time(), self._settings.delivery.keep_delivered
        try:
            # a living message stays editable at least LIVING_MESSAGES_KEPT, whatever the audit
            # trail's retention
            pruned = self._store.prune(
                before=now - keep, messages_before=now - max(keep, LIVING_MESSAGES_KEPT)
            )
        except StateError as exc:
            log.warning("housekeeping: %s", exc)
            return
        if pruned:
            log.info("housekeeping: forgot %d delivered outbox entries", pruned)

    def warn_orphans(self) -> None:
        """Say so when the outbox holds entries for sinks the config no longer has."""
        for (sink, state), count in sorted(self._store.counts().items()):
            if sink not in self._wake and state in ("pending", "dead"):
                log.warning(
                    "outbox: %d %s entries for sink %r, which the config no longer defines; "
                    "they wait until it is defined again (see `notifier outbox`)",
                    count,
                    state,
                    sink,
                    extra={"event": "orphaned_outbox", "sink": sink},
                )

    def _finished(self, max_cycles: int) -> bool:
        if any(h.cycles < max_cycles for h in self._health.values()):
            return False
        due = self._deliverer.next_due()
        return due is None or due > time.time() + 5
