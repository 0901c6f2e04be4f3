"""How polling one project is going: failures in a row, when to try again, what to log.

Runtime state only (never persisted); ``notifier.runtime.daemon`` keeps one per project.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from notifier.core.errors import SourceError, SourceErrorKind, StateError

log = logging.getLogger("notifier.runtime.daemon")  # the poll's own log lines, as before


#: Errors that will not heal by polling again at full rate: wait longer between attempts.
_PERSISTENT = frozenset(
    {SourceErrorKind.AUTH, SourceErrorKind.NOT_FOUND, SourceErrorKind.BAD_REQUEST}
)
_MAX_PAUSE = 3600.0


#: Numbers in an error message (seconds to wait, a timeout, an offset) do not make it a new error.
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class ProjectHealth:
    """How polling one project is going (runtime state, never persisted).

    ``failures`` counts failed cycles in a row and ``signature`` is the last error with its
    numbers masked: the same signature again is "still failing", not a new error.
    """

    failures: int = 0
    last_error: str | None = None
    not_before: float = 0.0
    last_success: float | None = None
    cycles: int = 0
    signature: str | None = None

    def succeeded(self, project_id: int) -> None:
        """Record a successful cycle; after a run of failures, say the project recovered."""
        if self.failures:
            log.info(
                "project %s: polling recovered after %d failure%s (last: %s)",
                project_id,
                self.failures,
                "" if self.failures == 1 else "s",
                self.last_error,
                extra={"event": "poll_recovered", "project_id": project_id},
            )
        self.failures, self.last_error, self.signature, self.not_before = 0, None, None, 0.0
        self.last_success = time.time()

    def failed(self, project_id: int, exc: SourceError | StateError, interval: float) -> None:
        """Log a failed cycle and decide when to try again.

        The first failure, and any failure whose message differs from the previous one (numbers
        aside), is one ERROR with the cause and the fix; the same failure again is a WARNING
        "still failing (n in a row)". Credentials, not-found and bad-request errors do not heal
        by asking again: the project pauses, twice as long after each failure (up to an hour).
        A wait PostHog asked for (429 or 503 with ``Retry-After``) is honoured the same way.
        """
        self.failures += 1
        message = str(exc)
        if f"project {project_id}" not in message:
            message = f"project {project_id}: {message}"
        signature = _NUMBERS.sub("N", message)
        repeated = signature == self.signature
        self.signature, self.last_error = signature, message
        pause = 0.0
        if isinstance(exc, SourceError):
            if exc.kind in _PERSISTENT:
                pause = min(_MAX_PAUSE, interval * 2 ** min(self.failures, 20))
            elif exc.retry_after is not None:
                pause = min(_MAX_PAUSE, exc.retry_after)
        if pause > 0:
            self.not_before = time.time() + pause
        after = f"; next attempt in {pause:.0f}s" if pause > interval else ""
        extra = {
            "event": "poll_failed",
            "project_id": project_id,
            "error": message,
            "failures": self.failures,
        }
        if repeated:
            log.warning(
                "poll still failing (%d in a row): %s%s",
                self.failures,
                message,
                after,
                extra=extra,
            )
            return
        run = f" ({self.failures} in a row)" if self.failures > 1 else ""
        log.error("poll failed%s: %s; nothing was changed%s", run, message, after, extra=extra)
