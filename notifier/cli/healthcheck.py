"""`notifier healthcheck`: exit 0 while the daemon's heartbeat is fresh (Docker, exec probes)."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sub.add_parser(
        "healthcheck",
        parents=[common],
        help="exit 0 while the daemon's heartbeat is fresh (Docker HEALTHCHECK, exec probes)",
    )


def cmd_healthcheck(settings: Settings, out: TextIO) -> int:
    """Whether the daemon using this config's state is alive: its heartbeat file says a cycle
    was attempted within 3 poll intervals, and neither that the daemon stopped nor — where the
    pid means something, as in Docker's HEALTHCHECK and Kubernetes exec probes, which run in
    the daemon's container — that the process which wrote it is gone. One line on stdout says
    why."""
    from notifier.runtime.probes import check_heartbeat, heartbeat_path  # noqa: PLC0415

    verdict = check_heartbeat(heartbeat_path(settings.state), time.time())
    out.write(f"{'healthy' if verdict.ok else 'unhealthy'}: {verdict.reason}\n")
    return EXIT_OK if verdict.ok else EXIT_FAILURE
