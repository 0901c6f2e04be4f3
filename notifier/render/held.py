"""The digest that ends a silence or quiet hours: what happened while they held (issue 15).

``While muted (4 h, by alice: 'deploy')`` as its header, then what became of each report —
counted once, by where it ended up: ``3 reports resolved · 1 new · 2 updated`` — then a line
per report (its latest event), most important first. The webhook batch carries the same words
in ``data.held``; the console prints them above the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

from notifier.core.events import Event, EventType
from notifier.core.report import Links
from notifier.render.blocks import SlackMessage, header_block, section
from notifier.render.digest import Events, digest_body
from notifier.render.text import status_text, truncate

_HEADER_CHARS: Final = 150
_TEXT_CHARS: Final = 300


def _outcomes(events: Events) -> dict[tuple[int, str], str]:
    """What became of each report, oldest event first: ``new``, ``removed``, ``status:<s>``
    (it moved) or ``updated``."""
    outcome: dict[tuple[int, str], str] = {}
    for event, _rules in events:
        key = (event.project_id, event.report.id)
        before = outcome.get(key)
        if event.type is EventType.REMOVED:
            outcome[key] = "removed"
        elif event.type is EventType.REMINDER:
            outcome[key] = before or "reminded"
        elif event.type is EventType.NEW or before == "new":
            outcome[key] = "new"
        elif event.type is EventType.STATUS_CHANGED or (before or "").startswith("status:"):
            outcome[key] = "status:" + event.report.status
        else:
            outcome[key] = before or "updated"
    return outcome


def held_summary(events: Events) -> str:
    """``3 reports resolved · 1 new · 2 updated · 1 removed``: each report once."""
    counts = Counter(_outcomes(events).values())
    parts = []
    for outcome, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        noun = "report" if n == 1 else "reports"
        if outcome.startswith("status:"):
            parts.append(f"{n} {noun} {status_text(outcome[7:]).lower()}")
        else:
            parts.append(f"{n} {outcome}")
    return " · ".join(parts)


def latest_per_report(events: Events) -> list[tuple[Event, Sequence[str]]]:
    """Each report's latest event, in the order the reports first appeared."""
    latest: dict[tuple[int, str], tuple[Event, Sequence[str]]] = {}
    for event, rules in events:
        key = (event.project_id, event.report.id)
        latest.pop(key, None)
        latest[key] = (event, rules)
    return list(latest.values())


def held_text(note: str, events: Events) -> str:
    """``While muted (4 h, by alice: 'deploy'): 3 reports resolved · 1 new``."""
    return truncate(f"{note}: {held_summary(events)}", _TEXT_CHARS)


def held_message(note: str, events: Events, links: Links) -> SlackMessage:
    """The Slack digest of what a silence or quiet hours held."""
    head = [header_block(truncate(f"🔕 {note}", _HEADER_CHARS)), section(held_summary(events))]
    return digest_body(head, latest_per_report(events), links, held_text(note, events))
