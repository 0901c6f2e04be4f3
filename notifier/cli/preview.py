"""`notifier preview`: what each sink would receive for one event, without sending anything.

The events are the built-in samples (``cli.samples``: several ordinary reports, one of which a
sensible configuration sends nowhere; ``--sample NAME`` for one) or a report saved from
PostHog's API (``--report FILE.json``), turned into the asked event type with a plausible
``previous``. It is routed through the configured rules, and each sink's payload
comes from ``sinks.compose.compose_event``, the function the sinks send with: a preview is what
would be sent. No PostHog request, no state database, no post.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO

from notifier.cli.samples import SAMPLE_NAMES, SAMPLES, Sample, sample_named
from notifier.cli.shared import EXIT_OK, Subparsers
from notifier.config.settings import (
    RuleSettings,
    Settings,
    SinkSettings,
)
from notifier.core.diff import compare
from notifier.core.errors import ConfigError
from notifier.core.events import CHANGES, Enrichment, Event, EventType
from notifier.core.report import Links, Report
from notifier.core.rules import Rule, matches, route, top_level
from notifier.render import SlackMessage, block_kit_builder_url
from notifier.render.sketch import sketch
from notifier.render.templates import CompiledTemplates
from notifier.render.text import describe_changes, one_line, title_of
from notifier.sinks.compose import compose_event

EVENT_TYPES: Final = tuple(t.value for t in CHANGES)
DEFAULT_EVENT: Final = EventType.STATUS_CHANGED.value
#: A report file larger than this is not one report (PostHog's summaries stay far below).
MAX_REPORT_BYTES: Final = 10 * 1024 * 1024
#: The status a report plausibly had before its current one (status_changed previews).
PREVIOUS_STATUS: Final = {
    "potential": "candidate",
    "candidate": "potential",
    "in_progress": "candidate",
    "ready": "in_progress",
    "pending_input": "in_progress",
    "failed": "in_progress",
    "resolved": "ready",
    "suppressed": "candidate",
}
_PAYLOAD_INDENT: Final = 2


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    preview = sub.add_parser(
        "preview",
        parents=[common],
        help="show what each sink would receive for sample events; sends nothing",
        description="Route built-in sample events (or a report saved from PostHog's API) "
        "through the rules and print which rules match each and what each sink would receive: "
        "Slack's Block Kit JSON with a Block Kit Builder link, a webhook's JSON body, console "
        "text. Sends nothing, contacts no one, needs no state file.",
    )
    preview.add_argument(
        "--event",
        choices=list(EVENT_TYPES),
        metavar="TYPE",
        help=f"{', '.join(EVENT_TYPES)} (default: each sample's own change; {DEFAULT_EVENT} "
        "for --report)",
    )
    preview.add_argument(
        "--sample",
        choices=list(SAMPLE_NAMES),
        metavar="NAME",
        help=f"only this built-in sample: {', '.join(SAMPLE_NAMES)} (default: every one)",
    )
    preview.add_argument(
        "--report",
        type=Path,
        metavar="FILE.json",
        help=(
            "one report as PostHog's API returns it: GET /api/projects/<pid>/signals/reports/"
            "<id>/ (default: the built-in samples)"
        ),
    )
    preview.add_argument("--sink", metavar="NAME", help="only this sink")
    preview.add_argument(
        "--sketch",
        action="store_true",
        help="draw Slack messages as a person sees them, instead of their Block Kit JSON",
    )


def cmd_preview(
    settings: Settings,
    event: str | None,
    report: Path | None,
    sink: str | None,
    out: TextIO,
    *,
    sample: str | None = None,
    sketch: bool = False,
) -> int:
    """Print what each sink (or one) would receive for the sample events; send nothing."""
    run_preview(
        settings,
        out,
        event_type=event,
        report_path=report,
        sample_name=sample,
        sink_name=sink,
        now=datetime.now(UTC),
        sketch=sketch,
    )
    return EXIT_OK


def rule_templates(rules: Sequence[RuleSettings]) -> dict[str, CompiledTemplates]:
    """Each templated rule's compiled templates, by rule name (what ``compose_event`` takes)."""
    return {rule.name: rule.templates for rule in rules if rule.templates is not None}


def read_report(path: Path) -> Report:
    """One report as PostHog's API returns it, from a JSON file; ``ConfigError`` saying what is
    wrong with the file and what to put in it instead."""

    def bad(why: str) -> ConfigError:
        return ConfigError([why], source=f"--report {path}")

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_REPORT_BYTES + 1)
    except OSError as exc:
        raise bad(f"cannot read the file: {exc.strerror or type(exc).__name__}") from exc
    if len(data) > MAX_REPORT_BYTES:
        raise bad("larger than 10 MiB; save a single report, not a listing")
    try:
        item = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise bad(f"not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise bad(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    except RecursionError as exc:
        raise bad("the JSON is nested too deeply") from exc
    if isinstance(item, dict) and isinstance(item.get("results"), list) and "id" not in item:
        raise bad("this is a listing (it has 'results'); save one of its results on its own")
    try:
        return Report.from_api(item)
    except ValueError as exc:
        why = str(exc)
        raise bad(
            f"{why}: it must be one report as PostHog's API returns it, a JSON object with at "
            'least "id" and "status", like {"id": "…", "status": "ready", "title": "…"}'
        ) from exc


def _with(report: Report, **fields: Any) -> Report:
    return Report.from_api({**report.to_json(), **fields})


def _lower(report: Report) -> dict[str, Any]:
    """Plausibly smaller numbers for the copy before an update."""
    fields: dict[str, Any] = {}
    weight = report.total_weight
    if weight is not None and weight > 0:
        fields["total_weight"] = round(weight * 0.75, 2)
    for name in ("signal_count", "relevant_user_count", "artefact_count"):
        count = getattr(report, name)
        if count is not None and count > 0 and len(fields) < 2:  # a change or two, like PostHog
            fields[name] = count - 1
    return fields


def derive_event(report: Report, event_type: EventType, project_id: int) -> Event:
    """``report`` as the current copy of an event of ``event_type``, with a plausible previous
    copy (another status for status_changed, smaller numbers for updated)."""
    if event_type is EventType.NEW:
        return Event.create(event_type, project_id, report, None, {})
    if event_type is EventType.REMOVED:  # as the diff reports it: the last known copy twice
        return Event.create(event_type, project_id, report, report, {})
    if event_type is EventType.STATUS_CHANGED:
        before = PREVIOUS_STATUS.get(report.status, "in_progress")
        previous = _with(report, status=before)
    else:
        previous = _with(report, **_lower(report))
    return Event.create(event_type, project_id, report, previous, compare(previous, report))


def sample_preview_event(sample: Sample, event_type: str | None, project_id: int) -> Event:
    """The sample's own change, or its report as an event of ``event_type``."""
    own = sample.event(project_id)
    if event_type is None or own.type.value == event_type:
        return own
    return derive_event(own.report, EventType(event_type), project_id)


def payload_text(payload: dict[str, Any] | str, *, builder: bool, drawn: bool = False) -> str:
    """A payload for a terminal: JSON pretty-printed (a Slack message followed by its Block
    Kit Builder link when ``builder``; drawn as a person sees it when ``drawn``), console text
    as it is."""
    if isinstance(payload, str):
        return payload
    if drawn and isinstance(payload.get("blocks"), list):
        return sketch(SlackMessage(str(payload.get("text", "")), tuple(payload["blocks"])))
    text = json.dumps(payload, indent=_PAYLOAD_INDENT, ensure_ascii=False)
    if builder and isinstance(payload.get("blocks"), list):
        message = SlackMessage(str(payload.get("text", "")), tuple(payload["blocks"]))
        text += f"\nBlock Kit Builder: {block_kit_builder_url(message)}"
    return text


def matching_rules(event: Event, rules: Sequence[Rule]) -> tuple[list[Rule], Rule | None]:
    """The rules that see and match ``event``, in order, and the ``stop`` rule that hid the
    later ones from it (None when none did)."""
    found: list[Rule] = []
    for rule in rules:
        if matches(top_level(rule.match), event):
            found.append(rule)
            if rule.stop:
                return found, rule
    return found, None


def _describe(event: Event) -> str:
    title = one_line(title_of(event.report))[:200]
    report_id = one_line(event.report.id)[:100]
    head = f"{event.type.value} event, project {event.project_id}, report {report_id}"
    changes = describe_changes(event.changes) if event.changes else ""
    return f"{head}: {title}" + (f"\n  changes: {one_line(changes)}" if changes else "")


def _event_for(
    event: Event, sink: SinkSettings, enrichment: Enrichment | None
) -> tuple[Event, str]:
    """The event as this sink would get it, and a note on its artefacts."""
    if not sink.wants_artefacts():
        return event, ""
    if enrichment is not None and event.type is not EventType.REMOVED:
        return replace(event, enrichment=enrichment), "; with sample artefacts (enrich)"
    return event, "; artefacts not fetched by preview (enrich)"


def run_preview(
    settings: Settings,
    out: TextIO,
    *,
    event_type: str | None = None,
    report_path: Path | None = None,
    sample_name: str | None = None,
    sink_name: str | None = None,
    now: datetime,
    sketch: bool = False,
) -> None:
    """Print which rules match each preview event and what each sink (or ``sink_name``) would
    receive: the file's report, one built-in sample, or every sample after an overview
    (Slack messages drawn as text with ``sketch``)."""
    if sink_name is not None and sink_name not in settings.sinks:
        known = ", ".join(settings.sinks) or "none"
        raise ConfigError([f"preview --sink: unknown sink {sink_name!r} (defined: {known})"])
    project_id = settings.posthog.project_ids[0]
    if report_path is not None:
        kind = EventType(event_type or DEFAULT_EVENT)
        event = derive_event(read_report(report_path), kind, project_id)
        _preview_one(
            settings,
            out,
            event,
            source=str(report_path),
            enrichment=None,
            sink_name=sink_name,
            now=now,
            full=True,
            sketch=sketch,
        )
        return
    chosen = [sample_named(sample_name)] if sample_name is not None else list(SAMPLES)
    events = [(s, sample_preview_event(s, event_type, project_id)) for s in chosen]
    full = len(events) == 1
    if not full:
        _write_overview(out, events, settings.rules)
    for sample, event in events:
        if not full:
            out.write(f"\n═══ sample {sample.name}: {sample.about}\n")
        source = f"the built-in sample {sample.name!r}"
        _preview_one(
            settings,
            out,
            event,
            source=source,
            enrichment=sample.enrichment,
            sink_name=sink_name,
            now=now,
            full=full,
            sketch=sketch,
        )


def _change(event: Event) -> str:
    if event.type is EventType.STATUS_CHANGED and event.previous is not None:
        return f"{event.previous.status} → {event.report.status}"
    return f"{event.type.value}, {event.report.status}"


def _write_overview(
    out: TextIO, events: Sequence[tuple[Sample, Event]], rules: Sequence[Rule]
) -> None:
    out.write(
        f"Preview of {len(events)} built-in samples (nothing is sent; --sample NAME shows one "
        "with every sink, --report FILE.json a report of yours):\n"
    )
    for sample, event in events:
        title = one_line(title_of(event.report))[:200]
        out.write(f"  {sample.name}: {title} ({_change(event)})\n")
        found, stopped = matching_rules(event, rules)
        for rule in found:
            out.write(f"    {rule.name} → {', '.join(rule.sinks)}\n")
        if stopped is not None:
            out.write(f"    (stop: later rules do not see it after {stopped.name!r})\n")
        if not found:
            out.write("    no rule matches: it would not be sent\n")


def _preview_one(
    settings: Settings,
    out: TextIO,
    event: Event,
    *,
    source: str,
    enrichment: Enrichment | None,
    sink_name: str | None,
    now: datetime,
    full: bool,
    sketch: bool = False,
) -> None:
    """One event's preview; ``full``: a sink-by-sink rendering even when no rule matches."""
    links, templates = Links(settings.posthog.host), rule_templates(settings.rules)
    routes = {rt.sink: rt.rules for rt in route(event, settings.rules)}
    found, stopped = matching_rules(event, settings.rules)
    out.write(f"Preview: {_describe(event)}\n  (from {source}; nothing is sent)\n")
    if found:
        out.write("Rules matching:\n")
        for rule in found:
            out.write(f"  {rule.name} → {', '.join(rule.sinks)}\n")
        if stopped is not None:
            out.write(f"  (stop: later rules do not see it after {stopped.name!r})\n")
    elif full or sink_name is not None:
        out.write(
            "No rule matches this event: it would not be sent. Below, each sink's message as "
            "it would look with no rule.\n"
        )
    else:
        out.write(
            "No rule matches this event: it would not be sent. To see each sink's message as "
            "it would look, add --sample NAME.\n"
        )
        return
    scene = _Scene(event, routes, links, templates, bool(found), enrichment, now, sketch)
    names = [sink_name] if sink_name is not None else list(settings.sinks)
    for name in names:
        _write_sink(out, name, settings.sinks[name], scene, alone=len(names) == 1)


@dataclass(frozen=True, slots=True)
class _Scene:
    """What every sink's preview shares."""

    event: Event
    routes: Mapping[str, tuple[str, ...]]
    links: Links
    templates: Mapping[str, CompiledTemplates]
    matched: bool  # some rule matches the event
    enrichment: Enrichment | None  # a built-in sample's artefacts; None for a --report file
    now: datetime
    sketch: bool  # Slack messages drawn as text, not JSON


def _write_sink(out: TextIO, name: str, sink: SinkSettings, scene: _Scene, *, alone: bool) -> None:
    rules = scene.routes.get(name, ())
    event, note = _event_for(scene.event, sink, scene.enrichment)
    if rules:
        why = f"would be sent, by rules: {', '.join(rules)}"
    elif scene.matched and not alone:
        out.write(f"\n── {name} ({sink.type}): would not be sent (no matching rule routes to it)\n")
        return
    else:
        why = "would not be sent (no matching rule routes to it); as it would look with no rule"
    out.write(f"\n── {name} ({sink.kind_words}): {why}{note}\n")
    payload = compose_event(sink, event, rules, scene.links, scene.templates, timestamp=scene.now)
    out.write(payload_text(payload, builder=True, drawn=scene.sketch) + "\n")
