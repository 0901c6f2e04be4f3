"""What keeps an outbox entry from going out now: a silence or quiet hours (issue 15).

Before a sink's due entries are sent, ``Holds.screen`` looks at each event (never at the
notifier's own notices, nor at an event showing a decision taken on the card: a person who
clicks sees the card answer): an active silence that matches it (the state's, or a standing one
from the config) holds it, or drops it when the silence says ``drop``; otherwise the quiet
hours of its sink or of every rule that routed it hold it (or drop it: ``on_mute: drop``).
Held entries wait in the state (``state.holds``) — a restart keeps them.

``Holds.release`` ends holds at the start of each drain pass: a silence that ended by itself
(or that no longer exists) releases its entries, which go out together as one digest that says
what happened meanwhile; one expired by hand drops them; quiet hours release an entry as soon
as neither its sink nor its rules are muted any more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from notifier.config.settings import Settings
from notifier.core.events import Event
from notifier.core.silences import Silence
from notifier.core.times import format_span
from notifier.delivery.quiet import Hush, QuietCheck, quiet_hours
from notifier.state.base import StateStore
from notifier.state.holds import SILENCE_PREFIX, silence_of
from notifier.state.records import Fence, OutboxEntry

log = logging.getLogger(__name__)

#: ``held_by`` of quiet hours: this prefix and the reason (``quiet:nights``).
QUIET_PREFIX: Final = "quiet:"


def _never(_entry: OutboxEntry, _now: float) -> Hush | None:
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    """An entry is held (or dropped) by ``held_by``; the digest will open with ``note``."""

    held_by: str
    note: str
    drop: bool


def silence_note(silence: Silence) -> str:
    """``While muted (4 h, by alice: 'deploy')``."""
    if silence.ends_at is None:
        return f"While muted ({silence.author}: {silence.comment!r})"
    span = format_span(silence.ends_at - silence.starts_at)
    return f"While muted ({span}, by {silence.author}: {silence.comment!r})"


def quiet_note(reason: str) -> str:
    """``During quiet hours (nights)``."""
    return f"During quiet hours ({reason})"


def _exempt(entry: OutboxEntry) -> bool:
    """Notices always go; so does an event showing a decision taken on the card."""
    return (
        not isinstance(entry.event, Event) or bool(entry.event.acted) or entry.held_by is not None
    )


class Holds:
    """Decides and records what silences and quiet hours hold back, and when they let go."""

    def __init__(
        self,
        store: StateStore,
        *,
        standing: Sequence[Silence] = (),
        quiet: QuietCheck = _never,
    ) -> None:
        self._store = store
        self._standing = tuple(standing)
        self._quiet = quiet
        # per sink: when its quiet holds can next end (a read of its held entries is skipped
        # before then); forgotten on restart, when the first pass looks again
        self._quiet_until: dict[tuple[str, str], float] = {}

    def verdict(self, entry: OutboxEntry, active: Sequence[Silence], now: float) -> Verdict | None:
        """What holds ``entry`` now, among the ``active`` silences and quiet hours."""
        if _exempt(entry):
            return None
        assert isinstance(entry.event, Event)
        for silence in active:
            if silence.matches(entry.event, entry.rules, entry.sink):
                return Verdict(SILENCE_PREFIX + silence.id, silence_note(silence), silence.drop)
        hush = self._quiet(entry, now)
        if hush is not None:
            return Verdict(QUIET_PREFIX + hush.reason, quiet_note(hush.reason), hush.drop)
        return None

    def active(self, now: float) -> list[Silence]:
        """The silences holding now: the state's (one read) and the config's."""
        kept = [s for s in self._store.silences(now, recent=0.0) if s.active(now)]
        return [*kept, *self._standing]

    def screen(
        self, sink: str, entries: Sequence[OutboxEntry], now: float, fence: Fence | None
    ) -> int:
        """Hold (or drop) what silences and quiet hours hold among ``entries``; returns how
        many were taken out of line."""
        candidates = [e for e in entries if not _exempt(e) and e.next_attempt_at <= now]
        if not candidates:
            return 0
        active = self.active(now)
        verdicts: dict[Verdict, list[OutboxEntry]] = {}
        for entry in candidates:
            verdict = self.verdict(entry, active, now)
            if verdict is not None:
                verdicts.setdefault(verdict, []).append(entry)
        for verdict, held in verdicts.items():
            self._store.hold(
                held, verdict.held_by, verdict.note, now, drop=verdict.drop, fence=fence
            )
            log.info(
                "%s %d event(s) for %s: %s",
                "dropped" if verdict.drop else "holding",
                len(held),
                sink,
                verdict.note,
                extra={"event": "held", "sink": sink, "held_by": verdict.held_by},
            )
        return sum(map(len, verdicts.values()))

    def release(self, sink: str, now: float, fence: Fence | None) -> int:
        """End the sink's holds that are over; returns how many entries were let go."""
        let_go = 0
        for held_by in self._store.held_keys(sink):
            silence_id = silence_of(held_by)
            if silence_id is not None:
                let_go += self._end_silence(sink, held_by, silence_id, now, fence)
            elif now >= self._quiet_until.get((sink, held_by), 0.0):
                let_go += self._end_quiet(sink, held_by, now, fence)
        return let_go

    def _end_silence(
        self, sink: str, held_by: str, silence_id: str, now: float, fence: Fence | None
    ) -> int:
        silence = self._store.silence(silence_id)
        if silence is not None and silence.active(now):
            return 0
        by_hand = silence is not None and silence.expired_at is not None
        reason = f"silence {silence_id} was expired by hand" if by_hand else None
        count = self._store.end_hold(sink, held_by, now, drop_reason=reason, fence=fence)
        log.info(
            "%s %d held event(s) for %s: silence %s %s",
            "dropped" if by_hand else "releasing",
            count,
            sink,
            silence_id,
            "was expired by hand" if by_hand else "has ended",
            extra={"event": "hold_ended", "sink": sink, "held_by": held_by},
        )
        return count

    def _end_quiet(self, sink: str, held_by: str, now: float, fence: Fence | None) -> int:
        entries = self._store.held_entries(sink, held_by)
        over = [e for e in entries if self._quiet(e, now) is None]
        if len(over) < len(entries):
            self._quiet_until[(sink, held_by)] = now + 60.0  # look again in a minute
        if not over:
            return 0
        count = self._store.end_hold(sink, held_by, now, fence=fence, only=over)
        log.info(
            "releasing %d held event(s) for %s: %s are over",
            count,
            sink,
            held_by.removeprefix(QUIET_PREFIX),
            extra={"event": "hold_ended", "sink": sink, "held_by": held_by},
        )
        return count


def holds_of(settings: Settings, store: StateStore) -> Holds:
    """The holds the configuration asks for: the state's silences, the config's standing
    ones, and the sinks' and rules' quiet hours."""
    standing = [silence.silence(i) for i, silence in enumerate(settings.silences)]
    return Holds(store, standing=standing, quiet=quiet_hours(settings) or _never)
