"""Sinks and the messages they send: the sink models, message templates, and their checks.

Part of ``notifier.config.load``. A template (``template: {title, body, text}`` on a rule or on a
``slack``/``slack_webhook`` sink) is compiled and rendered against the sample events when the
configuration loads (``templates.check_templates``), so a broken one is a configuration error
with its key path and the rule's name, never a surprise at delivery time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from notifier.config import settings as st
from notifier.config.match import choices
from notifier.config.types import (
    Duration,
    Int,
    Model,
    Text,
    Url,
    api_base_url,
    listify,
    unique,
    whsec,
)
from notifier.config.yamlload import Loc, Problem, Said
from notifier.core.events import EventType
from notifier.core.report import Links
from notifier.core.rules import top_level
from notifier.render.templates import (
    LIMITS,
    CompiledTemplates,
    Templates,
    check_templates,
    compile_templates,
    fragile_parts,
)

#: What ``enrich`` may list: ``artefacts`` (recordings and judgments in the message).
ENRICHMENTS: Final = ("artefacts",)
DIGEST_AFTER: Final = 5
#: All templates together, so that checking them at load stays well under a second or two.
TEMPLATES_MAX_CHARS: Final = 100_000
TEMPLATES_MAX_COUNT: Final = 200
_PLACEHOLDER_HOST: Final = "https://us.posthog.com"
_DIGEST_HELP: Final = (
    "must be 0 or more: more events than this for the sink at once go out as "
    "one digest message; 0 never digests; default 5"
)


def _enrichment(value: object) -> object:
    if value in ENRICHMENTS:
        return value
    word = value if isinstance(value, str) else str(value)
    raise ValueError(f"unknown enrichment {word[:40]!r} ({choices(word, list(ENRICHMENTS))})")


def _digest_after(value: int) -> int:
    if value < 0:
        raise ValueError(_DIGEST_HELP)
    return value


def _template_block(value: object) -> object:
    if value is not None and not isinstance(value, dict):
        raise ValueError(
            "must be a mapping of title, body and/or text, like {body: '{{ report.summary }}'}"
        )
    return value


TemplateSource = Annotated[str, Field(min_length=1)]
Enrich = Annotated[
    list[Annotated[Literal["artefacts"], BeforeValidator(_enrichment)]],
    BeforeValidator(listify),
    AfterValidator(unique),
    Field(description="[artefacts]: session recordings and PostHog's judgments in the message"),
]
DigestAfter = Annotated[
    Int,
    AfterValidator(_digest_after),
    Field(
        description="more events than this for the sink at once go out as one digest "
        "(webhook: one batch, with batch: true); 0: never",
        json_schema_extra={"minimum": 0},
    ),
]


class TemplateModel(Model):
    """Jinja2 sources for a Slack message's parts; an omitted part keeps the default."""

    # Whitespace is the template's own: stripping it would shift the line numbers in errors.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
        json_schema_extra={"minProperties": 1},
    )

    title: TemplateSource | None = None
    body: TemplateSource | None = None
    text: TemplateSource | None = None

    @model_validator(mode="after")
    def _some_part(self) -> TemplateModel:
        if self.title is None and self.body is None and self.text is None:
            raise ValueError("is empty; set title, body or text, or remove template")
        return self


Template = Annotated[
    TemplateModel | None,
    BeforeValidator(_template_block),
    Field(
        description="Jinja2 templates for the Slack message's title, body and/or text; a "
        "rule's replaces its sinks' (checked against sample events by `notifier check`)"
    ),
]


class SlackSink(Model):
    type: Literal["slack"]
    token: Text
    channel: Text
    api_url: Annotated[str, AfterValidator(api_base_url)] = "https://slack.com/api/"
    timeout: Duration = 15.0
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = Field(default_factory=list)
    template: Template = None


class SlackWebhookSink(Model):
    type: Literal["slack_webhook"]
    url: Url
    timeout: Duration = 15.0
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = Field(default_factory=list)
    template: Template = None


class WebhookSink(Model):
    type: Literal["webhook"]
    url: Url
    secret: Annotated[str, AfterValidator(whsec)] | None = None
    headers: dict[Text, str] = Field(default_factory=dict)
    timeout: Duration = 10.0
    batch: bool = Field(
        default=False,
        description="more than digest_after events at once: one signal_report.batch request",
    )
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = Field(default_factory=list)


class ConsoleSink(Model):
    type: Literal["console"]


AnySink = Annotated[
    SlackSink | SlackWebhookSink | WebhookSink | ConsoleSink, Field(discriminator="type")
]
SINKS: Final[dict[str, type[BaseModel]]] = {
    "slack": SlackSink,
    "slack_webhook": SlackWebhookSink,
    "webhook": WebhookSink,
    "console": ConsoleSink,
}
#: Sink types whose messages templates shape.
TEMPLATED: Final = ("slack", "slack_webhook")
#: Keys that also accept ``<key>_file``, per sink type.
SINK_SECRETS: Final = {
    "slack": ("token",),
    "slack_webhook": ("url",),
    "webhook": ("url", "secret"),
}
_NO_TEMPLATE: Final = (
    "templates shape Slack messages only (slack and slack_webhook sinks); a {kind} sink {gets}: "
    "remove template here (a rule's template does not apply to this sink either)"
)
_GETS: Final = {"webhook": "receives the report as JSON", "console": "prints the default text"}
_NO_BATCH: Final = (
    "only webhook sinks batch; a Slack sink already sends one digest message when more than "
    "digest_after events arrive at once: remove batch (tune digest_after instead)"
)
_CONSOLE: Final = "a console sink prints every event as it comes; remove it"
#: Keys of another sink type, with what to do instead (instead of a plain "unknown key").
_MISPLACED: Final = {
    ("webhook", "template"): _NO_TEMPLATE.format(kind="webhook", gets=_GETS["webhook"]),
    ("console", "template"): _NO_TEMPLATE.format(kind="console", gets=_GETS["console"]),
    ("slack", "batch"): _NO_BATCH,
    ("slack_webhook", "batch"): _NO_BATCH,
    ("console", "batch"): _CONSOLE,
    ("console", "digest_after"): _CONSOLE,
    ("console", "enrich"): _CONSOLE,
}


def misplaced(kind: str | None, key: str) -> str | None:
    """What to say about ``key`` on a sink of type ``kind`` that does not take it, if known."""
    return _MISPLACED.get((kind, key)) if kind is not None else None


def rule_where(index: int, name: object) -> str:
    """``rules[2] "ready reports"``: a rule by index and name, for messages."""
    shown = json.dumps(name.strip(), ensure_ascii=False) if isinstance(name, str) else ""
    return f"rules[{index}] {shown}".rstrip()


def _templated_blocks(
    raw: dict[Any, Any], sinks: Sequence[tuple[str, Any, str | None]]
) -> list[tuple[Loc, str, Templates]]:
    """``(loc, where, sources)`` of every template block that can be checked: a mapping on a
    rule or on a Slack sink, its text parts (the other parts' types are pydantic's). ``where``
    names the rule (``rules[2] "ready"``) or sink (``sinks.team``) in problems and logs."""
    found: list[tuple[Loc, Any, str]] = []
    rules = raw.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            where = rule_where(index, rule.get("name"))
            found.append((("rules", index, "template"), rule.get("template"), where))
    for name, body, kind in sinks:
        if isinstance(body, dict) and kind in TEMPLATED:
            found.append((("sinks", name, "template"), body.get("template"), f"sinks.{name}"))
    blocks = []
    for loc, block, where in found:
        if not isinstance(block, dict):
            continue
        parts = {part: block.get(part) for part in LIMITS}
        texts = {part: v for part, v in parts.items() if isinstance(v, str) and v}
        if texts:
            blocks.append((loc, where, Templates(**texts)))
    return blocks


def _said(loc: Loc, where: str, problem: str) -> Problem:
    """A ``check_templates`` problem (``<where> body, line 1: …``) at its part's key path,
    worded ``<where>.template.body, line 1: …``."""
    for part in LIMITS:
        if problem.startswith(f"{where} {part}"):
            rest = problem.removeprefix(f"{where} {part}")
            return (*loc, part), Said(f"{where}.template.{part}{rest}")
    return loc, Said(problem)


def check_raw_templates(
    raw: dict[Any, Any], sinks: Sequence[tuple[str, Any, str | None]]
) -> tuple[dict[Loc, CompiledTemplates], list[Problem]]:
    """Compile every template and render it against the sample events; the compiled ones by
    their block's key path, and every problem (all of them, each at its part's key path)."""
    blocks = _templated_blocks(raw, sinks)
    sources = [s for _, _, t in blocks for s in (t.title, t.body, t.text) if s is not None]
    if len(blocks) > TEMPLATES_MAX_COUNT or sum(map(len, sources)) > TEMPLATES_MAX_CHARS:
        why = (
            f"the templates together are too large to check (at most {TEMPLATES_MAX_COUNT} "
            f"templates and {TEMPLATES_MAX_CHARS:,} characters); share a sink's template "
            "instead of repeating it on every rule, and shorten them"
        )
        return {}, [((blocks[0][0][0],), why)]
    posthog = raw.get("posthog")
    host = posthog.get("host") if isinstance(posthog, dict) else None
    links = Links(host if isinstance(host, str) and host.startswith("http") else _PLACEHOLDER_HOST)
    compiled: dict[Loc, CompiledTemplates] = {}
    problems: list[Problem] = []
    for loc, where, templates in blocks:
        found = check_templates([(where, templates)], links)
        problems += [_said(loc, where, problem) for problem in found]
        if not found:
            compiled[loc] = compile_templates(templates, where)
    return compiled, problems


def build_sink(name: str, model: BaseModel, templates: CompiledTemplates | None) -> st.SinkSettings:
    """The frozen settings of one validated sink."""
    if isinstance(model, SlackSink):
        return st.SlackSinkSettings(
            name,
            model.token,
            model.channel,
            model.api_url,
            model.timeout,
            digest_after=model.digest_after,
            enrich=tuple(model.enrich),
            templates=templates,
        )
    if isinstance(model, SlackWebhookSink):
        return st.SlackWebhookSinkSettings(
            name,
            model.url,
            model.timeout,
            digest_after=model.digest_after,
            enrich=tuple(model.enrich),
            templates=templates,
        )
    if isinstance(model, WebhookSink):
        return st.WebhookSinkSettings(
            name,
            model.url,
            model.secret,
            MappingProxyType(dict(model.headers)),
            model.timeout,
            batch=model.batch,
            digest_after=model.digest_after,
            enrich=tuple(model.enrich),
        )
    return st.ConsoleSinkSettings(name)


def _rule_warnings(
    sinks: Mapping[str, st.SinkSettings], rules: Sequence[st.RuleSettings]
) -> list[str]:
    found = []
    for index, rule in enumerate(rules):
        where, kinds = rule_where(index, rule.name), [sinks[s].type for s in rule.sinks]
        names = ", ".join(rule.sinks)
        if rule.reply_broadcast and "slack" not in kinds:
            found.append(
                f"{where}.reply_broadcast: none of its sinks ({names}) is a slack (bot token) "
                "sink, the only kind that keeps one message per report with thread replies; "
                "it has no effect"
            )
        elif rule.reply_broadcast and (top_level(rule.match).events or set()) <= {EventType.NEW}:
            found.append(
                f"{where}.reply_broadcast: the rule sees only new reports, whose message starts "
                "the thread; it has no effect (match status_changed or updated events)"
            )
        if rule.templates is not None:
            found += _fragile(f"{where}.template", rule.templates)
        if rule.templates is not None and not set(kinds) & set(TEMPLATED):
            found.append(
                f"{where}.template: none of its sinks ({names}) is a slack or slack_webhook "
                "sink, so the template is never used (webhooks receive the report as JSON)"
            )
    return found


def _fragile(where: str, compiled: CompiledTemplates) -> list[str]:
    return [
        f"{where}.{problem} — with a report carrying only the fields every PostHog version "
        "sends; guard optional fields with `is defined` or `| default(...)`, or the default "
        "message is sent instead on older PostHog versions"
        for problem in fragile_parts(compiled, Links(_PLACEHOLDER_HOST))
    ]


def _sink_warnings(
    sinks: Mapping[str, st.SinkSettings],
    models: Mapping[str, BaseModel],
    rules: Sequence[st.RuleSettings],
) -> list[str]:
    found = []
    for name, sink in sinks.items():
        routing = [r for r in rules if name in r.sinks]
        templates = getattr(sink, "templates", None)
        if isinstance(templates, CompiledTemplates):
            found += _fragile(f"sinks.{name}.template", templates)
        if isinstance(sink, st.WebhookSinkSettings) and sink.batch and sink.digest_after == 0:
            found.append(
                f"sinks.{name}.batch: digest_after is 0, so events are never batched; "
                "set digest_after (like 5) or remove batch"
            )
        explicit = "digest_after" in models[name].model_fields_set
        if isinstance(sink, st.WebhookSinkSettings) and not sink.batch and explicit:
            found.append(
                f"sinks.{name}.digest_after: has no effect without batch: true (each event is "
                "its own request); add batch: true or remove digest_after"
            )
        own = getattr(sink, "templates", None)
        if own is not None and routing and all(r.templates is not None for r in routing):
            found.append(
                f"sinks.{name}.template: every rule sending to it has its own template, which "
                "replaces this one whole, so this one is never used"
            )
    return found


def sink_warnings(
    sinks: Mapping[str, st.SinkSettings],
    models: Mapping[str, BaseModel],
    rules: Sequence[st.RuleSettings],
) -> list[str]:
    """Valid but unwise uses of reply_broadcast, templates, batch and digest_after."""
    return _rule_warnings(sinks, rules) + _sink_warnings(sinks, models, rules)
