"""The sinks' settings: one pydantic model per sink type, validated from the YAML and read by
everything else, with what differs by type (its payload, target, digests, description) on the
type's own class. ``sinks.registry`` builds the sink object from its model.

A template (``template: {title, body, text}`` on a rule or on a ``slack``/``slack_webhook``
sink) is compiled and rendered against the sample events when the configuration loads
(``checks.check_raw_templates``), so a broken one is a configuration error with its key path and
the rule's name, never a surprise at delivery time; the compiled templates are the sink's
``templates``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    SecretStr,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from notifier.config.credentials import placeholder_check, slack_token, slack_token_warning
from notifier.config.interactivity import NO_ACTIONS, Actions
from notifier.config.intervals import QuietHours
from notifier.config.match import choices
from notifier.config.types import (
    Duration,
    Int,
    Model,
    Secret,
    SecretUrl,
    Text,
    api_base_url,
    derived,
    listify,
    unique,
    whsec,
)
from notifier.render.templates import CompiledTemplates

#: What ``enrich`` may list: ``artefacts`` (recordings and judgments in the message).
ENRICHMENTS: Final = ("artefacts",)
DIGEST_AFTER: Final = 5
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


#: Names of the characters a header value cannot hold that people meet most.
_CONTROL_NAMES: Final = {"\r": "a carriage return", "\n": "a line feed", "\x00": "a NUL"}


def _header_value(value: SecretStr) -> SecretStr:
    """A header value is printable ASCII on one line (what HTTP allows; httpx refuses the rest at
    every send, and CR/LF would inject headers): say which character and where, never the value."""
    for at, ch in enumerate(value.get_secret_value(), 1):
        if " " <= ch <= "~" or ch == "\t":
            continue
        kind = "a non-ASCII character" if ord(ch) > 0x7F else "a control character"
        raise ValueError(
            f"contains {_CONTROL_NAMES.get(ch, kind)} (U+{ord(ch):04X}) at character {at}; a "
            "header value must be printable ASCII on one line: remove it (check for a trailing "
            "newline in the variable or file it comes from)"
        )
    return value


def _template_block(value: object) -> object:
    if value is not None and not isinstance(value, dict):
        raise ValueError(
            "must be a mapping of title, body and/or text, like {body: '{{ report.summary }}'}"
        )
    return value


TemplateSource = Annotated[str, Field(min_length=1)]
Enrich = Annotated[
    tuple[Annotated[Literal["artefacts"], BeforeValidator(_enrichment)], ...],
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


class SinkSettings(QuietHours):
    """What every sink's settings answer, whatever its type: the behaviour that differs by type
    lives on the type's own class, so that no other module switches on ``type``.

    ``name`` is the sink's key under ``sinks:``, filled in by the loader."""

    name: SkipJsonSchema[str] = derived("")
    if TYPE_CHECKING:  # each type declares these as fields, in their place among its keys

        @property
        def type(self) -> str: ...

        @property
        def enrich(self) -> tuple[str, ...]: ...

    #: How the daemon shapes what the sink sends: a Slack message, a JSON body or plain text.
    payload: ClassVar[Literal["slack", "json", "text"]] = "text"
    #: One line on what the sink does with an event, for ``notifier preview``.
    kind_words: ClassVar[str] = "console"
    #: Whether it keeps one message per report, with thread replies (``reply_broadcast``).
    living: ClassVar[bool] = False

    def target(self) -> str:
        """Where it sends, without a secret: for ``notifier check``."""
        return "standard output"

    def behaviour(self) -> list[str]:
        """How it delivers, in words (living messages, digests, enrichment, templates)."""
        return []

    def message_templates(self) -> CompiledTemplates | None:
        """The sink's own compiled templates (Slack sinks only)."""
        return None

    def advice(self, where: str) -> list[str]:
        """Warnings about keys of this sink type that are valid but have no effect."""
        return []

    def digest_threshold(self) -> int | None:
        """More events than this in one drain go out as one digest (or batch); None: never."""
        return None

    def wants_artefacts(self) -> bool:
        """Whether its messages include what the artefacts say (``enrich: [artefacts]``)."""
        return "artefacts" in getattr(self, "enrich", ())  # console: no enrich


def _digest_words(after: int) -> str:
    return f"digest_after {after}: " + (
        f"one digest message when more than {after} events arrive at once"
        if after
        else "never a digest"
    )


class _Messages(SinkSettings):
    """A sink with digests and enrichment (every type but console)."""

    if TYPE_CHECKING:

        @property
        def digest_after(self) -> int: ...

    how: ClassVar[str] = ""

    def digest_threshold(self) -> int | None:
        return self.digest_after if self.digest_after > 0 else None

    def _digest_line(self) -> str:
        return _digest_words(self.digest_after)

    def behaviour(self) -> list[str]:
        details = [self._digest_line(), f"enrich: {', '.join(self.enrich) or 'none'}"]
        templates = self.message_templates()
        if templates is not None:
            details.append(templates_ok(templates))
        return [self.how, "; ".join(details)]


def templates_ok(templates: CompiledTemplates) -> str:
    """``template (title, body): ok``, for ``notifier check``."""
    parts = [part for part in ("title", "body", "text") if getattr(templates, part) is not None]
    return f"template ({', '.join(parts)}): ok"


Compiled = SkipJsonSchema[InstanceOf[CompiledTemplates] | None]


class SlackSinkSettings(_Messages):
    """A Slack bot token sink (chat.postMessage): one living message per report."""

    type: Literal["slack"] = "slack"
    token: Annotated[Secret, AfterValidator(slack_token)]
    channel: Text
    api_url: Annotated[str, AfterValidator(api_base_url)] = "https://slack.com/api/"
    timeout: Duration = 15.0
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = ()
    template: Template = None
    templates: Compiled = derived()
    actions: Actions = ()

    payload: ClassVar[Literal["slack", "json", "text"]] = "slack"
    kind_words: ClassVar[str] = "slack: one living message per report, changes as thread replies"
    living: ClassVar[bool] = True
    how: ClassVar[str] = (
        "living messages: one per report, updated in place, changes as thread replies"
    )

    def target(self) -> str:
        return f"channel {self.channel}"

    def advice(self, where: str) -> list[str]:
        warning = slack_token_warning(where, self.token)
        return [warning] if warning else []

    def message_templates(self) -> CompiledTemplates | None:
        return self.templates


class SlackWebhookSinkSettings(_Messages):
    """A Slack incoming webhook sink: the URL itself is the secret."""

    type: Literal["slack_webhook"] = "slack_webhook"
    url: Annotated[SecretUrl, AfterValidator(placeholder_check("SLACK_WEBHOOK_URL"))]
    timeout: Duration = 15.0
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = ()
    template: Template = None
    templates: Compiled = derived()

    payload: ClassVar[Literal["slack", "json", "text"]] = "slack"
    kind_words: ClassVar[str] = "slack_webhook: a new message per event"
    how: ClassVar[str] = "new messages: one per event (an incoming webhook cannot edit or thread)"

    def target(self) -> str:
        return "incoming webhook (URL hidden)"

    def message_templates(self) -> CompiledTemplates | None:
        return self.templates


class WebhookSinkSettings(_Messages):
    """A JSON webhook, signed with Standard Webhooks when a secret is set."""

    type: Literal["webhook"] = "webhook"
    url: SecretUrl
    secret: Annotated[SecretStr, AfterValidator(whsec)] | None = None
    headers: dict[Text, Annotated[SecretStr, AfterValidator(_header_value)]] = Field(
        default_factory=dict
    )
    timeout: Duration = 10.0
    batch: bool = Field(
        default=False,
        description="more than digest_after events at once: one signal_report.batch request",
    )
    digest_after: DigestAfter = DIGEST_AFTER
    enrich: Enrich = ()

    payload: ClassVar[Literal["slack", "json", "text"]] = "json"
    kind_words: ClassVar[str] = "webhook: the JSON body"
    how: ClassVar[str] = "one request per event"

    def target(self) -> str:
        signed = "signed" if self.secret else "unsigned"
        # the origin without user:password@ (credentials); path and query are hidden too
        parts = urlsplit(self.url.get_secret_value())
        port = f":{parts.port}" if parts.port else ""
        return f"POST {parts.scheme}://{parts.hostname or '?'}{port}/… ({signed})"

    def digest_threshold(self) -> int | None:
        return super().digest_threshold() if self.batch else None

    def advice(self, where: str) -> list[str]:
        if self.batch and self.digest_after == 0:
            return [
                f"{where}.batch: digest_after is 0, so events are never batched; "
                "set digest_after (like 5) or remove batch"
            ]
        if not self.batch and "digest_after" in self.model_fields_set:
            return [
                f"{where}.digest_after: has no effect without batch: true (each event is "
                "its own request); add batch: true or remove digest_after"
            ]
        return []

    def _digest_line(self) -> str:
        after = self.digest_after
        if not self.batch:
            return "batch: off"
        return "batch: " + (
            f"one signal_report.batch request when more than {after} events arrive at once"
            if after
            else "never (digest_after is 0)"
        )


class ConsoleSinkSettings(SinkSettings):
    """Readable text on standard output."""

    type: Literal["console"] = "console"


AnySink = Annotated[
    SlackSinkSettings | SlackWebhookSinkSettings | WebhookSinkSettings | ConsoleSinkSettings,
    Field(discriminator="type"),
]
SINKS: Final[dict[str, type[SinkSettings]]] = {
    "slack": SlackSinkSettings,
    "slack_webhook": SlackWebhookSinkSettings,
    "webhook": WebhookSinkSettings,
    "console": ConsoleSinkSettings,
}
#: Sink types whose messages templates shape.
TEMPLATED: Final = tuple(kind for kind, model in SINKS.items() if model.payload == "slack")
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
    **{(kind, "actions"): NO_ACTIONS for kind in ("slack_webhook", "webhook", "console")},
}


def misplaced(kind: str | None, key: str) -> str | None:
    """What to say about ``key`` on a sink of type ``kind`` that does not take it, if known."""
    return _MISPLACED.get((kind, key)) if kind is not None else None
