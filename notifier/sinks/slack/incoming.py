"""Slack through an incoming webhook URL.

``WebhookClient`` never raises on 4xx/5xx: success is HTTP 200 with the body ``ok``, anything else
is read from the status and the plain-text body (``no_service``, ``channel_is_archived``, …).
The URL itself is the credential, so it never appears in a message or a log line, and posts
go through bounded httpx (``common.send_bounded``): a redirect is a permanent error, so the URL
and the message only ever reach the configured origin.

An incoming webhook answers only ``ok``: no ``ts``, so its posts can be neither edited nor
threaded, and every event is a new post (no living message). Many events at once are one digest;
every post waits for its turn on the shared ``Pacer`` (the URL is the channel) and a 429 pauses
the webhooks of that workspace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import Request

import httpx
from slack_sdk.webhook import WebhookClient, WebhookResponse

from notifier.config.settings import SlackWebhookSinkSettings
from notifier.core.errors import SinkError
from notifier.core.outbox import Delivery, Notice
from notifier.core.secrets import redact
from notifier.core.times import parse_retry_after
from notifier.net import new_client
from notifier.render import (
    SlackMessage,
    notice_slack_message,
    notice_text_only,
    text_only,
)
from notifier.sinks.base import header
from notifier.sinks.compose import slack_card
from notifier.sinks.slack.common import (
    BLOCK_ERRORS,
    SlackPoster,
    digest_of,
    sdk_options,
    send_bounded,
)
from notifier.sinks.slack.pace import webhook_keys

log = logging.getLogger(__name__)

SERVICE: Final = "the Slack webhook"

#: What to do about each documented error body.
HINTS: Final[Mapping[str, str]] = {
    "invalid_payload": "Slack could not read the message",
    "user_not_found": "the webhook's user no longer exists — create a new webhook URL",
    "action_prohibited": "a workspace admin restricted posting to the webhook's channel",
    "invalid_token": "the webhook URL is no longer valid — create a new one",
    "channel_not_found": "the webhook's channel no longer exists — create a new webhook URL",
    "no_service": "the webhook was removed or its app uninstalled — create a new webhook URL",
    "no_active_hooks": "the webhook is disabled — re-enable it or create a new webhook URL",
    "channel_is_archived": "the webhook's channel is archived — unarchive it or create a new "
    "webhook URL for another channel",
    "team_disabled": "the Slack workspace is disabled",
    "invalid_blocks": "Slack refused the message blocks, even as text only",
    "invalid_blocks_format": "Slack refused the message blocks, even as text only",
    "msg_blocks_too_long": "the message blocks were too long, and the text-only retry failed",
}


class _BoundedWebhookClient(WebhookClient):
    """slack_sdk's ``WebhookClient`` sending through bounded httpx (``common.send_bounded``)."""

    def __init__(
        self, url: str, *, http: httpx.Client, secrets: tuple[str, ...], **options: Any
    ) -> None:
        super().__init__(url, **options)
        self._http = http
        self._secrets = secrets

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        """The SDK's one urllib call: the answer, whatever its status."""
        answer = send_bounded(
            self._http,
            req,
            service=SERVICE,
            timeout=float(self.timeout),
            setting="the sink's url",
            secrets=self._secrets,
        )
        return WebhookResponse(
            url=url, status_code=answer.status_code, body=answer.text, headers=dict(answer.headers)
        )


class SlackWebhookSink(SlackPoster[SlackWebhookSinkSettings]):
    """Posts each delivery as a Block Kit card to a Slack incoming webhook."""

    def _connect(self, settings: SlackWebhookSinkSettings) -> None:
        url = settings.url.get_secret_value()
        self._channel_key, self._workspace = webhook_keys(url)
        path = urlsplit(url).path
        self._secrets = (url, path) if len(path) >= 8 else (url,)
        self._http = new_client(url)
        self._client = _BoundedWebhookClient(
            url, http=self._http, secrets=self._secrets, **sdk_options(settings.timeout)
        )

    def send(self, delivery: Delivery) -> None:
        """Post the card; on a blocks error, once more at once as text only."""
        event = delivery.event
        if isinstance(event, Notice):  # the notifier's own notice (self_alerts)
            self._deliver(notice_slack_message(event), notice_text_only(event))
            return
        card = slack_card(
            self._settings,
            self._people.resolve(event),  # suggested reviewers @-mentioned by people:
            delivery.rules,
            self._links,
            self._rule_templates,
            timestamp=self._clock(),
        )
        self._deliver(card, text_only(event, self._links))

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        """One message for many events: counts and a line per report."""
        message = digest_of(deliveries, self._links)
        self._deliver(message, message.text)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def _deliver(self, message: SlackMessage, plain: str) -> None:
        response = self._post(text=message.text, blocks=list(message.blocks))
        if _ok(response):
            return
        code = _body(response, self._secrets)
        if response.status_code >= 500 or response.status_code == 429 or code not in BLOCK_ERRORS:
            raise self._error(response)
        log.warning(
            "slack_webhook sink %s: Slack refused the blocks (%s); posting as text only",
            self.name,
            code,
        )
        retry = self._post(text=plain, blocks=None)
        if not _ok(retry):
            error = self._error(retry)
            raise SinkError(
                f"{code}: Slack refused the blocks, and the text-only retry failed: {error}",
                permanent=error.permanent,
                retry_after=error.retry_after,
            )

    def _post(self, *, text: str, blocks: list[dict[str, Any]] | None) -> WebhookResponse:
        with self._pacer.post(self._channel_key, self._workspace) as turn:
            response = self._client.send(
                text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
            )
            turn.used = _ok(response)  # refused: nothing reached the channel
        if response.status_code == 429:
            retry_after = parse_retry_after(header(response.headers, "Retry-After"), self._clock())
            self._pacer.pause(self._workspace, retry_after)
        return response

    def _error(self, response: WebhookResponse) -> SinkError:
        status = response.status_code
        body = _body(response, self._secrets)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(header(response.headers, "Retry-After"), self._clock())
            what = "is rate limiting" if status == 429 else "is having trouble"
            return SinkError(
                f"HTTP {status} {body}: {SERVICE} {what}; will retry",
                permanent=False,
                retry_after=retry_after,
            )
        hint = HINTS.get(
            body,
            "see https://docs.slack.dev/messaging/sending-messages-using-"
            "incoming-webhooks/#handling_errors",
        )
        return SinkError(f"HTTP {status} {body}: {hint}", permanent=True)


def _ok(response: WebhookResponse) -> bool:
    return response.status_code == 200 and (response.body or "").strip() == "ok"


def _body(response: WebhookResponse, secrets: tuple[str, ...]) -> str:
    """The plain-text error body on one short line, the URL redacted should it be echoed."""
    text = " ".join(redact(response.body or "", secrets).split())
    return text[:120] or "(empty body)"
