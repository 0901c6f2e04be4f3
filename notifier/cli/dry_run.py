"""`notifier dry-run`: poll and diff every project, print what would be sent; change nothing."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TextIO

from notifier.cli.preview import payload_text, rule_templates
from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.errors import SourceError
from notifier.core.report import Links
from notifier.cycle.pipeline import plan_cycle
from notifier.render.console import console_text
from notifier.sinks.compose import compose_event


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sub.add_parser(
        "dry-run", parents=[common], help="poll and diff; print what would be sent; change nothing"
    )


def cmd_dry_run(settings: Settings, out: TextIO) -> int:
    """Poll and diff every project; print events, routes and payloads; write nothing."""
    from notifier.posthog.client import PostHogClient  # noqa: PLC0415 - only this command needs it
    from notifier.state.store import open_store  # noqa: PLC0415

    links, templates = Links(settings.posthog.host), rule_templates(settings.rules)
    source = PostHogClient(settings.posthog)
    store = open_store(settings.state)
    code = EXIT_OK
    try:
        for pid in settings.posthog.project_ids:
            try:
                plan = plan_cycle(
                    pid,
                    source=source,
                    store=store,
                    rules=settings.rules,
                    first_run=settings.first_run,
                    now=time.time(),
                    routing_budget=settings.poll.routing_budget,
                    settle=settings.poll.settle,
                )
            except SourceError as exc:
                out.write(f"project {pid}: poll failed: {exc}\n")
                code = EXIT_FAILURE
                continue
            if plan.baseline:
                out.write(
                    f"project {pid}: first run: would record {plan.reports} reports silently "
                    "(first_run: baseline)\n"
                )
                continue
            out.write(f"project {pid}: {plan.reports} reports, {len(plan.routed)} events\n")
            for routed in plan.routed:
                out.write("\n" + console_text(routed.event, (), links, color=False) + "\n")
                if not routed.routes:
                    out.write("  → no rule matches: not sent\n")
                for rt in routed.routes:
                    sink = settings.sinks[rt.sink]
                    out.write(f"  → {rt.sink} ({sink.type}) by rules: {', '.join(rt.rules)}\n")
                    payload = compose_event(
                        sink, routed.event, rt.rules, links, templates, timestamp=datetime.now(UTC)
                    )
                    out.write(_indent(payload_text(payload, builder=False)) + "\n")
    finally:
        source.close()
        store.close()
    return code


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
