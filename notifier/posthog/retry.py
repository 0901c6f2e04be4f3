"""The retry policy of PostHog requests (``RetryPolicy``): which failures are tried again, how
long to wait between attempts, and when to give up.

Every transient ``SourceError`` (throttling 429, 5xx answers, timeouts, connection errors) is
tried again, at most ``attempts`` times in all. The wait is what PostHog asked for (Retry-After,
or the 429 body's ``detail``), exactly, or else a jittered exponential backoff. A wait beyond
``max_wait``, or one that would end at or after the cycle's deadline, is not slept: the last
error is raised instead. Waits go through the client's ``sleep`` (by default the wait of the
cycle's cancel event, ``CycleContext.cancel``, so a stop ends a wait at once), and no attempt
starts once the cancel event is set or the cycle's deadline has passed.

tenacity rather than stamina, because stamina keeps its backoff, sleeping and stop rules to
itself while tenacity takes each as a plain callable: a wait read from the raised error, a stop
that sees the upcoming wait, a sleep through the cancel event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.posthog.errors import abandoned

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Without a wait asked for: uniformly up to 0.5 s, 1 s, 2 s … (at most 8 s) after attempt 1, 2, 3 …
_BACKOFF = wait_random_exponential(multiplier=0.5, max=8.0)


def _transient(error: BaseException) -> bool:
    """Whether the same request may succeed if simply tried again later."""
    return isinstance(error, SourceError) and error.transient


def _error_of(state: RetryCallState) -> SourceError:
    """The error the failed attempt raised (only transient ``SourceError``s are retried)."""
    error = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(error, SourceError)
    return error


class _WaitTooLong(stop_base):
    """Give up rather than sleep a wait beyond ``max_wait``, or one ending by the deadline."""

    def __init__(self, max_wait: float, deadline: float | None) -> None:
        self._max_wait = max_wait
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        wait = retry_state.upcoming_sleep
        if wait > self._max_wait:
            return True
        return self._deadline is not None and time.monotonic() + wait >= self._deadline


class RetryPolicy:
    """Bounded retries of one request, within the cycle's deadline, abandoned on shutdown."""

    def __init__(
        self,
        *,
        attempts: int,
        max_wait: float,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """``sleep``: how a wait is spent (tests record the waits instead); by default on the
        cycle's cancel event, set when the notifier stops (no attempt starts after that)."""
        self._attempts = attempts
        self._max_wait = max_wait
        self._sleep = sleep

    def run(
        self,
        start: Callable[[float | None], float],
        send: Callable[[float], T],
        cycle: CycleContext,
    ) -> T:
        """``send(start(seconds left before the deadline, or None))`` until ``send`` returns,
        raises an error that is not transient, or the policy gives up (raising the last error).

        ``start`` runs before each attempt (it waits for the request budget): what it raises
        ends the call at once, never retried.
        """
        last: SourceError | None = None
        for attempt in self._retrying(cycle):
            ready = start(self._time_left(cycle, last))
            with attempt:
                try:
                    return send(ready)
                except SourceError as exc:
                    last = exc
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error when it gives up")

    def _retrying(self, cycle: CycleContext) -> Retrying:
        sleep = self._sleep or cycle.cancel.wait

        def spend(seconds: float) -> None:
            """Sleep a wait as a plain float (tenacity passes its own float subclass); waiting
            on the cancel event, it ends at once when the notifier stops, and ``_time_left``
            then starts no attempt."""
            sleep(float(seconds))

        return Retrying(
            retry=retry_if_exception(_transient),
            wait=self._wait,
            stop=stop_after_attempt(self._attempts) | _WaitTooLong(self._max_wait, cycle.deadline),
            before_sleep=self._announce,
            sleep=spend,
            reraise=True,
        )

    @staticmethod
    def _time_left(cycle: CycleContext, last: SourceError | None) -> float | None:
        """Seconds left before the cycle's deadline (None: no deadline); raises when no attempt
        may start: the notifier is stopping, or the cycle's time is up (the last error, if
        any)."""
        project_id = cycle.project_id
        if cycle.cancel.is_set():
            raise abandoned(project_id)
        remaining = cycle.time_left()
        if remaining is not None and remaining <= 0:
            raise last or SourceError(
                f"project {project_id}: the cycle ran out of time (poll.deadline)",
                kind=SourceErrorKind.TRANSIENT,
                project_id=project_id,
            )
        return remaining

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        """The wait PostHog asked for, exactly; else the jittered backoff."""
        asked = _error_of(state).retry_after
        return _BACKOFF(state) if asked is None else asked

    @staticmethod
    def _announce(state: RetryCallState) -> None:
        error = _error_of(state)
        log.info(
            "posthog: waiting %.1fs before retrying (%s)",
            state.upcoming_sleep,
            error,
            extra={"event": "source_retry", "project_id": error.project_id},
        )
