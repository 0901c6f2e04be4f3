"""The PostHog adapter: list every signal report of a project, retrieve one by id.

Talks to the configured host only. ``next`` links are read as "there is more", never followed:
behind proxies they name internal hosts, and following them would send the key elsewhere. The
client asks for ``ordering=created_at,id`` (stable paging where the server allows it), computes
offsets itself, de-duplicates by id, and retries throttling and transient errors a bounded number
of times within the cycle's deadline. Every failure becomes a ``SourceError`` whose message says
what to do, built from status codes and PostHog's ``detail`` only.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from notifier import __version__
from notifier.errors import SourceError, SourceErrorKind
from notifier.models import Report
from notifier.settings import PostHogSettings

log = logging.getLogger(__name__)

PREFIXES: Final = ("signals/reports", "signal_reports")  # newest first
ORDERING: Final = "created_at,id"
_THROTTLE_DETAIL = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
_TRANSIENT_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
MAX_PAGES: Final = 100_000  # a listing that has not ended by then never will


@dataclass(frozen=True, slots=True)
class Listing:
    """One project's listing. ``complete`` is False when items had to be skipped."""

    reports: dict[str, Report]
    complete: bool
    skipped: int
    requests: int


def _detail(response: httpx.Response) -> str:
    """PostHog's ``detail`` (or a short note about the body), never more than 300 characters."""
    try:
        body = response.json()
    except ValueError:
        return "(the body is not JSON)"
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail: str = body["detail"]
        return detail[:300]
    return "(no detail)"


def _retry_after(response: httpx.Response) -> float | None:
    """The wait PostHog asks for: a Retry-After header, or only the 429 body's ``detail``."""
    header = response.headers.get("retry-after")
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    match = _THROTTLE_DETAIL.search(_detail(response))
    return float(match.group(1)) if match else None


class PostHogClient:
    """Lists and retrieves signal reports with httpx, against one configured host."""

    def __init__(
        self,
        settings: PostHogSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        attempts: int = 3,
        max_wait: float = 60.0,
    ) -> None:
        self._settings = settings
        self._cancel = cancel or threading.Event()
        self._sleep = sleep or self._cancel.wait
        self._attempts = attempts
        self._max_wait = max_wait
        self._prefix: dict[int, str] = {}
        if settings.api_path != "auto":
            self._fixed: str | None = settings.api_path
        else:
            self._fixed = None
        self._client = httpx.Client(
            base_url=settings.host,
            headers={
                "authorization": f"Bearer {settings.api_key}",
                "accept": "application/json",
                "user-agent": f"posthog-signal-notifier/{__version__}",
            },
            timeout=settings.timeout,
            follow_redirects=False,
            transport=transport,
        )
        self.requests_made = 0

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    # -- requests -----------------------------------------------------------------------------

    def _get(
        self, path: str, params: dict[str, Any], project_id: int, deadline: float | None
    ) -> httpx.Response:
        """One GET with bounded retries for throttling and transient failures."""
        last: SourceError | None = None
        for attempt in range(self._attempts):
            if self._cancel.is_set():
                raise SourceError(
                    f"project {project_id}: stopping; the cycle was abandoned",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise last or SourceError(
                    f"project {project_id}: the cycle ran out of time (poll.deadline)",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            timeout = (
                self._settings.timeout
                if remaining is None
                else min(self._settings.timeout, remaining)
            )
            try:
                self.requests_made += 1
                response = self._client.get(path, params=params, timeout=timeout)
            except httpx.TimeoutException as exc:
                last = SourceError(
                    f"project {project_id}: PostHog did not answer within {timeout:.0f}s "
                    f"({type(exc).__name__})",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            except httpx.TransportError as exc:
                last = SourceError(
                    f"project {project_id}: cannot reach PostHog at {self._settings.host} "
                    f"({type(exc).__name__}: {exc})",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            else:
                if response.status_code < 300 or response.status_code == 404:
                    return response
                last = self._error(response, project_id)
                if not last.transient:
                    raise last
            if attempt + 1 < self._attempts:
                self._wait(last, attempt, deadline)
        assert last is not None
        raise last

    def _wait(self, error: SourceError, attempt: int, deadline: float | None) -> None:
        wait = error.retry_after
        if wait is None:
            wait = random.uniform(0, min(8.0, 0.5 * 2**attempt))
        if wait > self._max_wait:
            raise error
        if deadline is not None and time.monotonic() + wait >= deadline:
            raise error
        log.info(
            "posthog: waiting %.1fs before retrying (%s)",
            wait,
            error,
            extra={"event": "source_retry", "project_id": error.project_id},
        )
        self._sleep(wait)

    def _error(self, response: httpx.Response, project_id: int) -> SourceError:
        status = response.status_code
        detail = _detail(response)
        where = f"project {project_id}"
        if status in (401, 403):
            fix = (
                "use a personal API key (phx_…) with scope 'task:read' and access to this "
                "project, in posthog.api_key"
            )
            return SourceError(
                f"{where}: PostHog refused the API key (HTTP {status}: {detail}); {fix}",
                kind=SourceErrorKind.AUTH,
                project_id=project_id,
                status_code=status,
            )
        if status == 400:
            hint = " Check posthog.statuses." if "status" in detail.lower() else ""
            return SourceError(
                f"{where}: PostHog rejected the request (HTTP 400: {detail}).{hint}",
                kind=SourceErrorKind.BAD_REQUEST,
                project_id=project_id,
                status_code=status,
            )
        if status == 429:
            return SourceError(
                f"{where}: PostHog is rate limiting this key (HTTP 429: {detail})",
                kind=SourceErrorKind.THROTTLED,
                project_id=project_id,
                status_code=status,
                retry_after=_retry_after(response),
            )
        if status in _TRANSIENT_STATUS or status >= 500:
            return SourceError(
                f"{where}: PostHog answered HTTP {status} ({detail})",
                kind=SourceErrorKind.TRANSIENT,
                project_id=project_id,
                status_code=status,
                retry_after=_retry_after(response),
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

    @staticmethod
    def _json(response: httpx.Response, project_id: int) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise SourceError(
                f"project {project_id}: PostHog's answer is not JSON (HTTP "
                f"{response.status_code}, {response.headers.get('content-type', 'no type')}); "
                "is posthog.host the PostHog app origin (not *.i.posthog.com)?",
                kind=SourceErrorKind.INVALID_RESPONSE,
                project_id=project_id,
            ) from exc
        if not isinstance(body, dict):
            raise SourceError(
                f"project {project_id}: PostHog's answer is a JSON {type(body).__name__}, "
                "not an object",
                kind=SourceErrorKind.INVALID_RESPONSE,
                project_id=project_id,
            )
        return body

    # -- listing ------------------------------------------------------------------------------

    def _path(self, project_id: int, prefix: str, report_id: str | None = None) -> str:
        tail = f"{report_id}/" if report_id else ""
        return f"/api/projects/{project_id}/{prefix}/{tail}"

    def _first_page(
        self, project_id: int, params: dict[str, Any], deadline: float | None
    ) -> httpx.Response:
        """The first page, finding the API path prefix this PostHog version serves."""
        known = self._fixed or self._prefix.get(project_id)
        candidates = (known,) if known else PREFIXES
        details: list[str] = []
        for prefix in candidates:
            response = self._get(self._path(project_id, prefix), params, project_id, deadline)
            if response.status_code != 404:
                if self._prefix.get(project_id) != prefix:
                    log.debug("project %s: reports are at %s/", project_id, prefix)
                self._prefix[project_id] = prefix
                return response
            details.append(_detail(response))
        if any("project" in d.lower() for d in details):
            message = (
                f"project {project_id}: PostHog says 'Project not found.'; check "
                "posthog.project_ids (the numeric id in your project's URL, or GET /api/projects/)"
            )
        else:
            tried = " and ".join(f"{p}/" for p in candidates)
            message = (
                f"project {project_id}: no signal reports API at {tried} on "
                f"{self._settings.host}; is this a PostHog instance with Signals enabled? "
                "(set posthog.api_path if it lives elsewhere)"
            )
        raise SourceError(
            message, kind=SourceErrorKind.NOT_FOUND, project_id=project_id, status_code=404
        )

    def list_reports(self, project_id: int, deadline: float | None = None) -> Listing:
        """Every report of a project, all pages; raises ``SourceError`` if any page fails."""
        limit = self._settings.page_size
        base: dict[str, Any] = {"limit": limit, "ordering": ORDERING}
        if self._settings.statuses:
            base["status"] = ",".join(self._settings.statuses)
        start = self.requests_made
        reports: dict[str, Report] = {}
        skipped = 0
        offset = 0
        pages = 0
        max_pages, widest = MAX_PAGES, 0
        while True:
            params = {**base, "offset": offset}
            if pages == 0:
                response = self._first_page(project_id, params, deadline)
            else:
                path = self._path(project_id, self._prefix[project_id])
                response = self._get(path, params, project_id, deadline)
                if response.status_code == 404:
                    raise self._error_404_mid_listing(project_id, offset)
            body = self._json(response, project_id)
            results = body.get("results")
            if not isinstance(results, list):
                raise SourceError(
                    f"project {project_id}: a listing page has no 'results' list",
                    kind=SourceErrorKind.INVALID_RESPONSE,
                    project_id=project_id,
                )
            pages += 1
            for item in results:
                try:
                    report = Report.from_api(item)
                except ValueError as exc:
                    skipped += 1
                    log.warning(
                        "project %s: skipped a report PostHog sent: %s",
                        project_id,
                        exc,
                        extra={"event": "report_skipped", "project_id": project_id},
                    )
                    continue
                reports.pop(report.id, None)  # a repeat moves to its latest position and copy
                reports[report.id] = report
            count = body.get("count")
            if isinstance(count, int) and count >= 0:
                widest = max(widest, count // max(1, len(results) or limit) + 10)
                max_pages = min(MAX_PAGES, widest)
            if not body.get("next") or not results:
                break
            if pages >= max_pages:
                raise SourceError(
                    f"project {project_id}: the listing did not end after {pages} pages "
                    f"(count {count}); PostHog's paging looks broken",
                    kind=SourceErrorKind.INVALID_RESPONSE,
                    project_id=project_id,
                )
            offset += len(results)
        return Listing(
            reports=reports,
            complete=skipped == 0,
            skipped=skipped,
            requests=self.requests_made - start,
        )

    @staticmethod
    def _error_404_mid_listing(project_id: int, offset: int) -> SourceError:
        return SourceError(
            f"project {project_id}: the listing answered 404 at offset {offset}",
            kind=SourceErrorKind.TRANSIENT,
            project_id=project_id,
            status_code=404,
        )

    def retrieve(
        self, project_id: int, report_id: str, deadline: float | None = None
    ) -> Report | None:
        """One report by id; ``None`` when PostHog answers 404 (deleted, or hidden by V1)."""
        prefix = self._fixed or self._prefix.get(project_id) or PREFIXES[0]
        path = self._path(project_id, prefix, report_id)
        response = self._get(path, {}, project_id, deadline)
        if response.status_code == 404:
            return None
        body = self._json(response, project_id)
        try:
            return Report.from_api(body)
        except ValueError as exc:
            raise SourceError(
                f"project {project_id}: report {report_id} could not be read: {exc}",
                kind=SourceErrorKind.INVALID_RESPONSE,
                project_id=project_id,
            ) from exc
