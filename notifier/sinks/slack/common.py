"""What both Slack sinks share: the quiet SDK logger, the error codes and I/O errors they treat
alike, the options of their slack_sdk clients, and ``SlackPoster``, their common state
(settings, links, clock, rule templates, the shared pace).

slack_sdk's own retry handlers are switched off: retries are the outbox's job, and the SDK's
rate-limit handler would sleep inside the delivery thread.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

from notifier import __version__
from notifier.config.settings import RuleSettings, SlackSinkSettings, SlackWebhookSinkSettings
from notifier.core.errors import SinkError
from notifier.core.report import Links
from notifier.core.times import format_span
from notifier.sinks.base import USER_AGENT_PRODUCT, describe_exception, utc_now
from notifier.sinks.slack.pace import Pacer

#: slack_sdk logs failed requests itself; the SinkError says it better, so keep the SDK quiet.
SDK_LOGGER: Final = logging.getLogger("notifier.sinks.slack.sdk")
SDK_LOGGER.setLevel(logging.CRITICAL)

#: Codes that mean "the blocks were refused": worth one immediate text-only retry.
BLOCK_ERRORS: Final = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long"})

#: The I/O errors urllib-based clients raise: URLError and TimeoutError are OSErrors.
IO_ERRORS: Final = (OSError, http.client.HTTPException)

SettingsT = TypeVar("SettingsT", SlackSinkSettings, SlackWebhookSinkSettings)


def transient_io_error(exc: BaseException, service: str, timeout: float) -> SinkError:
    """A socket, urllib or http.client error: always worth retrying later."""
    if isinstance(exc, TimeoutError) or "timed out" in str(exc).lower():
        return SinkError(f"{service} did not answer within {format_span(timeout)}", permanent=False)
    return SinkError(f"cannot reach {service}: {describe_exception(exc)}", permanent=False)


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
    sinks (a private one when not given)."""

    def __init__(
        self,
        settings: SettingsT,
        links: Links,
        *,
        clock: Callable[[], datetime] = utc_now,
        rules: Mapping[str, RuleSettings] | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.name = settings.name
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
