"""Slack through a bot token: ``chat.postMessage`` with Block Kit.

slack_sdk's own retry handlers are switched off: retries are the outbox's job, and the SDK's
rate-limit handler would sleep inside the delivery thread. Every SDK or socket error becomes a
``SinkError``; the token never appears in a message.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, cast
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from notifier import __version__
from notifier.errors import SinkError
from notifier.models import Delivery, Links, Notice
from notifier.render import notice_slack_message, notice_text_only, slack_message, text_only
from notifier.settings import SlackSinkSettings
from notifier.sinks.base import (
    USER_AGENT_PRODUCT,
    describe_exception,
    header,
    parse_retry_after,
    utc_now,
)

log = logging.getLogger(__name__)

#: slack_sdk logs failed requests itself; the SinkError says it better, so keep the SDK quiet.
SDK_LOGGER: Final = logging.getLogger("notifier.sinks.slack_sdk")
SDK_LOGGER.setLevel(logging.CRITICAL)

#: Codes that mean "the blocks were refused": worth one immediate text-only retry.
BLOCK_ERRORS: Final = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})

#: Codes that heal by themselves: retry later.
TRANSIENT_ERRORS: Final = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

#: What to do about the permanent codes (``{channel}`` is filled in; it is not a secret).
HINTS: Final[Mapping[str, str]] = {
    "channel_not_found": "the bot cannot see channel {channel} — check the channel id and "
    "invite the bot",
    "not_in_channel": "the bot is not a member of {channel} — invite it (/invite @your-app) or "
    "grant the chat:write.public scope",
    "is_archived": "channel {channel} is archived — unarchive it or point the sink elsewhere",
    "invalid_auth": "the token is not valid — check the xoxb- bot token configured for the sink",
    "not_authed": "no token was sent — set the sink's bot token",
    "token_revoked": "the token was revoked — reinstall the Slack app and update the token",
    "token_expired": "the token expired — reinstall the Slack app and update the token",
    "account_inactive": "the token's app or user is deactivated — reinstall the app and update "
    "the token",
    "missing_scope": "the token lacks a scope — add chat:write (and chat:write.public for "
    "channels the bot has not joined) and reinstall the app",
    "restricted_action": "a workspace admin restricted posting in {channel}",
    "invalid_blocks": "Slack refused the message blocks, even as text only",
    "invalid_blocks_format": "Slack refused the message blocks, even as text only",
    "msg_blocks_too_long": "the message blocks were too long, and the text-only retry failed",
    "no_text": "the message had no text",
    "msg_too_long": "the message text was too long",
}


def transient_io_error(exc: BaseException, service: str, timeout: float) -> SinkError:
    """A socket, urllib or http.client error: always worth retrying later."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        return SinkError(f"{service} did not answer within {timeout:g} s", permanent=False)
    return SinkError(f"cannot reach {service}: {describe_exception(exc)}", permanent=False)


#: The I/O errors urllib-based clients raise: URLError and TimeoutError are OSErrors.
IO_ERRORS: Final = (OSError, http.client.HTTPException)


class SlackSink:
    """Posts each delivery as a Block Kit card to one channel with a bot token."""

    def __init__(
        self,
        settings: SlackSinkSettings,
        links: Links,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._links = links
        self._clock = clock
        self._client = WebClient(
            token=settings.token,
            base_url=settings.api_url,
            # urllib takes float seconds; slack_sdk merely annotates int.
            timeout=cast(int, settings.timeout),
            retry_handlers=[],
            logger=SDK_LOGGER,
            user_agent_prefix=f"{USER_AGENT_PRODUCT}/{__version__}",
        )
        parts = urlsplit(settings.api_url)  # in messages: host and port, never user:password@
        self._service = f"Slack ({parts.hostname or '?'}{f':{parts.port}' if parts.port else ''})"

    def send(self, delivery: Delivery) -> None:
        """Post the card; on a blocks error, once more at once as text only."""
        event = delivery.event
        if isinstance(event, Notice):  # the notifier's own notice (self_alerts)
            message = notice_slack_message(event)
        else:
            message = slack_message(event, delivery.rules, self._links)
        try:
            self._post(text=message.text, blocks=list(message.blocks))
        except SlackApiError as exc:
            code = _code(exc.response)
            if code not in BLOCK_ERRORS:
                raise self._api_error(exc.response) from exc
        else:
            return
        log.warning(
            "slack sink %s: Slack refused the blocks (%s); posting as text only", self.name, code
        )
        try:
            plain = (
                notice_text_only(event)
                if isinstance(event, Notice)
                else text_only(event, self._links)
            )
            self._post(text=plain, blocks=None)
        except SlackApiError as exc:
            error = self._api_error(exc.response)
            raise SinkError(
                f"{code}: Slack refused the blocks, and the text-only retry failed: {error}",
                permanent=error.permanent,
                retry_after=error.retry_after,
            ) from exc

    def close(self) -> None:
        """Nothing to release: urllib opens a connection per request."""

    def _post(self, *, text: str, blocks: list[dict[str, Any]] | None) -> None:
        try:
            self._client.chat_postMessage(
                channel=self._settings.channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError:
            raise
        except SlackClientError as exc:
            raise SinkError(
                f"slack_sdk refused the request: {type(exc).__name__}", permanent=True
            ) from exc
        except IO_ERRORS as exc:
            raise transient_io_error(exc, self._service, self._settings.timeout) from exc

    def _api_error(self, response: Any) -> SinkError:
        """Translate ``{"ok": false, "error": code}`` (or an HTTP error) into a SinkError."""
        status = int(getattr(response, "status_code", 0) or 0)
        code = _code(response)
        channel = self._settings.channel
        if status == 429 or code == "ratelimited":
            retry_after = parse_retry_after(header(response.headers, "Retry-After"), self._clock())
            wait = f"{retry_after:g} s" if retry_after is not None else "a while"
            return SinkError(
                f"ratelimited: Slack asks to wait {wait} before posting to {channel} again",
                permanent=False,
                retry_after=retry_after,
            )
        if code in TRANSIENT_ERRORS or status >= 500:
            retry_after = parse_retry_after(header(response.headers, "Retry-After"), self._clock())
            return SinkError(
                f"{code}: {self._service} is having trouble (HTTP {status}); will retry",
                permanent=False,
                retry_after=retry_after,
            )
        hint = HINTS.get(code)
        if hint is None:
            return SinkError(
                f"{code}: Slack refused the message (HTTP {status}); see "
                "https://docs.slack.dev/reference/methods/chat.postMessage#errors",
                permanent=True,
            )
        message = f"{code}: {hint.format(channel=channel)}"
        needed = _data(response).get("needed")
        if code == "missing_scope" and isinstance(needed, str):
            message += f" (needed: {needed[:100]})"
        return SinkError(message, permanent=True)


def _data(response: Any) -> dict[str, Any]:
    data = getattr(response, "data", None)
    return data if isinstance(data, dict) else {}


def _code(response: Any) -> str:
    """The Web API error code on one short line (``http_<status>`` when there is none)."""
    code = _data(response).get("error")
    if not isinstance(code, str) or not code.strip():
        return f"http_{getattr(response, 'status_code', 0)}"
    return " ".join(code.split())[:120]
