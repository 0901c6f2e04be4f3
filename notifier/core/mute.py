"""Muting a report from its Slack card (issue 15): "Mute 4 h" becomes a silence of that report,
``report_id=… project_id=…`` for ``MUTE_FOR``, by the clicker, commented ``muted from Slack``.
A mute is the notifier's own: nothing is written to PostHog. What it holds is kept and sent as
one digest when it ends by itself (``delivery.holds``), as for a silence added by hand. Pure.

The silence's id comes from the click's key (``mute_id``), so a click retried after a failure
finds the silence it made rather than making a second one; and a report already muted (by an
earlier card, or by hand with the same matchers) is not muted twice (``muted_by``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from notifier.core.actions import MUTE_FOR, Click
from notifier.core.silences import Matcher, Silence
from notifier.core.times import format_span

MUTE_COMMENT: Final = "muted from Slack"
#: ``4 h``: how long a mute lasts, in words.
MUTE_SPAN: Final = format_span(MUTE_FOR)


def mute_id(click: Click) -> str:
    """The silence a mute click makes: ``sil_`` and 12 hex digits of its key."""
    return "sil_" + hashlib.sha256(click.key.encode()).hexdigest()[:12]


def mute_matchers(project_id: int, report_id: str) -> tuple[Matcher, ...]:
    """``report_id=… project_id=…``."""
    return (Matcher("report_id", "=", report_id), Matcher("project_id", "=", str(project_id)))


def mute_silence(click: Click, now: float) -> Silence:
    """The silence ``click`` asks for, from ``now`` for ``MUTE_FOR``; its end sends a digest."""
    return Silence(
        id=mute_id(click),
        matchers=mute_matchers(click.project_id, click.report_id),
        starts_at=now,
        ends_at=now + MUTE_FOR,
        author=click.user_name,
        comment=MUTE_COMMENT,
    )


def muted_by(
    silences: Sequence[Silence], project_id: int, report_id: str, now: float
) -> Silence | None:
    """An active silence that mutes exactly this report (every matcher an ``=`` on its
    ``report_id`` or ``project_id``, one on ``report_id``): a second mute would add nothing."""
    values = {"report_id": report_id, "project_id": str(project_id)}
    for silence in silences:
        names = {m.field for m in silence.matchers}
        exact = all(m.op == "=" and values.get(m.field) == m.value for m in silence.matchers)
        if exact and "report_id" in names and silence.active(now):
            return silence
    return None


def undo_words(silence_id: str) -> str:
    """``(silence sil_…); `notifier silence expire sil_…` to undo``."""
    return f"(silence {silence_id}); `notifier silence expire {silence_id}` to undo"


def muted_words(user_name: str, silence_id: str) -> str:
    """What the clicker is told when the card cannot say it (plain mrkdwn, name as given)."""
    return f"Muted for {MUTE_SPAN} by {user_name} {undo_words(silence_id)}."
