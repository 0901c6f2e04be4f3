"""`notifier check`: validate the configuration and summarise it (sinks, rules, budget)."""

from __future__ import annotations

import argparse
import time
from typing import TextIO

from notifier.cli.quiet import quiet_text
from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Subparsers
from notifier.cli.silence import silence_lines
from notifier.config.advice import self_alerts_advice
from notifier.config.settings import Settings, SlackSinkSettings
from notifier.config.sinks import templates_ok
from notifier.core.times import format_span
from notifier.posthog.budget import expected_requests_per_hour
from notifier.state.dialect import display


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    check = sub.add_parser(
        "check", parents=[common], help="validate the configuration and summarise it"
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also ask PostHog and Slack, read-only, whether the credentials work: one listing "
        "request and the signals settings per project, auth.test and the channel per Slack bot "
        "sink; exit 1 when one fails (2 stays for an invalid configuration)",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 when there is any warning (for CI pipelines)",
    )


def cmd_check(
    settings: Settings, out: TextIO, *, online: bool = False, strict: bool = False
) -> int:
    """Print what the configuration says; warnings included. ``online``: also what PostHog
    says of each project (read-only requests). ``strict``: exit 2 when there is a warning."""
    ph = settings.posthog
    now, intervals = time.time(), settings.intervals()
    out.write(f"{settings.source}: valid\n")
    out.write(
        f"PostHog  {ph.host}, projects {', '.join(map(str, ph.project_ids))}, "
        f"api_path {ph.api_path}, page_size {ph.page_size}, every {settings.poll.interval:g}s\n"
    )
    out.write(_requests_line(settings))
    out.write(f"State    {_state(settings)}, first_run: {settings.first_run}\n")
    out.write(_settle_line(settings.poll.settle))
    out.write(f"Sinks    {len(settings.sinks)}\n")
    for name, sink in settings.sinks.items():
        out.write(f"  {name:<20} {sink.type:<14} {sink.target()}\n")
        for line in sink.behaviour():
            out.write(f"  {'':<20} {line}\n")
        out.write(quiet_text(sink.quiet(), intervals, now, indent=20))
        if isinstance(sink, SlackSinkSettings) and sink.actions:
            shown = ", ".join(sink.actions)
            out.write(f"  {'':<20} actions: {shown} (buttons that fit the report's status)\n")
    if settings.interactivity is not None:
        out.write(f"  {settings.interactivity.words()}\n")
    out.write(f"Rules    {len(settings.rules)}\n")
    for rule in settings.rules:
        extras = ["stop"] if rule.stop else []
        if rule.reply_broadcast:
            extras.append("reply_broadcast: thread replies also go to the channel")
        if rule.templates is not None:
            extras.append(templates_ok(rule.templates))
        out.write(f"  {rule.name:<30} → {'; '.join([', '.join(rule.sinks), *extras])}\n")
        out.write(quiet_text(rule.quiet(), intervals, now, indent=32))
    for line in [*_reminder_lines(settings), *silence_lines(settings, now)]:
        out.write(line + "\n")
    alerts = settings.self_alerts.targets(list(settings.sinks))
    after = settings.self_alerts.after
    where = f"the log, /metrics, /readyz and {', '.join(alerts)}" if alerts else ""
    out.write(
        f"Self-alerts  a project failing {format_span(after)}, a sink dead-lettering → "
        f"{where or 'the log, /metrics and /readyz only'}\n"
    )
    if advice := self_alerts_advice(settings):
        out.write(f"advice: {advice}\n")
    for warning in settings.warnings:
        out.write(f"warning: {warning}\n")
    failed = False  # an online check
    if online:
        from notifier.cli.online import check_online  # noqa: PLC0415 - only when online

        failed = not check_online(settings, out)
    if strict and settings.warnings:
        count = len(settings.warnings)
        out.write(f"--strict: {count} warning{'s' if count > 1 else ''}; exit 2\n")
        return EXIT_USAGE
    return EXIT_FAILURE if failed else EXIT_OK


def _reminder_lines(settings: Settings) -> list[str]:
    """``Reminders 1`` and a line per reminder: what it follows, when, how often, where."""
    if not settings.reminders:
        return []
    lines = [f"Reminders {len(settings.reminders)}"]
    for reminder in settings.reminders:
        watch = reminder.watch()
        every = "" if watch.max == 1 else f", then every {format_span(watch.every)}"
        lines.append(
            f"  {watch.name:<30} → {', '.join(watch.sinks)}: after {format_span(watch.after)}"
            f"{every}, at most {watch.max} (thread reply + bump on a living Slack card)"
        )
    return lines


def _settle_line(settle: float) -> str:
    """What ``poll.settle`` does with re-research (``core.settle``)."""
    if settle <= 0:
        return "Settle   off: a move back into research is announced at once (poll.settle: 0s)\n"
    return (
        f"Settle   a move back into research is held {format_span(settle)} (poll.settle): "
        "nothing is sent if it comes back unchanged\n"
    )


def _state(settings: Settings) -> str:
    """Which database holds the state, and what that means for running more than one."""
    state = settings.state
    if state.url is None:
        return f"{state.path} (SQLite: one instance)"
    ttl = format_span(state.lease_ttl, "config")
    return f"{display(state.url)} (PostgreSQL: replicas share the work, lease_ttl {ttl})"


def _requests_line(settings: Settings) -> str:
    """What the configuration costs in PostHog requests, against the key's budget."""
    ph, poll = settings.posthog, settings.poll
    expected = expected_requests_per_hour(settings)
    if expected.quiet_cycles:
        how = (
            f"{expected.quiet_cycles:,} incremental cycles × 1 request + {expected.full_listings:,}"
            f" for full listings every {format_span(poll.full_sync_every)}"
        )
    else:
        how = "every cycle is a full listing (poll.full_sync_every ≤ poll.interval)"
    verdict = (
        "fits"
        if expected.fits(settings)
        else "does NOT fit: projects will be polled less often than poll.interval"
    )
    return (
        f"Requests ~{expected.per_hour:,}/hour when nothing changes, assuming "
        f"{expected.reports_assumed:,} reports per project: {how}\n"
        f"         (+1 per {ph.page_size:,} changed reports); budget {ph.requests_per_hour:,}/hour"
        f", {ph.requests_per_minute:,}/minute: {verdict}\n"
    )
