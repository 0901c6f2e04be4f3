"""Quiet hours at delivery time: whether a sink's or a rule's ``mute_during`` /
``active_during`` holds an outbox entry now (``core.intervals`` does the calendar).

The sink comes first: a muted sink holds everything it would receive. Otherwise an event is held
only when EVERY rule that routed it to this sink is muted — one rule still awake wants it
delivered. It is dropped rather than held when the quiet hours that mute it say
``on_mute: drop`` (for rules: all of the muted rules say so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from notifier.config.settings import Settings
from notifier.core.intervals import Quiet, TimeInterval
from notifier.state.records import OutboxEntry


@dataclass(frozen=True, slots=True)
class Hush:
    """Quiet hours holding an entry: why (``nights``, ``outside workhours``) and whether the
    sink or rule says ``on_mute: drop``."""

    reason: str
    drop: bool = False


#: Quiet hours for an entry at a moment: the ``Hush`` that holds it, or None.
QuietCheck = Callable[[OutboxEntry, float], "Hush | None"]


class QuietHours:
    """The configuration's quiet hours, asked entry by entry (a ``QuietCheck``)."""

    def __init__(
        self,
        sinks: Mapping[str, Quiet],
        rules: Mapping[str, Quiet],
        intervals: Mapping[str, TimeInterval],
    ) -> None:
        self._sinks = {name: quiet for name, quiet in sinks.items() if quiet}
        self._rules = {name: quiet for name, quiet in rules.items() if quiet}
        self._intervals = intervals

    def __bool__(self) -> bool:
        return bool(self._sinks or self._rules)

    def __call__(self, entry: OutboxEntry, now: float) -> Hush | None:
        sink = self._sinks.get(entry.sink)
        if sink is not None:
            reason = sink.muted_by(now, self._intervals)
            if reason is not None:
                return Hush(reason, drop=sink.on_mute == "drop")
        if not entry.rules:
            return None
        hushes: list[Hush] = []
        for name in entry.rules:
            rule = self._rules.get(name)
            reason = None if rule is None else rule.muted_by(now, self._intervals)
            if rule is None or reason is None:
                return None
            hushes.append(Hush(reason, drop=rule.on_mute == "drop"))
        return Hush(hushes[0].reason, drop=all(h.drop for h in hushes))


def quiet_hours(settings: Settings) -> QuietCheck | None:
    """The quiet hours the configuration sets, or None when no sink or rule has any."""
    check = QuietHours(
        {name: sink.quiet() for name, sink in settings.sinks.items()},
        {rule.name: rule.quiet() for rule in settings.rules},
        settings.intervals(),
    )
    return check if check else None
