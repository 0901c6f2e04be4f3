"""Event → signed JSON webhook body, following Standard Webhooks (standardwebhooks.com).
(Notices about the notifier itself: ``render.notice``, through ``encode_json``.)

The body is serialised once, here, and those exact bytes are signed and sent: any
re-serialisation on the way would break the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from notifier.core.events import Event, EventType
from notifier.core.report import Links, thaw
from notifier.render import text as txt

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - a prefix, not a secret
_TEXT_CHARS: Final = 300


def webhook_payload(
    event: Event, rules: Sequence[str], links: Links, timestamp: datetime
) -> dict[str, Any]:
    """The body as plain JSON data (``webhook_body`` serialises it)."""
    data: dict[str, Any] = {
        "event_id": event.id,
        "project_id": event.project_id,
        "project_name": event.project_name,  # None when PostHog did not give it
        "rules": list(rules),
        "report": event.report.to_json(),
        "previous": event.previous.to_json() if event.previous is not None else None,
        "changes": {k: [thaw(a), thaw(b)] for k, (a, b) in event.changes.items()},
        "url": links.report(event.project_id, event.report.id),
        "text": webhook_text(event),
    }
    if event.reminded is not None:  # signal_report.reminder: which one, how many, since when
        data["reminder"] = event.reminded.to_json()
    enrichment = event.enrichment.to_json()
    if enrichment:  # sinks with enrich: [artefacts]: recordings (with their links), judgments
        recordings = zip(enrichment.get("recordings", []), event.enrichment.recordings, strict=True)
        for data_of, recording in recordings:  # the link opens at the segment's start
            data_of["url"] = recording.url(links, event.project_id)
        data["enrichment"] = enrichment
    return {
        "type": f"signal_report.{event.type.value}",
        "timestamp": iso_utc(timestamp),
        "data": data,
    }


def webhook_text(event: Event) -> str:
    """For people (chat relays, e-mail): ``🟢 Ready for review (was Researching): Title · P1 ·
    high · Act now``, in the words of ``core.words``; the rest of ``data`` keeps raw values."""
    report = event.report
    status = txt.event_status(event)
    if event.type is EventType.REMOVED:
        what = f" (last status {txt.status_text(report.status)})"
    elif event.type is EventType.STATUS_CHANGED:
        before, _ = txt.status_change(event)
        move = txt.status_move(event)  # Reopened / Restored
        what = f" ({move}, was {txt.status_text(before)})" if move else ""
        what = what or f" (was {txt.status_text(before)})"
    elif event.type is EventType.UPDATED:
        changes = txt.describe_changes(event.changes, 3)
        what = f" (updated: {changes})" if changes else " (updated)"
    elif event.type is EventType.REMINDER:
        said = txt.reminder_text(event)
        what = f" ({said[:1].lower()}{said[1:]})"
    else:
        what = " (new)"
    parts = [f"{txt.event_emoji(event)} {txt.status_text(status)}{what}: {txt.title_of(report)}"]
    if report.priority:
        parts.append(txt.field_words("priority", report.priority))
    if report.actionability:
        parts.append(txt.field_words("actionability", report.actionability))
    return txt.truncate(" · ".join(parts), _TEXT_CHARS)


def webhook_body(event: Event, rules: Sequence[str], links: Links, timestamp: datetime) -> bytes:
    """The exact bytes to sign and send: compact UTF-8 JSON."""
    return encode_json(webhook_payload(event, rules, links, timestamp))


def encode_json(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the one serialisation every webhook body goes through."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate from the API (``"\ud800"``) cannot be UTF-8: keep it as a JSON escape.
        return json.dumps(payload, separators=(",", ":")).encode("ascii")


def iso_utc(moment: datetime) -> str:
    """``2026-01-15T16:40:11Z``; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC-SHA256 of "{id}.{ts}." + body>``.

    ``secret`` is ``whsec_`` + base64 of the key (the prefix is optional). Raises ``ValueError``
    when the rest is not base64.
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    encoded += "=" * (-len(encoded) % 4)  # like the reference library, accept unpadded keys
    key = base64.b64decode(encoded, validate=True)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
