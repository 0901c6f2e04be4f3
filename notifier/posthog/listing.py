"""A listing as the notifier keeps it: ids, the reports that changed, its high-water mark; and
what a listing asks for (``filter_params``).

``Gathered`` adds up a listing's pages; ``Listing`` is the result. Pure, no I/O: the
listing reader (``notifier.posthog.reader``) fetches the pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from notifier.core.report import Report
from notifier.core.times import parse_instant
from notifier.posthog.parse import Page


def filter_params(statuses: Sequence[str] | None) -> dict[str, str]:
    """What a listing asks for: the statuses of ``posthog.statuses``, exactly; or, without a
    filter, every report but deleted ones: PostHog since V6 lists ``suppressed`` reports when
    asked (``include_all_statuses``), so a report dismissed into it is seen in the listing
    instead of being fetched by id; older servers ignore the parameter and leave them out."""
    if statuses:
        return {"status": ",".join(statuses)}
    return {"include_all_statuses": "true"}


def filter_key(statuses: Sequence[str] | None) -> str:
    """The listing's filter as the state remembers it: a snapshot listed through another filter
    needs a full listing before incremental ones can follow it."""
    params = filter_params(sorted(set(statuses)) if statuses else None)
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()))


@dataclass(frozen=True, slots=True)
class Listing:
    """One project's listing. ``complete`` is False when it cannot be trusted to hold every
    report (items had to be skipped, or the server stopped sending before the end), so no report
    may be concluded removed from it.

    ``reports`` holds the parsed reports: all of them, or, when the snapshot's versions were
    given (``known``), only those whose version differs. ``ids`` holds every id listed.
    ``partial`` marks an incremental listing that stopped at its cut-off: it holds only the
    reports updated since, and says nothing about the others. ``high_water`` is the latest
    ``updated_at`` listed.
    """

    reports: dict[str, Report]
    complete: bool
    skipped: int
    requests: int
    ids: frozenset[str] = frozenset()
    partial: bool = False
    cut_short: bool = False  # the server stopped sending before the end (an empty page)
    changed_first: bool = False  # an incremental listing (it may have read to the end)
    high_water: datetime | None = None
    count: int | None = None  # the server's total, as the first page said
    seconds: float = 0.0  # how long the listing took


class Gathered:
    """What a listing's pages brought so far: ids, parsed reports, the newest and oldest
    ``updated_at`` (in serving order)."""

    def __init__(self) -> None:
        self.reports: dict[str, Report] = {}
        self.ids: set[str] = set()
        self.high: datetime | None = None  # the latest updated_at listed
        self.oldest: datetime | None = None  # ordered listings: the last (oldest) so far
        self.undated = False

    def take(self, page: Page, *, ordered: bool) -> int | None:
        """Add a page; returns how many ids it brought that were not seen before, or None when
        ``ordered`` (most recently updated first) and the page breaks that order."""
        fresh = 0
        for rid, updated, report in page.served:
            repeat = rid in self.ids
            fresh += not repeat
            self.ids.add(rid)
            self.reports.pop(rid, None)  # a repeat moves to its latest position and copy
            if report is not None:
                self.reports[rid] = report
            moment = parse_instant(updated)
            if moment is not None and (self.high is None or moment > self.high):
                self.high = moment
            # A repeat is an item that slid onto the next page while others changed: it says
            # nothing about the server's ordering (and its updated_at may be above the oldest).
            if ordered and not repeat:
                if moment is None or (self.oldest is not None and moment > self.oldest):
                    self.undated = moment is None
                    return None
                self.oldest = moment
        return fresh
