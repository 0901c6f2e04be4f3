"""Reading a project's listing page by page (``ListingReader``): full listings, oldest first,
with the next page requested ahead (``notifier.posthog.paging``), and incremental ones, the most
recently updated first, down to a cut-off; the checks that a server's paging can be trusted.

Offsets are computed here (``next`` is only read as "there is more"); repeats are de-duplicated
by id, the latest copy winning (``notifier.posthog.listing``). A server that keeps repeating
itself or never ends fails the cycle; one that ignores the incremental ordering gets full
listings from then on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import httpx

from notifier.config.settings import PostHogSettings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.report import Report
from notifier.posthog.listing import Gathered, Listing, filter_params
from notifier.posthog.paging import Ahead, Known, known_for
from notifier.posthog.parse import Page, invalid, parse_page
from notifier.posthog.paths import Paths
from notifier.posthog.session import Session

log = logging.getLogger(__name__)

ORDERING: Final = "created_at,id"
#: Incremental listings: the most recently updated first, so a cycle stops where nothing changed.
CHANGED_FIRST: Final = "-updated_at,id"
MAX_PAGES: Final = 100_000  # a listing that has not ended by then never will
#: Pages in a row that bring no report not already seen: the server repeats itself (it ignores
#: ``offset``, or its ``next`` loops) and the listing would never end.
STALE_PAGES: Final = 3


@dataclass
class _Progress:
    """A listing being read: where it is, and what its pages brought so far."""

    limit: int
    since: datetime | None  # incremental listings: their cut-off
    step: int  # how many items the last page held (the page ahead is that much further)
    gathered: Gathered = field(default_factory=Gathered)
    skipped: list[str] = field(default_factory=list)
    offset: int = 0
    pages: int = 0
    stale: int = 0  # pages in a row that brought nothing new
    count: int | None = None  # the server's total, as the first page said
    max_pages: int = MAX_PAGES
    widest: int = 0
    partial: bool = False
    cut_short: bool = False

    def add(self, page: Page) -> int | None:
        """Take a page in: how many ids it brought not seen before, or None when an incremental
        listing's page breaks its order."""
        self.pages += 1
        self.count = page.count if self.pages == 1 else self.count
        fresh = self.gathered.take(page, ordered=self.since is not None)
        if fresh is None:
            return None
        self.skipped.extend(page.skipped)
        if page.count is not None:
            self.widest = max(self.widest, page.count // max(1, page.items or self.limit) + 10)
            self.max_pages = min(MAX_PAGES, self.widest)
        return fresh

    def ahead(self) -> int:
        """How much further than the next page to request one ahead (0: none). Only a full
        listing reads a page while the next one downloads, and only while the count says there
        is one."""
        more = (
            self.since is None and self.count is not None and self.offset + self.step < self.count
        )
        return self.step if more else 0

    def listing(self, requests: int, seconds: float) -> Listing:
        return Listing(
            reports=self.gathered.reports,
            complete=not self.skipped and not self.cut_short and not self.partial,
            skipped=len(self.skipped),
            requests=requests,
            ids=frozenset(self.gathered.ids),
            partial=self.partial,
            cut_short=self.cut_short,
            changed_first=self.since is not None,
            high_water=self.gathered.high,
            count=self.count,
            seconds=seconds,
        )


class ListingReader:
    """Reads listings for the PostHog client; remembers the servers that ignore the ordering."""

    def __init__(self, settings: PostHogSettings, session: Session, paths: Paths) -> None:
        self._settings = settings
        self._session = session
        self._paths = paths
        self._unordered: set[int] = set()  # projects whose listing ignores our ordering
        self._said_unordered = False

    def incremental(self, project_id: int) -> bool:
        """Whether incremental listings are worth trying for this project."""
        return project_id not in self._unordered

    def read(
        self,
        cycle: CycleContext,
        known: Known | None,
        since: datetime | None = None,
        on_page: Callable[[Sequence[Report]], None] | None = None,
    ) -> Listing | None:
        """The cycle's project's full listing, or with ``since`` the incremental one: None when
        the server does not honour its ordering. Raises ``SourceError`` if any page fails.

        With ``on_page``, each page's parsed reports are handed to it as the page is read, and
        the listing keeps none of them (its ``reports`` stay empty; ids, marks and counts are
        kept): a listing of any size in bounded memory."""
        project_id = cycle.project_id
        limit = self._settings.page_size
        ordering = ORDERING if since is None else CHANGED_FIRST
        base: dict[str, Any] = {"limit": limit, "ordering": ordering}
        base.update(filter_params(self._settings.statuses))
        start, began = cycle.requests.made, time.monotonic()
        run = _Progress(limit=limit, since=since, step=limit)
        ahead = Ahead(self._session, cycle)
        try:
            while True:
                if run.pages == 0:
                    response = self._paths.first_page({**base, "offset": 0}, cycle)
                else:
                    response = self._later_page(ahead, base, run.offset, run.ahead())
                page = self._page_of(response, project_id, known)
                fresh = run.add(page)
                if fresh is None:
                    self._not_ordered(project_id, run.gathered.undated)
                    return None
                if on_page is not None:  # the page's reports go now, and are not kept
                    on_page(page.reports)
                    run.gathered.reports.clear()
                if self._ends(run, page, project_id):
                    break
                run.stale = 0 if fresh or not page.served else run.stale + 1
                self._check_progress(run, page, project_id)
                # the server may serve fewer than asked (a max_limit): look ahead by what it serves
                run.offset, run.step = run.offset + page.items, page.items
        finally:
            ahead.close()
        self._warn_skipped(project_id, run.skipped)
        return run.listing(cycle.requests.made - start, time.monotonic() - began)

    def _page_of(self, response: httpx.Response, project_id: int, known: Known | None) -> Page:
        """A listing page read, compared by version with what the snapshot knows."""
        body = self._session.decode(response, project_id)
        return parse_page(body, project_id, known_for(body, known))

    def _later_page(
        self, ahead: Ahead, base: dict[str, Any], offset: int, step: int
    ) -> httpx.Response:
        """The page at ``offset`` (fetched ahead, or now); with a ``step``, the one at
        ``offset + step`` is requested ahead before this one is read."""
        cycle = ahead.cycle
        project_id = cycle.project_id
        path = self._paths.listing(project_id)
        params = {**base, "offset": offset}
        response = ahead.take(offset) or self._session.get(path, params, cycle)
        if response.status_code == 404:
            raise SourceError(
                f"project {project_id}: the listing answered 404 at offset {offset}",
                kind=SourceErrorKind.TRANSIENT,
                project_id=project_id,
                status_code=404,
            )
        if step:
            ahead.fetch(path, {**base, "offset": offset + step}, offset + step)
        return response

    @staticmethod
    def _ends(run: _Progress, page: Page, project_id: int) -> bool:
        """Whether the listing ends with this page: PostHog says there is no more, an
        incremental listing passed its cut-off (``partial``), or the page is empty while PostHog
        says there is more (``cut_short``, unless the count agrees that this is the end)."""
        if not page.has_next:
            return True
        oldest = run.gathered.oldest
        if run.since is not None and oldest is not None and oldest < run.since:
            run.partial = True  # everything further was updated before the cut-off
            return True
        if page.items != 0:
            return False
        if page.count is not None and run.offset >= page.count:
            return True  # "more", says next; the count agrees this is the end
        run.cut_short = True
        log.warning(
            "project %s: PostHog said there were more reports (count %s) but sent an "
            "empty page at offset %d; this listing is treated as incomplete, so no "
            "report is concluded removed from it",
            project_id,
            page.count,
            run.offset,
            extra={"event": "listing_incomplete", "project_id": project_id},
        )
        return True

    @staticmethod
    def _check_progress(run: _Progress, page: Page, project_id: int) -> None:
        """Raise when the server's paging looks broken: pages that bring nothing new, or more
        pages than the count allows."""
        if run.stale < STALE_PAGES and run.pages < run.max_pages:
            return
        why = (
            f"{run.stale} pages in a row brought no report not already seen"
            if run.stale >= STALE_PAGES
            else f"the listing did not end after {run.pages} pages (count {page.count})"
        )
        raise invalid(
            project_id,
            f"{why} (offset {run.offset}); PostHog's paging looks broken (does it ignore "
            "offset?), so this listing cannot be trusted",
        )

    @staticmethod
    def _warn_skipped(project_id: int, skipped: list[str]) -> None:
        if skipped:
            log.warning(
                "project %s: skipped %d of the reports PostHog sent (%s); no report is "
                "concluded removed from this listing",
                project_id,
                len(skipped),
                "; ".join(dict.fromkeys(skipped[:3])),
                extra={"event": "report_skipped", "project_id": project_id},
            )

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
