"""`notifier state migrate --to postgresql://…`: copy the SQLite state of ``state.path`` into
PostgreSQL (``state.migrate``), so that replicas carry on where the single instance stopped.

The password comes from ``--password-file`` or ``$NOTIFIER_STATE_PASSWORD``, never from the
command line (where ``ps`` shows it) nor the URL (which messages show). The SQLite file's lock
(``state.lock``) is held for the whole copy: a notifier still running on it is refused, and none
can start meanwhile. Exit 0 copied (or already there), 2 a usage or configuration problem or a
refusal that needs a person, 1 a failure (a database unreachable).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import Final, TextIO
from urllib.parse import parse_qsl, urlsplit

from pydantic import ValidationError

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Subparsers
from notifier.config.settings import Settings, StateSettings
from notifier.core.errors import ConfigError
from notifier.core.secrets import remember
from notifier.state.dialect import display
from notifier.state.lock import StateInUseError, StateLock
from notifier.state.migrate import Migration, MigrationRefused, copy_state
from notifier.state.store import PostgresStore, Store

log = logging.getLogger("notifier")

#: where the password comes from when no --password-file is given
PASSWORD_ENV: Final = "NOTIFIER_STATE_PASSWORD"  # noqa: S105 - its name
_SOURCE: Final = "notifier state migrate"


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    state = sub.add_parser("state", parents=[common], help="move the state to PostgreSQL")
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate",
        parents=[common],
        help="copy the SQLite state of state.path into PostgreSQL",
        description="Copy the SQLite state of the configuration's state.path (snapshots, "
        "project marks, the outbox with pending, dead and delivered entries, living messages, "
        "outages) into a PostgreSQL database, for replicas. Stop the notifier first. Safe to "
        "run again: nothing is copied twice.",
        epilog=f"exit status: {EXIT_OK} copied; {EXIT_USAGE} a usage or configuration problem, "
        "or refused (a notifier still runs on the file, replicas work the database, or it holds "
        f"another state): the message says what to do; {EXIT_FAILURE} a database failed",
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="postgresql://USER@HOST:PORT/DB",
        help="the database (no password in it)",
    )
    migrate.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"a file holding the password (default: ${PASSWORD_ENV}, if set)",
    )
    migrate.add_argument(
        "--force",
        action="store_true",
        help="replace the snapshots and marks the database already holds for these projects",
    )


def cmd_state(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    """`notifier state migrate`: check the target and source, copy under the file's lock, and
    print what was copied and what to change next."""
    password = _password(args.password_file)
    remember([password])  # scrubbed from every message from here on
    url = _target(args.to)
    path = _source(settings)
    try:
        with StateLock(path, "state migrate"):
            started = time.monotonic()
            migration = _copy(path, url, password, force=args.force)
    except StateInUseError as exc:
        who = exc.holder.describe() if exc.holder is not None else "its pid is not recorded"
        log.error(
            "state database %s is in use by another notifier (%s): stop it first, then run "
            "`notifier state migrate` again (a state still changing cannot be copied whole)",
            path,
            who,
            extra={"event": "state_in_use"},
        )
        return EXIT_USAGE
    except MigrationRefused as exc:
        log.error("%s", exc, extra={"event": "migrate_refused"})
        return EXIT_USAGE
    out.write(_copied(path, url, migration, time.monotonic() - started))
    out.write(_next(settings, url, args.password_file, password))
    return EXIT_OK


def _copy(path: Path, url: str, password: str | None, *, force: bool) -> Migration:
    source = Store(path)
    try:
        target = PostgresStore(url, password=password)
        try:
            return copy_state(source, target, force=force)
        finally:
            target.close()
    finally:
        source.close()


def _password(file: Path | None) -> str | None:
    """The password from ``--password-file`` or ``$NOTIFIER_STATE_PASSWORD`` (None: neither,
    e.g. a server that trusts this host, or libpq's ``~/.pgpass``)."""
    if file is None:
        return os.environ.get(PASSWORD_ENV) or None
    if os.environ.get(PASSWORD_ENV):
        raise ConfigError(
            [f"--password-file and ${PASSWORD_ENV} are both set; keep one"], source=_SOURCE
        )
    try:
        return file.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(
            [f"--password-file {file} cannot be read: {why}; give a readable text file"],
            source=_SOURCE,
        ) from None


def _target(url: str) -> str:
    """``--to`` as ``state.url`` takes it (PostgreSQL's scheme, no password anywhere in it)."""
    try:
        StateSettings(url=url)
    except ValidationError as exc:  # its text quotes the URL: only the reason is shown
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError([f"--to: {reason}"], source=_SOURCE) from None
    try:
        query = parse_qsl(urlsplit(url).query)
    except ValueError:
        query = []
    if any("password" in key.lower() for key, _ in query):
        raise ConfigError(
            [f"--to: holds a password; remove it and use --password-file or ${PASSWORD_ENV}"],
            source=_SOURCE,
        )
    return url


def _source(settings: Settings) -> Path:
    """The SQLite file to copy: the configuration's ``state.path``, which must exist."""
    state = settings.state
    if state.url is not None:
        raise ConfigError(
            [
                f"state.url is set: {settings.source} already uses PostgreSQL "
                f"({display(state.url)}). Run this with the configuration whose state.path "
                "names the SQLite file to copy"
            ],
            source=_SOURCE,
        )
    if not state.path.is_file():
        raise ConfigError(
            [
                f"no SQLite state at {state.path}: nothing to migrate. Check state.path in "
                f"{settings.source}: it must name the file the single instance used"
            ],
            source=_SOURCE,
        )
    return state.path


def _copied(path: Path, url: str, migration: Migration, took: float) -> str:
    """What was copied, table by table."""
    lines = [f"Copied the SQLite state {path} into {display(url)} ({took:.1f}s):"]
    for table in migration.tables:
        line = f"  {table.table:<8} {table.rows:>9,} rows, {table.written:,} written"
        if table.rows and not table.written:
            line += " (already there)"
        if table.table == "outbox":
            states = migration.outbox_states
            line += (
                f": {states.get('pending', 0)} pending, {states.get('dead', 0)} dead, "
                f"{states.get('delivered', 0)} delivered"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def _next(settings: Settings, url: str, password_file: Path | None, password: str | None) -> str:
    """The steps after the copy: the configuration change to make, and what never to do."""
    path = settings.state.path
    secret = ""
    if password_file is not None:
        secret = f"    password_file: {password_file}\n"
    elif password is not None:
        secret = "    password: ${NOTIFIER_DB_PASSWORD}  # or password_file\n"  # noqa: S105
    return (
        "\nNext:\n"
        f"1. Keep the notifier that used {path} stopped: started again, it would send what "
        "the replicas send.\n"
        f"2. In {settings.source}, set\n  state:\n    url: {url}\n{secret}"
        f"instead of\n  state:\n    path: {path}\n"
        '3. Start the replicas with that configuration (docs/operations.md, "Moving to '
        f'PostgreSQL"). Keep {path} as a backup until they run well.\n'
    )
