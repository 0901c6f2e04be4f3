"""`notifier run` (the daemon, ``notifier.runtime.service.cmd_run``) and `notifier once` (one
cycle per project, then deliver what is due).

Both hold the SQLite state's lock (``state.lock``) for the life of the process — across
configuration reloads, which cannot change ``state.path`` — taken before the state is opened:
a second `run` or `once` on the same file is refused with exit 2. The lock lives here, at the
process level, not in ``Notifier``: a process runs one notifier at a time (a reload builds the
next after closing the last), while tests build several in one process on one file, and the
commands that read a live state (`outbox`, `dry-run`, …) never take it. Exit 2, not 1: like an
invalid configuration it needs a person (stop one, or give each its own ``state.path``), and the
systemd unit does not restart on 2, so it does not loop on the refusal; Compose and Kubernetes
restart whatever the status, with a growing delay, which covers an old instance still stopping.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from notifier.cli.shared import EXIT_BAD_STATE, EXIT_FAILURE, EXIT_USAGE, Subparsers
from notifier.config.settings import Settings
from notifier.runtime import logs, service
from notifier.runtime.daemon import Notifier
from notifier.runtime.probes import heartbeat_path, mark_stopped
from notifier.state.lock import StateInUseError, StateLock

log = logging.getLogger("notifier")

#: the exit statuses of `run` and `once`, in their --help
EXIT_STATUSES = (
    f"exit status: 0 done (run: stopped by SIGTERM/SIGINT); {EXIT_FAILURE} a failure (once: a "
    f"poll failed or a delivery is dead or still pending); {EXIT_USAGE} an invalid "
    f"configuration; {EXIT_BAD_STATE} the state file is damaged (or emptied while first_run: "
    "notify): restore a backup or move it away; 2 also when another notifier holds the state "
    "file (the message names its pid); restarting alone cannot fix 2 or "
    f"{EXIT_BAD_STATE}, so the systemd unit does not restart on them"
)


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "run",
        parents=[common],
        help="the daemon: poll on schedule and deliver (SIGHUP reloads)",
        epilog=EXIT_STATUSES,
    )
    run.add_argument(
        "--watch-config",
        action="store_true",
        help="also reload the configuration when its file changes",
    )
    once = sub.add_parser(
        "once",
        parents=[common],
        help="one cycle per project, then deliver what is due",
        epilog=EXIT_STATUSES,
    )
    once.add_argument(
        "--max-wait",
        type=float,
        default=30.0,
        help="seconds to wait for retries still due (default 30)",
    )


@contextmanager
def _one_writer(settings: Settings, command: str) -> Iterator[None]:
    """Hold the SQLite state's lock for the block (PostgreSQL needs none: replicas share it)."""
    if settings.state.backend != "sqlite":
        yield
        return
    with StateLock(settings.state.path, command):
        yield


def _refused(exc: StateInUseError) -> int:
    log.error("%s", exc, extra={"event": "state_in_use"})
    return EXIT_USAGE


def cmd_once(settings: Settings, max_wait: float) -> int:
    """One pass; the exit code says whether everything went through."""
    try:
        with _one_writer(settings, "once"):
            notifier = Notifier(settings)
            try:
                return notifier.once(max_wait=max_wait)
            finally:
                notifier.close()
    except StateInUseError as exc:
        return _refused(exc)


def cmd_run(
    settings: Settings,
    path: Path | None = None,
    *,
    watch: bool = False,
    formatter: logs.RedactingFormatter | None = None,
) -> int:
    """The daemon (``service.cmd_run``), holding the state's lock until it exits; a clean stop
    marks the heartbeat stopped, so `notifier healthcheck` fails at once."""
    try:
        with _one_writer(settings, "run"):
            try:
                return service.cmd_run(settings, path, watch=watch, formatter=formatter)
            finally:
                mark_stopped(heartbeat_path(settings.state), time.time())
    except StateInUseError as exc:
        return _refused(exc)
