"""`notifier test-sink NAME`: send one sample notification straight to a sink."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TextIO

from notifier.cli.shared import EXIT_FAILURE, EXIT_OK, Subparsers
from notifier.config.settings import Settings, SlackSinkSettings
from notifier.core.errors import ConfigError, SinkError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Links, Report


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    test_sink = sub.add_parser("test-sink", parents=[common], help="send a sample to one sink")
    test_sink.add_argument("name", help="the sink's name in the config")


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
    config = settings.sinks[name]
    buttons = config.actions if isinstance(config, SlackSinkSettings) else ()
    shown = f", with buttons: {', '.join(buttons)}" if buttons else ""
    out.write(f"{name}: sent a sample notification{shown}\n")
    return EXIT_OK
