"""The sink protocol and the helpers every sink shares.

A sink sends one delivery and either returns (delivered) or raises ``SinkError``, whose
``permanent`` flag decides between a retry later and the dead-letter queue. Sinks decide nothing
about *when* to retry: they only say whether retrying can help and, when the other side says so,
after how long (``retry_after``).

Two optional abilities, which the ``Deliverer`` looks for: a ``LivingSink`` keeps one message
per report up to date (it is handed the message it posted before, and returns the one to
remember; the sink never touches the store), and a ``DigestSink`` takes many events at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, runtime_checkable

from notifier.core.outbox import Delivery

USER_AGENT_PRODUCT = "posthog-signal-notifier"


@runtime_checkable
class Sink(Protocol):
    """Somewhere a delivery can be sent."""

    name: str

    def send(self, delivery: Delivery) -> None:
        """Deliver once. Raises ``SinkError``; returning means delivered."""
        ...

    def close(self) -> None:
        """Release connections; the sink is not used afterwards."""
        ...


class MessageRef(NamedTuple):
    """A message a sink posted and can edit: Slack's channel id and ``ts``, and the report's
    ``updated_at`` it shows (an older event delivered late must not roll it back)."""

    channel: str
    ts: str
    shown: str | None = None


@runtime_checkable
class LivingSink(Protocol):
    """A sink that keeps one living message per report (Slack with a bot token)."""

    name: str

    def send_report(self, delivery: Delivery, card: MessageRef | None) -> MessageRef:
        """Deliver an event about a report whose message is ``card`` (None: none yet): post
        the message, or bring it up to date and say what changed; returns the message to
        remember for the report. Raises ``SinkError``."""
        ...


@runtime_checkable
class RefreshingSink(Protocol):
    """A living sink that can bring a report's message up to date without telling its thread
    (after a digest, which said what changed)."""

    name: str

    def refresh_card(self, delivery: Delivery, card: MessageRef) -> MessageRef:
        """Update ``card`` to the delivery's report; returns the message to remember (``card``
        itself when nothing was changed). Raises ``SinkError``."""
        ...


@runtime_checkable
class DigestSink(Protocol):
    """A sink that takes more than ``digest_after`` due events as one message (0: never)."""

    name: str

    @property
    def digest_after(self) -> int:
        """More due events than this go out as one digest; 0: never."""
        ...

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        """Deliver every one of ``deliveries`` (events, never notices) at once, or raise
        ``SinkError`` for all of them."""
        ...


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header value by case-insensitive name; list values (slack_sdk's) give their first."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            if isinstance(value, list | tuple):
                return str(value[0]) if value else None
            return str(value)
    return None


def describe_exception(exc: BaseException) -> str:
    """``ClassName: message`` (or the class alone) for an I/O error, on one line."""
    reason = getattr(exc, "reason", None)  # URLError wraps the interesting part
    detail = str(reason if reason is not None else exc).strip()
    detail = " ".join(detail.split())[:200]
    kind = type(reason if isinstance(reason, BaseException) else exc).__name__
    return f"{kind}: {detail}" if detail else kind


def utc_now() -> datetime:
    """The sinks' default clock."""
    return datetime.now(UTC)
