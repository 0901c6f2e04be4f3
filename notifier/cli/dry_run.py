"""`notifier dry-run`: poll and diff every project, print what would be sent; change nothing.

The state is opened read-only: neither created (a missing one is planned against as empty, and
said so) nor migrated. A project's first cycle under ``first_run: baseline`` records its
reports silently; the dry run says so and also shows what ``first_run: notify`` would send.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from notifier.cli.preview import payload_text, rule_templates
from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings
from notifier.core.errors import SourceError
from notifier.core.events import Event
from notifier.core.report import Links
from notifier.core.words import counted
from notifier.cycle.names import name_plan
from notifier.cycle.pipeline import CyclePlan, plan_cycle
from notifier.cycle.reminders import remind_plan
from notifier.render.console import console_text
from notifier.sinks.compose import compose_event

if TYPE_CHECKING:
    from notifier.config.settings import FirstRun
    from notifier.posthog.client import PostHogClient
    from notifier.state.base import StateStore

_EXIT_CODES = (
    "exit status: 0 planned (with no state yet at state.path or state.url, against an empty "
    "one: nothing is created); 1 a project could not be polled, or the state cannot be read; "
    "2 an invalid config. Nothing is sent and nothing is written."
)


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sub.add_parser(
        "dry-run",
        parents=[common],
        help="poll and diff; print what would be sent; change nothing",
        description="Poll and diff every project, and print the events, the rules that route "
        "them and the payload each sink would receive. The state is only read.",
        epilog=_EXIT_CODES,
    )


def cmd_dry_run(settings: Settings, out: TextIO) -> int:
    """Poll and diff every project; print events, routes and payloads; write nothing."""
    from notifier.posthog.client import PostHogClient  # noqa: PLC0415 - only this command needs it
    from notifier.state.store import StateMissingError, empty_store, open_store  # noqa: PLC0415

    try:
        store: StateStore = open_store(settings.state, read_only=True)
    except StateMissingError as exc:
        out.write(f"{exc}; planning the first cycle against an empty state (nothing is written)\n")
        store = empty_store()
    source = PostHogClient(settings.posthog)
    code = EXIT_OK
    try:
        for pid in settings.posthog.project_ids:
            try:
                _project(settings, source, store, pid, out)
            except SourceError as exc:
                out.write(f"project {pid}: poll failed: {exc}\n")
                code = EXIT_FAILURE
    finally:
        source.close()
        store.close()
    return code


def _plan(
    settings: Settings, source: PostHogClient, store: StateStore, pid: int, first_run: FirstRun
) -> CyclePlan:
    plan = plan_cycle(
        pid,
        source=source,
        store=store,
        rules=settings.rules,
        first_run=first_run,
        now=time.time(),
        routing_budget=settings.poll.routing_budget,
        settle=settings.poll.settle,
    )
    plan = remind_plan(plan, store, settings.watches(), time.time())  # due reminders, unsent
    return name_plan(plan, source, source.start_cycle(pid))  # the project's name, as cards show


def _project(
    settings: Settings, source: PostHogClient, store: StateStore, pid: int, out: TextIO
) -> None:
    """One project's plan, printed; a first cycle recorded silently also shows what
    ``first_run: notify`` would send (planned once, as notify: the same listing)."""
    first = settings.first_run == "baseline" and not store.project_state(pid).baselined
    plan = _plan(settings, source, store, pid, "notify" if first else settings.first_run)
    if first:
        reports = f"{plan.reports} {'report' if plan.reports == 1 else 'reports'}"
        out.write(
            f"project {pid}: first run: would record {reports} silently (first_run: "
            f"baseline); with first_run: notify it would send:\n"
        )
    else:
        out.write(f"project {pid}: {plan.reports} reports, {len(plan.routed)} events\n")
    links, templates = Links(settings.posthog.host), rule_templates(settings.rules)
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
    _reminders(settings, plan, links, out)


def _reminders(settings: Settings, plan: CyclePlan, links: Links, out: TextIO) -> None:
    """The reminders due now (``reminders:``), each with the sinks it would go to."""
    reminded = plan.write.reminders.outbox if plan.write.reminders else ()
    by_event: dict[str, list[tuple[Event, str, tuple[str, ...]]]] = {}
    for item in reminded:
        by_event.setdefault(item[0].id, []).append(item)
    if by_event:
        out.write(f"\n{counted(len(by_event), 'reminder')} due:\n")
    templates = rule_templates(settings.rules)
    for items in by_event.values():
        event = items[0][0]
        out.write("\n" + console_text(event, (), links, color=False) + "\n")
        for _, name, rules in items:
            sink = settings.sinks[name]
            out.write(f"  → {name} ({sink.type}) by {', '.join(rules)}\n")
            payload = compose_event(
                sink, event, rules, links, templates, timestamp=datetime.now(UTC)
            )
            out.write(_indent(payload_text(payload, builder=False)) + "\n")


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
