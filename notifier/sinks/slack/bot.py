"""Slack through a bot token: one living message per report, Block Kit.

The first event about a report posts its card (``chat.postMessage``); later ones
``chat.update`` that card to the report's current state and post a short reply in its thread
saying what changed (``reply_broadcast`` when a routing rule asks). The ``Deliverer`` hands in
the card posted before and remembers the one returned; a card Slack no longer lets us edit
(deleted, too old) is replaced by a new one. Notices and ``send`` are plain posts; many events
at once are one digest (``send_digest``). Every post waits for its turn on the shared ``Pacer``
and a 429 pauses the whole workspace.

slack_sdk's own retry handlers are switched off: retries are the outbox's job, and the SDK's
rate-limit handler would sleep inside the delivery thread. Requests go through bounded httpx
(``common.send_bounded``): a total deadline, a capped answer, and a redirect is a permanent
error, so the token is only ever sent to ``api_url``'s origin. Every SDK or socket error
becomes a ``SinkError``; the token never appears in a message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit
from urllib.request import Request

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from notifier.config.settings import SlackSinkSettings
from notifier.core.errors import SinkError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery, Notice
from notifier.core.times import format_span, parse_instant, parse_retry_after
from notifier.net import new_client
from notifier.render import (
    SlackMessage,
    notice_slack_message,
    notice_text_only,
    text_only,
    thread_reply,
)
from notifier.render.actions import acted_reply
from notifier.render.text import title_of
from notifier.sinks.base import MessageRef, header
from notifier.sinks.compose import slack_card
from notifier.sinks.slack.common import (
    BLOCK_ERRORS,
    SlackPoster,
    digest_of,
    sdk_options,
    send_bounded,
)
from notifier.sinks.slack.pace import bot_keys
from notifier.sinks.slack.people import People, lookup_by_email

log = logging.getLogger(__name__)

#: ``chat.update`` codes meaning the card cannot be edited any more (deleted, too old): post anew.
GONE_ERRORS: Final = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})

#: A channel id (``C0123456789``), as opposed to a name (``#alerts``).
CHANNEL_ID: Final = re.compile(r"[CGD][A-Z0-9]{8,}")

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


def _older(updated_at: str | None, shown: str | None) -> bool:
    """Whether a report copy is older than the one a card shows (unknown: not older)."""
    mine, theirs = parse_instant(updated_at), parse_instant(shown)
    return mine is not None and theirs is not None and mine < theirs


class _BoundedWebClient(WebClient):
    """slack_sdk's ``WebClient`` sending through bounded httpx (``common.send_bounded``)."""

    def __init__(self, *, http: httpx.Client, service: str, **options: Any) -> None:
        super().__init__(**options)
        self._http = http
        self.service = service  # how messages name this Slack: host and port only

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        """The SDK's one urllib call: the answer as the SDK reads it (any status: the SDK's
        ``SlackResponse`` decides what is an error)."""
        timeout = float(self.timeout)
        answer = send_bounded(
            self._http, req, service=self.service, timeout=timeout, setting="the sink's api_url"
        )
        return {"status": answer.status_code, "headers": answer.headers, "body": answer.text}


def bot_client(settings: SlackSinkSettings) -> tuple[_BoundedWebClient, httpx.Client]:
    """A Web API client for the sink's token and ``api_url``, built as the sink builds its own
    (bounded httpx, no SDK retries), for read-only calls (``notifier check --online``); the
    caller closes the httpx client."""
    parts = urlsplit(settings.api_url)  # in messages: host and port, never user:password@
    service = f"Slack ({parts.hostname or '?'}{f':{parts.port}' if parts.port else ''})"
    http = new_client(settings.api_url)
    client = _BoundedWebClient(
        http=http,
        service=service,
        token=settings.token.get_secret_value(),
        base_url=settings.api_url,
        **sdk_options(settings.timeout),
    )
    return client, http


class SlackSink(SlackPoster[SlackSinkSettings]):
    """Keeps one Block Kit card per report up to date in one channel, with a bot token."""

    def _connect(self, settings: SlackSinkSettings) -> None:
        token = settings.token.get_secret_value()
        self._channel_key, self._workspace = bot_keys(settings.api_url, token, settings.channel)
        self._client, self._http = bot_client(settings)
        self._service = self._client.service
        known = self._people.known  # suggested reviewers: also by users.lookupByEmail
        lookup = lookup_by_email(self._client)
        self._people = People(known, sink=self.name, lookup=lookup, workspace=self._workspace)

    def send(self, delivery: Delivery) -> None:
        """Post the card (or the notice) as a new message."""
        self._post_card(delivery)

    def send_report(self, delivery: Delivery, card: MessageRef | None) -> MessageRef:
        """Post the report's card, or update ``card`` and reply in its thread."""
        event = delivery.event
        configured = self._settings.channel
        if card is not None and CHANNEL_ID.fullmatch(configured) and card.channel != configured:
            card = None  # the sink now posts to another channel: start a new card there
        if card is None or isinstance(event, Notice):
            return self._post_card(delivery)
        if event.type is EventType.REMINDER:  # the card is as it was: a reply, bumped
            self._reply(delivery, event, card, bump=True)
            return card
        if _older(event.report.updated_at, card.shown):
            # delivered late (e.g. a dead letter retried by hand): the card already shows a
            # newer state, so only the thread hears of this change
            self._reply(delivery, event, card)
            return card
        gone = self._update(delivery, event, card)
        if gone is not None:
            log.info(
                "slack sink %s: the message about report %s can no longer be updated (%s); "
                "posting a new one",
                self.name,
                event.report.id,
                gone,
                extra={"event": "delivery", "sink": self.name, "report_id": event.report.id},
            )
            return self._post_card(delivery)
        self._reply(delivery, event, card)
        return card._replace(shown=event.report.updated_at or card.shown)

    def refresh_card(self, delivery: Delivery, card: MessageRef) -> MessageRef:
        """Bring ``card`` up to the report's state without a thread reply (a digest has just
        said what changed); a card Slack no longer lets us edit, or one showing a newer state,
        is left as it is."""
        event = delivery.event
        if not isinstance(event, Event) or _older(event.report.updated_at, card.shown):
            return card
        if self._update(delivery, event, card) is not None:
            return card
        return card._replace(shown=event.report.updated_at or card.shown)

    def _update(self, delivery: Delivery, event: Event, card: MessageRef) -> str | None:
        """``chat.update`` the card to the report's state; Slack's error code when it no
        longer lets us edit it (deleted, too old), else None."""
        message = self._card(delivery, event)
        try:
            self._deliver(
                "chat.update",
                message,
                text_only(event, self._links),
                channel=card.channel,
                ts=card.ts,
            )
        except SlackApiError as exc:
            code = _code(exc.response)
            if code not in GONE_ERRORS:
                raise self._api_error(exc.response) from exc
            return code
        return None

    def _reply(
        self, delivery: Delivery, event: Event, card: MessageRef, *, bump: bool = False
    ) -> None:
        """The short reply in the card's thread: what this event changed (who acted, for a
        decision taken from the card); ``bump``: also shown in the channel (a reminder)."""
        reply = (
            acted_reply(event.acted[-1], title_of(event.report))
            if event.acted
            else thread_reply(event, delivery.rules, self._links)
        )
        broadcast = bump or any(
            rule.reply_broadcast for name in delivery.rules if (rule := self._rules.get(name))
        )
        self._send(
            "chat.postMessage",
            reply,
            reply.text,
            channel=card.channel,  # the thread lives where its card is
            thread_ts=card.ts,
            reply_broadcast=True if broadcast else None,
        )

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        """One message for many events: counts and a line per report."""
        message = digest_of(deliveries, self._links)
        self._send("chat.postMessage", message, message.text)

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    # -- messages --------------------------------------------------------------------------

    def _card(self, delivery: Delivery, event: Event) -> SlackMessage:
        """The card, built by ``compose_event`` (templates included) as ``preview`` shows it."""
        return slack_card(
            self._settings,
            self._people.resolve(event),  # suggested reviewers @-mentioned where known
            delivery.rules,
            self._links,
            self._rule_templates,
            timestamp=self._clock(),
        )

    def _post_card(self, delivery: Delivery) -> MessageRef:
        event = delivery.event
        if isinstance(event, Notice):  # the notifier's own notice (self_alerts)
            message, plain = notice_slack_message(event), notice_text_only(event)
        else:
            message, plain = self._card(delivery, event), text_only(event, self._links)
        data = self._send("chat.postMessage", message, plain)
        # no ts (never seen): an empty one makes the next chat.update fail and post anew
        return MessageRef(
            str(data.get("channel") or self._settings.channel),
            str(data.get("ts") or ""),
            None if isinstance(event, Notice) else event.report.updated_at,
        )

    def _send(self, method: str, message: SlackMessage, plain: str, **extra: Any) -> dict[str, Any]:
        """``_deliver`` with every Slack refusal translated into a ``SinkError``."""
        try:
            return self._deliver(method, message, plain, **extra)
        except SlackApiError as exc:
            raise self._api_error(exc.response) from exc

    def _deliver(
        self, method: str, message: SlackMessage, plain: str, **extra: Any
    ) -> dict[str, Any]:
        """Send the message; when Slack refuses the blocks, once more at once as ``plain``
        text. Raises ``SlackApiError`` for other refusals, ``SinkError`` for the rest."""
        try:
            return self._call(method, text=message.text, blocks=list(message.blocks), **extra)
        except SlackApiError as exc:
            code = _code(exc.response)
            if code not in BLOCK_ERRORS:
                raise
        log.warning(
            "slack sink %s: Slack refused the blocks (%s); sending as text only", self.name, code
        )
        try:
            # chat.update keeps the old blocks unless told to drop them
            return self._call(
                method, text=plain, blocks=[] if method == "chat.update" else None, **extra
            )
        except SlackApiError as exc:
            error = self._api_error(exc.response)
            raise SinkError(
                f"{code}: Slack refused the blocks, and the text-only retry failed: {error}",
                permanent=error.permanent,
                retry_after=error.retry_after,
            ) from exc

    def _call(self, method: str, **args: Any) -> dict[str, Any]:
        """One Web API call, paced: a post waits for the channel's turn, an update only for a
        workspace pause; a 429 pauses the workspace for every sink."""
        try:
            if method == "chat.update":
                self._pacer.ready(self._workspace)
                response = self._client.chat_update(**args)
            else:
                with self._pacer.post(self._channel_key, self._workspace) as turn:
                    try:
                        args.setdefault("channel", self._settings.channel)
                        response = self._client.chat_postMessage(
                            unfurl_links=False, unfurl_media=False, **args
                        )
                    except SlackApiError:
                        turn.used = False  # refused: nothing reached the channel
                        raise
        except SlackApiError as exc:
            status = int(getattr(exc.response, "status_code", 0) or 0)
            if status == 429 or _code(exc.response) == "ratelimited":
                retry_after = header(exc.response.headers, "Retry-After")
                self._pacer.pause(self._workspace, parse_retry_after(retry_after, self._clock()))
            raise
        except SlackClientError as exc:
            raise SinkError(
                f"slack_sdk refused the request: {type(exc).__name__}", permanent=True
            ) from exc
        return _data(response)

    def _api_error(self, response: Any) -> SinkError:
        """Translate ``{"ok": false, "error": code}`` (or an HTTP error) into a SinkError."""
        status = int(getattr(response, "status_code", 0) or 0)
        code = _code(response)
        channel = self._settings.channel
        if status == 429 or code == "ratelimited":
            retry_after = parse_retry_after(header(response.headers, "Retry-After"), self._clock())
            wait = format_span(retry_after) if retry_after is not None else "a while"
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
