"""`notifier run` (the daemon, ``notifier.runtime.service.cmd_run``) and `notifier once` (one
cycle per project, then deliver what is due)."""

from __future__ import annotations

import argparse

from notifier.cli.shared import Subparsers
from notifier.config.settings import Settings
from notifier.runtime.daemon import Notifier


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "run", parents=[common], help="the daemon: poll on schedule and deliver (SIGHUP reloads)"
    )
    run.add_argument(
        "--watch-config",
        action="store_true",
        help="also reload the configuration when its file changes",
    )
    once = sub.add_parser(
        "once", parents=[common], help="one cycle per project, then deliver what is due"
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
