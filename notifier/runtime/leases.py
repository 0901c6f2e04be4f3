"""The replica's share of the work, when replicas share a PostgreSQL state (``state.url``).

Every unit of work — one project's polling (``poll:<id>``), one sink's deliveries
(``deliver:<name>``) — is worked by one replica at a time, through a lease in the database
(``state.leases``). ``LeaseKeeper`` runs a round every ``lease_ttl / 3``: it announces the
replica, computes its share of the units over the replicas alive (``share``: sorted units dealt
round-robin over sorted replicas, so they spread evenly and move back when a replica joins),
releases what is no longer its share, renews what it holds and takes what is free. A unit
counts as held only until two thirds of the lease have passed since it was last renewed, so
a replica that cannot renew (a pause, a partition) stops working it before another may take
it over; and the fencing token on every write (``Fence``) refuses what a late one still tries.
A round that cannot reach the database drops every unit at once (no send it could not
record), makes the replica not ready, and the next good round takes its share again.

With SQLite there is one instance (it holds the file's lock): ``state.leases.SOLE``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from notifier.config.settings import Settings
from notifier.core.errors import LeaseLost, StateError
from notifier.runtime import logs
from notifier.runtime.metrics import Metrics
from notifier.sinks.registry import workspace_of
from notifier.state.base import StateStore
from notifier.state.budget import KeyBudget
from notifier.state.leases import SOLE, Holder
from notifier.state.records import Fence

log = logging.getLogger(__name__)

#: A unit counts as held until this share of the lease has passed since its last renewal.
HELD_FOR: Final = 2 / 3


def replica_id() -> str:
    """This process' name among the replicas: host, pid and a random part (a restarted
    process with a reused pid is a new replica)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def units_of(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The units of work of a configuration — each project's polling, the deliveries of each
    sink, or of the Slack sinks of one workspace together (so that one replica paces their
    posts, one a second per channel, and pauses them all on a 429) — and, for each sink's
    ``deliver:<name>``, the unit it belongs to."""
    groups: dict[Hashable, list[str]] = {}
    for name, sink in settings.sinks.items():
        groups.setdefault(workspace_of(sink) or ("sink", name), []).append(name)
    aliases = {
        f"deliver:{name}": "deliver:" + "+".join(names)
        for names in groups.values()
        for name in names
    }
    polls = [f"poll:{pid}" for pid in settings.posthog.project_ids]
    return polls + sorted(set(aliases.values())), aliases


def share(units: Sequence[str], replicas: Sequence[str], me: str) -> set[str]:
    """The units ``me`` should work: sorted units dealt round-robin over the sorted replicas
    (``me`` counted even when the database does not list it yet)."""
    everyone = sorted(set(replicas) | {me})
    index = everyone.index(me)
    return {unit for i, unit in enumerate(sorted(units)) if i % len(everyone) == index}


@dataclass
class _Held:
    fence: Fence
    until: float  # monotonic: the unit is worked until then without a renewal


class LeaseKeeper:
    """Takes, renews and releases this replica's leases; answers ``holds`` and ``fence``
    (``state.leases.Holder``)."""

    def __init__(
        self,
        store: StateStore,
        units: Sequence[str],
        *,
        ttl: float,
        replica: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """``aliases``: the unit a name asked about belongs to (``deliver:<sink>`` → the
        deliveries of its Slack workspace)."""
        self.replica = replica or replica_id()
        self.units = tuple(units)
        self._aliases = dict(aliases or {})
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._started = time.time()
        self.reachable = False  # whether the last round reached the database
        self.losses = 0  # leases lost (taken over or expired) since start
        self.on_taken: Callable[[], None] = lambda: None  # told after a round took a unit
        # told after every round: the units held, leases lost in it, whether it failed
        self.on_round: Callable[[list[str], int, bool], None] = lambda _h, _l, _f: None

    def holds(self, unit: str) -> bool:
        with self._lock:
            held = self._held.get(self._aliases.get(unit, unit))
            return held is not None and self._clock() < held.until

    def fence(self, unit: str) -> Fence | None:
        unit = self._aliases.get(unit, unit)
        with self._lock:
            held = self._held.get(unit)
            if held is None or self._clock() >= held.until:
                raise LeaseLost(f"{unit}: not held by this replica ({self.replica})")
            return held.fence

    def held(self) -> list[str]:
        """The units held now, sorted."""
        with self._lock:
            now = self._clock()
            return sorted(unit for unit, held in self._held.items() if now < held.until)

    def step(self) -> None:
        """One round: announce, release what is not our share, renew, take what is free."""
        losses = self.losses
        try:
            self._round()
        finally:
            self.on_round(self.held(), self.losses - losses, not self.reachable)

    def _round(self) -> None:
        started = self._clock()
        try:
            self._store.announce(self.replica, self._started, self._ttl)
            mine = share(self.units, self._store.replicas(), self.replica)
            for unit in sorted(set(self._held) - mine):
                self._release(unit)
            taken = [unit for unit in sorted(mine) if self._keep(unit, started)]
        except StateError as exc:
            self._lost_everything(exc)
            return
        if not self.reachable:
            log.info(
                "replica %s: working %s",
                self.replica,
                ", ".join(self.held()) or "nothing (every unit is another replica's)",
                extra={"event": "leases_held", "replica": self.replica},
            )
        self.reachable = True
        if taken:
            self.on_taken()

    def _keep(self, unit: str, started: float) -> bool:
        """Renew ``unit`` or take it; whether it was newly taken."""
        held = self._held.get(unit)
        if held is not None and self._store.renew(held.fence, self._ttl):
            with self._lock:
                held.until = started + self._ttl * HELD_FOR
            return False
        if held is not None:
            self._lost(unit, "its lease expired or was taken over")
        token = self._store.acquire(unit, self.replica, self._ttl)
        if token is not None:
            with self._lock:
                self._held[unit] = _Held(
                    Fence(unit, self.replica, token), started + self._ttl * HELD_FOR
                )
            log.info(
                "replica %s: took %s (token %d)",
                self.replica,
                unit,
                token,
                extra={"event": "lease_taken", "replica": self.replica, "unit": unit},
            )
        return token is not None

    def _release(self, unit: str) -> None:
        with self._lock:
            held = self._held.pop(unit)
        self._store.release(held.fence)
        log.info(
            "replica %s: handed %s over (another replica's share now)",
            self.replica,
            unit,
            extra={"event": "lease_released", "replica": self.replica, "unit": unit},
        )

    def _lost(self, unit: str, why: str) -> None:
        with self._lock:
            self._held.pop(unit, None)
            self.losses += 1
        log.warning(
            "replica %s: lost %s: %s",
            self.replica,
            unit,
            why,
            extra={"event": "lease_lost", "replica": self.replica, "unit": unit},
        )

    def _lost_everything(self, exc: StateError) -> None:
        """The database cannot be reached: stop working every unit at once."""
        with self._lock:
            dropped = sorted(self._held)
            self.losses += len(dropped)
            self._held.clear()
        if self.reachable or dropped:
            log.error(
                "replica %s: the state database cannot be reached; stopped working %s until "
                "it can: %s",
                self.replica,
                ", ".join(dropped) or "nothing",
                exc,
                extra={"event": "leases_dropped", "replica": self.replica},
            )
        self.reachable = False

    def run(self, stop: threading.Event) -> None:
        """Rounds every ``ttl / 3`` until ``stop``; then every lease is released."""
        while not stop.is_set():
            self.step()
            stop.wait(self._ttl / 3)
        self.release_all()

    def release_all(self) -> None:
        """Give every unit up and leave the replicas (a clean stop: the others take over at
        their next round)."""
        try:
            for unit in sorted(self._held):
                self._release(unit)
            self._store.retire(self.replica)
        except StateError:
            pass  # the leases expire by themselves, and the replica drops out


def holder(settings: Settings, store: StateStore, metrics: Metrics) -> Holder:
    """Who says which units this process works: alone on a SQLite file, all of them
    (``SOLE``); on PostgreSQL, a ``LeaseKeeper`` counting its rounds in ``metrics`` and naming
    the replica in every log line."""
    if settings.state.url is None:
        return SOLE
    units, aliases = units_of(settings)
    keeper = LeaseKeeper(store, units, ttl=settings.state.lease_ttl, aliases=aliases)
    keeper.on_round = metrics.lease_round
    logs.set_replica(keeper.replica)
    return keeper


def shared_budget(settings: Settings, store: StateStore) -> KeyBudget | None:
    """On PostgreSQL, the API key's request buckets every replica takes from; else None."""
    if settings.state.url is None:
        return None
    ph = settings.posthog
    key = ph.api_key.get_secret_value()
    return KeyBudget(store, key, ph.requests_per_minute, ph.requests_per_hour)


@contextmanager
def holding(leases: Holder) -> Iterator[None]:
    """Around a one-off run (``once``): take this replica's share first, give it back after."""
    if not isinstance(leases, LeaseKeeper):
        yield
        return
    leases.step()
    try:
        yield
    finally:
        leases.release_all()
