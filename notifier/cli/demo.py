"""`notifier demo`: run against a built-in simulated PostHog; needs no config."""

from __future__ import annotations

import argparse

from notifier.cli.shared import Subparsers


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo", parents=[common], help="run against a built-in simulated PostHog; no config"
    )
    demo.add_argument("--cycles", type=int, default=8, help="polling cycles (default 8)")
    demo.add_argument(
        "--interval", type=float, default=2.0, help="seconds between cycles (default 2)"
    )


def cmd_demo(cycles: int, interval: float) -> int:
    """Simulated PostHog, real notifier: see what it does without a config or an API key."""
    from notifier.demo.run import run_demo  # noqa: PLC0415

    return run_demo(cycles=cycles, interval=interval)
