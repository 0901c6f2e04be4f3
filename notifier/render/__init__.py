"""Pure rendering: an event (or the notifier's notice about itself) becomes a Slack card, a
signed webhook body or terminal text.

Imports only ``notifier.core``; no I/O.
"""

from notifier.render.actions import acted_reply
from notifier.render.blocks import SlackMessage, block_kit_builder_url
from notifier.render.console import console_text
from notifier.render.digest import digest_message, webhook_batch_body, webhook_batch_payload
from notifier.render.notice import (
    notice_console_text,
    notice_fallback_text,
    notice_headline,
    notice_slack_message,
    notice_text_only,
    notice_webhook_body,
    notice_webhook_payload,
)
from notifier.render.slack import fallback_text, slack_message, text_only
from notifier.render.text import (
    escape_mrkdwn,
    format_number,
    headline,
    status_colour,
    status_emoji,
    truncate,
)
from notifier.render.thread import thread_reply
from notifier.render.webhook import sign, webhook_body, webhook_payload

__all__ = [
    "SlackMessage",
    "acted_reply",
    "block_kit_builder_url",
    "console_text",
    "digest_message",
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
    "status_colour",
    "status_emoji",
    "text_only",
    "thread_reply",
    "truncate",
    "webhook_batch_body",
    "webhook_batch_payload",
    "webhook_body",
    "webhook_payload",
]
