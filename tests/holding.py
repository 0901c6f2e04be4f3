"""What the tests of silences and quiet hours share: a recording sink, a clock they move by
hand, and events queued as a cycle would."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.config.settings import DeliverySettings
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.state.store import CycleWrite, PostgresStore, Store
from tests.factories import report

AnyStore = Store | PostgresStore
T0 = 1000.0
SETTINGS = DeliverySettings(give_up_after=3600, backoff_initial=10, backoff_max=100)


class Recorder:
    """A sink that takes single events and digests; records what reached it."""

    digest_after = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.singles: list[str] = []
        self.digests: list[tuple[str | None, list[str]]] = []

    def send(self, delivery: Delivery) -> None:
        event = delivery.event
        self.singles.append(event.report.id if isinstance(event, Event) else event.kind.value)

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        ids = [d.event.report.id for d in deliveries if isinstance(d.event, Event)]
        self.digests.append((deliveries[0].held, ids))

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def event(rid: str, kind: EventType = EventType.NEW, **fields: object) -> Event:
    previous = report(id=rid, status="in_progress") if kind is EventType.STATUS_CHANGED else None
    changes = {"status": ("in_progress", fields.get("status"))} if previous else {}
    return Event.create(kind, 1, report(id=rid, **fields), previous, changes)


def queue(
    store: AnyStore, *items: tuple[Event, str], now: float = T0, rules: Sequence[str] = ("all",)
) -> None:
    store.commit_cycle(CycleWrite(1, [], [], [(e, s, tuple(rules)) for e, s in items], now=now))
