"""A "Mute 4 h" click carried out (issue 15): a silence of the report in the state — ours, so
nothing is written to PostHog. The claim of the click's key (``StateStore.begin_action``) is
made by the handler as for every action; this makes the silence once: its id comes from the
key (``core.mute.mute_id``), so a click that takes over a failed or abandoned attempt finds the
silence already made, and a report an active silence already mutes exactly is not muted twice
(a card clicked again in the next window, a second card, a silence added by hand).
"""

from __future__ import annotations

from dataclasses import dataclass

from notifier.core.actions import Click
from notifier.core.mute import MUTE_SPAN, mute_id, mute_silence, muted_by, undo_words
from notifier.core.silences import Silence
from notifier.state.base import StateStore


@dataclass(frozen=True, slots=True)
class Muted:
    """The silence muting the report; ``made``: by this click (else it was already muted)."""

    silence: Silence
    made: bool

    def detail(self) -> str:
        """The action's record (``notifier actions``): the silence, by id."""
        if self.made:
            return f"silence {self.silence.id} for {MUTE_SPAN}"
        return f"already muted by silence {self.silence.id}"

    def already(self) -> str:
        """What the clicker is told when the report was already muted."""
        return f"Already muted by {self.silence.author} {undo_words(self.silence.id)}."


def mute(store: StateStore, click: Click, now: float) -> Muted:
    """Mute the clicked report from ``now``; ``StateError`` when the state cannot read or
    record it (nothing new muted: a later click of the same key finds what was made)."""
    made = store.silence(mute_id(click))
    if made is not None:
        return Muted(made, made=True)
    active = store.silences(now, recent=0.0)
    other = muted_by(active, click.project_id, click.report_id, now)
    if other is not None:
        return Muted(other, made=False)
    silence = mute_silence(click, now)
    store.add_silence(silence)
    return Muted(silence, made=True)
