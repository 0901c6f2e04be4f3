"""`notifier actions [--report ID]`: the decisions taken from Slack cards, newest first — who,
what, when, on which report, and what PostHog answered. Read-only."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.actions import DISMISS_REASONS
from notifier.core.secrets import clip
from notifier.state.records import ActionRecord

_COLUMNS = (("WHEN (UTC)", 17), ("WHO", 16), ("ACTION", 22), ("REPORT", 38), ("OUTCOME", 9))


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    actions = sub.add_parser(
        "actions",
        parents=[common],
        help="list the decisions taken from Slack cards",
        description="The actions taken from Slack cards (acknowledge, dismiss, snooze, resolve, "
        "reopen), newest first: who, what, when, the report, and PostHog's answer. Only reads "
        "the state.",
        epilog="exit status: 0 listed; 1 no state yet (nothing is created); 2 an invalid config.",
    )
    actions.add_argument("--report", metavar="ID", help="only this report")
    actions.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")


def cmd_actions(settings: Settings, report: str | None, limit: int, out: TextIO) -> int:
    """Print the recorded actions as a table, newest first."""
    from notifier.state.store import StateMissingError, open_store  # noqa: PLC0415

    try:
        store = open_store(settings.state, read_only=True)
    except StateMissingError as exc:
        out.write(f"{exc}; no actions to show\n")
        return EXIT_FAILURE
    try:
        rows = store.actions(report_id=report, limit=max(1, limit))
    finally:
        store.close()
    if not rows:
        where = f" on report {report}" if report else ""
        out.write(f"no action taken from Slack{where} yet\n")
        return EXIT_OK
    out.write(" ".join(f"{name:<{width}}" for name, width in _COLUMNS) + " DETAIL\n")
    for row in rows:
        out.write(action_row(row) + "\n")
    return EXIT_OK


def action_row(row: ActionRecord) -> str:
    """One line of the table."""
    when = datetime.fromtimestamp(row.at, UTC).strftime("%Y-%m-%d %H:%M")
    cells = (when, clip(row.user_name, 16), describe(row), row.report_id, row.outcome)
    line = " ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True))
    return f"{line} {clip(row.detail or '', 120)}"


def describe(row: ActionRecord) -> str:
    """``dismiss (Not relevant)``, ``snooze (50 signals)``, ``resolve``."""
    if row.reason:
        return clip(f"{row.action.value} ({DISMISS_REASONS.get(row.reason, row.reason)})", 22)
    if row.snooze_for:
        return f"snooze ({row.snooze_for} signals)"
    return row.action.value
