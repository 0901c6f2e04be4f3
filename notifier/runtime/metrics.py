"""Prometheus metrics: what ``/metrics`` serves.

Each ``Notifier`` gets its own ``Metrics`` and so its own ``CollectorRegistry`` (never the
library's global one: tests build many notifiers in one process). The daemon updates the counters
and gauges as things happen; what lives in the state database or in the daemon's memory (the
outbox, readiness) is read at scrape time through ``watch``. docs/operations.md lists every
metric with its meaning and example alerts.

Names follow Prometheus' conventions: the ``notifier_`` prefix, base units in the name
(``_seconds``), ``_total`` on counters (added by the client library).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from notifier import __version__
from notifier.core.outcomes import DeliveryOutcome, PollOutcome
from notifier.core.report import STATUSES

# ``*_created`` series (one per counter and histogram child) only double the series count.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Poll cycles take from a fraction of a second to the cycle deadline (≥ 60 s).
POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: A send is one HTTP request with a 10-15 s timeout.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTBOX_STATES = ("pending", "dead")
#: The statuses PostHog sends (every version's); any other is counted as ``other``, so new or
#: hostile status values cannot add ``notifier_reports`` series without bound.
KNOWN_STATUSES = frozenset(STATUSES)
OTHER_STATUS = "other"


@dataclass(frozen=True, slots=True)
class Live:
    """What the daemon knows at scrape time."""

    outbox: Mapping[tuple[str, str], int] | None  # (sink, state) → entries; None: unreadable
    sinks: Iterable[str] = ()  # configured sinks: reported even with an empty outbox
    ready: Mapping[int, bool] = field(default_factory=dict)  # project → ready
    failures: Mapping[int, int] = field(default_factory=dict)  # project → failed cycles in a row


class _LiveCollector(Collector):
    """Reads ``Live`` at scrape time and turns it into gauge families."""

    def __init__(self, read: Callable[[], Live]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live = self.read()
        state = GaugeMetricFamily(
            "notifier_state_ok",
            "1 when the state database could be read at scrape time, else 0",
        )
        state.add_metric([], 0.0 if live.outbox is None else 1.0)
        yield state
        if live.outbox is not None:
            outbox = GaugeMetricFamily(
                "notifier_outbox_entries",
                "Outbox entries per sink: state=pending (waiting to be sent or retried) and "
                "state=dead (dead letters, waiting for `notifier outbox retry`)",
                labels=["sink", "state"],
            )
            sinks = dict.fromkeys([*live.sinks, *(s for s, _ in live.outbox)])
            for sink in sinks:
                for name in OUTBOX_STATES:
                    outbox.add_metric([sink, name], float(live.outbox.get((sink, name), 0)))
            yield outbox
        ready = GaugeMetricFamily(
            "notifier_project_ready",
            "1 when the project has had a successful poll (or is within its first interval)",
            labels=["project_id"],
        )
        failing = GaugeMetricFamily(
            "notifier_poll_consecutive_failures",
            "Failed poll cycles in a row per project (0 after a success)",
            labels=["project_id"],
        )
        for project, is_ready in live.ready.items():
            ready.add_metric([str(project)], 1.0 if is_ready else 0.0)
            failing.add_metric([str(project)], float(live.failures.get(project, 0)))
        yield ready
        yield failing


def _full_listing_finds(registry: CollectorRegistry) -> tuple[Counter, Counter]:
    """What full listings find that incremental ones did not show (``cycle.fullsync``): misses
    (a fault) and late finds (by design)."""
    missed = Counter(
        "notifier_missed_events",
        "Events a full listing found about reports that changed before the previous "
        "high-water mark minus poll.overlap: changes the incremental listings missed. "
        "Delivered all the same; should stay 0 (if not, raise poll.overlap)",
        ["project_id"],
        registry=registry,
    )
    late = Counter(
        "notifier_late_changes",
        "Changes a full listing found that incremental listings could not (a priority or "
        "actionability PostHog changed without moving updated_at), announced up to "
        "poll.full_sync_every late. Growing: a shorter full_sync_every finds them sooner, "
        "at a full listing's requests each time",
        ["project_id"],
        registry=registry,
    )
    return missed, late


class Metrics:
    """The registry and every metric the notifier exports."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.polls = Counter(
            "notifier_polls",
            "Poll cycles per project by outcome: success, paused (waiting after errors), "
            "auth, not_found, bad_request, throttled, transient, invalid_response, state_error, "
            "internal_error",  # PollOutcome
            ["project_id", "outcome"],
            registry=registry,
        )
        self.poll_duration = Histogram(
            "notifier_poll_duration_seconds",
            "Duration of attempted poll cycles (listing, diff, commit), successful or not",
            ["project_id"],
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "notifier_last_successful_poll_timestamp_seconds",
            "Unix time of the project's last successful poll cycle",
            ["project_id"],
            registry=registry,
        )
        self.last_attempt = Gauge(
            "notifier_last_cycle_attempt_timestamp_seconds",
            "Unix time a poll cycle (any project) was last attempted: the scheduler's heartbeat",
            registry=registry,
        )
        self.reports = Gauge(
            "notifier_reports",
            "Listed signal reports of the project by status, as of its latest successful cycle",
            ["project_id", "status"],
            registry=registry,
        )
        self.events = Counter(
            "notifier_events",
            "Changes found and committed (new, status_changed, updated, removed) per project",
            ["project_id", "type"],
            registry=registry,
        )
        self.deliveries = Counter(
            "notifier_deliveries",
            "Delivery attempts per sink by outcome: delivered, retrying (a transient failure, "
            "retried later), dead (dead-lettered)",
            ["sink", "outcome"],
            registry=registry,
        )
        self.delivery_duration = Histogram(
            "notifier_delivery_duration_seconds",
            "Duration of one delivery attempt (one send to the sink), whatever its outcome",
            ["sink"],
            buckets=SEND_BUCKETS,
            registry=registry,
        )
        self.posthog_requests = Counter(
            "notifier_posthog_requests",
            "Requests to PostHog by HTTP status code, or timeout / connection_error / "
            "decoding_error / too_large when no answer came back whole",
            ["status_code"],
            registry=registry,
        )
        self.listings = Counter(
            "notifier_listings",
            "Successful cycles by listing kind: incremental (only what changed since the "
            "high-water mark) or full (every report; the only kind that sees removals)",
            ["project_id", "kind"],
            registry=registry,
        )
        self.missed_events, self.late_changes = _full_listing_finds(registry)
        self.routing_budget_exhausted = Counter(
            "notifier_routing_budget_exhausted",
            "Cycles whose regex searches took the whole poll.routing_budget, so some events were "
            "routed without some of their regex conditions (counted as no match). Should stay "
            "0; if not, simplify the slow rules the cycle's warning names",
            ["project_id"],
            registry=registry,
        )
        self.budget_wait = Counter(
            "notifier_budget_wait_seconds",
            "Time PostHog requests waited for the request budget (posthog.requests_per_minute, "
            "requests_per_hour); growing means projects are polled less often than configured",
            registry=registry,
        )
        self.config_reloads = Counter(
            "notifier_config_reloads",
            "Configuration reloads by outcome (success, failure)",
            ["outcome"],
            registry=registry,
        )
        self.config_last_reload_success = Gauge(
            "notifier_config_last_reload_success",
            "1 when the configuration in use was loaded successfully (at start, or the last "
            "reload), else 0",
            registry=registry,
        )
        self.config_last_reload_success_time = Gauge(
            "notifier_config_last_reload_success_timestamp_seconds",
            "Unix time the configuration in use was loaded",
            registry=registry,
        )
        self.leases_held = Gauge(
            "notifier_leases_held",
            "Units of work this replica holds a lease on (replicas on PostgreSQL), by kind: "
            "poll (a project's polling) or deliver (a sink's deliveries)",
            ["kind"],
            registry=registry,
        )
        self.lease_losses = Counter(
            "notifier_lease_losses",
            "Leases this replica lost: taken over, expired, or dropped because the state "
            "database could not be reached",
            registry=registry,
        )
        self.state_errors = Counter(
            "notifier_lease_round_errors",
            "Lease rounds that could not reach the state database (the replica then works "
            "nothing until one succeeds)",
            registry=registry,
        )
        Info("notifier_build", "The notifier's version", registry=registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        ProcessCollector(registry=registry)  # process_* (CPU, RSS, fds, start time)
        PlatformCollector(registry=registry)  # python_info
        for outcome in ("success", "failure"):
            self.config_reloads.labels(outcome)
        self._statuses: dict[int, set[str]] = {}  # per project, every status ever exported
        self._live: _LiveCollector | None = None

    # -- set-up -------------------------------------------------------------------------------

    def start(self, projects: Iterable[int], sinks: Iterable[str]) -> None:
        """Create the usual series at 0 (so ``rate()`` and ``increase()`` see them from the
        start) and record that the configuration was loaded."""
        for project in projects:
            self.polls.labels(str(project), PollOutcome.SUCCESS)
            self.missed_events.labels(str(project))
            self.late_changes.labels(str(project))
            self.routing_budget_exhausted.labels(str(project))
            for kind in ("full", "incremental"):
                self.listings.labels(str(project), kind)
        for sink in sinks:
            for outcome in DeliveryOutcome:
                self.deliveries.labels(sink, outcome)
        self.config_last_reload_success.set(1)
        self.config_last_reload_success_time.set(time.time())

    def watch(self, read: Callable[[], Live]) -> None:
        """Serve what ``read`` returns at every scrape (a later call replaces the reader: after
        a configuration reload the new notifier reports through the same registry)."""
        if self._live is None:
            self._live = _LiveCollector(read)
            self.registry.register(self._live)
        else:
            self._live.read = read

    def config_reloaded(self, ok: bool) -> None:
        """Count a reload attempt; a failed one leaves the running configuration in use."""
        self.config_reloads.labels("success" if ok else "failure").inc()
        self.config_last_reload_success.set(1 if ok else 0)
        if ok:
            self.config_last_reload_success_time.set(time.time())

    # -- hooks --------------------------------------------------------------------------------

    def posthog_request(self, status: str) -> None:
        """One request to PostHog answered ``status`` (a code, or why there is none)."""
        self.posthog_requests.labels(status).inc()

    def routing_budget_spent(self, project: int) -> None:
        """A cycle's regex searches took the whole routing budget."""
        self.routing_budget_exhausted.labels(str(project)).inc()

    def lease_round(self, held: Iterable[str], lost: int, failed: bool) -> None:
        """One lease round: the units held after it, leases lost in it, whether it failed."""
        kinds = [unit.split(":", 1)[0] for unit in held]
        for kind in ("poll", "deliver"):
            self.leases_held.labels(kind).set(kinds.count(kind))
        if lost:
            self.lease_losses.inc(lost)
        if failed:
            self.state_errors.inc()

    def budget_waited(self, seconds: float) -> None:
        """A PostHog request waited ``seconds`` for the request budget."""
        self.budget_wait.inc(seconds)

    def delivery(self, sink: str, outcome: DeliveryOutcome, seconds: float) -> None:
        """One delivery attempt ended."""
        self.deliveries.labels(sink, outcome).inc()
        self.delivery_duration.labels(sink).observe(seconds)

    def cycle_attempted(self, now: float) -> None:
        """A poll cycle was started (or skipped while the project is paused)."""
        self.last_attempt.set(now)

    def poll(self, project: int, outcome: PollOutcome, seconds: float | None) -> None:
        """A poll cycle ended; ``seconds`` is None when it was not attempted (paused)."""
        self.polls.labels(str(project), outcome).inc()
        if seconds is not None:
            self.poll_duration.labels(str(project)).observe(seconds)

    def poll_succeeded(
        self,
        project: int,
        now: float,
        events: Iterable[str],
        statuses: Mapping[str, int] | None,
        *,
        incremental: bool = False,
        missed: int = 0,
        late: int = 0,
    ) -> None:
        """A successful cycle: its time, the event types it committed, the reports by status,
        its listing kind, the events earlier listings missed and the late finds.

        A status the project no longer has drops to 0 (the series stays, so alerts on it do
        not see it vanish)."""
        label = str(project)
        self.last_success.labels(label).set(now)
        self.listings.labels(label, "incremental" if incremental else "full").inc()
        if missed:
            self.missed_events.labels(label).inc(missed)
        if late:
            self.late_changes.labels(label).inc(late)
        for event_type in events:
            self.events.labels(label, event_type).inc()
        if statuses is None:
            return  # unknown this time (the state could not be read): keep the last figures
        statuses = _bounded(statuses)
        seen = self._statuses.setdefault(project, set())
        for status in seen - set(statuses):
            self.reports.labels(label, status).set(0)
        for status, count in statuses.items():
            self.reports.labels(label, status).set(count)
        seen |= set(statuses)

    # -- exposition ---------------------------------------------------------------------------

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when asked) and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


def _bounded(statuses: Mapping[str, int]) -> dict[str, int]:
    """The counts by status, unknown statuses added up under ``other``."""
    bounded: dict[str, int] = {}
    for status, count in statuses.items():
        label = status if status in KNOWN_STATUSES else OTHER_STATUS
        bounded[label] = bounded.get(label, 0) + count
    return bounded
