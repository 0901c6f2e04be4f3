"""Draining the outbox: one sink at a time, in order, with backoff and dead letters.

A sink's entries go out oldest first. A transient failure reschedules the head entry (full-jitter
exponential backoff, or exactly the sink's ``Retry-After``) and the sink waits, so its order
holds; a permanent failure dead-letters that entry at once and the next one goes. Entries that
keep failing past ``give_up_after`` are dead-lettered too. Delivery is at-least-once: a crash
between a sink accepting an entry and the ``delivered`` mark sends it again on restart.

Living messages: for a ``LivingSink`` the message it keeps about the entry's report is looked
up before the send and handed to it; the one it returns is remembered in the same transaction
as the ``delivered`` mark. Digests: when a ``DigestSink`` has more due events than its
``digest_after`` (notices never count), they go out as one digest (at most ``MAX_DIGEST``) and
are recorded together, in one transaction, whatever the outcome.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from notifier.config.settings import DeliverySettings
from notifier.core.actions import Acted
from notifier.core.errors import SinkError, StateError
from notifier.core.events import Event
from notifier.core.outbox import Delivery
from notifier.core.outcomes import DeliveryOutcome
from notifier.delivery.describe import describe as _describe
from notifier.delivery.describe import log_keys as _log_keys
from notifier.delivery.failures import FailedSends, backoff
from notifier.delivery.holds import Holds
from notifier.sinks.base import DigestSink, LivingSink, MessageRef, RefreshingSink, Sink
from notifier.state.base import StateStore
from notifier.state.leases import SOLE, Holder
from notifier.state.records import ActionRecord, Fence
from notifier.state.store import OutboxEntry

__all__ = ["MAX_DIGEST", "Deliverer", "DrainResult", "backoff"]

log = logging.getLogger(__name__)

#: The most events one digest carries; a bigger backlog goes out as several.
MAX_DIGEST: Final = 100
#: Entries read per pass when no digest is possible.
_BATCH: Final = 50
#: After a digest, the living cards of at most this many of its reports (the latest) are brought
#: up to date: Slack meters edits (``chat.update``, about 50 a minute per workspace).
REFRESHED: Final = 20


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one pass over a sink's due entries did."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0

    @classmethod
    def of(cls, counts: Mapping[DeliveryOutcome, int]) -> DrainResult:
        """The result from entries counted by outcome."""
        return cls(**{outcome.value: count for outcome, count in counts.items()})


def acted_of(record: ActionRecord) -> Acted:
    """A recorded action as the card shows it."""
    return Acted(
        action=record.action,
        user_id=record.user_id,
        user_name=record.user_name,
        at=record.at,
        reason=record.reason,
        snooze_for=record.snooze_for,
    )


def _delivery(entry: OutboxEntry) -> Delivery:
    """What a sink is handed for an outbox entry."""
    return Delivery(
        outbox_id=entry.id,
        sink=entry.sink,
        event=entry.event,
        rules=entry.rules,
        attempts=entry.attempts,
        held=entry.held_note,
    )


def _released_by(entry: OutboxEntry) -> tuple[str | None, str] | None:
    """The hold an entry was released from (one digest per hold), None when never held."""
    return None if entry.held_note is None else (entry.held_by, entry.held_note)


def _groups(
    sink: Sink, entries: Sequence[OutboxEntry], now: float, digest_after: int
) -> list[list[OutboxEntry]]:
    """What to send, in order: entries released together from a hold go as one digest (at the
    head of the line: they are the oldest); otherwise the due events at the head of the line
    (notices skipped: they go on their own after the digest) go as one digest when they are
    more than ``digest_after``, else one by one. An entry waiting to be retried ends the
    line, so nothing is sent before an older entry that is still due later."""
    head = entries[0]
    line: list[OutboxEntry] = []
    for entry in entries:
        if entry.next_attempt_at > now or _released_by(entry) != _released_by(head):
            break
        line.append(entry)
    if head.held_note is not None:
        return [line] if isinstance(sink, DigestSink) else [[entry] for entry in line]
    events = [entry for entry in line if isinstance(entry.event, Event)]
    if 0 < digest_after < len(events):
        return [events]
    return [[entry] for entry in entries[: len(line) or 1]]


def _rebase(store: StateStore, sink_name: str, now: float) -> None:
    """The wall clock stepped back: the sink's entries wait their own backoff (or Retry-After)
    from now, not that plus the step (stored due times are wall-clock)."""
    moved = store.rebase(sink_name, now)
    if moved:
        log.warning(
            "sink %s: the clock went back; %d waiting entries rescheduled to go within their "
            "own wait (at most delivery.backoff_max, or the Retry-After asked for)",
            sink_name,
            moved,
            extra={"event": "clock_went_back", "sink": sink_name},
        )


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A send the sink accepted whose ``delivered`` mark could not be written yet."""

    at: float
    ids: tuple[int, ...]
    message: MessageRef | None


_DRAIN_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_DRAIN_LOCKS_GUARD = threading.Lock()


def _drain_lock(state: str, sink: str) -> threading.Lock:
    """The process-wide lock that lets one thread at a time drain a sink's entries of the
    state database named ``state``."""
    with _DRAIN_LOCKS_GUARD:
        return _DRAIN_LOCKS.setdefault((state, sink), threading.Lock())


class Deliverer:
    """Sends due outbox entries through their sinks and records each outcome."""

    def __init__(
        self,
        store: StateStore,
        sinks: Mapping[str, Sink],
        settings: DeliverySettings,
        *,
        clock: Callable[[], float] = time.time,
        on_attempt: Callable[[str, DeliveryOutcome, float], None] | None = None,
        on_settled: Callable[[OutboxEntry, DeliveryOutcome, str | None], None] | None = None,
        leases: Holder = SOLE,
        holds: Holds | None = None,
    ) -> None:
        self._store = store
        # silences and quiet hours: what they hold waits in the state (none: nothing held)
        self._holds = holds
        # replicas: a sink is drained only by the replica holding its lease, and each mark
        # carries the lease's fence (a replica that lost it cannot record a delivery)
        self._leases = leases
        # told of every attempt's (sink, outcome: delivered | retrying | dead, seconds taken);
        # a digest is one attempt
        self._on_attempt = on_attempt or (lambda _sink, _outcome, _seconds: None)
        # told of each entry recorded delivered or dead: (entry, outcome, the dead letter's
        # reason or None); self-alerts watch the sinks through it
        self._on_settled = on_settled or (lambda _entry, _outcome, _error: None)
        self._sinks = sinks
        self._settings = settings
        self._clock = clock
        # one drain per (state file, sink) in the process, across Deliverers: after a config
        # reload the old one may still be sending while the new one starts
        self._locks = {name: _drain_lock(store.name, name) for name in sinks}
        # Entries a sink accepted whose `delivered` mark could not be written (disk full): the
        # mark is retried instead of the send, so a full disk does not repeat the message to
        # the channel on every pass. A restart forgets this and sends them again (at least once).
        self._unrecorded: dict[int, _Accepted] = {}
        self._failures = FailedSends(store, settings, clock, self._fence, self._settled)

    def drain(self, sink_name: str, stop: threading.Event | None = None) -> DrainResult:
        """Deliver the sink's due entries in order until one is not due or fails transiently.

        One drain per sink at a time: a second caller waits, so no entry is sent twice; with
        replicas, only by the one holding the sink's lease (``deliver:<sink>``).
        """
        if not self._leases.holds(f"deliver:{sink_name}"):
            return DrainResult()
        with self._locks[sink_name]:
            return self._drain(self._sinks[sink_name], sink_name, stop)

    def _drain(self, sink: Sink, sink_name: str, stop: threading.Event | None) -> DrainResult:
        done = dict.fromkeys(DeliveryOutcome, 0)
        digest_after = sink.digest_after if isinstance(sink, DigestSink) else 0
        _rebase(self._store, sink_name, self._clock())
        if self._holds is not None:
            self._holds.release(sink_name, self._clock(), self._fence(sink_name))
        while stop is None or not stop.is_set():
            due = self._store.next_due(sink_name)  # one indexed read before parsing a batch
            if due is None or due > self._clock():
                break
            entries = self._store.pending(sink_name, limit=MAX_DIGEST if digest_after else _BATCH)
            recorded = self._record_accepted(entries)
            if recorded:
                done[DeliveryOutcome.DELIVERED] += recorded
                continue
            now = self._clock()
            if not entries or entries[0].next_attempt_at > now:
                break
            if self._holds is not None and self._holds.screen(
                sink_name, entries, now, self._fence(sink_name)
            ):
                continue  # what is held is out of line: read the line again
            for group in _groups(sink, entries, now, digest_after):
                if stop is not None and stop.is_set():
                    break
                if group[0].next_attempt_at > self._clock():
                    return DrainResult.of(done)
                started = time.monotonic()
                outcome, counts = self._attempt(sink, group, stop)
                self._on_attempt(sink_name, outcome, time.monotonic() - started)
                for key, count in counts.items():
                    done[key] += count
                if outcome is DeliveryOutcome.RETRYING:
                    return DrainResult.of(done)
        return DrainResult.of(done)

    def _record_accepted(self, entries: Sequence[OutboxEntry]) -> int:
        """Write the marks a full disk kept from being written; returns how many entries."""
        recorded = 0
        for entry in entries:
            accepted = self._unrecorded.get(entry.id)
            if accepted is None:
                continue
            self._store.mark_delivered(
                accepted.ids, accepted.at, message=accepted.message, fence=self._fence(entry.sink)
            )
            for entry_id in accepted.ids:
                self._unrecorded.pop(entry_id, None)
            group = [e for e in entries if e.id in accepted.ids]
            log.info(
                "recorded the earlier delivery of %s to %s (not sent again)",
                _describe(group),
                entry.sink,
                extra=_log_keys(group),
            )
            for settled in group:
                self._settled(settled, DeliveryOutcome.DELIVERED, None)
            recorded += len(group)
        return recorded

    def _decided(self, delivery: Delivery, card: MessageRef | None) -> Delivery:
        """A living card keeps showing the decisions taken on it from Slack (who is on it, who
        dismissed it): the report's recorded actions, for an event that does not carry its
        own. One read, only for a card that exists."""
        event = delivery.event
        if card is None or not isinstance(event, Event) or event.acted:
            return delivery
        records = self._store.actions(report_id=event.report.id, limit=5)
        acted = tuple(acted_of(r) for r in reversed(records) if r.outcome == "done")
        return replace(delivery, event=replace(event, acted=acted)) if acted else delivery

    def _attempt(
        self, sink: Sink, entries: list[OutboxEntry], stop: threading.Event | None
    ) -> tuple[DeliveryOutcome, dict[DeliveryOutcome, int]]:
        """Send one entry (or a digest of several) and record the outcome."""
        head = entries[0]
        message: MessageRef | None = None
        living = (
            len(entries) == 1 and isinstance(sink, LivingSink) and isinstance(head.event, Event)
        )
        card: MessageRef | None = None
        if living and isinstance(head.event, Event):  # a state error here is retried, not dead
            known = self._store.message(head.sink, head.event.project_id, head.event.report.id)
            card = MessageRef(*known) if known is not None else None
        started = time.monotonic()
        try:
            if isinstance(sink, DigestSink) and (len(entries) > 1 or head.held_note is not None):
                sink.send_digest([_delivery(e) for e in entries])
            elif living and isinstance(sink, LivingSink):
                message = sink.send_report(self._decided(_delivery(head), card), card)
            else:
                sink.send(_delivery(head))
        except SinkError as exc:
            return self._failures.record(entries, exc, stop)
        except Exception as exc:  # a bug in a sink must not stop the others
            log.exception("sink %s crashed on %s", head.sink, _describe(entries))
            error = SinkError(f"internal error: {type(exc).__name__}", permanent=True)
            return self._failures.record(entries, error, stop)
        now = self._clock()
        ids = tuple(e.id for e in entries)
        try:
            self._store.mark_delivered(ids, now, message=message, fence=self._fence(head.sink))
        except StateError:
            accepted = _Accepted(now, ids, message)
            self._unrecorded.update(dict.fromkeys(ids, accepted))
            raise
        log.info(
            "delivered %s to %s",
            _describe(entries),
            head.sink,
            extra={
                **_log_keys(entries),
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )
        for entry in entries:
            self._settled(entry, DeliveryOutcome.DELIVERED, None)
        if isinstance(sink, RefreshingSink) and (len(entries) > 1 or head.held_note is not None):
            self._refresh(sink, entries)
        return DeliveryOutcome.DELIVERED, {DeliveryOutcome.DELIVERED: len(entries)}

    def _refresh(self, sink: RefreshingSink, entries: Sequence[OutboxEntry]) -> None:
        """After a digest: the living cards of its latest reports (at most ``REFRESHED``) show
        their state now, with no thread reply (the digest said what changed). Best effort: a
        card left behind is brought up to date by its report's next change."""
        latest: dict[tuple[int, str], OutboxEntry] = {}
        for entry in entries:
            if isinstance(entry.event, Event):
                latest[(entry.event.project_id, entry.event.report.id)] = entry
        for (project_id, report_id), entry in list(latest.items())[-REFRESHED:]:
            try:
                known = self._store.message(entry.sink, project_id, report_id)
                if known is None:
                    continue
                card = MessageRef(*known)
                fresh = sink.refresh_card(self._decided(_delivery(entry), card), card)
                if fresh != card:
                    now, fence = self._clock(), self._fence(entry.sink)
                    self._store.keep_message(entry.id, fresh, now, fence=fence)
            except (SinkError, StateError) as exc:
                log.warning(
                    "sink %s: the card of report %s still shows its state before the digest "
                    "(%s); its next change brings it up to date",
                    entry.sink,
                    report_id,
                    exc,
                    extra={"event": "card_refresh_failed", "sink": entry.sink},
                )
                return  # Slack refuses or the state fails: the rest would too

    def _fence(self, sink: str) -> Fence | None:
        return self._leases.fence(f"deliver:{sink}")

    def _settled(self, entry: OutboxEntry, outcome: DeliveryOutcome, error: str | None) -> None:
        try:
            self._on_settled(entry, outcome, error)
        except Exception:  # a watcher's bug must not stop deliveries
            log.exception("sink %s: error after recording an outcome", entry.sink)

    def next_due(self) -> float | None:
        """The earliest time any sink has an entry due, or None when the outbox is empty."""
        times = [t for name in self._sinks if (t := self._store.next_due(name)) is not None]
        return min(times) if times else None
