"""A move made from a Slack card comes back in the next listing as a ``status_changed`` event:
its echo. The card already shows it (``interact``), so the echo is absorbed — recorded in the
snapshot like any change, routed to no sink — and the move marked absorbed in the cycle's own
transaction, so it is neither announced twice nor lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.core.events import Event, EventType
from notifier.state.base import StateStore


def absorb_echoes(
    store: StateStore, project_id: int, events: Sequence[Event]
) -> tuple[list[Event], list[str]]:
    """The events left to route, and the keys of the moves whose echo this cycle saw. Asks the
    state only when the cycle has a status change."""
    if not any(e.type is EventType.STATUS_CHANGED for e in events):
        return list(events), []
    moves = {(m.report_id, m.status_after): m.key for m in store.moves_by_action(project_id)}
    if not moves:
        return list(events), []
    kept: list[Event] = []
    absorbed: list[str] = []
    for event in events:
        key = moves.get((event.report.id, event.report.status))
        if event.type is EventType.STATUS_CHANGED and key is not None:
            absorbed.append(key)
        else:
            kept.append(event)
    return kept, absorbed
