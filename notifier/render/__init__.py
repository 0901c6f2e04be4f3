"""Pure rendering: an event becomes a Slack card, a signed webhook body or terminal text.

Imports only ``notifier.models``; no I/O.
"""

from notifier.render.console import console_text
from notifier.render.slack import SlackMessage, fallback_text, slack_message, text_only
from notifier.render.text import (
    escape_mrkdwn,
    format_number,
    headline,
    status_emoji,
    truncate,
)
from notifier.render.webhook import sign, webhook_body, webhook_payload

__all__ = [
    "SlackMessage",
    "console_text",
    "escape_mrkdwn",
    "fallback_text",
    "format_number",
    "headline",
    "sign",
    "slack_message",
    "status_emoji",
    "text_only",
    "truncate",
    "webhook_body",
    "webhook_payload",
]
