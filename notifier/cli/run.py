"""`notifier run` (the daemon, ``notifier.runtime.service.cmd_run``) and `notifier once` (one
cycle per project, then deliver what is due)."""

from __future__ import annotations

import argparse

from notifier.cli.shared import EXIT_BAD_STATE, EXIT_FAILURE, EXIT_USAGE, Subparsers
from notifier.config.settings import Settings
from notifier.runtime.daemon import Notifier

#: the exit statuses of `run` and `once`, in their --help
EXIT_STATUSES = (
    f"exit status: 0 done (run: stopped by SIGTERM/SIGINT); {EXIT_FAILURE} a failure (once: a "
    f"poll failed or a delivery is dead or still pending); {EXIT_USAGE} an invalid "
    f"configuration; {EXIT_BAD_STATE} the state file is damaged (or emptied while first_run: "
    "notify): restore a backup or move it away; restarting alone cannot fix 2 or "
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


def cmd_once(settings: Settings, max_wait: float) -> int:
    """One pass; the exit code says whether everything went through."""
    notifier = Notifier(settings)
    try:
        return notifier.once(max_wait=max_wait)
    finally:
        notifier.close()
