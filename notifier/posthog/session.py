"""One connection to PostHog (``Session``): the httpx client that carries the key, and a GET
for one cycle (``notifier.core.context.CycleContext``) with its retries
(``notifier.posthog.retry``), its turn in the request budget, and its place in the cycle's
request count; a write's POST likewise, ahead of the reads in the budget.

A GET answers a success or a 404 (what a 404 means is the caller's to say); every other outcome
becomes a ``SourceError`` (``notifier.posthog.errors``), and each is told to ``on_response``.

Each request is bounded (``notifier.net``): it ends within its timeout in all (connect, send
and every read), which is ``posthog.timeout`` or the time left before the cycle's deadline if
that is sooner, so the cycle's deadline cuts a request in flight; its body is read and inflated
up to ``MAX_ANSWER_BYTES`` at most; a redirect is answered, never followed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from notifier import __version__
from notifier.config.settings import PostHogSettings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.net import TooLarge, fetch, new_client, size
from notifier.posthog.budget import RequestBudget
from notifier.posthog.errors import classify
from notifier.posthog.parse import decode_json, invalid
from notifier.posthog.retry import RetryPolicy

#: The most of an answer read, as sent and as inflated (a page of 1,000 reports is a few MiB).
#: Not ``Final``: tests lower it.
MAX_ANSWER_BYTES = 64 * 2**20


def _seconds(seconds: float) -> str:
    """``30s``, ``0.5s``: a timeout as people write it."""
    return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"


def _transient(project_id: int, message: str) -> SourceError:
    """A failure worth trying again (no answer, or no connection)."""
    return SourceError(
        f"project {project_id}: {message}", kind=SourceErrorKind.TRANSIENT, project_id=project_id
    )


class Session:
    """GETs against the configured host, retried by a ``RetryPolicy``, paced by the budget."""

    def __init__(
        self,
        settings: PostHogSettings,
        *,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None = None,
        on_response: Callable[[str], None] | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        """``on_response`` is told of every request's outcome: the status code, or timeout /
        connection_error / decoding_error (the daemon counts them for /metrics)."""
        self._settings = settings
        self._retry = retry
        self._budget = budget
        self._on_response = on_response or (lambda _outcome: None)
        self._client = new_client(
            settings.host,
            base_url=settings.host,
            headers={
                "authorization": f"Bearer {settings.api_key.get_secret_value()}",
                "accept": "application/json",
                "user-agent": f"posthog-signal-notifier/{__version__}",
            },
            timeout=settings.timeout,
            transport=transport,
        )
        #: full listings download their next page here while reading the current one
        self.ahead_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="posthog-ahead")

    def close(self) -> None:
        """Release the connection pool and the page-ahead threads."""
        self.ahead_pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def get(
        self, path: str, params: dict[str, Any], cycle: CycleContext, *, urgent: bool = False
    ) -> httpx.Response:
        """One GET for the cycle, with bounded retries for throttling and transient failures;
        every attempt counts in ``cycle.requests`` (from whichever thread makes it).
        ``urgent``: ahead of every waiting read in the budget (a write's follow-up)."""
        return self._retry.run(
            lambda remaining: self._start(remaining, cycle, urgent=urgent),
            lambda timeout: self._send(path, params, cycle, timeout),
            cycle,
        )

    def post(
        self, path: str, body: dict[str, Any], cycle: CycleContext, *, accept: frozenset[int]
    ) -> httpx.Response:
        """One POST of a JSON body (a write), retried and bounded as a GET, ahead of every
        waiting read in the budget. Answers a success or a status in ``accept`` (what those
        mean is the caller's to say); every other outcome raises ``SourceError``."""
        return self._retry.run(
            lambda remaining: self._start(remaining, cycle, urgent=True),
            lambda timeout: self._send(
                path, {}, cycle, timeout, method="POST", body=body, accept=accept
            ),
            cycle,
        )

    @staticmethod
    def decode(response: httpx.Response, project_id: int) -> Any:
        """The JSON body of an answer; raises ``SourceError`` when it is not JSON."""
        return decode_json(
            response.content,
            project_id,
            status=response.status_code,
            content_type=response.headers.get("content-type"),
        )

    def _start(self, remaining: float | None, cycle: CycleContext, *, urgent: bool) -> float:
        """Before an attempt: its timeout, once the budget let it go (what that raises is not
        retried)."""
        timeout = (
            self._settings.timeout if remaining is None else min(self._settings.timeout, remaining)
        )
        deadline = cycle.deadline
        if self._budget is not None:
            self._budget.acquire(cycle.project_id, deadline, urgent=urgent)
            if deadline is not None:  # waiting for the budget used some of the time left
                timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        return timeout

    def _send(
        self,
        path: str,
        params: dict[str, Any],
        cycle: CycleContext,
        timeout: float,
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
        accept: frozenset[int] = frozenset({404}),
    ) -> httpx.Response:
        """One attempt: a success or a status in ``accept``, else a ``SourceError`` (retried if
        transient)."""
        project_id = cycle.project_id
        options: dict[str, Any] = {"params": params} if body is None else {"json": body}
        try:
            cycle.requests.add()
            response = fetch(
                self._client, method, path, timeout=timeout, limit=MAX_ANSWER_BYTES, **options
            )
        except TooLarge as exc:
            self._on_response("too_large")
            raise invalid(
                project_id,
                f"PostHog's answer was over {size(exc.limit)}"
                f"{' once inflated' if exc.inflated else ''}, far more than a page of reports; "
                "the rest was not read. Check that posthog.host is the PostHog app origin",
            ) from exc
        except httpx.DecodingError as exc:
            self._on_response("decoding_error")
            raise invalid(
                project_id,
                f"PostHog's answer could not be decoded ({type(exc).__name__}: {exc})",
            ) from exc
        except httpx.TimeoutException as exc:
            self._on_response("timeout")
            failed = _transient(project_id, self._late(timeout, cycle, exc))
        except httpx.RequestError as exc:  # connection refused or reset, protocol errors
            self._on_response("connection_error")
            failed = _transient(
                project_id,
                f"cannot reach PostHog at {self._settings.host} ({type(exc).__name__}: {exc})",
            )
        else:
            self._on_response(str(response.status_code))
            if response.status_code < 300 or response.status_code in accept:
                return response
            failed = classify(response, project_id)
            if failed.kind is SourceErrorKind.THROTTLED and self._budget is not None:
                # the limit is the key's: every project waits, not only this one
                self._budget.pause(failed.retry_after if failed.retry_after is not None else 10.0)
        raise failed

    def _late(self, timeout: float, cycle: CycleContext, exc: httpx.TimeoutException) -> str:
        """What a request that ran out of time says: its timeout, or the cycle's deadline when
        that is what cut it."""
        left = cycle.time_left()
        if timeout < self._settings.timeout and left is not None and left <= 0.001:
            return (
                f"PostHog had not answered when the cycle's time ran out ({_seconds(timeout)} "
                "into the request; poll.deadline)"
            )
        return f"PostHog did not answer within {_seconds(timeout)} ({type(exc).__name__})"
