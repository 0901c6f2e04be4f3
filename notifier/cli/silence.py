"""`notifier silence add|list|expire`: mute what matches for a while (issue 15).

``add`` stores a silence in the state (matchers as ``core.silences`` parses them, an end, who
and why) and prints its id and end; ``list`` shows the config's standing silences and the
state's active and recently ended ones with what each held, opening the state read-only (a
missing state is said, never created); ``expire`` ends one by hand. ``silence_lines`` is what
`notifier check` prints of them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Subparsers
from notifier.config.settings import Settings
from notifier.config.types import parse_duration
from notifier.core.errors import StateError
from notifier.core.secrets import clip
from notifier.core.silences import Silence, new_silence_id, parse_matcher
from notifier.core.times import format_span

_COLUMNS = (
    ("ID", 17),
    ("MATCHERS", 36),
    ("ENDS", 14),
    ("BY", 12),
    ("COMMENT", 30),
    ("HELD", 5),
)
_NO_STATE = "no silence added with `notifier silence add` yet"


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    silence = sub.add_parser(
        "silence",
        parents=[common],
        help="mute what matches for a while: add, list, expire",
        description="Silences: events that match every matcher of an active silence are not "
        "delivered. A matcher is field=value, field!=value, field=~regex or field!~regex "
        "(anchored) over report_id, project_id, event, rule, sink, status, title, priority…",
        epilog="exit status: 0 done; 1 an unknown id, or no state yet (list: nothing is "
        "created); 2 an invalid matcher, duration or config.",
    )
    actions = silence.add_subparsers(dest="silence_action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common], help="mute what matches, for a while")
    add.add_argument("matchers", nargs="+", metavar="MATCHER", help="e.g. status=ready")
    add.add_argument("--for", dest="duration", required=True, help="how long: 30m, 4h, 2d")
    add.add_argument("-m", "--comment", required=True, help="why, for whoever reads the list")
    add.add_argument("--author", help="who (default: $USER)")
    add.add_argument(
        "--drop", action="store_true", help="drop what it holds: no digest when it ends"
    )
    actions.add_parser(
        "list", parents=[common], help="active and recently ended silences (read-only)"
    )
    expire = actions.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id", metavar="ID", help="as `notifier silence list` shows it")


def cmd_silence(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """Dispatch ``add``, ``list`` or ``expire``."""
    now = time.time()
    if args.silence_action == "add":
        return _add(settings, args, now, out)
    if args.silence_action == "expire":
        return _expire(settings, args.id, now, out)
    return _list(settings, now, out)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"error: {message}\n")
    return code


def _add(settings: Settings, args: argparse.Namespace, now: float, out: TextIO) -> int:
    from notifier.state.store import open_store  # noqa: PLC0415

    try:
        matchers = tuple(parse_matcher(text) for text in args.matchers)
    except ValueError as exc:
        return _fail(f"silence add: {exc}", EXIT_USAGE)
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        return _fail(f"silence add: --for {args.duration!r}: {exc}", EXIT_USAGE)
    if seconds <= 0:
        return _fail("silence add: --for must be longer than 0s, like 4h", EXIT_USAGE)
    author = args.author or os.environ.get("USER") or _login() or "unknown"
    silence = Silence(
        id=new_silence_id(),
        matchers=matchers,
        starts_at=now,
        ends_at=now + seconds,
        author=author,
        comment=args.comment,
        drop=args.drop,
    )
    store = open_store(settings.state)
    try:
        sid = store.add_silence(silence)
    finally:
        store.close()
    dropped = "; what it holds is dropped" if silence.drop else ""
    out.write(
        f"silence {sid} added: {silence.describe()}\n"
        f"  ends {utc_minute(now + seconds)} (in {format_span(seconds)}){dropped}\n"
    )
    return EXIT_OK


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _expire(settings: Settings, sid: str, now: float, out: TextIO) -> int:
    from notifier.state.store import StateMissingError, open_store  # noqa: PLC0415

    standing = {s.id: i for i, s in enumerate(_config(settings))}
    if sid in standing:
        return _fail(
            f"silence {sid} is written in the config (silences[{standing[sid]}]); remove it "
            "there, then reload the notifier (SIGHUP) to end it",
            EXIT_FAILURE,
        )
    unknown = f"no active silence {sid} (unknown, or already over); `notifier silence list` "
    try:
        open_store(settings.state, read_only=True).close()  # never creates a state
    except StateMissingError:
        return _fail(unknown + "shows them", EXIT_FAILURE)
    store = open_store(settings.state)
    try:
        if not store.expire_silence(sid, now):
            return _fail(unknown + "shows the active ones", EXIT_FAILURE)
    finally:
        store.close()
    out.write(f"silence {sid} expired: nothing it held is sent\n")
    return EXIT_OK


def _config(settings: Settings) -> list[Silence]:
    return [s.silence(i) for i, s in enumerate(settings.silences)]


def _stored(settings: Settings, now: float) -> list[Silence]:
    """The state's active and recently ended silences; ``StateMissingError`` when none."""
    from notifier.state.store import open_store  # noqa: PLC0415

    store = open_store(settings.state, read_only=True)
    try:
        return store.silences(now)
    finally:
        store.close()


def _list(settings: Settings, now: float, out: TextIO) -> int:
    from notifier.state.store import StateMissingError  # noqa: PLC0415

    missing: StateMissingError | None = None
    try:
        stored = _stored(settings, now)
    except StateMissingError as exc:
        missing, stored = exc, []
    rows = _config(settings) + stored
    if rows:
        out.write(" ".join(f"{name:<{width}}" for name, width in _COLUMNS) + " STATE\n")
        for silence in rows:
            out.write(silence_row(silence, now) + "\n")
    if missing is not None:
        out.write(f"{missing}; {_NO_STATE}\n")
        return EXIT_FAILURE
    if not rows:
        out.write("no silence active or ended in the last day\n")
    return EXIT_OK


def silence_row(silence: Silence, now: float) -> str:
    """One line of the table."""
    cells = (
        silence.id,
        clip(silence.matchers_text(), 36),
        _ends(silence, now),
        clip(silence.author, 12),
        clip(silence.comment, 30),
        str(silence.held) if silence.origin == "cli" else "-",
    )
    line = " ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, _COLUMNS, strict=True))
    return f"{line} {silence.state(now)}"


def _ends(silence: Silence, now: float) -> str:
    """``in 3h 12m``, ``ended 20m ago`` or ``never``."""
    end = silence.ended_at
    if end is None:
        return "never"
    return f"in {_span(end - now)}" if end > now else f"ended {_span(now - end)} ago"


def _span(seconds: float) -> str:
    """The two largest units, rounded down: ``3h 12m``, ``2d 4h``, ``20m``, ``0m``."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


def utc_minute(at: float) -> str:
    """``2026-12-04 14:00 UTC``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def silence_lines(settings: Settings, now: float) -> list[str]:
    """`notifier check`'s summary of the active silences: the config's, and the state's when
    it exists (read-only; never created)."""
    from notifier.state.store import StateMissingError  # noqa: PLC0415

    note = ""
    active = _config(settings)
    try:
        active += [s for s in _stored(settings, now) if s.active(now)]
    except StateMissingError:
        pass
    except StateError as exc:
        note = f"  (the state's silences were not read: {exc})"
    lines = [f"Silences {len(active)} active" if active else "Silences none active"]
    for silence in active:
        until = "" if silence.ends_at is None else f", until {utc_minute(silence.ends_at)}"
        lines.append(f"  {silence.id:<18} {clip(silence.describe(), 100)}{until}")
    return lines + ([note] if note else [])
