"""The request budget: one pair of token buckets per API key, shared by every project.

PostHog limits a personal API key to 480 requests a minute and 4,800 an hour, whichever
project they are for. Every request the PostHog client makes first takes a token from both
buckets (``posthog.requests_per_minute`` and ``requests_per_hour``, well under those limits by
default). Waiting requests are served first come, first served, one request at a time, so a
project with many pages interleaves with the others instead of starving them: when the
configuration asks for more than the budget, every project is polled less often, fairly, and a
WARNING says so with the numbers. A 429 from PostHog pauses every project's requests, since the
limit it signals is the key's. Writes (a reader's action from Slack, ``urgent``) have a lane of
their own at the front: they go ahead of every waiting read, first come, first served among
themselves. Replicas sharing the key's buckets take from them in no particular order.

``expected_requests_per_hour`` is the arithmetic ``notifier check`` prints.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from notifier.config.settings import Settings
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.posthog.errors import abandoned

log = logging.getLogger(__name__)

#: The budget's WARNING is repeated at most this often while it keeps slowing cycles down.
WARN_EVERY: Final = 600.0


class Shared(Protocol):
    """Buckets shared with other replicas (``state.budget.SharedBudget`` for this key)."""

    def take(self) -> float:
        """Take one request's tokens: 0.0, or the seconds until they could be (none taken)."""
        ...

    def pause(self, seconds: float) -> None:
        """No replica sends a request for ``seconds`` (PostHog answered 429)."""
        ...


class _Bucket:
    """``capacity`` tokens, refilled evenly over ``period`` seconds; starts full."""

    def __init__(self, capacity: int, period: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period
        self.tokens = float(capacity)
        self.at = now

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0 if one is)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1 - 1e-9:  # refills are float sums: 30 × (1/30) may be 0.999…
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(eq=False, slots=True)
class _Ticket:
    """A request waiting for its turn (compared by identity)."""

    urgent: bool


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """Requests made in the last minute and hour, for the WARNING and ``/metrics``."""

    last_minute: int
    last_hour: int


class RequestBudget:
    """Token buckets for one API key. Thread-safe; FIFO among waiting requests."""

    def __init__(
        self,
        per_minute: int,
        per_hour: int,
        *,
        cancel: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[float], None] | None = None,
        wait: Callable[[threading.Condition, float], object] | None = None,
        shared: Shared | None = None,
    ) -> None:
        """``clock`` and ``wait`` (how a waiting request waits on the lock's condition, at most
        the seconds given) are replaceable so that tests can run on a simulated clock.
        ``shared``: the buckets replicas share (PostgreSQL), taken from after this process'
        own, so that adding replicas never adds requests."""
        self._shared = shared
        self.per_minute = per_minute
        self.per_hour = per_hour
        self._clock = clock
        self._cancel = cancel or threading.Event()
        self._on_wait = on_wait or (lambda _seconds: None)
        self._wait = wait or (lambda cond, seconds: cond.wait(seconds))
        now = clock()
        self._buckets = (_Bucket(per_minute, 60.0, now), _Bucket(per_hour, 3600.0, now))
        self._cond = threading.Condition()
        self._queue: deque[_Ticket] = deque()
        self._paused_until = 0.0
        self._recent: deque[float] = deque()  # when the last hour's requests were made
        self._warned_at = -math.inf

    def _needed(self, now: float) -> float:
        wait = max(bucket.wait(now) for bucket in self._buckets)
        return max(wait, self._paused_until - now)

    def acquire(
        self, project_id: int, deadline: float | None = None, *, urgent: bool = False
    ) -> float:
        """Take one request's tokens, waiting (in turn) as long as needed; returns the wait.

        ``deadline`` is ``time.monotonic()``-based like the cycle's: a request that could not
        be made before it raises a THROTTLED ``SourceError`` at once rather than wait in vain.
        ``urgent`` (a reader's write from Slack): served before every waiting request that is
        not, after the urgent ones already waiting.
        """
        ticket = _Ticket(urgent)
        started = self._clock()
        asking = 0.0  # time spent asking the shared buckets: a round trip, not a wait
        with self._cond:
            self._enqueue(ticket)
            try:
                while True:
                    if self._cancel.is_set():
                        raise abandoned(project_id)
                    now = self._clock()
                    head = self._queue[0] is ticket
                    wait = self._needed(now) if head else 1.0
                    if head and wait <= 0 and self._shared is not None:
                        asked = self._clock()
                        wait = self._shared.take()  # every replica's requests count
                        asking += self._clock() - asked
                    if head and wait <= 0:
                        self._take(now)
                        break
                    if deadline is not None and now + (wait if head else 0.0) > deadline:
                        raise self._over_budget(project_id, now - started)
                    self._wait(self._cond, min(wait, 1.0))
            finally:
                if ticket in self._queue:
                    self._queue.remove(ticket)
                self._cond.notify_all()
        waited = self._clock() - started - asking
        if waited > 0.05:
            self._on_wait(waited)
            self._warn(project_id, waited)
        return waited

    def _enqueue(self, ticket: _Ticket) -> None:
        """Plain tickets join the end; urgent ones the end of the urgent lane at the front,
        and the waiters re-check who is first (the lock is held)."""
        if not ticket.urgent:
            self._queue.append(ticket)
            return
        lane = sum(1 for waiting in self._queue if waiting.urgent)  # the lane is the front
        self._queue.insert(lane, ticket)
        self._cond.notify_all()

    def _take(self, now: float) -> None:
        for bucket in self._buckets:
            bucket.tokens -= 1
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - 3600:
            self._recent.popleft()

    def bind(self, cancel: threading.Event) -> None:
        """Serve a new notifier (after a reload): its stop event abandons the waits."""
        with self._cond:
            self._cancel = cancel
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """PostHog answered 429: no project's request goes out for ``seconds``."""
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._cond.notify_all()
        if self._shared is not None:
            self._shared.pause(seconds)  # every replica's

    def use(self) -> BudgetUse:
        """Requests made in the last minute and the last hour (the lock is re-entrant)."""
        with self._cond:
            now = self._clock()
            minute = sum(1 for t in self._recent if t > now - 60)
            return BudgetUse(last_minute=minute, last_hour=len(self._recent))

    def _over_budget(self, project_id: int, waited: float) -> SourceError:
        use = self.use()
        return SourceError(
            f"project {project_id}: the request budget left no room for this cycle before its "
            f"deadline (waited {waited:.0f}s; {use.last_minute} requests in the last minute, "
            f"{use.last_hour} in the last hour, against posthog.requests_per_minute "
            f"{self.per_minute} and requests_per_hour {self.per_hour}); poll less often "
            "(poll.interval) or raise the budget if PostHog's limits allow it",
            kind=SourceErrorKind.THROTTLED,
            project_id=project_id,
        )

    def _warn(self, project_id: int, waited: float) -> None:
        now = self._clock()
        with self._cond:
            if now - self._warned_at < WARN_EVERY:
                return
            self._warned_at = now
            use = self.use()
        log.warning(
            "request budget: a request for project %s waited %.1fs (%d requests in the last "
            "minute, %d in the last hour; posthog.requests_per_minute %d, requests_per_hour "
            "%d): cycles are slowed down, so projects are polled less often than poll.interval. "
            "Poll less often, or raise the budget if PostHog's limits (480/minute, 4,800/hour "
            "per key) allow it",
            project_id,
            waited,
            use.last_minute,
            use.last_hour,
            self.per_minute,
            self.per_hour,
            extra={"event": "budget_exceeded", "project_id": project_id},
        )


@dataclass(frozen=True, slots=True)
class Expectation:
    """Requests an hour the configuration needs at steady state, and what they are."""

    per_hour: int
    quiet_cycles: int  # incremental cycles: one request each when nothing changed
    full_listings: int  # requests of the periodic full listings
    reports_assumed: int

    def fits(self, settings: Settings) -> bool:
        """Whether it fits the configured budget (per hour, and per minute on average)."""
        ph = settings.posthog
        return self.per_hour <= ph.requests_per_hour and self.per_hour / 60 <= (
            ph.requests_per_minute
        )


def expected_requests_per_hour(settings: Settings, reports_per_project: int = 1000) -> Expectation:
    """Requests per hour when nothing changes: a cycle per project per ``poll.interval`` (one
    request each when incremental), plus a full listing of ``reports_per_project`` reports per
    project every ``poll.full_sync_every``. Changes add a page per ``page_size`` changed reports
    to the cycle that sees them."""
    projects = len(settings.posthog.project_ids)
    poll = settings.poll
    pages = max(1, math.ceil(reports_per_project / settings.posthog.page_size))
    cycles = 3600 / poll.interval
    if poll.full_sync_every <= poll.interval:  # every cycle is a full listing
        return Expectation(
            per_hour=math.ceil(projects * cycles * pages),
            quiet_cycles=0,
            full_listings=math.ceil(projects * cycles * pages),
            reports_assumed=reports_per_project,
        )
    fulls = 3600 / poll.full_sync_every
    quiet = projects * max(0.0, cycles - fulls)
    full = projects * fulls * pages
    return Expectation(
        per_hour=math.ceil(quiet + full),
        quiet_cycles=math.ceil(quiet),
        full_listings=math.ceil(full),
        reports_assumed=reports_per_project,
    )
