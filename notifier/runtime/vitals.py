"""What the running notifier says about itself: the heartbeat file and the answers of the
probes (``/healthz``, ``/readyz``, ``/metrics``).

``Vitals`` keeps the heartbeat while the daemon runs — written when it starts and when each poll
cycle starts and ends, read by `notifier healthcheck` — and implements ``probes.Endpoints`` for
the HTTP listener. The rules that judge liveness and readiness live in ``probes``; this class
gathers what they judge. Scrapes and probes read the state database from one reader thread:
each thread that touches the store keeps a connection open, and the listener answers from a few
worker threads. The heartbeat is written from the poll cycles, never from the listener.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from notifier.config.settings import Settings
from notifier.core.errors import StateError
from notifier.runtime.leases import LeaseKeeper
from notifier.runtime.metrics import Live, Metrics
from notifier.runtime.probes import (
    Heartbeat,
    Verdict,
    heartbeat_path,
    liveness,
    project_ready,
    readiness,
    write_heartbeat,
)
from notifier.runtime.project_health import ProjectHealth
from notifier.state.base import StateStore
from notifier.state.leases import SOLE, Holder

log = logging.getLogger("notifier.runtime.daemon")  # the daemon's own log lines, as before


class Vitals:
    """The heartbeat and the probes of one notifier."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        health: Mapping[int, ProjectHealth],
        metrics: Metrics,
        sinks: Sequence[str],
        *,
        leases: Holder = SOLE,
    ) -> None:
        self._settings = settings
        self._leases = leases  # replicas: only the projects this one polls count for /readyz
        self._store = store
        self._health = health
        self._metrics = metrics
        self._sinks = list(sinks)
        self.heartbeat_path: Path = heartbeat_path(settings.state)
        self.started_at: float | None = None
        self._beat: Heartbeat | None = None
        self._lock = threading.Lock()
        self._running: dict[int, float] = {}  # project → its running cycle's deadline (Unix)
        self._failing = False
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-reader")
        metrics.watch(self._live_metrics)

    def close(self) -> None:
        """Stop the reader thread (a probe answered after this says the notifier is closing)."""
        self._reader.shutdown(wait=True, cancel_futures=True)

    # -- the heartbeat --------------------------------------------------------------------------

    def started(self) -> None:
        """The daemon runs: keep a heartbeat from now on, and write it."""
        self.started_at = time.time()
        with self._lock:
            self._beat = Heartbeat.of_this_process(  # with its pid, to tell when it is gone
                started_at=self.started_at, interval=self._settings.poll.interval
            )
            self._write()

    def stopped(self) -> None:
        """The daemon stopped: cycles run by hand (``once``, tests) keep no heartbeat."""
        with self._lock:
            self._beat = None

    def cycle_attempted(self, project_id: int, deadline: float | None) -> None:
        """A cycle starts (``deadline``: when it must end) or is skipped (None, paused)."""
        now = time.time()
        self._metrics.cycle_attempted(now)
        with self._lock:
            if deadline is not None:
                self._running[project_id] = deadline
            self._write(last_attempt=now)

    def cycle_finished(self, project_id: int) -> None:
        """A cycle ended, whatever its outcome."""
        with self._lock:
            self._running.pop(project_id, None)
            self._write(last_finished=time.time())

    def _write(
        self, *, last_attempt: float | None = None, last_finished: float | None = None
    ) -> None:
        """Update the heartbeat (under ``_lock``) and write it, when running."""
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
            if not self._failing:
                log.warning(
                    "cannot write the heartbeat %s (%s): `notifier healthcheck` will report "
                    "this process unhealthy; check that state.path's directory is writable",
                    self.heartbeat_path,
                    exc.strerror or exc,
                    extra={"event": "heartbeat_failed"},
                )
            self._failing = True
        else:
            if self._failing:
                log.info("the heartbeat %s is written again", self.heartbeat_path)
            self._failing = False

    # -- the probes (probes.Endpoints) ----------------------------------------------------------

    def live(self) -> Verdict:
        """``/healthz``: the rule `notifier healthcheck` applies to the heartbeat file."""
        beat = self._beat
        if beat is None:
            return Verdict(False, "the daemon is not running", public="not alive: not running")
        return liveness(beat, time.time())

    def ready(self) -> Verdict:
        """``/readyz``: state readable, every project polled successfully (or in its first
        interval)."""
        now = time.time()
        _, state_error = self._read_state()
        if isinstance(self._leases, LeaseKeeper) and not self._leases.reachable:
            state_error = state_error or (
                "the lease round cannot reach the state database; this replica works nothing "
                "until it can"
            )
        mine = {pid: h for pid, h in self._health.items() if self._leases.holds(f"poll:{pid}")}
        return readiness(
            mine,
            now=now,
            started_at=self.started_at or now,
            interval=self._settings.poll.interval,
            state_error=state_error,
            config=self._settings.source,
        )

    def scrape(self, accept: str) -> tuple[bytes, str]:
        """``/metrics``: the exposition and its content type."""
        return self._metrics.render(accept)

    def _read_state(self) -> tuple[dict[tuple[str, str], int] | None, str | None]:
        """Outbox counts read on the reader thread, or None and why the state is unreadable."""
        try:
            return self._reader.submit(self._store.counts).result(timeout=10), None
        except StateError as exc:
            return None, str(exc)
        except TimeoutError:
            return None, "state database: no answer within 10 s (locked or a slow disk)"
        except RuntimeError:  # the reader was shut down: the notifier is closing
            return None, "the notifier is shutting down"

    def _live_metrics(self) -> Live:
        """What /metrics reads at scrape time."""
        counts, _ = self._read_state()
        now = time.time()
        interval, started = self._settings.poll.interval, self.started_at or now
        return Live(
            outbox=counts,
            sinks=self._sinks,
            ready={
                pid: project_ready(h, now, started, interval) is None
                for pid, h in self._health.items()
            },
            failures={pid: h.failures for pid, h in self._health.items()},
        )
