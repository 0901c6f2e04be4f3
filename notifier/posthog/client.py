"""The PostHog adapter: list every signal report of a project, retrieve one by id, read the
first artefacts of one.

Talks to the configured host only. ``next`` links are read as "there is more", never followed:
behind proxies they name internal hosts, and following them would send the key elsewhere. The
client asks for ``ordering=created_at,id`` (stable paging where the server allows it), computes
offsets itself, de-duplicates by id, and retries throttling and transient errors a bounded number
of times within the cycle's deadline. Every failure becomes a ``SourceError`` whose message says
what to do, built from status codes and PostHog's ``detail`` only.

Reading a body is pure and lives in ``notifier.posthog.parse``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

import httpx

from notifier import __version__
from notifier.config.settings import PostHogSettings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.models import Report
from notifier.posthog.budget import RequestBudget
from notifier.posthog.errors import classify, detail_of
from notifier.posthog.listing import Gathered, Listing
from notifier.posthog.paging import Ahead, Known, known_for
from notifier.posthog.parse import (
    Page,
    artefacts_suffice,
    decode_json,
    invalid,
    parse_artefact_page,
    parse_page,
    parse_retrieved,
)

log = logging.getLogger(__name__)

PREFIXES: Final = ("signals/reports", "signal_reports")  # newest first
ORDERING: Final = "created_at,id"
#: Incremental listings: the most recently updated first, so a cycle stops where nothing changed.
CHANGED_FIRST: Final = "-updated_at,id"
MAX_PAGES: Final = 100_000  # a listing that has not ended by then never will
#: Pages in a row that bring no report not already seen: the server repeats itself (it ignores
#: ``offset``, or its ``next`` loops) and the listing would never end.
STALE_PAGES: Final = 3
#: Statuses PostHog's listing leaves out when no ``status`` filter is given (V2+).
HIDDEN_BY_DEFAULT: Final = frozenset({"suppressed", "deleted"})
#: A report's artefacts: items per page (V4+ pages them; V1–V3 ignore it and send all) and
#: pages read at most. They come newest first, and only the newest few are ever shown.
ARTEFACT_PAGE_SIZE: Final = 100
ARTEFACT_PAGES: Final = 2


def _seconds(seconds: float) -> str:
    """``30s``, ``0.5s``: a timeout as people write it."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"


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
        on_response: Callable[[str], None] | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        """``budget``: the key's request budget, shared with every other user of the key (None:
        requests are not paced)."""
        self._settings = settings
        self._budget = budget
        # told of every request's outcome: the status code, or timeout / connection_error /
        # decoding_error (the daemon counts them for /metrics)
        self._on_response = on_response or (lambda _outcome: None)
        self._cancel = cancel or threading.Event()
        self._sleep = sleep or self._cancel.wait
        self._attempts = attempts
        self._max_wait = max_wait
        self._prefix: dict[int, str] = {}
        self._unordered: set[int] = set()  # projects whose listing ignores our ordering
        self._said_unordered = False
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
        self._here = threading.local()  # requests made by this thread (one cycle at a time)
        #: full listings download their next page here while reading the current one
        self.ahead_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="posthog-ahead")

    def close(self) -> None:
        """Release the connection pool and the page-ahead threads."""
        self.ahead_pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def get_counted(
        self, path: str, params: dict[str, Any], project_id: int, deadline: float | None
    ) -> tuple[httpx.Response | Exception, int]:
        """``_get`` on a worker thread: the answer (or the error, to raise on the cycle's
        thread) and how many requests it made."""
        before = self.requests_here()
        try:
            outcome: httpx.Response | Exception = self._get(path, params, project_id, deadline)
        except Exception as exc:  # raised on the cycle's thread if the page is used  # noqa: BLE001
            outcome = exc
        return outcome, self.requests_here() - before

    def count_here(self, requests: int) -> None:
        """Count requests made for this thread's cycle by another thread."""
        self._here.count = self.requests_here() + requests

    def requests_here(self) -> int:
        """Requests made so far by the calling thread: projects are polled concurrently, and
        each cycle counts its own."""
        count: int = getattr(self._here, "count", 0)
        return count

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
            if self._budget is not None:
                self._budget.acquire(project_id, deadline)
                if deadline is not None:  # waiting for the budget used some of the time left
                    timeout = max(0.001, min(timeout, deadline - time.monotonic()))
            try:
                self.requests_made += 1
                self._here.count = self.requests_here() + 1
                response = self._client.get(path, params=params, timeout=timeout)
            except httpx.DecodingError as exc:
                self._on_response("decoding_error")
                raise invalid(
                    project_id,
                    f"PostHog's answer could not be decoded ({type(exc).__name__}: {exc})",
                ) from exc
            except httpx.TimeoutException as exc:
                self._on_response("timeout")
                last = SourceError(
                    f"project {project_id}: PostHog did not answer within {_seconds(timeout)} "
                    f"({type(exc).__name__})",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            except httpx.RequestError as exc:  # connection refused or reset, protocol errors
                self._on_response("connection_error")
                last = SourceError(
                    f"project {project_id}: cannot reach PostHog at {self._settings.host} "
                    f"({type(exc).__name__}: {exc})",
                    kind=SourceErrorKind.TRANSIENT,
                    project_id=project_id,
                )
            else:
                self._on_response(str(response.status_code))
                if response.status_code < 300 or response.status_code == 404:
                    return response
                last = classify(response, project_id)
                if last.kind is SourceErrorKind.THROTTLED and self._budget is not None:
                    # the limit is the key's: every project waits, not only this one
                    self._budget.pause(last.retry_after if last.retry_after is not None else 10.0)
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

    @staticmethod
    def _decode(response: httpx.Response, project_id: int) -> Any:
        return decode_json(
            response.content,
            project_id,
            status=response.status_code,
            content_type=response.headers.get("content-type"),
        )

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
            details.append(detail_of(response))
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

    def lists(self, report: Report) -> bool:
        """Whether the listing this client asks for includes a report like this one.

        A report missing from a listing that should include it was skipped by paging (others
        moved while it paged): it must be looked for again if it goes missing again. One the
        listing hides (suppressed, or outside ``posthog.statuses``) is not fetched every cycle.
        """
        if self._settings.statuses:
            return report.status in self._settings.statuses
        return report.status not in HIDDEN_BY_DEFAULT

    def list_reports(
        self,
        project_id: int,
        deadline: float | None = None,
        *,
        known: Mapping[str, tuple[str, bool]] | None = None,
    ) -> Listing:
        """Every report of a project, all pages; raises ``SourceError`` if any page fails.

        Offsets are computed here (``next`` is only read as "there is more"); repeats are
        de-duplicated by id, the latest copy winning. The listing ends when PostHog says there
        is no more, or, marked incomplete, when it sends an empty page while saying there is.
        A server that keeps repeating itself or never ends fails the cycle. With ``known`` (the
        snapshot's ``id → (version, listed)``), only reports that differ are parsed.
        """
        listing = self._list(project_id, ORDERING, deadline, known, since=None)
        assert listing is not None  # only incremental listings give up
        return listing

    def incremental(self, project_id: int) -> bool:
        """Whether incremental listings are worth trying for this project (the server has not
        shown that it ignores ``ordering=-updated_at``)."""
        return project_id not in self._unordered

    def list_changed(
        self,
        project_id: int,
        since: datetime,
        deadline: float | None = None,
        *,
        known: Known | None = None,
    ) -> Listing | None:
        """The reports updated at or after ``since``, most recent first: pages are fetched until
        one ends before ``since``, so a quiet project costs one request.

        Returns None, having spent a request, when the server does not honour the ordering
        (PostHog V1, or an item without ``updated_at``): the caller lists everything instead,
        and ``incremental`` says False from then on.
        """
        return self._list(project_id, CHANGED_FIRST, deadline, known, since=since)

    def _list(
        self,
        project_id: int,
        ordering: str,
        deadline: float | None,
        known: Known | None,
        since: datetime | None,
    ) -> Listing | None:
        limit = self._settings.page_size
        base: dict[str, Any] = {"limit": limit, "ordering": ordering}
        if self._settings.statuses:
            base["status"] = ",".join(self._settings.statuses)
        start, began, step = self.requests_here(), time.monotonic(), limit
        gathered = Gathered()
        skipped: list[str] = []
        offset = pages = stale = 0
        cut_short = partial = False
        max_pages, widest = MAX_PAGES, 0
        count: int | None = None
        ahead = Ahead(self, project_id, deadline)
        try:
            while True:
                if pages == 0:
                    response = self._first_page(project_id, {**base, "offset": 0}, deadline)
                else:
                    # a full listing reads a page while the next one downloads
                    more = since is None and count is not None and offset + step < count
                    response = self._later_page(ahead, base, offset, step if more else 0)
                page = self._page_of(response, project_id, known)
                pages += 1
                count = page.count if pages == 1 else count
                fresh = gathered.take(page, ordered=since is not None)
                if fresh is None:
                    self._not_ordered(project_id, gathered.undated)
                    return None
                skipped.extend(page.skipped)
                if page.count is not None:
                    widest = max(widest, page.count // max(1, page.items or limit) + 10)
                    max_pages = min(MAX_PAGES, widest)
                if not page.has_next:
                    break
                if since is not None and gathered.oldest is not None and gathered.oldest < since:
                    partial = True  # everything further was updated before the cut-off
                    break
                if page.items == 0:
                    if page.count is not None and offset >= page.count:
                        break  # "more", says next; the count agrees this is the end
                    cut_short = True
                    log.warning(
                        "project %s: PostHog said there were more reports (count %s) but sent an "
                        "empty page at offset %d; this listing is treated as incomplete, so no "
                        "report is concluded removed from it",
                        project_id,
                        page.count,
                        offset,
                        extra={"event": "listing_incomplete", "project_id": project_id},
                    )
                    break
                stale = 0 if fresh or not page.served else stale + 1
                if stale >= STALE_PAGES or pages >= max_pages:
                    why = (
                        f"{stale} pages in a row brought no report not already seen"
                        if stale >= STALE_PAGES
                        else f"the listing did not end after {pages} pages (count {page.count})"
                    )
                    raise invalid(
                        project_id,
                        f"{why} (offset {offset}); PostHog's paging looks broken (does it ignore "
                        "offset?), so this listing cannot be trusted",
                    )
                # the server may serve fewer than asked (a max_limit): look ahead by what it serves
                offset, step = offset + page.items, page.items
        finally:
            ahead.close()
        if skipped:
            log.warning(
                "project %s: skipped %d of the reports PostHog sent (%s); no report is "
                "concluded removed from this listing",
                project_id,
                len(skipped),
                "; ".join(dict.fromkeys(skipped[:3])),
                extra={"event": "report_skipped", "project_id": project_id},
            )
        return Listing(
            reports=gathered.reports,
            complete=not skipped and not cut_short and not partial,
            skipped=len(skipped),
            requests=self.requests_here() - start,
            ids=frozenset(gathered.ids),
            partial=partial,
            cut_short=cut_short,
            changed_first=since is not None,
            high_water=gathered.high,
            count=count,
            seconds=time.monotonic() - began,
        )

    def _page_of(self, response: httpx.Response, project_id: int, known: Known | None) -> Page:
        """A listing page read, compared by version with what the snapshot knows."""
        body = self._decode(response, project_id)
        return parse_page(body, project_id, known_for(body, known))

    def _later_page(
        self, ahead: Ahead, base: dict[str, Any], offset: int, step: int
    ) -> httpx.Response:
        """The page at ``offset`` (fetched ahead, or now); with a ``step``, the one at
        ``offset + step`` is requested ahead before this one is read."""
        project_id, deadline = ahead.project_id, ahead.deadline
        path = self._path(project_id, self._prefix[project_id])
        params = {**base, "offset": offset}
        response = ahead.take(offset) or self._get(path, params, project_id, deadline)
        if response.status_code == 404:
            raise self._error_404_mid_listing(project_id, offset)
        if step:
            ahead.fetch(path, {**base, "offset": offset + step}, offset + step)
        return response

    def _not_ordered(self, project_id: int, undated: bool) -> None:
        """The server ignores ``ordering=-updated_at`` (or sends no ``updated_at``): every
        later cycle of this project lists everything. Said once, at INFO: it is not a fault."""
        self._unordered.add(project_id)
        if self._said_unordered:
            return
        self._said_unordered = True
        why = (
            "sends reports without updated_at"
            if undated
            else "does not honour ordering=-updated_at (PostHog before V2 orders its listing "
            "by weight)"
        )
        log.info(
            "posthog: %s %s; every cycle lists every report (full listings), which costs one "
            "request per %d reports per cycle",
            self._settings.host,
            why,
            self._settings.page_size,
            extra={"event": "incremental_unsupported", "project_id": project_id},
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
        """One report by id; ``None`` when PostHog answers 404 for it (deleted, or hidden by V1).

        A 404 that is not PostHog's "not found" for this report (a proxy's page, "Project not
        found.") raises instead: concluding from it that the report is gone would be a guess.
        """
        prefix = self._fixed or self._prefix.get(project_id) or PREFIXES[0]
        path = self._path(project_id, prefix, quote(report_id, safe=""))
        response = self._get(path, {}, project_id, deadline)
        if response.status_code == 404:
            self._check_gone(response, project_id, report_id)
            return None
        return parse_retrieved(self._decode(response, project_id), project_id, report_id)

    @staticmethod
    def _check_gone(response: httpx.Response, project_id: int, report_id: str) -> None:
        try:
            body = decode_json(response.content, project_id, status=404)
        except SourceError:
            body = None
        if not isinstance(body, dict):
            raise invalid(
                project_id,
                f"fetching report {report_id} answered 404 with a body that is not PostHog's "
                "(a proxy?); not concluding that the report was deleted",
            )
        detail = body.get("detail")
        if isinstance(detail, str) and "project" in detail.lower():
            raise SourceError(
                f"project {project_id}: PostHog says {detail!r} while fetching report "
                f"{report_id}; check posthog.project_ids",
                kind=SourceErrorKind.NOT_FOUND,
                project_id=project_id,
                status_code=404,
            )

    def artefacts(
        self,
        project_id: int,
        report_id: str,
        deadline: float | None = None,
        *,
        pages: int = ARTEFACT_PAGES,
        enough: Callable[[Sequence[Any]], bool] = artefacts_suffice,
    ) -> list[Any]:
        """A report's newest artefacts, as served (items not read: ``api.parse_enrichment``
        does that), newest first; ``[]`` when PostHog answers its own 404 for the report.

        V1–V3 answer every artefact at once; V4+ page them like the listing: pages are read
        until ``enough(items so far)`` says older ones can add nothing, the last page, or
        ``pages`` pages. Each request takes its turn in the request budget and ends by
        ``deadline``; any failure raises ``SourceError``.
        """
        prefix = self._fixed or self._prefix.get(project_id) or PREFIXES[0]
        path = self._path(project_id, prefix, quote(report_id, safe="")) + "artefacts/"
        items: list[Any] = []
        for number in range(max(1, pages)):
            params: dict[str, Any] = {"limit": ARTEFACT_PAGE_SIZE}
            if number:
                params["offset"] = len(items)
            response = self._get(path, params, project_id, deadline)
            if response.status_code == 404:
                if number:  # the report went away between two pages: keep what was read
                    break
                self._check_gone(response, project_id, report_id)
                return []
            page = parse_artefact_page(self._decode(response, project_id), project_id, report_id)
            items.extend(page.items)
            if not page.has_next or not page.items or enough(items):
                break
        return items
