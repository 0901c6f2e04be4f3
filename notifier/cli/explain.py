"""`notifier explain`: which rules an event matches, which do not and why, and where it goes.

``--report FILE.json`` routes a report saved from PostHog's API (as ``preview`` reads it)
through today's rules: no state, no request, nothing sent. ``REPORT_ID`` first prints what
the state knows of the report today — its snapshot row, what it holds in the outbox for each
sink, its living messages, the actions taken on it from Slack — then routes that snapshot the
same way. The state is opened read-only and never created (like ``notifier outbox``). The
verdicts come from ``core.explain``, built on the code routing runs.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from notifier.cli.preview import DEFAULT_EVENT, EVENT_TYPES, derive_event, read_report
from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.diff import compare
from notifier.core.errors import ConfigError
from notifier.core.events import Event, EventType
from notifier.core.explain import Explanation, explain
from notifier.core.report import Report
from notifier.core.secrets import clip
from notifier.render.text import describe_changes, one_line, title_of

if TYPE_CHECKING:
    from notifier.state.base import StateStore

_EXIT_CODES = (
    "exit status: 0 explained (whether or not the event would be sent anywhere); 1 REPORT_ID: "
    "no state yet at state.path (or state.url) — nothing is created — or the state does not "
    "know the report, or cannot be read; 2 an invalid config, argument or report file."
)
#: The widest a line of state details is printed (titles and errors come from elsewhere).
_WIDTH = 160


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "explain",
        parents=[common],
        help="say which rules match a report, which do not and why; sends nothing",
        description="Route one report through today's rules and print, for each rule, whether "
        "it matches and the sinks it sends to, or the first condition that failed; then where "
        "the event would be sent. With REPORT_ID, first what the state knows of that report "
        "(read-only). Sends nothing, contacts no one.",
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
    if args.report is not None:
        project_id = settings.posthog.project_ids[0]
        event = _event(read_report(args.report), args.event, previous, project_id)
        write_explanation(settings, event, out)
        return EXIT_OK
    return _from_state(settings, args.report_id, args.event, previous, out)


def _event(report: Report, kind: str | None, previous: Report | None, project_id: int) -> Event:
    """The event to explain: of ``kind`` with ``previous`` when given, else a plausible one."""
    if previous is None:
        return derive_event(report, EventType(kind or DEFAULT_EVENT), project_id)
    if kind is None:
        changed = previous.status != report.status
        kind = (EventType.STATUS_CHANGED if changed else EventType.UPDATED).value
    return Event.create(EventType(kind), project_id, report, previous, compare(previous, report))


def write_explanation(settings: Settings, event: Event, out: TextIO) -> Explanation:
    """The event, then one block per rule and where it would be sent."""
    found = explain(event, settings.rules)
    report_id = one_line(event.report.id)[:100]
    out.write(
        f"{event.type.value} event, project {event.project_id}, report {report_id}: "
        f"{clip(title_of(event.report), 200)}\n"
    )
    if event.changes:
        out.write(f"  changes: {clip(one_line(describe_changes(event.changes)), 300)}\n")
    out.write("\n")
    if not found.verdicts:
        out.write("no rules are configured\n")
    for verdict in found.verdicts:
        if verdict.hidden_by is not None:
            mark, head = "·", f"not seen: rule {verdict.hidden_by!r} stopped the event"
            what = "would match" if verdict.matched else f"would not match: {verdict.failed}"
            out.write(f"{mark} {verdict.rule}\n    {head} (on its own it {_line(what)})\n")
        elif verdict.matched:
            out.write(f"✓ {verdict.rule}\n    matched → {', '.join(verdict.sinks)}\n")
            if verdict.stop:
                out.write("    stop: the rules after this one do not see the event\n")
        else:
            out.write(f"✗ {verdict.rule}\n    {_line(verdict.failed or '')}\n")
    where = ", ".join(found.sinks) if found.sinks else ""
    out.write(f"\n→ would be sent to: {where}\n" if where else "\n→ would be sent nowhere\n")
    return found


def _line(text: str) -> str:
    """Text built from a report's values, on one printable line, cut to a readable length."""
    return clip(one_line(text), 400)


def _from_state(
    settings: Settings, wanted: str, kind: str | None, previous: Report | None, out: TextIO
) -> int:
    """What the state knows of the report, then its snapshot through today's rules."""
    from notifier.state.store import StateMissingError, open_store  # noqa: PLC0415

    try:
        store = open_store(settings.state, read_only=True)
    except StateMissingError as exc:
        out.write(f"{exc}; nothing to explain (try --report FILE.json)\n")
        return EXIT_FAILURE
    try:
        found = _find(store, settings, wanted, out)
        if found is None:
            return EXIT_FAILURE
        project_id, row_report = found
        _write_state(store, settings, project_id, row_report.id, out)
        out.write("\n── through today's rules (its snapshot as the current copy)\n")
        write_explanation(settings, _event(row_report, kind, previous, project_id), out)
        return EXIT_OK
    finally:
        store.close()


def _find(
    store: StateStore, settings: Settings, wanted: str, out: TextIO
) -> tuple[int, Report] | None:
    """The configured project and snapshot of the report whose id is (or starts with)
    ``wanted``; None, said, when there is none or more than one."""
    hits: list[tuple[int, str]] = []
    for project_id in settings.posthog.project_ids:
        index = store.snapshot_index(project_id)
        if wanted in index:
            hits = [(project_id, wanted)]
            break
        hits += [(project_id, rid) for rid in index if rid.startswith(wanted)]
    shown = clip(one_line(wanted), 100)
    if len(hits) != 1:
        projects = ", ".join(map(str, settings.posthog.project_ids))
        why = "no report" if not hits else f"{len(hits)} reports"
        out.write(
            f"{why} with an id starting {shown!r} in the state {store.name} (projects "
            f"{projects}); give the full id, as PostHog's URL or `notifier outbox` shows it, or "
            "explain a saved copy with --report FILE.json\n"
        )
        return None
    project_id, report_id = hits[0]
    rows = store.snapshot_rows(project_id, [report_id])
    return project_id, rows[report_id].report


def _write_state(
    store: StateStore, settings: Settings, project_id: int, report_id: str, out: TextIO
) -> None:
    """The snapshot row, held changes, outbox entries, living messages and Slack actions."""
    row = store.snapshot_rows(project_id, [report_id])[report_id]
    report = row.report
    listed = "listed" if row.listed else "not in the listings (fetched by id)"
    out.write(
        f"in the state {store.name}: project {project_id}, report {clip(one_line(report.id), 100)}"
        f"\n  {clip(title_of(report), 200)}\n"
        f"  status {_cell(report.status)}, version {_cell(report.version)}, {listed}\n"
    )
    for hold in store.held(project_id):
        if hold.report_id == report_id:
            out.write(
                f"  held back in research since {_when(hold.since)}: "
                f"{_cell(hold.announced.status)} → {_cell(hold.latest.status)}\n"
            )
    _write_outbox(store, report_id, project_id, out)
    messages = [(sink, store.message(sink, project_id, report_id)) for sink in settings.sinks]
    living = [(sink, found) for sink, found in messages if found is not None]
    out.write("  living messages:" + ("" if living else " none") + "\n")
    for sink, (channel, ts, status) in living:
        shows = f", shows {_cell(status)}" if status else ""
        out.write(f"    {sink}: channel {_cell(channel)}, ts {_cell(ts)}{shows}\n")
    actions = store.actions(project_id=project_id, report_id=report_id, limit=20)
    out.write("  actions from Slack:" + ("" if actions else " none") + "\n")
    for action in actions:
        result = f" → {_cell(action.status_after)}" if action.status_after else ""
        out.write(
            f"    {_when(action.at)} {_cell(action.user_name)} {action.action.value}: "
            f"{action.outcome}{result}"
            + (f" ({_cell(action.detail)})" if action.detail else "")
            + "\n"
        )


def _write_outbox(store: StateStore, report_id: str, project_id: int, out: TextIO) -> None:
    """The report's outbox entries per sink: state, attempts and the last error."""
    entries = [
        entry
        for state in ("pending", "dead", "delivered")
        for entry in store.entries(state)
        if isinstance(entry.event, Event)
        and entry.event.report.id == report_id
        and entry.event.project_id == project_id
    ]
    entries.sort(key=lambda entry: (entry.sink, entry.created_at))
    out.write("  outbox:" + ("" if entries else " nothing (delivered entries are pruned)") + "\n")
    for entry in entries:
        assert isinstance(entry.event, Event)  # filtered above
        error = f"; last error: {_cell(entry.last_error)}" if entry.last_error else ""
        out.write(
            f"    {entry.sink}: {entry.event.type.value} {entry.state}, queued "
            f"{_when(entry.created_at)}, {entry.attempts} attempt"
            f"{'' if entry.attempts == 1 else 's'}, rules {', '.join(entry.rules)}{error}\n"
        )


def _cell(text: object) -> str:
    """A value from the state on one printable line, scrubbed and cut."""
    return clip(one_line(str(text)), _WIDTH)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
