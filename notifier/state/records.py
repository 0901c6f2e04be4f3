"""The records the state database speaks in: snapshot rows, outbox entries, outages, one cycle's
write, a project's remembered state and a living message's reference. Plain frozen dataclasses
and aliases, the same for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

from notifier.core.actions import ReportAction
from notifier.core.events import Event
from notifier.core.outbox import Notice
from notifier.core.reminders import ReminderPlan
from notifier.core.report import Report
from notifier.core.settle import Held

#: ``(channel, ts)`` or ``(channel, ts, shown)``, as a sink reports the living message it keeps
MessageRef: TypeAlias = tuple[str, str] | tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write is made under: ``unit`` ('poll:12345', 'deliver:slack') held by
    ``owner`` with ``token``. A write carrying a fence is refused (``LeaseLost``) unless that
    lease is still the unit's, unexpired — so a replica that lost it (paused, partitioned)
    never commits a cycle or marks a delivery another replica now owns."""

    unit: str
    owner: str
    token: int


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A report as last seen; ``listed`` is False for copies fetched by id (not in listings)."""

    report: Report
    listed: bool


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One (event, sink) delivery and its progress; ``event`` may be the notifier's own notice."""

    id: int
    sink: str
    event: Event | Notice
    rules: tuple[str, ...]
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None
    #: what holds it (``silence:sil_…``, ``quiet:nights``); kept once released
    held_by: str | None = None
    #: the words the digest that releases it opens with ("While muted (4 h, by alice: …)")
    held_note: str | None = None


@dataclass(frozen=True, slots=True)
class OutageRow:
    """A project or sink failing since ``since``; ``alerted``: its failing notice is queued."""

    subject: str  # 'project:4242' or 'sink:slack'
    since: float
    error: str
    hint: str
    alerted: bool


@dataclass(frozen=True, slots=True)
class CycleWrite:
    """Everything one successful cycle changes, committed at once."""

    project_id: int
    upserts: Sequence[SnapshotRow]
    deletes: Sequence[str]
    outbox: Sequence[tuple[Event, str, tuple[str, ...]]]  # (event, sink, rule names)
    now: float
    high_water: str | None = None  # the latest updated_at known (None: keep the stored one)
    full_sync: bool = False  # a full listing: the next one is due full_sync_every from now
    listing: str | None = None  # what the listing asked for (``filter_key``), kept on full_sync
    fence: Fence | None = None  # the project's polling lease (replicas); None: no check
    hold: Sequence[Held] = ()  # re-research held back (core.settle): new or changed holds
    release: Sequence[str] = ()  # report ids whose hold ended
    #: Keys of actions taken from Slack whose move this cycle saw (``Actions.moves_by_action``):
    #: marked absorbed in the same transaction, so the echo is never announced (nor lost).
    absorbed: Sequence[str] = ()
    #: One page of a baseline under way (``cycle.baseline``): its rows are written and the
    #: baseline's start recorded (the first time), but the project is not marked baselined.
    baseline_page: bool = False
    #: Reminders followed, ended and sent (``core.reminders``); their events are in ``outbox``.
    reminders: ReminderPlan | None = None
    #: Every event the cycle found, routed or not (``explain``'s story tells the unrouted too).
    found: Sequence[Event] = ()


@dataclass(frozen=True, slots=True)
class ProjectState:
    """What the store remembers about a project between cycles."""

    baselined: bool  # its first successful cycle is done
    high_water: str | None  # the latest updated_at listed (ISO 8601)
    full_sync_at: float | None  # when its last full listing was committed
    #: A baseline under way (not ``baselined``): when its first attempt began (None: never).
    baseline_started: float | None = None
    #: What its last full listing asked for (``CycleWrite.listing``; None: not known).
    listing: str | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action taken from a Slack card (``core.actions.Click``) and what became of it: who
    (Slack id and name), what, when, the status the card showed, and PostHog's answer.
    ``outcome``: ``pending`` (being written), ``done``, ``refused`` (PostHog said no: a person
    must act) or ``failed`` (PostHog unreachable: a new click tries again)."""

    key: str  # ``Click.key``: one PostHog write per key
    project_id: int
    report_id: str
    action: ReportAction
    shown_status: str
    user_id: str
    user_name: str
    at: float  # when the current attempt was claimed
    outcome: str
    reason: str | None = None  # dismiss
    snooze_for: int | None = None  # snooze
    moves_to: str | None = None  # the status asked for (None: a note)
    status_after: str | None = None  # the status PostHog reported after the write
    detail: str | None = None  # PostHog's answer in words (scrubbed)
    finished_at: float | None = None
    attempts: int = 1  # claims of this key so far (retries after failures, take-overs)
    channel_id: str | None = None
    message_ts: str | None = None
    first_at: float | None = None  # when the key was first clicked


@dataclass(frozen=True, slots=True)
class ActionClaim:
    """``begin_action``'s answer: ``mine`` — this caller must make the PostHog write (and then
    ``finish_action`` with ``record.attempts``); else ``record`` says who did or does it."""

    mine: bool
    record: ActionRecord


class ActionMove(NamedTuple):
    """A move made from Slack whose echo the project's next poll must not announce."""

    key: str
    report_id: str
    status_after: str
