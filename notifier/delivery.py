"""Draining the outbox: one sink at a time, in order, with backoff and dead letters.

A sink's entries go out oldest first. A transient failure reschedules the head entry (full-jitter
exponential backoff, or exactly the sink's ``Retry-After``) and the sink waits, so its order
holds; a permanent failure dead-letters that entry at once and the next one goes. Entries that
keep failing past ``give_up_after`` are dead-lettered too. Delivery is at-least-once: a crash
between a sink accepting an entry and the ``delivered`` mark sends it again on restart.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from notifier.errors import SinkError, StateError
from notifier.models import Delivery, Notice
from notifier.settings import DeliverySettings
from notifier.sinks.base import Sink
from notifier.store import OutboxEntry, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one pass over a sink's due entries did."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0


def backoff(
    attempts: int,
    settings: DeliverySettings,
    retry_after: float | None = None,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait after the ``attempts``-th failure: Retry-After when given, else full
    jitter over an exponentially growing window capped at ``backoff_max``.

    A Retry-After of 0 (or a date already past) still waits ``min(backoff_initial, 1 s)``: a
    receiver that keeps answering "503, retry now" must not get a request per round trip.
    """
    if retry_after is not None:
        return max(min(settings.backoff_initial, 1.0), retry_after)
    window = min(settings.backoff_max, settings.backoff_initial * 2 ** max(0, attempts - 1))
    return max(0.05, rand(0.0, window))


def _describe(entry: OutboxEntry) -> str:
    if isinstance(entry.event, Notice):
        return f"the notifier's {entry.event.kind.value} notice about {entry.event.subject}"
    report = entry.event.report
    title = (report.title or "untitled")[:80]
    return f"{entry.event.type.value} of report {report.id} ({title!r})"


def _log_keys(entry: OutboxEntry) -> dict[str, object]:
    event = entry.event
    if isinstance(event, Notice):
        keys: dict[str, object] = {
            "event": "delivery",
            "sink": entry.sink,
            "notice": event.kind.value,
        }
        if event.project_id is not None:
            keys["project_id"] = event.project_id
        return keys
    return {
        "event": "delivery",
        "sink": entry.sink,
        "project_id": event.project_id,
        "report_id": event.report.id,
    }


class Deliverer:
    """Sends due outbox entries through their sinks and records each outcome."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        settings: DeliverySettings,
        *,
        clock: Callable[[], float] = time.time,
        on_attempt: Callable[[str, str, float], None] | None = None,
        on_settled: Callable[[OutboxEntry, str, str | None], None] | None = None,
    ) -> None:
        self._store = store
        # told of every attempt's (sink, outcome: delivered | retrying | dead, seconds taken)
        self._on_attempt = on_attempt or (lambda _sink, _outcome, _seconds: None)
        # told of each entry recorded delivered or dead: (entry, outcome, the dead letter's
        # reason or None); self-alerts watch the sinks through it
        self._on_settled = on_settled or (lambda _entry, _outcome, _error: None)
        self._sinks = sinks
        self._settings = settings
        self._clock = clock
        self._locks = {name: threading.Lock() for name in sinks}
        # Entries a sink accepted whose `delivered` mark could not be written (disk full): the
        # mark is retried instead of the send, so a full disk does not repeat the message to
        # the channel on every pass. A restart forgets this and sends them again (at least once).
        self._unrecorded: dict[int, float] = {}

    @property
    def sink_names(self) -> list[str]:
        """The sinks this deliverer drains."""
        return list(self._sinks)

    def drain(self, sink_name: str, stop: threading.Event | None = None) -> DrainResult:
        """Deliver the sink's due entries in order until one is not due or fails transiently.

        One drain per sink at a time: a second caller waits, so no entry is sent twice.
        """
        with self._locks[sink_name]:
            return self._drain(self._sinks[sink_name], sink_name, stop)

    def _drain(self, sink: Sink, sink_name: str, stop: threading.Event | None) -> DrainResult:
        delivered = retrying = dead = 0
        while stop is None or not stop.is_set():
            due = self._store.next_due(sink_name)  # one indexed read before parsing a batch
            if due is None or due > self._clock():
                break
            for entry in self._store.pending(sink_name, limit=50):
                if stop is not None and stop.is_set():
                    break
                now = self._clock()
                if entry.next_attempt_at > now:
                    return DrainResult(delivered, retrying, dead)
                started = time.monotonic()
                outcome = self._attempt(sink, entry)
                self._on_attempt(sink_name, outcome, time.monotonic() - started)
                if outcome == "delivered":
                    delivered += 1
                elif outcome == "dead":
                    dead += 1
                else:
                    return DrainResult(delivered, retrying + 1, dead)
        return DrainResult(delivered, retrying, dead)

    def _attempt(self, sink: Sink, entry: OutboxEntry) -> str:
        delivery = Delivery(
            outbox_id=entry.id,
            sink=entry.sink,
            event=entry.event,
            rules=entry.rules,
            attempts=entry.attempts,
        )
        extra = _log_keys(entry)
        accepted_at = self._unrecorded.get(entry.id)
        if accepted_at is not None:
            self._store.mark_delivered(entry.id, accepted_at)
            del self._unrecorded[entry.id]
            log.info(
                "recorded the earlier delivery of %s to %s (not sent again)",
                _describe(entry),
                entry.sink,
                extra=extra,
            )
            self._settled(entry, "delivered", None)
            return "delivered"
        started = time.monotonic()
        try:
            sink.send(delivery)
        except SinkError as exc:
            return self._failed(entry, exc, extra)
        except Exception as exc:  # a bug in a sink must not stop the others
            log.exception("sink %s crashed on %s", entry.sink, _describe(entry), extra=extra)
            return self._failed(
                entry, SinkError(f"internal error: {type(exc).__name__}", permanent=True), extra
            )
        now = self._clock()
        try:
            self._store.mark_delivered(entry.id, now)
        except StateError:
            self._unrecorded[entry.id] = now
            raise
        log.info(
            "delivered %s to %s",
            _describe(entry),
            entry.sink,
            extra={**extra, "duration_ms": round((time.monotonic() - started) * 1000)},
        )
        self._settled(entry, "delivered", None)
        return "delivered"

    def _settled(self, entry: OutboxEntry, outcome: str, error: str | None) -> None:
        try:
            self._on_settled(entry, outcome, error)
        except Exception:  # a watcher's bug must not stop deliveries
            log.exception("sink %s: error after recording an outcome", entry.sink)

    def _failed(self, entry: OutboxEntry, exc: SinkError, extra: dict[str, object]) -> str:
        now = self._clock()
        attempts = entry.attempts + 1
        if exc.permanent:
            self._store.mark_dead(entry.id, now, str(exc))
            log.error(
                "dead letter: %s to sink %s failed permanently: %s "
                "(fix the sink, then `notifier outbox retry --sink %s`)",
                _describe(entry),
                entry.sink,
                exc,
                entry.sink,
                extra={**extra, "error": str(exc)},
            )
            self._settled(entry, "dead", str(exc))
            return "dead"
        wait = backoff(attempts, self._settings, exc.retry_after)
        if now + wait - entry.created_at > self._settings.give_up_after:
            asked = " (as Retry-After asks)" if exc.retry_after is not None else ""
            reason = (
                f"gave up after {attempts} attempts: the next one, in {wait:.0f} s{asked}, "
                f"would fall past delivery.give_up_after; last error: "
                f"{str(exc).removesuffix('; will retry')}"
            )
            self._store.mark_dead(entry.id, now, reason)
            log.error(
                "dead letter: %s to sink %s: %s",
                _describe(entry),
                entry.sink,
                reason,
                extra={**extra, "error": reason},
            )
            self._settled(entry, "dead", reason)
            return "dead"
        self._store.mark_retry(entry.id, now + wait, str(exc))
        log.warning(
            "sink %s: %s failed (attempt %d), retrying in %.1fs: %s",
            entry.sink,
            _describe(entry),
            attempts,
            wait,
            exc,
            extra={**extra, "error": str(exc)},
        )
        return "retrying"

    def next_due(self) -> float | None:
        """The earliest time any sink has an entry due, or None when the outbox is empty."""
        times = [t for name in self._sinks if (t := self._store.next_due(name)) is not None]
        return min(times) if times else None
