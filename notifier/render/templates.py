"""User message templates: a rule or sink overrides the title, the body or the fallback text.

Jinja2, compiled once at config load and rendered per event in a sandbox. The context: ``event``
(id, type, status, emoji, headline, title), ``report`` and ``previous`` (every raw API field, the
known ones parsed; ``previous`` is None for a new report), ``changes`` (field → ``{before,
after}``), ``project`` (id, name), ``rule`` (first matching rule) and ``rules``, ``links``
(``links.report``, ``links.recording(session_id)``). Extra filters: number, value, label, emoji.

Templates run in the sandbox of ``notifier.render.sandbox``: every ``{{ … }}`` output escaped for
Slack, strict undefined (``is defined`` and ``| default(…)`` allowed), a work budget. Here: the
parts (``Templates``), compiling them with every problem at once, the context an event gives
them, rendering and cutting to Slack's limits, and the checks run against sample events at
config load. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import jinja2

from notifier.core.errors import ConfigError
from notifier.core.events import Event, EventType
from notifier.core.report import Links, Report
from notifier.render import text as txt
from notifier.render.sandbox import compile_source, describe, generate

LIMITS: Final = {"title": 150, "body": 3000, "text": 3000}  # header plain_text; section text
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%-._~"  # as render/slack.py: `|` and spaces get quoted


class TemplateError(ConfigError):
    """A template does not compile or render. Each problem names the template, the line, Jinja's
    message and a fix; a caller that renders falls back to the default message and logs it."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(problems, source="templates")


@dataclass(frozen=True, slots=True)
class Templates:
    """The sources as configured; None keeps that part's default rendering."""

    title: str | None = None
    body: str | None = None
    text: str | None = None  # Slack's top-level fallback text


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """Templates ready to render; ``where`` (``rules[2] "ready"``) names them in errors."""

    where: str
    title: jinja2.Template | None = None
    body: jinja2.Template | None = None
    text: jinja2.Template | None = None


@dataclass(frozen=True, slots=True)
class RenderedText:
    """Escaped mrkdwn, stripped and cut to ``LIMITS``; ``title`` on one line. None: no template,
    or it rendered blank; render that part as usual."""

    title: str | None = None
    body: str | None = None
    text: str | None = None


def compile_templates(templates: Templates, where: str) -> CompiledTemplates:
    """Compile every part; ``TemplateError`` lists each part that does not compile."""
    compiled: dict[str, jinja2.Template] = {}
    problems: list[str] = []
    for part in LIMITS:
        if (source := getattr(templates, part)) is not None:
            try:
                compiled[part] = compile_source(source)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a problem
                problems.append(describe(f"{where} {part}", exc))
    if problems:
        raise TemplateError(problems)
    return CompiledTemplates(where=where, **compiled)


@dataclass(frozen=True, slots=True)
class _Links:
    report: str
    _links: Links
    _project_id: int

    def recording(self, session_id: object) -> str:
        return quote(self._links.recording(self._project_id, str(session_id)), safe=_URL_SAFE)


def _fields(report: Report) -> dict[str, Any]:
    """Every field the API sent (known ones parsed, ``Report.get``); absent ones stay undefined."""
    return {name: report.get(name) for name in report.raw} | {
        "id": report.id,
        "status": report.status,
    }


def _context(event: Event, rules: Sequence[str], links: Links) -> dict[str, Any]:
    report, previous = event.report, event.previous
    return {
        "event": {
            "id": event.id,
            "type": event.type.value,
            "status": txt.event_status(event),
            "emoji": txt.event_emoji(event),
            "headline": txt.headline(event),
            "title": txt.title_of(report),
        },
        "report": _fields(report),
        "previous": _fields(previous) if previous is not None else None,
        "changes": {k: {"before": b, "after": a} for k, (b, a) in event.changes.items()},
        "project": {"id": event.project_id, "name": event.project_name},
        "rule": rules[0] if rules else None,
        "rules": tuple(rules),
        "links": _Links(
            quote(links.report(event.project_id, report.id), safe=_URL_SAFE),
            links,
            event.project_id,
        ),
    }


def _cut(text: str, limit: int) -> str:
    """Cut escaped mrkdwn without leaving half an entity (``&am``) or an open ``<link``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and len(cut) - amp < 5 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut.rstrip() + txt.ELLIPSIS


def _render_part(template: jinja2.Template, part: str, context: dict[str, Any]) -> str | None:
    limit = LIMITS[part]
    text = "".join(generate(template, context, enough=4 * limit)).strip()
    return _cut(txt.one_line(text) if part == "title" else text, limit) or None


def render(
    compiled: CompiledTemplates, event: Event, rules: Sequence[str], links: Links
) -> RenderedText:
    """Render the compiled parts for ``event``; ``TemplateError`` on the first failure."""
    context = _context(event, rules, links)
    out: dict[str, str | None] = {}
    for part in LIMITS:
        if (template := getattr(compiled, part)) is not None:
            try:
                out[part] = _render_part(template, part, context)
            except Exception as exc:
                raise TemplateError([describe(f"{compiled.where} {part}", exc)]) from exc
    return RenderedText(**out)


def _sample_events(project_id: int) -> tuple[Event, ...]:
    item = {
        "id": "0c9e7d1e-2b7a-4c1e-9a53-6f2f1d8b7a11",
        "title": "Checkout button unresponsive on Safari & iOS",
        "summary": "Users on Safari 17 tap the Pay button repeatedly and nothing happens.",
        "status": "ready",
        "total_weight": 2.35,
        "signal_count": 7,
        "relevant_user_count": 41,
        "artefact_count": 9,
        "signals_at_run": 10,
        "priority": "P1",
        "actionability": "immediately_actionable",
        "already_addressed": False,
        "source_products": ["session_replay"],
        "repo_slug": "acme/web",
        "assignee": None,
        "created_at": "2026-01-14T09:12:03.512345Z",
        "updated_at": "2026-01-15T16:40:11.004211Z",
    }
    ready = Report.from_api(item)
    before = Report.from_api(
        item | {"status": "in_progress", "total_weight": 1.85, "signal_count": 5}
    )
    changed = {
        "status": ("in_progress", "ready"),
        "total_weight": (1.85, 2.35),
        "signal_count": (5, 7),
    }
    later = Report.from_api(item | {"total_weight": 3.1, "updated_at": "2026-01-16T08:00:00Z"})
    return (
        Event.create(EventType.STATUS_CHANGED, project_id, ready, before, changed),
        Event.create(EventType.NEW, project_id, before, None, {}),
        Event.create(EventType.UPDATED, project_id, later, ready, {"total_weight": (2.35, 3.1)}),
        Event.create(EventType.REMOVED, project_id, ready, ready, {}),
    )


def sample_event(project_id: int = 1) -> Event:
    """A realistic event with every field, in_progress → ready (``check``, ``preview``)."""
    return _sample_events(project_id)[0]


#: The fields every PostHog version sends (V1's): a template that needs more must guard it.
_OLDEST_FIELDS: Final = (
    "id",
    "title",
    "summary",
    "status",
    "total_weight",
    "signal_count",
    "created_at",
    "updated_at",
)


def fragile_parts(compiled: CompiledTemplates, links: Links) -> list[str]:
    """The parts that fail for a report carrying only the fields every PostHog version sends
    (e.g. ``report.priority`` unguarded): at run time those fall back to the default message.
    A warning, not an error: on a recent PostHog they work."""
    full = sample_event(1)
    sparse = {k: v for k, v in full.report.to_json().items() if k in _OLDEST_FIELDS}
    report = Report.from_api(sparse)
    previous = Report.from_api({**sparse, "status": "in_progress"})
    event = Event.create(
        EventType.STATUS_CHANGED, 1, report, previous, {"status": ("in_progress", "ready")}
    )
    fragile = []
    for part in LIMITS:
        template = getattr(compiled, part)
        if template is None:
            continue
        try:
            render(CompiledTemplates(compiled.where, **{part: template}), event, ("rule",), links)
        except TemplateError as exc:
            fragile.append(f"{part}: {exc.problems[0]}")
    return fragile


def check_templates(named: Sequence[tuple[str, Templates]], links: Links) -> list[str]:
    """Every problem of every template, never raising: each part compiled, then rendered
    against sample status_changed, new, updated and removed events (one problem per part)."""
    problems: list[str] = []
    for where, templates in named:
        for part in LIMITS:
            try:
                compiled = compile_templates(Templates(**{part: getattr(templates, part)}), where)
            except TemplateError as exc:
                problems.extend(exc.problems)
                continue
            for event in _sample_events(1):
                try:
                    render(compiled, event, ("sample rule",), links)
                except TemplateError as exc:
                    problems.append(f"{exc.problems[0]} (sample {event.type} event)")
                    break
    return problems
