"""The command line: parse arguments, call into the notifier, map errors to exit codes.

Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from notifier import __version__
from notifier.cli.preview import (
    DEFAULT_EVENT,
    EVENT_TYPES,
    payload_text,
    rule_templates,
    run_preview,
)
from notifier.config.load import load_config
from notifier.config.settings import (
    Settings,
    SinkSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    WebhookSinkSettings,
)
from notifier.core.errors import ConfigError, NotifierError, SinkError, SourceError, StateError
from notifier.core.models import Delivery, Event, EventType, Links, Notice, Report
from notifier.cycle.pipeline import plan_cycle
from notifier.posthog.budget import expected_requests_per_hour
from notifier.render.console import console_text
from notifier.render.notice import format_span
from notifier.render.templates import CompiledTemplates
from notifier.runtime import logs
from notifier.runtime.daemon import Notifier
from notifier.runtime.service import cmd_run
from notifier.sinks.compose import compose_event

log = logging.getLogger("notifier")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="the YAML file (default: $NOTIFIER_CONFIG, then ./config.yaml)",
    )
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="default INFO",
    )
    common.add_argument(
        "--log-format",
        default=argparse.SUPPRESS,
        choices=["json", "text"],
        help="default: text on a terminal, JSON lines otherwise",
    )
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Tells a product team in Slack and signed webhooks when PostHog Signals "
        "finds something.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    sub.add_parser("check", parents=[common], help="validate the configuration and summarise it")
    sub.add_parser(
        "healthcheck",
        parents=[common],
        help="exit 0 while the daemon's heartbeat is fresh (Docker HEALTHCHECK, exec probes)",
    )
    sub.add_parser(
        "schema", parents=[common], help="print the configuration's JSON Schema (for editors)"
    )
    sub.add_parser(
        "dry-run", parents=[common], help="poll and diff; print what would be sent; change nothing"
    )
    preview = sub.add_parser(
        "preview",
        parents=[common],
        help="show what each sink would receive for a sample event; sends nothing",
        description="Route a sample event (or a report saved from PostHog's API) through the "
        "rules and print what each sink would receive: Slack's Block Kit JSON with a Block Kit "
        "Builder link, a webhook's JSON body, console text. Sends nothing, contacts no one, "
        "needs no state file.",
    )
    preview.add_argument(
        "--event",
        choices=list(EVENT_TYPES),
        default=DEFAULT_EVENT,
        metavar="TYPE",
        help=f"{', '.join(EVENT_TYPES)} (default {DEFAULT_EVENT})",
    )
    preview.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help="one report as PostHog's API returns it (default: a built-in sample)",
    )
    preview.add_argument("--sink", metavar="NAME", help="only this sink")
    test_sink = sub.add_parser("test-sink", parents=[common], help="send a sample to one sink")
    test_sink.add_argument("name", help="the sink's name in the config")
    demo = sub.add_parser(
        "demo", parents=[common], help="run against a built-in simulated PostHog; no config"
    )
    demo.add_argument("--cycles", type=int, default=8, help="polling cycles (default 8)")
    demo.add_argument(
        "--interval", type=float, default=2.0, help="seconds between cycles (default 2)"
    )
    outbox = sub.add_parser("outbox", parents=[common], help="show or retry pending/dead entries")
    outbox.add_argument("action", nargs="?", choices=["list", "retry"], default="list")
    outbox.add_argument("--sink", help="only this sink")
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None) or os.environ.get("NOTIFIER_CONFIG") or "config.yaml"
    return Path(given)


def _load(args: argparse.Namespace, formatter: logs.RedactingFormatter) -> Settings:
    settings = load_config(_config_path(args))
    formatter.set_secrets(settings.secrets())
    return settings


def _target(sink: SinkSettings) -> str:
    if isinstance(sink, SlackSinkSettings):
        return f"channel {sink.channel}"
    if isinstance(sink, WebhookSinkSettings):
        signed = "signed" if sink.secret else "unsigned"
        # the origin without user:password@ (credentials); path and query are hidden too
        parts = urlsplit(sink.url)
        port = f":{parts.port}" if parts.port else ""
        return f"POST {parts.scheme}://{parts.hostname or '?'}{port}/… ({signed})"
    if isinstance(sink, SlackWebhookSinkSettings):
        return "incoming webhook (URL hidden)"
    return "standard output"


def _templates_ok(templates: CompiledTemplates) -> str:
    parts = [part for part in ("title", "body", "text") if getattr(templates, part) is not None]
    return f"template ({', '.join(parts)}): ok"


def _sink_behaviour(sink: SinkSettings) -> list[str]:
    """How a sink delivers, in words: living messages or not, digests, enrichment, templates."""
    if isinstance(sink, SlackSinkSettings):
        how = "living messages: one per report, updated in place, changes as thread replies"
    elif isinstance(sink, SlackWebhookSinkSettings):
        how = "new messages: one per event (an incoming webhook cannot edit or thread)"
    elif isinstance(sink, WebhookSinkSettings):
        how = "one request per event"
    else:
        return []
    after = sink.digest_after
    if not isinstance(sink, WebhookSinkSettings):
        digest = f"digest_after {after}: " + (
            f"one digest message when more than {after} events arrive at once"
            if after
            else "never a digest"
        )
    elif sink.batch:
        digest = "batch: " + (
            f"one signal_report.batch request when more than {after} events arrive at once"
            if after
            else "never (digest_after is 0)"
        )
    else:
        digest = "batch: off"
    details = [digest, f"enrich: {', '.join(sink.enrich) or 'none'}"]
    templates = getattr(sink, "templates", None)
    if templates is not None:
        details.append(_templates_ok(templates))
    return [how, "; ".join(details)]


def cmd_check(settings: Settings, out: TextIO) -> int:
    """Print what the configuration says; warnings included."""
    ph = settings.posthog
    out.write(f"{settings.source}: valid\n")
    out.write(
        f"PostHog  {ph.host}, projects {', '.join(map(str, ph.project_ids))}, "
        f"api_path {ph.api_path}, page_size {ph.page_size}, every {settings.poll.interval:g}s\n"
    )
    out.write(_requests_line(settings))
    out.write(f"State    {settings.state.path} (first_run: {settings.first_run})\n")
    out.write(f"Sinks    {len(settings.sinks)}\n")
    for name, sink in settings.sinks.items():
        out.write(f"  {name:<20} {sink.type:<14} {_target(sink)}\n")
        for line in _sink_behaviour(sink):
            out.write(f"  {'':<20} {line}\n")
    out.write(f"Rules    {len(settings.rules)}\n")
    for rule in settings.rules:
        extras = ["stop"] if rule.stop else []
        if rule.reply_broadcast:
            extras.append("reply_broadcast: thread replies also go to the channel")
        if rule.templates is not None:
            extras.append(_templates_ok(rule.templates))
        out.write(f"  {rule.name:<30} → {'; '.join([', '.join(rule.sinks), *extras])}\n")
    alerts = settings.self_alerts.targets(list(settings.sinks))
    after = settings.self_alerts.after
    out.write(
        f"Self-alerts  a project failing {format_span(after)}, a sink dead-lettering → "
        f"{', '.join(alerts)}\n"
        if alerts
        else "Self-alerts  off (self_alerts.sinks is empty)\n"
    )
    for warning in settings.warnings:
        out.write(f"warning: {warning}\n")
    return EXIT_OK


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


def cmd_preview(
    settings: Settings, event: str, report: Path | None, sink: str | None, out: TextIO
) -> int:
    """Print what each sink (or one) would receive for a sample event; send nothing."""
    run_preview(
        settings, out, event_type=event, report_path=report, sink_name=sink, now=datetime.now(UTC)
    )
    return EXIT_OK


def cmd_dry_run(settings: Settings, out: TextIO) -> int:
    """Poll and diff every project; print events, routes and payloads; write nothing."""
    from notifier.posthog.client import PostHogClient  # noqa: PLC0415 - only this command needs it
    from notifier.state.store import Store  # noqa: PLC0415

    links, templates = Links(settings.posthog.host), rule_templates(settings.rules)
    source = PostHogClient(settings.posthog)
    store = Store(settings.state.path)
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


def sample_event(project_id: int) -> Event:
    """A believable event for `test-sink`."""
    report = Report.from_api(
        {
            "id": "00000000-0000-4000-8000-000000000000",
            "title": "Test notification from posthog-signal-notifier",
            "summary": "If you can read this, the sink works. No report changed.",
            "status": "ready",
            "total_weight": 1.0,
            "signal_count": 3,
            "relevant_user_count": 2,
            "artefact_count": 1,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "updated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    previous = Report.from_api({**report.to_json(), "status": "in_progress"})
    return Event.create(
        EventType.STATUS_CHANGED,
        project_id,
        report,
        previous,
        {"status": ("in_progress", "ready")},
    )


def cmd_test_sink(settings: Settings, name: str, out: TextIO) -> int:
    """Send one sample notification straight to a sink (not through the outbox)."""
    from notifier.sinks.registry import build_sink  # noqa: PLC0415

    if name not in settings.sinks:
        known = ", ".join(settings.sinks) or "none"
        raise ConfigError([f"test-sink: unknown sink {name!r} (defined: {known})"])
    sink = build_sink(settings.sinks[name], Links(settings.posthog.host))
    event = sample_event(settings.posthog.project_ids[0])
    try:
        sink.send(Delivery(outbox_id=0, sink=name, event=event, rules=("test-sink",)))
    except SinkError as exc:
        kind = "permanent" if exc.permanent else "transient"
        out.write(f"{name}: failed ({kind}): {exc}\n")
        return EXIT_FAILURE
    finally:
        sink.close()
    out.write(f"{name}: sent a sample notification\n")
    return EXIT_OK


def _duration(seconds: float) -> str:
    """``45s``, ``12m``, ``5h``, ``3d``: coarse, for a table."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _cell(text: str | None, width: int) -> str:
    """One line of printable text (report titles come from PostHog: no terminal escapes),
    cut to ``width`` with an ellipsis."""
    flat = "".join(ch for ch in " ".join((text or "").split()) if ch.isprintable())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


_OUTBOX_COLUMNS = (
    ("STATE", 7),
    ("SINK", 16),
    ("EVENT", 16),
    ("REPORT", 46),
    ("AGE", 5),
    ("TRIES", 5),
    ("NEXT TRY", 8),
)


def cmd_outbox(settings: Settings, action: str, sink: str | None, out: TextIO) -> int:
    """List pending and dead entries (a table, oldest first), or put dead ones back in line."""
    from notifier.state.store import Store  # noqa: PLC0415

    if action == "retry" and sink is not None and sink not in settings.sinks:
        known = ", ".join(settings.sinks) or "none"
        raise ConfigError([f"outbox retry --sink: unknown sink {sink!r} (defined: {known})"])
    store = Store(settings.state.path)
    try:
        now = time.time()
        if action == "retry":
            sinks = [sink] if sink is not None else list(settings.sinks)
            count = sum(store.retry_dead(now, name) for name in sinks)
            where = f" for sink {sink}" if sink else ""
            out.write(
                f"requeued {count} dead entries{where}; a running notifier sends them within "
                "30 s (or run `notifier once`)\n"
            )
            return EXIT_OK
        rows = [*store.entries("pending", sink), *store.entries("dead", sink)]
        if not rows:
            where = f" for sink {sink}" if sink else ""
            out.write(f"the outbox is empty{where}: nothing pending, nothing dead\n")
            return EXIT_OK
        pending = sum(e.state == "pending" for e in rows)
        out.write(f"{pending} pending, {len(rows) - pending} dead\n\n")
        out.write(" ".join(f"{name:<{width}}" for name, width in _OUTBOX_COLUMNS) + " LAST ERROR\n")
        head: dict[str, float] = {}  # a sink's entries wait behind its oldest pending one
        for e in rows:
            if isinstance(e.event, Notice):  # the notifier's own notice (self_alerts)
                kind, about = e.event.kind.value, _cell(f"notifier: {e.event.subject}", 46)
            else:
                report = e.event.report
                title = _cell(report.title or "untitled", 34)
                kind, about = e.event.type.value, f"{title} ({report.id[:8]})"
            if e.state == "pending":
                head.setdefault(e.sink, e.next_attempt_at)
            due = max(e.next_attempt_at, head.get(e.sink, 0.0)) - now
            next_try = (
                ("now" if due <= 0 else f"in {_duration(due)}") if e.state == "pending" else "-"
            )
            cells = (
                e.state,
                _cell(e.sink, 16),
                kind,
                about,
                _duration(now - e.created_at),
                str(e.attempts),
                next_try,
            )
            line = " ".join(f"{c:<{w}}" for c, (_, w) in zip(cells, _OUTBOX_COLUMNS, strict=True))
            out.write(f"{line} {_cell(e.last_error or '-', 200)}\n")
        orphans = sorted({e.sink for e in rows} - set(settings.sinks))
        for name in orphans:
            out.write(
                f"\nsink {name!r} is not in the config: its entries wait until it is "
                "defined again\n"
            )
        if pending < len(rows):
            out.write(
                "\ndead entries stay until retried: fix the sink, then "
                "`notifier outbox retry [--sink NAME]`\n"
            )
        return EXIT_OK
    finally:
        store.close()


def cmd_once(settings: Settings, max_wait: float) -> int:
    """One pass; the exit code says whether everything went through."""
    notifier = Notifier(settings)
    try:
        return notifier.once(max_wait=max_wait)
    finally:
        notifier.close()


def cmd_healthcheck(settings: Settings, out: TextIO) -> int:
    """Whether the daemon using this config's state is alive: its heartbeat file says a cycle
    was attempted within 3 poll intervals. One line on stdout says why."""
    from notifier.runtime.probes import check_heartbeat, heartbeat_path  # noqa: PLC0415

    verdict = check_heartbeat(heartbeat_path(settings.state.path), time.time())
    out.write(f"{'healthy' if verdict.ok else 'unhealthy'}: {verdict.reason}\n")
    return EXIT_OK if verdict.ok else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `notifier` console script."""
    args = _parser().parse_args(argv)
    level = getattr(args, "log_level", None)
    log_format = getattr(args, "log_format", None)
    if args.command == "schema":
        from notifier.config.schema import json_schema  # noqa: PLC0415

        sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
        return EXIT_OK
    if args.command == "demo":
        formatter = logs.setup(level or "WARNING", fmt=log_format or "text")
        from notifier.demo.run import run_demo  # noqa: PLC0415

        return run_demo(cycles=args.cycles, interval=args.interval)
    formatter = logs.setup(level or "INFO", fmt=log_format)
    out = sys.stdout
    try:
        settings = _load(args, formatter)
        if args.command == "check":
            return cmd_check(settings, out)
        if args.command == "healthcheck":
            return cmd_healthcheck(settings, out)
        if args.command == "dry-run":
            return cmd_dry_run(settings, out)
        if args.command == "preview":
            return cmd_preview(settings, args.event, args.report, args.sink, out)
        if args.command == "test-sink":
            return cmd_test_sink(settings, args.name, out)
        if args.command == "outbox":
            return cmd_outbox(settings, args.action, args.sink, out)
        if args.command == "once":
            return cmd_once(settings, args.max_wait)
        return cmd_run(settings, _config_path(args), watch=args.watch_config, formatter=formatter)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        # Docker reserves health-check exit code 2: an unreadable config is simply unhealthy.
        return EXIT_FAILURE if args.command == "healthcheck" else EXIT_USAGE
    except StateError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except NotifierError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
