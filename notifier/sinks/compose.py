"""What a sink sends for one event, as data: the one function both the sinks and
``notifier preview`` use, so that a preview is exactly what is sent.

Templates are applied here, over the default rendering in ``notifier.render``: those of the
first routing rule that has templates, else the sink's. On a Slack card the title template
replaces the report title in the header (the status colour and the Resolved/Removed badge
stay, so a living message still shows its state), the body template replaces the summary
section, and the text template the top-level fallback text (the notification). A part a
template leaves blank keeps its default. A template that fails to render (``TemplateError``)
never fails the delivery: the default rendering goes out and a WARNING names the templates and
the sink. Webhook bodies and console text have no templates. The only side effect is that
warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from notifier.config.settings import SinkSettings, SlackSinkSettings
from notifier.core.events import Event
from notifier.core.report import Links
from notifier.render import SlackMessage, console_text, slack_message, webhook_body
from notifier.render.templates import CompiledTemplates, RenderedText, TemplateError, render

log = logging.getLogger(__name__)


def templates_for(
    sink: SinkSettings, rules: Sequence[str], rule_templates: Mapping[str, CompiledTemplates]
) -> CompiledTemplates | None:
    """The templates that shape ``sink``'s message for an event routed by ``rules``: the first
    of those rules that has templates, else the sink's own, else None."""
    for rule in rules:
        found = rule_templates.get(rule)
        if found is not None:
            return found
    return sink.message_templates()


def rendered_text(
    sink: SinkSettings,
    event: Event,
    rules: Sequence[str],
    links: Links,
    rule_templates: Mapping[str, CompiledTemplates],
) -> RenderedText:
    """The templated parts for this message (all None: the default rendering)."""
    templates = templates_for(sink, rules, rule_templates)
    if templates is None:
        return RenderedText()
    try:
        return render(templates, event, rules, links)
    except TemplateError as exc:
        log.warning(
            "sink %s: %s templates failed for report %s, sending the default message: %s",
            sink.name,
            templates.where,
            event.report.id,
            "; ".join(exc.problems),
            extra={
                "event": "template_failed",
                "sink": sink.name,
                "project_id": event.project_id,
                "report_id": event.report.id,
            },
        )
        return RenderedText()


def compose_event(
    sink: SinkSettings,
    event: Event,
    rules: Sequence[str],
    links: Links,
    rule_templates: Mapping[str, CompiledTemplates],
    *,
    timestamp: datetime,
) -> dict[str, Any] | str:
    """The payload ``sink`` sends for ``event`` routed by ``rules``: Slack ``{"text",
    "blocks"}`` (the top-level message), the webhook's JSON body as data, or console text."""
    if sink.payload == "slack":
        parts = rendered_text(sink, event, rules, links, rule_templates)
        message = slack_message(
            event,
            rules,
            links,
            enrichment=event.enrichment,
            title=parts.title,
            body=parts.body,
            text=parts.text,
            actions=sink.actions if isinstance(sink, SlackSinkSettings) else (),
            acted=event.acted,
        )
        return {"text": message.text, "blocks": list(message.blocks)}
    if sink.payload == "json":
        data: dict[str, Any] = json.loads(webhook_body(event, rules, links, timestamp))
        return data
    return console_text(event, rules, links, color=False)


def slack_card(
    sink: SinkSettings,
    event: Event,
    rules: Sequence[str],
    links: Links,
    rule_templates: Mapping[str, CompiledTemplates],
    *,
    timestamp: datetime,
) -> SlackMessage:
    """``compose_event``'s Slack payload as the message the Slack sinks post."""
    payload = compose_event(sink, event, rules, links, rule_templates, timestamp=timestamp)
    assert isinstance(payload, dict)
    return SlackMessage(text=str(payload["text"]), blocks=tuple(payload["blocks"]))
