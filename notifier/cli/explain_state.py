"""`notifier explain REPORT_ID`: what the state knows of a report — its snapshot row, its
story (each event found, with the cycle's listing and the rules that routed it; holds by
silences and quiet hours, releases, drops: ``state.story``), what the outbox holds for each
sink and how each delivery went, its living messages with their links, the actions taken on it
from Slack — then its snapshot through today's rules, silences and quiet hours.

The state is opened read-only and never created (like ``notifier outbox``). A report no longer
in the snapshot (removed from PostHog) is still explained by its full id while its story or
outbox entries are kept.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from notifier.cli.explain_rules import event_of, write_explanation, write_holds
from notifier.cli.shared import EXIT_FAILURE, EXIT_OK
from notifier.config.settings import Settings
from notifier.core.events import Event
from notifier.core.report import Report
from notifier.core.secrets import clip
from notifier.render.text import one_line, title_of

if TYPE_CHECKING:
    from notifier.state.base import StateStore
    from notifier.state.records import OutboxEntry
    from notifier.state.story import Chapter

#: The widest a line of state details is printed (titles and errors come from elsewhere).
_WIDTH = 160
#: A living message's link: Slack's permalink form, ``p`` and the ts without its dot. Slack
#: redirects it to the message in the workspace of whoever opens it (no API call needed).
_SLACK_LINK = "https://slack.com/archives/{channel}/p{ts}"


def from_state(
    settings: Settings, wanted: str, kind: str | None, previous: Report | None, out: TextIO
) -> int:
    """What the state knows of the report, then its snapshot through today's rules, silences
    and quiet hours."""
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
        project_id, report_id, report = found
        entries = _entries(store, project_id, report_id)
        _write_state(store, project_id, report_id, report, out)
        _write_story(store, project_id, report_id, out)
        _write_outbox(entries, out)
        _write_living(store, settings, project_id, report_id, out)
        _write_actions(store, project_id, report_id, out)
        copy = report or _latest(entries)
        if copy is None:
            out.write("\nno copy of the report is kept: explain a saved one with --report\n")
            return EXIT_OK
        shown = "its snapshot" if report is not None else "its last copy in the outbox"
        out.write(f"\n── through today's rules ({shown} as the current copy)\n")
        event = event_of(copy, kind, previous, project_id)
        write_explanation(settings, event, out)
        write_holds(settings, event, store, time.time(), out)
        return EXIT_OK
    finally:
        store.close()


def _find(
    store: StateStore, settings: Settings, wanted: str, out: TextIO
) -> tuple[int, str, Report | None] | None:
    """The configured project, id and snapshot of the report whose id is (or starts with)
    ``wanted`` — no snapshot for one removed whose story the state keeps; None, said, when
    there is none or more than one."""
    hits: list[tuple[int, str]] = []
    for project_id in settings.posthog.project_ids:
        index = store.snapshot_index(project_id)
        if wanted in index:
            hits = [(project_id, wanted)]
            break
        hits += [(project_id, rid) for rid in index if rid.startswith(wanted)]
    if len(hits) == 1:
        project_id, report_id = hits[0]
        return project_id, report_id, store.snapshot_rows(project_id, [report_id])[report_id].report
    if not hits:  # gone from the snapshot: its story may remain
        told = {c.project_id for c in store.story(wanted, limit=1)}
        gone = [pid for pid in settings.posthog.project_ids if pid in told]
        if len(gone) == 1:
            return gone[0], wanted, None
    shown = clip(one_line(wanted), 100)
    projects = ", ".join(map(str, settings.posthog.project_ids))
    why = "no report" if not hits else f"{len(hits)} reports"
    out.write(
        f"{why} with an id starting {shown!r} in the state {store.name} (projects "
        f"{projects}); give the full id, as PostHog's URL or `notifier outbox` shows it, or "
        "explain a saved copy with --report FILE.json\n"
    )
    return None


def _write_state(
    store: StateStore, project_id: int, report_id: str, report: Report | None, out: TextIO
) -> None:
    """The snapshot row and the changes held back in research (``poll.settle``)."""
    out.write(f"in the state {store.name}: project {project_id}, report {_cell(report_id)}\n")
    if report is None:
        out.write("  not in the snapshot: removed from PostHog (or forgotten)\n")
    else:
        row = store.snapshot_rows(project_id, [report_id])[report_id]
        listed = "listed" if row.listed else "not in the listings (fetched by id)"
        out.write(
            f"  {clip(title_of(report), 200)}\n"
            f"  status {_cell(report.status)}, version {_cell(report.version)}, {listed}\n"
        )
    for hold in store.held(project_id):
        if hold.report_id == report_id:
            out.write(
                f"  held back in research since {_when(hold.since)}: "
                f"{_cell(hold.announced.status)} → {_cell(hold.latest.status)}\n"
            )


def _write_actions(store: StateStore, project_id: int, report_id: str, out: TextIO) -> None:
    """The actions taken on the report from Slack cards, and PostHog's answers."""
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


def _write_story(store: StateStore, project_id: int, report_id: str, out: TextIO) -> None:
    """The report's chapters in time order: events found, holds, releases, drops."""
    chapters = [c for c in store.story(report_id) if c.project_id == project_id]
    chapters.sort(key=lambda chapter: chapter.at)  # stable: the order written within a moment
    out.write("  story:" + ("" if chapters else " nothing kept (stories are pruned)") + "\n")
    for chapter in chapters:
        out.write(f"    {_when(chapter.at)} {_chapter(chapter)}\n")


def _chapter(chapter: Chapter) -> str:
    """One chapter in words."""
    detail = chapter.detail
    sink = _cell(detail.get("sink", "?"))
    if chapter.kind == "found":
        return _found(detail)
    if chapter.kind == "held":
        return f"held for {sink} by {_holder(detail)}: {_cell(detail.get('note', ''))}"
    if chapter.kind == "released":
        return (
            f"released for {sink}: {_holder(detail)} ended; sent in one digest with what "
            "else it held"
        )
    if chapter.kind == "reminded":
        sinks = ", ".join(map(_cell, detail.get("sinks") or ()))
        return (
            f"reminded ({_cell(detail.get('name', '?'))}, {detail.get('count')} of "
            f"{detail.get('max')}: still {_cell(detail.get('status', '?'))}) → {sinks}"
        )
    if chapter.kind == "dropped":
        return f"dropped for {sink} ({_holder(detail)}): {_cell(detail.get('note', ''))}"
    said = ", ".join(f"{key} {_cell(value)}" for key, value in detail.items())
    return _cell(f"{chapter.kind}: {said}")


def _found(detail: Mapping[str, Any]) -> str:
    """``found status_changed (in_progress → ready; changed: status, title) in a full listing
    (include_all_statuses=true); rules to both → slack, hook``."""
    status = _cell(detail.get("status", "?"))
    moved = f"{_cell(detail['was'])} → {status}" if detail.get("was") else status
    changed = ", ".join(map(str, detail.get("changes") or ()))
    what = f"{moved}; changed: {changed}" if changed else moved
    listing = {"full": "a full listing", "incremental": "an incremental listing"}.get(
        str(detail.get("listing")), "a listing"
    )
    listing = "a baseline page" if detail.get("baseline") else listing
    asked = f" ({detail['filter']})" if detail.get("filter") else ""
    rules = ", ".join(map(str, detail.get("rules") or ()))
    sinks = ", ".join(map(str, detail.get("sinks") or ()))
    routed = f"rules {rules} → {sinks}" if sinks else "matched no rule: sent nowhere"
    said = f"found {detail.get('event')} ({what}) in {listing}{asked}; {routed}"
    return clip(one_line(said), 400)


def _holder(detail: Mapping[str, Any]) -> str:
    """``silence sil_…`` or ``quiet hours (nights)`` from a chapter's ``by``."""
    by = str(detail.get("by", "?"))
    kind, _, name = by.partition(":")
    return _cell({"silence": f"silence {name}", "quiet": f"quiet hours ({name})"}.get(kind, by))


def _entries(store: StateStore, project_id: int, report_id: str) -> list[OutboxEntry]:
    """The report's outbox entries (delivered ones until pruned), by sink then age."""
    entries = store.entries_where(
        "project_id = ? AND report_id = ? ORDER BY sink, created_at, id", (project_id, report_id)
    )
    return [e for e in entries if isinstance(e.event, Event)]


def _write_outbox(entries: list[OutboxEntry], out: TextIO) -> None:
    """Each entry per sink: state (held, and by what; dropped, and why), attempts, last error."""
    out.write("  outbox:" + ("" if entries else " nothing (delivered entries are pruned)") + "\n")
    for entry in entries:
        assert isinstance(entry.event, Event)  # _entries keeps events only
        held = ""
        if entry.held_by is not None:
            verb = "by" if entry.state in ("held", "dropped") else "released from"
            held = f" ({verb} {_cell(entry.held_by)}: {_cell(entry.held_note or '')})"
        if entry.state == "dropped":
            error = f"; {_cell(entry.last_error or 'dropped')}"
        else:
            error = f"; last error: {_cell(entry.last_error)}" if entry.last_error else ""
        out.write(
            f"    {entry.sink}: {entry.event.type.value} {entry.state}{held}, queued "
            f"{_when(entry.created_at)}, {entry.attempts} attempt"
            f"{'' if entry.attempts == 1 else 's'}, rules {', '.join(entry.rules)}{error}\n"
        )


def _write_living(
    store: StateStore, settings: Settings, project_id: int, report_id: str, out: TextIO
) -> None:
    """The living messages each sink keeps about the report, with a Slack message's link."""
    messages = [(sink, store.message(sink, project_id, report_id)) for sink in settings.sinks]
    living = [(sink, found) for sink, found in messages if found is not None]
    out.write("  living messages:" + ("" if living else " none") + "\n")
    for sink, (channel, ts, status) in living:
        shows = f", shows {_cell(status)}" if status else ""
        link = ""
        if settings.sinks[sink].type == "slack":
            link = " → " + _cell(_SLACK_LINK.format(channel=channel, ts=ts.replace(".", "")))
        out.write(f"    {sink}: channel {_cell(channel)}, ts {_cell(ts)}{shows}{link}\n")


def _latest(entries: list[OutboxEntry]) -> Report | None:
    """The newest copy of the report an outbox entry keeps."""
    newest = max(entries, key=lambda entry: entry.created_at, default=None)
    return newest.event.report if newest is not None and isinstance(newest.event, Event) else None


def _cell(text: object) -> str:
    """A value from the state on one printable line, scrubbed and cut."""
    return clip(one_line(str(text)), _WIDTH)


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
