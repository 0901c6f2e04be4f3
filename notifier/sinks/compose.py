"""What a sink sends for one event, as data: the one function both the sinks and
``notifier preview`` use, so that a preview is exactly what is sent.

Pure: templates (the first routing rule's, else the sink's) are applied here, over the default
rendering in ``notifier.render``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from notifier.models import Event, Links
from notifier.render import console_text, slack_message, webhook_body
from notifier.settings import (
    SinkSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    WebhookSinkSettings,
)
from notifier.templates import CompiledTemplates


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
    if isinstance(sink, SlackSinkSettings | SlackWebhookSinkSettings):
        message = slack_message(event, rules, links, enrichment=event.enrichment)
        return {"text": message.text, "blocks": list(message.blocks)}
    if isinstance(sink, WebhookSinkSettings):
        data: dict[str, Any] = json.loads(webhook_body(event, rules, links, timestamp))
        return data
    return console_text(event, rules, links, color=False)
