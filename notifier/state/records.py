"""The records the state database speaks in: snapshot rows, outbox entries, outages, one cycle's
write, a project's remembered state and a living message's reference. Plain frozen dataclasses
and aliases, the same for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from notifier.core.events import Event
from notifier.core.outbox import Notice
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
    #: One page of a baseline under way (``cycle.baseline``): its rows are written and the
    #: baseline's start recorded (the first time), but the project is not marked baselined.
    baseline_page: bool = False


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
