"""What both Slack sinks share: the quiet SDK logger, the error codes and I/O errors they treat
alike, the options of their slack_sdk clients, and ``SlackPoster``, their common state
(settings, links, clock, rule templates, the shared pace).

slack_sdk's own retry handlers are switched off: retries are the outbox's job, and the SDK's
rate-limit handler would sleep inside the delivery thread.

The SDK's transport is replaced, its API kept. slack_sdk sends with urllib, which follows
redirects (resending the bot token, or the webhook URL and message, to another origin), reads
any body whole, and has only per-read timeouts. Each sink's client subclasses the SDK's and
overrides the one method that turns the SDK's prepared ``urllib.request.Request`` into an
answer (``_perform_urllib_http_request_internal`` of ``WebClient``,
``_perform_http_request_internal`` of ``WebhookClient``); everything around it (arguments,
``SlackResponse`` and its errors, ``WebhookResponse``) is the SDK's. The override hands the
request to ``send_bounded``: ``notifier.net``'s httpx, as for PostHog and webhooks — one total
deadline (the sink's ``timeout``), the answer capped at ``MAX_ANSWER_BYTES`` as read and
inflated, redirects refused. That rather than a urllib opener without redirects: urllib has
no total deadline and no bounded inflation to build on, and one bounded HTTP for every client
is one thing to get right.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

import httpx

from notifier import __version__
from notifier.config.settings import RuleSettings, SlackSinkSettings, SlackWebhookSinkSettings
from notifier.core.errors import SinkError
from notifier.core.outbox import Delivery, digest_events, held_note
from notifier.core.report import Links
from notifier.core.secrets import redact
from notifier.core.times import format_span
from notifier.net import TooLarge, fetch, size
from notifier.render import SlackMessage, digest_message
from notifier.render.held import held_message
from notifier.sinks.base import USER_AGENT_PRODUCT, describe_exception, utc_now
from notifier.sinks.slack.pace import Pacer
from notifier.sinks.slack.people import People

#: slack_sdk logs failed requests itself; the SinkError says it better, so keep the SDK quiet.
SDK_LOGGER: Final = logging.getLogger("notifier.sinks.slack.sdk")
SDK_LOGGER.setLevel(logging.CRITICAL)

#: Codes that mean "the blocks were refused": worth one immediate text-only retry.
BLOCK_ERRORS: Final = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})


#: The most of a Slack answer read, as sent and as inflated. Slack's answers are a few KiB (a
#: chat.postMessage answer echoes the message: 50 blocks of 3,000 characters at most).
MAX_ANSWER_BYTES: Final = 2**20

#: Request headers httpx sets itself from what it sends.
_OWN_HEADERS: Final = frozenset({"content-length", "host", "connection", "accept-encoding"})

SettingsT = TypeVar("SettingsT", SlackSinkSettings, SlackWebhookSinkSettings)


def send_bounded(
    http: httpx.Client,
    request: urllib.request.Request,
    *,
    service: str,
    timeout: float,
    setting: str,
    secrets: tuple[str, ...] = (),
) -> httpx.Response:
    """The request slack_sdk prepared, sent through bounded httpx (see the module's
    docstring); its answer, read and decoded. Every failure is a ``SinkError`` naming
    ``service`` (``setting``: the key to fix when Slack redirects), ``secrets`` redacted."""
    headers = {k: str(v) for k, v in request.header_items() if k.lower() not in _OWN_HEADERS}
    try:
        response = fetch(
            http,
            request.get_method(),
            request.full_url,
            content=request.data if isinstance(request.data, bytes) else None,
            headers=headers,
            timeout=timeout,
            limit=MAX_ANSWER_BYTES,
        )
    except TooLarge as exc:
        # Permanent: no Slack answers like this (the URL points at something else), and each
        # retry could post the message again and download the same flood.
        how = " once inflated" if exc.inflated else ""
        raise SinkError(
            f"{service} sent an answer over {size(exc.limit)}{how}; Slack's answers are a few "
            f"KiB, so this is not Slack: check {setting}",
            permanent=True,
        ) from exc
    except httpx.TimeoutException as exc:
        raise SinkError(
            f"{service} did not answer within {format_span(timeout)}", permanent=False
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        message = f"{setting} is not usable: {describe_exception(exc)}"
        raise SinkError(redact(message, secrets), permanent=True) from exc
    except httpx.DecodingError as exc:
        message = f"{service}'s answer could not be decoded: {describe_exception(exc)}"
        raise SinkError(redact(message, secrets), permanent=False) from exc
    except httpx.HTTPError as exc:  # connection refused or reset, a broken answer
        message = f"cannot reach {service}: {describe_exception(exc)}"
        raise SinkError(redact(message, secrets), permanent=False) from exc
    if 300 <= response.status_code < 400:
        raise SinkError(
            f"{service} answered with a redirect (HTTP {response.status_code}); redirects are "
            f"not followed, so the credential never leaves its origin: set {setting} to the "
            "final address",
            permanent=True,
        )
    return response


def sdk_options(timeout: float) -> dict[str, Any]:
    """The options both slack_sdk clients are built with: no SDK retries, a quiet logger, our
    user agent."""
    return {
        # urllib takes float seconds; slack_sdk merely annotates int.
        "timeout": cast(int, timeout),
        "retry_handlers": [],
        "logger": SDK_LOGGER,
        "user_agent_prefix": f"{USER_AGENT_PRODUCT}/{__version__}",
    }


class SlackPoster(Generic[SettingsT]):
    """The state a Slack sink posts with. ``rules`` (name → ``RuleSettings``) supply rule
    templates (and ``reply_broadcast`` to the bot sink); ``pacer`` is shared with the other
    sinks (a private one when not given); ``people`` is the config's ``people:`` map
    (suggested reviewers → Slack member ids)."""

    def __init__(
        self,
        settings: SettingsT,
        links: Links,
        *,
        clock: Callable[[], datetime] = utc_now,
        rules: Mapping[str, RuleSettings] | None = None,
        pacer: Pacer | None = None,
        people: Mapping[str, str] | None = None,
    ) -> None:
        self.name = settings.name
        self._people = People(people or {}, sink=settings.name)
        self._settings: SettingsT = settings
        self._links = links
        self._clock = clock
        self._rules = dict(rules or {})
        self._rule_templates = {
            name: rule.templates for name, rule in self._rules.items() if rule.templates
        }
        self._pacer = pacer if pacer is not None else Pacer()
        self._connect(settings)

    def _connect(self, settings: SettingsT) -> None:
        """Set up the client (no I/O: connections open on first send)."""
        raise NotImplementedError

    @property
    def digest_after(self) -> int:
        """More due events than this go out as one digest (0: never)."""
        return self._settings.digest_after


def digest_of(deliveries: Sequence[Delivery], links: Links) -> SlackMessage:
    """The Slack digest of ``deliveries``: what a silence or quiet hours held when they were
    released from one (``Delivery.held``), else the counts and a line per event."""
    events, held = digest_events(deliveries), held_note(deliveries)
    if held is not None:
        return held_message(held, events, links)
    return digest_message(events, links)
