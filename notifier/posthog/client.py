"""The PostHog client (``PostHogClient``): list every signal report of a project, retrieve one
by id, read the first artefacts of one.

Talks to the configured host only. ``next`` links are read as "there is more", never followed:
behind proxies they name internal hosts, and following them would send the key elsewhere. The
client asks for ``ordering=created_at,id`` (stable paging where the server allows it), computes
offsets itself, de-duplicates by id, and retries throttling and transient errors a bounded number
of times within the cycle's deadline. Every failure becomes a ``SourceError`` whose message says
what to do, built from status codes and PostHog's ``detail`` only.

Each call belongs to one cycle (``notifier.core.context.CycleContext``, opened by
``start_cycle``): its deadline, the notifier's stop event, and the count of its requests. A call
given none runs in a cycle of its own, without a deadline.

The endpoints live here; the requests in ``session`` (retried by ``retry``), the path prefix in
``paths``, the listing loop in ``reader``, reading a body in ``parse``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx

from notifier.config.settings import PostHogSettings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.report import Report
from notifier.posthog.budget import RequestBudget
from notifier.posthog.errors import detail_of
from notifier.posthog.listing import Listing, filter_key
from notifier.posthog.paging import Known
from notifier.posthog.parse import (
    artefacts_suffice,
    decode_json,
    invalid,
    parse_artefact_page,
    parse_retrieved,
)
from notifier.posthog.paths import Paths
from notifier.posthog.projects import ProjectNames
from notifier.posthog.reader import STALE_PAGES, ListingReader
from notifier.posthog.retry import RetryPolicy
from notifier.posthog.session import Session
from notifier.posthog.signals import parse_signals
from notifier.posthog.writes import Writes

log = logging.getLogger(__name__)

__all__ = ["ARTEFACT_PAGES", "HIDDEN_BY_DEFAULT", "STALE_PAGES", "PostHogClient"]

#: Statuses PostHog's listing leaves out when no ``status`` filter is given (V2+).
HIDDEN_BY_DEFAULT: Final = frozenset({"suppressed", "deleted"})
#: A report's artefacts: items per page (V4+ pages them; V1–V3 ignore it and send all) and
#: pages read at most. They come newest first, and only the newest few are ever shown.
ARTEFACT_PAGE_SIZE: Final = 100
ARTEFACT_PAGES: Final = 2


class PostHogClient(Writes):
    """Lists and retrieves signal reports with httpx, against one configured host (+ ``Writes``)."""

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
        requests are not paced). ``cancel`` is the notifier's stop event, which every cycle
        this client starts carries; ``sleep`` spends the waits between retries (by default on
        that event); ``on_response`` is told of every request's outcome."""
        self._settings = settings
        self._cancel = cancel or threading.Event()
        retry = RetryPolicy(attempts=attempts, max_wait=max_wait, sleep=sleep)
        self._session = Session(
            settings, retry=retry, transport=transport, on_response=on_response, budget=budget
        )
        self._paths = Paths(settings, self._session)
        self._reader = ListingReader(settings, self._session, self._paths)
        self._no_signals: set[int] = set()  # projects whose server has no /signals/ (pre-V6)
        self._names = ProjectNames(self._session)

    def close(self) -> None:
        """Release the connection pool and the page-ahead threads."""
        self._session.close()

    def start_cycle(self, project_id: int, deadline: float | None = None) -> CycleContext:
        """A new cycle of a project: ``deadline`` (``time.monotonic()``; None: none), this
        client's stop event, and a request count of its own."""
        return CycleContext(project_id, deadline, self._cancel)

    def _in(self, project_id: int, cycle: CycleContext | None) -> CycleContext:
        """The cycle a call runs in: the one given (of the same project), or a new one."""
        if cycle is None:
            return self.start_cycle(project_id)
        if cycle.project_id != project_id:
            raise ValueError(f"a cycle of project {cycle.project_id} used for {project_id}")
        return cycle

    def project_name(self, project_id: int, cycle: CycleContext | None = None) -> str | None:
        """The project's name, kept 6 h; None without it (``posthog.projects``). Never raises."""
        return self._names.name(self._in(project_id, cycle))

    # -- listing ------------------------------------------------------------------------------

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
        *,
        known: Mapping[str, tuple[str, bool]] | None = None,
        cycle: CycleContext | None = None,
        on_page: Callable[[Sequence[Report]], None] | None = None,
    ) -> Listing:
        """Every report of a project, all pages; raises ``SourceError`` if any page fails.

        Offsets are computed here (``next`` is only read as "there is more"); repeats are
        de-duplicated by id, the latest copy winning. The listing ends when PostHog says there
        is no more, or, marked incomplete, when it sends an empty page while saying there is.
        A server that keeps repeating itself or never ends fails the cycle. With ``known`` (the
        snapshot's ``id → (version, listed)``), only reports that differ are parsed. With
        ``on_page``, each page's parsed reports go to it as read and the listing keeps none.
        """
        listing = self._reader.read(self._in(project_id, cycle), known, on_page=on_page)
        assert listing is not None  # only incremental listings give up
        return listing

    def incremental(self, project_id: int) -> bool:
        """Whether incremental listings are worth trying for this project (the server has not
        shown that it ignores ``ordering=-updated_at``)."""
        return self._reader.incremental(project_id)

    def listing_key(self) -> str:
        """What this client's listings ask for (``posthog.statuses``, or everything but deleted
        reports), as the state remembers it: another one means the snapshot needs a full
        listing before incremental ones can follow it."""
        return filter_key(self._settings.statuses)

    def list_changed(
        self,
        project_id: int,
        since: datetime,
        *,
        known: Known | None = None,
        cycle: CycleContext | None = None,
    ) -> Listing | None:
        """The reports updated at or after ``since``, most recent first: pages are fetched until
        one ends before ``since``, so a quiet project costs one request.

        Returns None, having spent a request, when the server does not honour the ordering
        (PostHog V1, or an item without ``updated_at``): the caller lists everything instead,
        and ``incremental`` says False from then on.
        """
        return self._reader.read(self._in(project_id, cycle), known, since=since)

    # -- one report ---------------------------------------------------------------------------

    def retrieve(
        self, project_id: int, report_id: str, *, cycle: CycleContext | None = None
    ) -> Report | None:
        """One report by id; ``None`` when PostHog answers 404 for it (deleted, or hidden by V1).

        A 404 that is not PostHog's "not found" for this report (a proxy's page, "Project not
        found.") raises instead: concluding from it that the report is gone would be a guess.
        """
        path = self._paths.report(project_id, report_id)
        response = self._session.get(path, {}, self._in(project_id, cycle))
        if response.status_code == 404:
            self._check_gone(response, project_id, report_id)
            return None
        body = self._session.decode(response, project_id)
        return parse_retrieved(body, project_id, report_id)

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
        *,
        cycle: CycleContext | None = None,
        pages: int = ARTEFACT_PAGES,
        enough: Callable[[Sequence[Any]], bool] = artefacts_suffice,
    ) -> list[Any]:
        """A report's newest artefacts, as served (items not read: ``api.parse_enrichment``
        does that), newest first; ``[]`` when PostHog answers its own 404 for the report.

        V1–V3 answer every artefact at once; V4+ page them like the listing: pages are read
        until ``enough(items so far)`` says older ones can add nothing, the last page, or
        ``pages`` pages. Each request takes its turn in the request budget and ends by the
        cycle's deadline; any failure raises ``SourceError``.
        """
        cycle = self._in(project_id, cycle)
        path = self._paths.report(project_id, report_id) + "artefacts/"
        items: list[Any] = []
        for number in range(max(1, pages)):
            params: dict[str, Any] = {"limit": ARTEFACT_PAGE_SIZE}
            if number:
                params["offset"] = len(items)
            response = self._session.get(path, params, cycle)
            if response.status_code == 404:
                if number:  # the report went away between two pages: keep what was read
                    break
                self._check_gone(response, project_id, report_id)
                return []
            body = self._session.decode(response, project_id)
            page = parse_artefact_page(body, project_id, report_id)
            items.extend(page.items)
            if not page.has_next or not page.items or enough(items):
                break
        return items

    # -- a report's signals (V6) --------------------------------------------------------------

    def asks_signals(self, project_id: int) -> bool:
        """Whether a report's signals are worth asking this project's server for: it serves
        reports at ``signals/reports/`` (V1–V3 cannot have ``/signals/``) and has not shown
        that it has no ``/signals/`` endpoint (``lacks_signals``)."""
        if project_id in self._no_signals:
            return False
        return "/signal_reports/" not in self._paths.report(project_id, "-")

    def lacks_signals(self, project_id: int) -> None:
        """Remember, for this process, that the project's server has no ``/signals/`` endpoint
        (PostHog before V6): it is not asked again."""
        if project_id not in self._no_signals:
            log.info(
                "project %s: PostHog has no signals endpoint (before V6): recordings come from "
                "video_segment artefacts, and it is not asked again until a restart",
                project_id,
                extra={"event": "signals_unsupported", "project_id": project_id},
            )
        self._no_signals.add(project_id)

    def signals_config(self, project_id: int) -> dict[str, Any] | None:
        """The project's signals settings (``GET /api/projects/{pid}/signals/config/``, V6):
        what PostHog itself notifies. None from a server before V6 (404, or one whose reports
        are at ``signal_reports/``); other failures raise ``SourceError``."""
        if not self.asks_signals(project_id):
            return None
        path = self._paths.report(project_id, "-").removesuffix("reports/-/") + "config/"
        response = self._session.get(path, {}, self._in(project_id, None))
        if response.status_code == 404:
            return None
        body = self._session.decode(response, project_id)
        return body if isinstance(body, dict) else None

    def signals(
        self, project_id: int, report_id: str, *, cycle: CycleContext | None = None
    ) -> list[Any] | None:
        """A report's signals as served (``GET …/reports/{id}/signals/``: unpaginated and
        costly for PostHog, so one request and no more); items not read
        (``signals.read_recordings`` does that).

        None when PostHog answers 404: a server before V6, remembered (``lacks_signals``) when
        its answer says so (PostHog's "Endpoint not found.", or a body that is not PostHog's);
        or PostHog's bare "Not found.", which a server before V6 and a report just deleted
        both answer: the caller tells them apart (the report's artefacts are there or not).
        A "Project not found." and every other failure raise ``SourceError``.
        """
        cycle = self._in(project_id, cycle)
        path = self._paths.report(project_id, report_id) + "signals/"
        response = self._session.get(path, {}, cycle)
        if response.status_code != 404:
            body = self._session.decode(response, project_id)
            return list(parse_signals(body, project_id, report_id))
        detail = detail_of(response)
        if "project" in detail.lower():
            self._check_gone(response, project_id, report_id)  # raises: check project_ids
        if detail != "Not found.":
            self.lacks_signals(project_id)
        return None
