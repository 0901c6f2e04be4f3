"""`notifier simulate`: the simulated PostHog (today's API, V6) served on its own until Ctrl-C or
SIGTERM, its reports changing like the demo's, for a `notifier run -c` (or anything else)
pointed at it. It prints the host, key and project ids to put in a config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Final, TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.core.words import counted
from notifier.demo.simulator import DemoStory, FakePostHog

#: the key the simulator accepts (not a secret: it opens nothing but the simulator)
API_KEY: Final = "phx_simulated_posthog_key"
#: the seed of the first project's story, as the demo's
SEED: Final = 7


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    simulate = sub.add_parser(
        "simulate",
        parents=[common],
        help="serve a simulated PostHog on 127.0.0.1 until Ctrl-C, to point a config at",
    )
    simulate.add_argument(
        "--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0: a free one)"
    )
    simulate.add_argument(
        "--projects",
        type=int,
        nargs="+",
        default=[1],
        metavar="ID",
        help="project ids to simulate (default 1)",
    )
    simulate.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="seconds between two changes of the story (default 10)",
    )


def cmd_simulate(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Serve until SIGINT or SIGTERM; 0 then, 1 when the port cannot be bound."""
    stream = out or sys.stdout
    sim = FakePostHog(api_version=6, api_key=API_KEY, projects=args.projects)
    sim.listen_port = args.port
    stories = [DemoStory(sim, pid, seed=SEED + i) for i, pid in enumerate(args.projects)]
    for story in stories:
        story.seed_reports()
    try:
        sim.start()
    except OSError as exc:
        sys.stderr.write(
            f"error: cannot serve on 127.0.0.1:{args.port} ({exc.strerror or exc}); another "
            "program may use the port: pick another with --port, or --port 0 for a free one\n"
        )
        return EXIT_FAILURE
    stop = threading.Event()

    def stopping(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, stopping) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        _introduce(sim, args, stream)
        while not stop.wait(args.interval):
            for story in stories:
                _say(stream, f"   PostHog meanwhile (project {story.project_id}): {story.step()}")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sim.stop()
    _say(stream, "simulated PostHog stopped.")
    return EXIT_OK


def _introduce(sim: FakePostHog, args: argparse.Namespace, out: TextIO) -> None:
    ids = ", ".join(map(str, args.projects))
    reports = sum(len(sim.reports(pid)) for pid in args.projects)
    _say(
        out,
        f"notifier simulate: a simulated PostHog (API V6, as PostHog today) at {sim.url}, "
        f"{counted(reports, 'report')} in {'project' if len(args.projects) == 1 else 'projects'} "
        f"{ids}; a change every {args.interval:g}s.\n"
        "Put this in a config's posthog section (and first_run: notify to hear of the reports "
        "already there), then `notifier run -c config.yaml` in another terminal:\n\n"
        "posthog:\n"
        f"  host: {sim.url}\n"
        f"  api_key: {API_KEY}\n"
        f"  project_ids: [{ids}]\n\n"
        "Ctrl-C (or SIGTERM) stops it.",
    )


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
