"""A JSON webhook, signed with Standard Webhooks when the sink has a secret.

The body is serialised once (``render.webhook_body``) and those exact bytes are signed and sent.
``webhook-id`` is the same on every attempt of one (event, sink), so a receiver can de-duplicate;
``webhook-timestamp`` is the attempt's. Redirects are never followed. Messages name the sink, the
status and the receiver's origin, never the URL's path or query (they often hold a token).

Each POST is bounded (``notifier.net``): it ends within the sink's ``timeout`` in all (connect,
send and every read). The status decides; a 2xx body is never read, and of an error body only
the first ``_SNIPPET_BYTES`` are read and inflated, to quote in the message.

With ``batch: true``, more than ``digest_after`` due events go out as one ``signal_report.batch``
body, signed the same way; its ``webhook-id`` is derived from the events it carries, so every
retry of that batch has the same one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

import httpx

from notifier import __version__
from notifier.config.settings import WebhookSinkSettings
from notifier.core.errors import SinkError
from notifier.core.outbox import Delivery, Notice, digest_events, held_note
from notifier.core.report import Links
from notifier.core.secrets import redact
from notifier.core.times import format_span, parse_retry_after
from notifier.net import new_client, read_capped, stream
from notifier.render import notice_webhook_body, sign, webhook_batch_body, webhook_body
from notifier.sinks.base import USER_AGENT_PRODUCT, describe_exception, utc_now

#: Statuses worth retrying (the Standard Webhooks / Svix convention); other 5xx are too.
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_SNIPPET_BYTES: Final = 2048
_SNIPPET_CHARS: Final = 200
_UNSAFE_ID_CHARS: Final = re.compile(r"[^A-Za-z0-9_.-]")


def message_id(delivery: Delivery) -> str:
    """``webhook-id``: stable across every retry of one event to one sink."""
    return f"{delivery.event.id}.{_UNSAFE_ID_CHARS.sub('-', delivery.sink)}"


def batch_id(deliveries: Sequence[Delivery]) -> str:
    """``webhook-id`` of a batch: the same for every retry of the same events to one sink."""
    ids = "\n".join(sorted(d.event.id for d in deliveries)).encode()
    sink = deliveries[0].sink if deliveries else ""
    return f"batch_{hashlib.sha256(ids).hexdigest()[:32]}.{_UNSAFE_ID_CHARS.sub('-', sink)}"


class WebhookSink:
    """POSTs each delivery as JSON to one URL."""

    def __init__(
        self,
        settings: WebhookSinkSettings,
        links: Links,
        clock: Callable[[], datetime] = utc_now,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = settings.name
        self._settings = settings
        self._links = links
        self._clock = clock
        self._url = settings.url.get_secret_value()
        self._client = new_client(self._url, timeout=settings.timeout, transport=transport)
        self._secret = settings.secret.get_secret_value() if settings.secret else None
        self._headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        parts = urlsplit(self._url)
        self._origin = f"{parts.scheme}://{parts.hostname or '?'}" + (
            f":{parts.port}" if parts.port else ""
        )
        hidden = [self._url, self._secret, *self._headers.values()]
        if parts.path not in ("", "/"):
            hidden.append(parts.path)
        if parts.query:
            hidden.append(parts.query)
        self._secrets = tuple(s for s in hidden if s)

    @property
    def digest_after(self) -> int:
        """With ``batch``: more due events than this go out as one batch (0: never)."""
        return self._settings.digest_after if self._settings.batch else 0

    def send(self, delivery: Delivery) -> None:
        """One POST; returns on 2xx, raises SinkError otherwise."""
        now = self._clock()
        event = delivery.event
        if isinstance(event, Notice):  # the notifier's own notice (self_alerts)
            body = notice_webhook_body(event, now)
        else:
            body = webhook_body(event, delivery.rules, self._links, now)
        self._send(body, message_id(delivery), now)

    def send_digest(self, deliveries: Sequence[Delivery]) -> None:
        """One ``signal_report.batch`` POST carrying every event."""
        now = self._clock()
        body = webhook_batch_body(
            digest_events(deliveries), self._links, now, held_note(deliveries)
        )
        self._send(body, batch_id(deliveries), now)

    def _send(self, body: bytes, msg_id: str, now: datetime) -> None:
        timestamp = int(now.timestamp())
        headers = {
            "user-agent": f"{USER_AGENT_PRODUCT}/{__version__}",
            **self._headers,
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            headers["webhook-signature"] = sign(self._secret, msg_id, timestamp, body)
        try:
            with stream(
                self._client,
                "POST",
                self._url,
                timeout=self._settings.timeout,
                content=body,
                headers=headers,
            ) as response:
                snippet = self._snippet(response)
        except httpx.TimeoutException as exc:
            raise self._fail(
                f"no answer within {format_span(self._settings.timeout)}", False
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise self._fail(f"the url is not usable: {describe_exception(exc)}", True) from exc
        except httpx.LocalProtocolError as exc:
            raise self._fail(f"invalid request: {describe_exception(exc)}", True) from exc
        except httpx.RequestError as exc:
            raise self._fail(f"cannot connect: {describe_exception(exc)}", False) from exc
        except ValueError as exc:  # e.g. a header value that is not ASCII
            raise self._fail(f"invalid request: {describe_exception(exc)}", True) from exc
        self._check(response, snippet)

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()

    def _check(self, response: httpx.Response, snippet: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        said = f" ({snippet})" if snippet else ""
        if 300 <= status < 400:
            raise self._fail(
                f"HTTP {status}: redirects are not followed; point url at the final address",
                True,
            )
        if status in RETRY_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            raise self._fail(f"HTTP {status}{said}; will retry", False, retry_after)
        if status == 410:
            raise self._fail(
                f"HTTP 410: endpoint gone; the receiver asks to stop sending{said}", True
            )
        if status in (401, 403):
            raise self._fail(
                f"HTTP {status}: the receiver refused our credentials; check the sink's "
                f"secret and headers{said}",
                True,
            )
        raise self._fail(f"HTTP {status}: the receiver rejected the delivery{said}", True)

    def _snippet(self, response: httpx.Response) -> str:
        """The first bytes of an error body on one line, secrets redacted; "" for 2xx."""
        if 200 <= response.status_code < 300:
            return ""
        try:
            data = read_capped(response, _SNIPPET_BYTES, truncate=True)
        except httpx.HTTPError:
            return ""  # the status alone decides; the body is only a hint
        text = " ".join(data.decode("utf-8", "replace").split())
        text = "".join(ch for ch in text if ch.isprintable())
        return redact(text, self._secrets)[:_SNIPPET_CHARS]

    def _fail(self, what: str, permanent: bool, retry_after: float | None = None) -> SinkError:
        message = redact(f"webhook sink {self.name} ({self._origin}): {what}", self._secrets)
        return SinkError(message, permanent=permanent, retry_after=retry_after)
