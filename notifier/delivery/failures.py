"""Recording a failed send: a permanent failure dead-letters its entries at once, a transient
one reschedules them after the backoff (full jitter, or exactly the sink's ``Retry-After``),
and entries whose next attempt would fall past ``give_up_after`` are dead-lettered instead.
Each attempt's outcome, for every entry of a digest, is one transaction (carrying the sink's
lease fence with replicas).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from notifier.config.settings import DeliverySettings
from notifier.core.errors import SinkError
from notifier.core.outcomes import DeliveryOutcome
from notifier.delivery.describe import describe as _describe
from notifier.delivery.describe import log_keys as _log_keys
from notifier.state.base import StateStore
from notifier.state.records import Fence
from notifier.state.store import OutboxEntry

log = logging.getLogger("notifier.delivery.drain")  # the delivery's log lines, as before


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


def _give_up_reason(attempts: int, wait: float, exc: SinkError) -> str:
    """The dead letter's reason when the next attempt would fall past ``give_up_after``."""
    asked = " (as Retry-After asks)" if exc.retry_after is not None else ""
    return (
        f"gave up after {attempts} attempts: the next one, in {wait:.0f} s{asked}, "
        f"would fall past delivery.give_up_after; last error: "
        f"{str(exc).removesuffix('; will retry')}"
    )


class FailedSends:
    """Records failed sends of one ``Deliverer``."""

    def __init__(
        self,
        store: StateStore,
        settings: DeliverySettings,
        clock: Callable[[], float],
        fence: Callable[[str], Fence | None],
        settled: Callable[[OutboxEntry, DeliveryOutcome, str | None], None],
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._fence = fence
        self._settled = settled

    def record(
        self, entries: list[OutboxEntry], exc: SinkError, stop: threading.Event | None
    ) -> tuple[DeliveryOutcome, dict[DeliveryOutcome, int]]:
        """Record a failed send: a permanent failure is dead-lettered at once, a transient one
        rescheduled (or not recorded at all when the notifier is stopping)."""
        now = self._clock()
        if exc.permanent:
            return self._dead_at_once(entries, exc, now)
        if stop is not None and stop.is_set():  # cut short by the shutdown: nothing to record
            log.info(
                "sink %s: %s not sent, the notifier is stopping (sent after the restart)",
                entries[0].sink,
                _describe(entries),
                extra=_log_keys(entries),
            )
            return DeliveryOutcome.RETRYING, {DeliveryOutcome.RETRYING: len(entries)}
        return self._reschedule(entries, exc, now)

    def _dead_at_once(
        self, entries: list[OutboxEntry], exc: SinkError, now: float
    ) -> tuple[DeliveryOutcome, dict[DeliveryOutcome, int]]:
        """Dead-letter the entries of a permanent failure."""
        sink = entries[0].sink
        self._store.mark_dead([e.id for e in entries], now, str(exc), fence=self._fence(sink))
        log.error(
            "dead letter: %s to sink %s failed permanently: %s "
            "(fix the sink, then `notifier outbox retry --sink %s`)",
            _describe(entries),
            sink,
            exc,
            sink,
            extra={**_log_keys(entries), "error": str(exc)},
        )
        for entry in entries:
            self._settled(entry, DeliveryOutcome.DEAD, str(exc))
        return DeliveryOutcome.DEAD, {DeliveryOutcome.DEAD: len(entries)}

    def _reschedule(
        self, entries: list[OutboxEntry], exc: SinkError, now: float
    ) -> tuple[DeliveryOutcome, dict[DeliveryOutcome, int]]:
        """Retry the entries of a transient failure after the backoff (or Retry-After); those
        whose next attempt would fall past ``give_up_after`` are dead-lettered instead."""
        attempts = max(e.attempts for e in entries) + 1
        wait = backoff(attempts, self._settings, exc.retry_after)
        expired = [e for e in entries if now + wait - e.created_at > self._settings.give_up_after]
        retry = [e for e in entries if e not in expired]
        reason = _give_up_reason(attempts, wait, exc)
        self._store.mark_failed(
            [e.id for e in retry],
            now + wait,
            str(exc),
            dead=[e.id for e in expired],
            now=now,
            reason=reason,
            fence=self._fence(entries[0].sink),
        )
        if expired:
            self._gave_up(expired, reason)
        if not retry:
            return DeliveryOutcome.DEAD, {DeliveryOutcome.DEAD: len(expired)}
        log.warning(
            "sink %s: %s failed (attempt %d), retrying in %.1fs: %s",
            entries[0].sink,
            _describe(retry),
            attempts,
            wait,
            exc,
            extra={**_log_keys(retry), "error": str(exc)},
        )
        return DeliveryOutcome.RETRYING, {
            DeliveryOutcome.RETRYING: len(retry),
            DeliveryOutcome.DEAD: len(expired),
        }

    def _gave_up(self, expired: list[OutboxEntry], reason: str) -> None:
        """Log and report the entries ``_reschedule`` dead-lettered past ``give_up_after``."""
        log.error(
            "dead letter: %s to sink %s: %s",
            _describe(expired),
            expired[0].sink,
            reason,
            extra={**_log_keys(expired), "error": reason},
        )
        for entry in expired:
            self._settled(entry, DeliveryOutcome.DEAD, reason)
