"""``StateStore``: the contract of the state database, as the rest of the notifier uses it.

``store.Store`` (SQLite) and ``store.PostgresStore`` meet it. The guarantees behind the
signatures: ``commit_cycle`` writes a cycle's snapshot rows, outbox entries and project marks in
ONE transaction (refused with ``LeaseLost`` when its fence is no longer the unit's lease, as
are the delivery marks); an outbox entry exists once per (event or notice, sink); each mark of a
delivery attempt (with its living message) is one transaction; every failure is a
``StateError``. Times are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from notifier.core.actions import Click
from notifier.core.events import Event
from notifier.core.outbox import Notice
from notifier.core.reminders import Tracked
from notifier.core.settle import Held
from notifier.core.silences import Silence
from notifier.state.records import (
    ActionClaim,
    ActionMove,
    ActionRecord,
    CycleWrite,
    Fence,
    MessageRef,
    OutageRow,
    OutboxEntry,
    ProjectState,
    SnapshotRow,
)
from notifier.state.story import Chapter


class HoldingStore(Protocol):
    """The part of the state that holds deliveries back and brings reports back: silences,
    the entries they (and quiet hours) hold, the story each report's holds tell, and the
    reminders followed."""

    # -- silences (`notifier silence`; ``state.silences``) -------------------------------------

    def add_silence(self, silence: Silence) -> str:
        """Store a silence (a new ``sil_…`` id when it has none); returns its id."""
        ...

    def silences(self, now: float, *, recent: float = 86400.0) -> list[Silence]:
        """The active silences and those that ended within ``recent`` seconds, oldest first."""
        ...

    def silence(self, silence_id: str) -> Silence | None:
        """One silence by id, whatever its state; None when unknown."""
        ...

    def expire_silence(self, silence_id: str, now: float) -> bool:
        """End a silence by hand; False when it is unknown or already over."""
        ...

    def count_held(self, silence_id: str, count: int) -> None:
        """``count`` more events held by the silence."""
        ...

    # -- holds (silences, quiet hours; ``state.holds``) and stories (``state.story``) ----------

    def hold(
        self,
        entries: Sequence[OutboxEntry],
        held_by: str,
        note: str,
        now: float,
        *,
        drop: bool = False,
        fence: Fence | None = None,
    ) -> None:
        """Hold pending entries for ``held_by`` (``drop``: settle them as dropped), counting
        them on the silence and telling the reports' stories, in one transaction."""
        ...

    def held_keys(self, sink: str) -> list[str]:
        """What holds the sink's held entries, one ``held_by`` each."""
        ...

    def held_entries(
        self, sink: str | None = None, held_by: str | None = None
    ) -> list[OutboxEntry]:
        """The held entries (of one sink, of one hold), oldest first."""
        ...

    def end_hold(
        self,
        sink: str,
        held_by: str,
        now: float,
        *,
        drop_reason: str | None = None,
        fence: Fence | None = None,
        only: Sequence[OutboxEntry] | None = None,
    ) -> int:
        """Release a hold's entries for ``sink`` (pending, due now) or drop them (``only``:
        these, already read); how many."""
        ...

    def story(self, report_id: str, limit: int = 500) -> list[Chapter]:
        """The report's chapters (events found, holds, releases, reminders), oldest first."""
        ...

    def entries_where(self, where: str, params: Sequence[object]) -> list[OutboxEntry]:
        """Outbox entries by a fixed WHERE fragment (never user input)."""
        ...

    # -- reminders followed (``state.reminders``; written by ``commit_cycle``) ----------------

    def tracked(self, project_id: int, report_ids: Sequence[str]) -> list[Tracked]:
        """The reminders following these reports."""
        ...

    def due_reminders(self, project_id: int, now: float, limit: int = 1000) -> list[Tracked]:
        """The project's reminders due at ``now``, oldest due first."""
        ...

    def reminders(self, report_id: str | None = None) -> list[Tracked]:
        """Every reminder followed (or one report's)."""
        ...


class StateStore(HoldingStore, Protocol):
    """What the cycle, delivery, runtime and CLI ask of the state database."""

    @property
    def name(self) -> str:
        """Which database: a file's path or a PostgreSQL URL (without password); the delivery's
        per-sink locks are keyed by it."""
        ...

    def close(self) -> None:
        """Release every connection."""
        ...

    # -- snapshots and the cycle commit ------------------------------------------------------

    def project_state(self, project_id: int) -> ProjectState:
        """The project's baseline mark, high-water mark and last full listing."""
        ...

    def status_counts(self, project_id: int) -> dict[str, int]:
        """The project's listed reports by status, without reading snapshots."""
        ...

    def snapshot_index(
        self, project_id: int, report_ids: Sequence[str] | None = None
    ) -> dict[str, tuple[str, bool]]:
        """Report id → (version, listed): every report, or only these ids, none parsed."""
        ...

    def snapshot_rows(self, project_id: int, report_ids: Sequence[str]) -> dict[str, SnapshotRow]:
        """The snapshot rows of these reports (those that exist)."""
        ...

    def commit_cycle(self, write: CycleWrite) -> int:
        """Persist one cycle in one transaction; returns how many outbox entries were added."""
        ...

    def held(self, project_id: int | None = None) -> list[Held]:
        """Reports held back in research (``core.settle``): the project's, or all; oldest
        first. Written by ``commit_cycle`` (``CycleWrite.hold``/``release``)."""
        ...

    # -- actions taken from Slack cards ------------------------------------------------------

    def begin_action(self, click: Click, now: float) -> ActionClaim:
        """Claim the click's key: ``mine`` when this caller must make the PostHog write, else
        the record of who did or does it. Atomic across threads and replicas (``actions``)."""
        ...

    def finish_action(
        self,
        key: str,
        outcome: str,
        *,
        status_after: str | None,
        detail: str,
        now: float,
        attempt: int | None = None,
    ) -> bool:
        """Record PostHog's answer to a claimed write: ``done``, ``refused`` or ``failed``."""
        ...

    def actions(
        self, *, project_id: int | None = None, report_id: str | None = None, limit: int = 50
    ) -> list[ActionRecord]:
        """The latest actions, newest first."""
        ...

    def moves_by_action(self, project_id: int) -> list[ActionMove]:
        """Moves made from Slack whose echo no cycle has absorbed (``CycleWrite.absorbed``)."""
        ...

    # -- outbox and living messages ------------------------------------------------------------

    def enqueue_notice(self, notice: Notice, sinks: Sequence[str], now: float) -> int:
        """Queue the notifier's own notice for each sink, once; returns how many were added."""
        ...

    def enqueue_event(self, event: Event, sink: str, rules: Sequence[str], now: float) -> int:
        """Queue one event for one sink outside a cycle, once; returns how many were added."""
        ...

    def pending(self, sink: str, limit: int = 100) -> list[OutboxEntry]:
        """A sink's pending entries, oldest first (delivery order)."""
        ...

    def entries(self, state: str, sink: str | None = None) -> list[OutboxEntry]:
        """Entries in one state ('pending', 'dead', 'delivered'), optionally for one sink."""
        ...

    def next_due(self, sink: str) -> float | None:
        """When the sink's first pending entry is due, or None when it has none."""
        ...

    def counts(self) -> dict[tuple[str, str], int]:
        """Outbox entries by (sink, state)."""
        ...

    def mark_delivered(
        self,
        entry_ids: int | Sequence[int],
        now: float,
        *,
        message: MessageRef | None = None,
        fence: Fence | None = None,
    ) -> None:
        """The sink accepted the entries; remember its living message in the same transaction."""
        ...

    def mark_dead(
        self, entry_ids: int | Sequence[int], now: float, error: str, *, fence: Fence | None = None
    ) -> None:
        """A permanent failure: keep the entries, with the reason, for a person."""
        ...

    def mark_failed(
        self,
        retry: Sequence[int],
        next_attempt_at: float,
        error: str,
        *,
        dead: Sequence[int] = (),
        now: float = 0.0,
        reason: str = "",
        fence: Fence | None = None,
    ) -> None:
        """One failed attempt in one transaction: ``retry`` entries later, ``dead`` ones now."""
        ...

    def rebase(self, sink: str, now: float) -> int:
        """After the wall clock stepped back, each of the sink's waiting entries is due its own
        wait after ``now``; returns how many moved."""
        ...

    def retry_dead(self, now: float, sink: str | None = None) -> int:
        """Put dead entries back in line; returns how many."""
        ...

    def prune(self, before: float, *, messages_before: float | None = None) -> int:
        """Forget old delivered entries and stale living messages; returns entries forgotten."""
        ...

    def message(
        self, sink: str, project_id: int, report_id: str
    ) -> tuple[str, str, str | None] | None:
        """The ``(channel, ts, shown)`` of the sink's living message about the report, if any."""
        ...

    def keep_message(
        self, entry_id: int, message: MessageRef, now: float, *, fence: Fence | None = None
    ) -> None:
        """Remember ``message`` for the report of an entry already delivered (a card brought up
        to date after a digest)."""
        ...

    # -- replicas and leases (PostgreSQL) -----------------------------------------------------

    def announce(self, replica: str, started_at: float, ttl: float) -> None:
        """This replica is alive for ``ttl`` more seconds."""
        ...

    def replicas(self) -> list[str]:
        """The replicas alive now, in a stable order."""
        ...

    def retire(self, replica: str) -> None:
        """This replica stops: it is no longer counted when the units are shared."""
        ...

    def acquire(self, unit: str, owner: str, ttl: float) -> int | None:
        """Take a unit if free, expired or already ``owner``'s: its new token, else None."""
        ...

    def renew(self, fence: Fence, ttl: float) -> bool:
        """Extend a lease still held; False when it is lost."""
        ...

    def release(self, fence: Fence) -> None:
        """Give a unit up at once."""
        ...

    def leases(self) -> dict[str, tuple[str, int, float]]:
        """Every unexpired lease: unit → (owner, token, seconds left)."""
        ...

    # -- the PostHog request budget replicas share ----------------------------------------------

    def take_request(self, key: str, per_minute: int, per_hour: int) -> float:
        """Take one request's tokens for ``key``: 0.0, or the seconds until they could be."""
        ...

    def pause_requests(self, key: str, seconds: float) -> None:
        """No replica sends a request with ``key`` for ``seconds``."""
        ...

    # -- outages -------------------------------------------------------------------------------

    def outages(self) -> list[OutageRow]:
        """Every outage under way."""
        ...

    def save_outage(self, outage: OutageRow) -> None:
        """Record an outage, or update it."""
        ...

    def end_outage(self, subject: str) -> None:
        """Forget an outage: it is over."""
        ...
