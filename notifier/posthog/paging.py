"""Reading a listing's pages: what the snapshot knows of a page's ids, and the page requested
ahead while the current one is read. Used by ``notifier.posthog.reader``'s listing loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import httpx

from notifier.core.context import CycleContext


class _Session(Protocol):
    """What ``Ahead`` needs of the PostHog session."""

    @property
    def ahead_pool(self) -> ThreadPoolExecutor: ...

    def get(self, path: str, params: dict[str, Any], cycle: CycleContext) -> httpx.Response: ...


#: The snapshot's ``id → (version, listed)``, or a lookup of it for the ids of one page.
Known = Mapping[str, tuple[str, bool]] | Callable[[Sequence[str]], Mapping[str, tuple[str, bool]]]


def known_for(body: Any, known: Known | None) -> Mapping[str, tuple[str, bool]] | None:
    """The snapshot versions a page needs: all of them, or those of the page's ids."""
    if known is None or isinstance(known, Mapping):
        return known
    results = body.get("results") if isinstance(body, Mapping) else None
    if not isinstance(results, list):
        return None  # parse_page says what is wrong with the page
    ids = [i["id"] for i in results if isinstance(i, Mapping) and isinstance(i.get("id"), str)]
    return known(ids)


class Ahead:
    """At most one listing page requested ahead, on a worker thread, while the current page is
    read: a full listing then costs about the server's time or the client's, not both. Its
    requests count in the cycle's request count; an unused one is waited for and dropped."""

    def __init__(self, session: _Session, cycle: CycleContext) -> None:
        self._session = session
        self.cycle = cycle
        self._pending: tuple[int, Future[httpx.Response]] | None = None

    def fetch(self, path: str, params: dict[str, Any], offset: int) -> None:
        """Request the page at ``offset`` now (unless one is already on its way)."""
        if self._pending is None:
            future = self._session.ahead_pool.submit(self._session.get, path, params, self.cycle)
            self._pending = (offset, future)

    def take(self, offset: int) -> httpx.Response | None:
        """The page at ``offset`` if it was requested ahead (its error raised here), else None."""
        if self._pending is None:
            return None
        wanted, future = self._pending
        self._pending = None
        if wanted != offset:
            future.exception()  # waited for (its requests counted), and dropped
            return None
        return future.result()

    def close(self) -> None:
        """Wait for (and drop) a page nobody needed, so that its requests are counted."""
        if self._pending is not None:
            self._pending[1].exception()
            self._pending = None
