"""Pure rendering: an event (or the notifier's notice about itself) becomes a Slack card, a
signed webhook body or terminal text.

Imports only ``notifier.models``; no I/O.
"""

from notifier.render.console import console_text
from notifier.render.notice import (
    notice_console_text,
    notice_fallback_text,
    notice_headline,
    notice_slack_message,
    notice_text_only,
    notice_webhook_body,
    notice_webhook_payload,
)
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
    "notice_console_text",
    "notice_fallback_text",
    "notice_headline",
    "notice_slack_message",
    "notice_text_only",
    "notice_webhook_body",
    "notice_webhook_payload",
    "sign",
    "slack_message",
    "status_emoji",
    "text_only",
    "truncate",
    "webhook_body",
    "webhook_payload",
]
