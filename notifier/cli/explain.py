"""`notifier explain`: which rules an event matches, which do not and why, where it goes, and
whether a silence or quiet hours would hold it there now.

``--report FILE.json`` routes a report saved from PostHog's API (as ``preview`` reads it)
through today's rules, silences and quiet hours: no request, nothing sent; the state's
silences are read when a state exists (read-only, never created), else only the config's
standing ones, and it says so. ``REPORT_ID`` first prints what the state knows of the report —
its snapshot, its story, its outbox entries, its living messages (``cli.explain_state``) — then
routes that snapshot the same way. The verdicts are ``cli.explain_rules``'s.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from notifier.cli.explain_rules import event_of, write_explanation, write_holds
from notifier.cli.explain_state import from_state
from notifier.cli.preview import DEFAULT_EVENT, EVENT_TYPES, read_report
from notifier.cli.shared import EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError, StateError
from notifier.core.events import Event, EventType

if TYPE_CHECKING:
    from notifier.state.base import StateStore

_EXIT_CODES = (
    "exit status: 0 explained (whether or not the event would be sent anywhere); 1 REPORT_ID: "
    "no state yet at state.path (or state.url) — nothing is created — or the state does not "
    "know the report, or cannot be read; 2 an invalid config, argument or report file."
)


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "explain",
        parents=[common],
        help="say which rules match a report, which do not and why; sends nothing",
        description="Route one report through today's rules and print, for each rule, whether "
        "it matches and the sinks it sends to, or the first condition that failed; then where "
        "the event would be sent and whether an active silence or quiet hours would hold it "
        "there now. With REPORT_ID, first what the state knows of that report (read-only): its "
        "story (events found, holds, releases), deliveries and living messages. Sends nothing, "
        "contacts no one but the state.",
        epilog=_EXIT_CODES,
    )
    parser.add_argument(
        "report_id",
        nargs="?",
        metavar="REPORT_ID",
        help="a report the state knows (or the start of its id, as `notifier outbox` shows it)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="one report as PostHog's API returns it: GET /api/projects/<pid>/signals/reports/"
        "<id>/",
    )
    parser.add_argument(
        "--event",
        choices=list(EVENT_TYPES),
        metavar="TYPE",
        help=f"the change to explain: {', '.join(EVENT_TYPES)} (default: {DEFAULT_EVENT}, or "
        "with --previous: status_changed when the status differs, else updated)",
    )
    parser.add_argument(
        "--previous",
        type=Path,
        metavar="FILE.json",
        help="the copy before the change, as PostHog's API returns it (default: a plausible "
        "one, as `notifier preview` makes)",
    )


def cmd_explain(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Explain ``--report FILE`` or, from the state, ``REPORT_ID``."""
    if (args.report is None) == (args.report_id is None):
        raise ConfigError(
            ["explain: give either REPORT_ID (a report the state knows) or --report FILE.json"]
        )
    previous = read_report(args.previous) if args.previous is not None else None
    if previous is not None and args.event == EventType.NEW.value:
        raise ConfigError(["explain --event new: a new report has no previous copy; drop one"])
    if args.report_id is not None:
        return from_state(settings, args.report_id, args.event, previous, out)
    project_id = settings.posthog.project_ids[0]
    event = event_of(read_report(args.report), args.event, previous, project_id)
    if write_explanation(settings, event, out).sinks:
        explain_holds(settings, event, time.time(), out)
    return EXIT_OK


def explain_holds(settings: Settings, event: Event, now: float, out: TextIO) -> None:
    """What would hold the hypothetical event now: the state's silences when a state exists
    (read-only), else the config's standing ones only, said."""
    store, unread = _silences_store(settings)
    try:
        write_holds(settings, event, store, now, out, unread=unread)
    finally:
        store.close()


def _silences_store(settings: Settings) -> tuple[StateStore, str | None]:
    """The state, read-only; or an empty one in memory and why the state was not read."""
    from notifier.state.store import StateMissingError, empty_store, open_store  # noqa: PLC0415

    try:
        return open_store(settings.state, read_only=True), None
    except StateMissingError as exc:
        return empty_store(), str(exc)
    except StateError as exc:
        return empty_store(), f"it cannot be read: {exc}"
