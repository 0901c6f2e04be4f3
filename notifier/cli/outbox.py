"""`notifier outbox [list|retry]`: show pending and dead entries as a table (and the reports
held back in research, ``poll.settle``), or requeue the dead."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError
from notifier.core.outbox import Notice
from notifier.core.secrets import clip
from notifier.core.times import format_span

if TYPE_CHECKING:
    from notifier.state.base import StateStore
from notifier.state.store import OutboxEntry

_OUTBOX_COLUMNS = (
    ("STATE", 7),
    ("SINK", 16),
    ("EVENT", 16),
    ("REPORT", 46),
    ("AGE", 5),
    ("TRIES", 5),
    ("NEXT TRY", 8),
)


_EXIT_CODES = (
    "exit status: 0 listed (or requeued); 1 no state yet at state.path (or state.url): the "
    "notifier has not run with this config, and nothing was created; or the state cannot be "
    "read; 2 an invalid config or argument. `outbox list` only reads the state."
)


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    outbox = sub.add_parser(
        "outbox",
        parents=[common],
        help="show or retry pending/dead entries",
        description="Show the pending and dead deliveries (list, the default, read-only), or "
        "put the dead ones back in line (retry).",
        epilog=_EXIT_CODES,
    )
    outbox.add_argument("action", nargs="?", choices=["list", "retry"], default="list")
    outbox.add_argument("--sink", help="only this sink")


def cmd_outbox(settings: Settings, action: str, sink: str | None, out: TextIO) -> int:
    """List pending and dead entries (a table, oldest first), or put dead ones back in line.
    The state is opened read-only (``retry`` then opens it to write): a missing one is said,
    not created."""
    from notifier.state.store import StateMissingError, open_store  # noqa: PLC0415

    if action == "retry" and sink is not None and sink not in settings.sinks:
        known = ", ".join(settings.sinks) or "none"
        raise ConfigError([f"outbox retry --sink: unknown sink {sink!r} (defined: {known})"])
    try:
        store = open_store(settings.state, read_only=True)
    except StateMissingError as exc:
        out.write(f"{exc}; nothing to {'retry' if action == 'retry' else 'show'}\n")
        return EXIT_FAILURE
    if action == "retry":
        store.close()
        store = open_store(settings.state)
    try:
        now = time.time()
        if action == "retry":
            _retry(store, settings, sink, now, out)
        else:
            _list(store, settings, sink, now, out)
        return EXIT_OK
    finally:
        store.close()


def _retry(
    store: StateStore, settings: Settings, sink: str | None, now: float, out: TextIO
) -> None:
    """Put the dead entries of ``sink`` (or every configured sink) back in line."""
    sinks = [sink] if sink is not None else list(settings.sinks)
    count = sum(store.retry_dead(now, name) for name in sinks)
    where = f" for sink {sink}" if sink else ""
    out.write(
        f"requeued {count} dead entries{where}; a running notifier sends them within "
        "30 s (or run `notifier once`)\n"
    )


def _list(store: StateStore, settings: Settings, sink: str | None, now: float, out: TextIO) -> None:
    """The table of pending then dead entries, and what to do about orphans and the dead."""
    rows = [*store.entries("pending", sink), *store.entries("dead", sink)]
    if not rows:
        where = f" for sink {sink}" if sink else ""
        out.write(
            f"the outbox is empty{where}: nothing pending, nothing dead (state {store.name})\n"
        )
        _holds(store, sink, out)
        _held(store, settings, now, out)
        return
    pending = sum(e.state == "pending" for e in rows)
    out.write(f"{pending} pending, {len(rows) - pending} dead\n\n")
    out.write(" ".join(f"{name:<{width}}" for name, width in _OUTBOX_COLUMNS) + " LAST ERROR\n")
    head: dict[str, float] = {}  # a sink's entries wait behind its oldest pending one
    for e in rows:
        out.write(_row(e, now, head))
    orphans = sorted({e.sink for e in rows} - set(settings.sinks))
    for name in orphans:
        out.write(
            f"\nsink {name!r} is not in the config: its entries wait until it is defined again\n"
        )
    if pending < len(rows):
        out.write(
            "\ndead entries stay until retried: fix the sink, then "
            "`notifier outbox retry [--sink NAME]`\n"
        )
    _holds(store, sink, out)
    _held(store, settings, now, out)


def _holds(store: StateStore, sink: str | None, out: TextIO) -> None:
    """What silences and quiet hours hold, per hold and sink: sent as one digest each when the
    hold ends by itself (`notifier silence list` shows the silences)."""
    counts: dict[tuple[str, str, str], int] = {}
    for entry in store.held_entries(sink):
        key = (entry.held_by or "?", entry.sink, entry.held_note or "")
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return
    out.write(
        f"\n{sum(counts.values())} held by silences and quiet hours: each sink gets one digest "
        "when its hold ends by itself\n"
    )
    for (held_by, name, note), count in sorted(counts.items()):
        out.write(
            f"  {count:>4} for {_cell(name, 16):<16} {_cell(held_by, 40):<40} {_cell(note, 80)}\n"
        )


def _held(store: StateStore, settings: Settings, now: float, out: TextIO) -> None:
    """Reports held back in research (poll.settle): what moved, since when, and when it is
    announced if it stays there (at the project's first cycle after that)."""
    held = store.held()
    if not held:
        return
    settle = settings.poll.settle
    out.write(
        f"\n{len(held)} held back in research (poll.settle {format_span(settle, 'config')}): "
        "announced when HELD UNTIL passes if still in research; nothing is sent if the report "
        "comes back unchanged\n"
    )
    out.write(f"{'REPORT':<46} {'PROJECT':<8} {'MOVE':<28} {'HELD FOR':<8} HELD UNTIL\n")
    for hold in held:
        title = _cell(hold.latest.title or "untitled", 34)
        move = f"{hold.announced.status} → {hold.latest.status}"
        due = hold.until(settle) - now
        until = "next cycle" if due <= 0 else f"in {format_span(due, 'short')}"
        out.write(
            f"{title + ' (' + hold.report_id[:8] + ')':<46} {hold.project_id:<8} "
            f"{_cell(move, 28):<28} {format_span(now - hold.since, 'short'):<8} {until}\n"
        )


def _row(e: OutboxEntry, now: float, head: dict[str, float]) -> str:
    """One line of the table; ``head`` (a sink's first pending entry's next try) is updated."""
    if isinstance(e.event, Notice):  # the notifier's own notice (self_alerts)
        kind, about = e.event.kind.value, _cell(f"notifier: {e.event.subject}", 46)
    else:
        report = e.event.report
        title = _cell(report.title or "untitled", 34)
        kind, about = e.event.type.value, f"{title} ({report.id[:8]})"
    if e.state == "pending":
        head.setdefault(e.sink, e.next_attempt_at)
    due = max(e.next_attempt_at, head.get(e.sink, 0.0)) - now
    next_try = (
        ("now" if due <= 0 else f"in {format_span(due, 'short')}") if e.state == "pending" else "-"
    )
    cells = (
        e.state,
        _cell(e.sink, 16),
        kind,
        about,
        format_span(now - e.created_at, "short"),
        str(e.attempts),
        next_try,
    )
    line = " ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, _OUTBOX_COLUMNS, strict=True))
    return f"{line} {_cell(e.last_error or '-', 200)}\n"


def _cell(text: str | None, width: int) -> str:
    """One line of printable text (report titles come from PostHog: no terminal escapes),
    cut to ``width`` with an ellipsis; scrubbed of secrets before the cut (a ``last_error``
    written by an older version may quote one) and leaving no beginning of one at the cut."""
    flat = "".join(ch for ch in " ".join((text or "").split()) if ch.isprintable())
    return clip(flat, width)
