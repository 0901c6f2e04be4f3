"""PostHog's error answers, read: status code and ``detail`` → a ``SourceError`` that says
what to do. Messages are built from status codes and PostHog's ``detail`` only (never headers
or URLs); a ``detail`` that echoes the key (``Authorization: Bearer phx_…``) is scrubbed before it
is cut, and the ``SourceError`` scrubs its message again.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.secrets import clip
from notifier.core.times import parse_retry_after
from notifier.posthog.parse import decode_json

_THROTTLE_DETAIL = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_TRANSIENT_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})


def error_body(response: httpx.Response) -> dict[str, Any] | None:
    """The body when it is a JSON object (PostHog's ``{type, code, detail, attr}``)."""
    try:
        body = decode_json(response.content, 0)
    except SourceError:
        return None
    return body if isinstance(body, dict) else None


def detail_of(response: httpx.Response) -> str:
    """PostHog's ``detail`` (or a short note about the body), never more than 300 characters,
    scrubbed of secrets before it is cut (so no beginning of one is left at the cut)."""
    try:
        body = decode_json(response.content, 0)
    except SourceError:
        return "(the body is not JSON)"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail: str = body["detail"]
        return clip(detail, 300)
    return "(no detail)"


def retry_after_of(response: httpx.Response) -> float | None:
    """The wait PostHog asks for: a Retry-After header (seconds or an HTTP date), or only the
    429 body's ``detail`` ("Expected available in N seconds.")."""
    asked = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
    if asked is not None:
        return asked
    match = _THROTTLE_DETAIL.search(detail_of(response))
    return float(match.group(1)) if match else None


def abandoned(project_id: int) -> SourceError:
    """The notifier is stopping: the request is not made (or not tried again)."""
    return SourceError(
        f"project {project_id}: stopping; the cycle was abandoned",
        kind=SourceErrorKind.TRANSIENT,
        project_id=project_id,
    )


def auth_error(project_id: int, status: int, detail: str) -> SourceError:
    """401/403: say which of PostHog's causes it is, and the fix for that cause."""
    scope = re.search(r"scope '([^']+)'", detail)
    lowered = detail.lower()
    if scope:
        fix = (
            f"edit the key in PostHog (Settings → Personal API keys) and add the scope "
            f"'{scope.group(1)}'"
        )
    elif "access to the requested project" in lowered:
        fix = (
            f"the key is limited to other projects: add project {project_id} to the key in "
            "PostHog, or remove it from posthog.project_ids"
        )
    elif "not provided" in lowered:
        fix = (
            "no key reached PostHog: set posthog.api_key (a proxy in between may strip the "
            "Authorization header)"
        )
    else:
        fix = (
            "the key is wrong or revoked: create a personal API key (phx_…) with scope "
            "'task:read' and access to this project, and put it in posthog.api_key"
        )
    return SourceError(
        f"project {project_id}: PostHog refused the API key (HTTP {status}: {detail}); {fix}",
        kind=SourceErrorKind.AUTH,
        project_id=project_id,
        status_code=status,
    )


def classify(response: httpx.Response, project_id: int) -> SourceError:
    """The ``SourceError`` for an answer that is neither a success nor a 404: its kind decides
    retry or not, its message what the operator should do."""
    status = response.status_code
    detail = detail_of(response)
    where = f"project {project_id}"
    if status in (401, 403):
        return auth_error(project_id, status, detail)
    if status == 400:
        body = error_body(response)
        about_status = "status" in detail.lower() or (body or {}).get("attr") == "status"
        hint = (
            " Check posthog.statuses: use only statuses this PostHog knows "
            "(e.g. potential, candidate, in_progress, pending_input, ready, resolved, "
            "failed, suppressed)."
            if about_status
            else ""
        )
        return SourceError(
            f"{where}: PostHog rejected the request (HTTP 400: {detail}).{hint}",
            kind=SourceErrorKind.BAD_REQUEST,
            project_id=project_id,
            status_code=status,
        )
    if status in _TRANSIENT_STATUS or status >= 500:  # 429 included: PostHog is throttling
        throttled = status == 429
        return SourceError(
            f"{where}: PostHog is rate limiting this key (HTTP 429: {detail})"
            if throttled
            else f"{where}: PostHog answered HTTP {status} ({detail})",
            kind=SourceErrorKind.THROTTLED if throttled else SourceErrorKind.TRANSIENT,
            project_id=project_id,
            status_code=status,
            retry_after=retry_after_of(response),
        )
    if 300 <= status < 400:
        return SourceError(
            f"{where}: PostHog answered with a redirect (HTTP {status}); redirects are not "
            "followed so the key is never sent elsewhere: set posthog.host to the final origin",
            kind=SourceErrorKind.INVALID_RESPONSE,
            project_id=project_id,
            status_code=status,
        )
    return SourceError(
        f"{where}: unexpected HTTP {status} from PostHog ({detail})",
        kind=SourceErrorKind.INVALID_RESPONSE,
        project_id=project_id,
        status_code=status,
    )
