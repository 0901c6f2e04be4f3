"""One project's polling cycle as its requests see it (``CycleContext``): the project, when the
cycle must end, the notifier's stop event, and the requests made for it so far.

A cycle's requests may be made on more than one thread (a listing downloads its next page on a
worker thread while it reads the current one): they all count in the cycle's one
``RequestCount``, which is safe to add to from any thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace


class RequestCount:
    """Requests made for one cycle, by whichever thread made them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made = 0

    def add(self) -> None:
        """One more request (an attempt, whatever its outcome)."""
        with self._lock:
            self._made += 1

    @property
    def made(self) -> int:
        """Requests made so far."""
        with self._lock:
            return self._made


@dataclass(frozen=True, slots=True)
class CycleContext:
    """What every request of one cycle shares. ``deadline`` is ``time.monotonic()``-based (None:
    no deadline); ``cancel`` is set when the notifier stops: no attempt starts after that, and
    waits between retries end at once."""

    project_id: int
    deadline: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    requests: RequestCount = field(default_factory=RequestCount)

    def within(self, seconds: float) -> CycleContext:
        """The same cycle (same stop event, same request count), ending ``seconds`` from now at
        the latest."""
        ends = time.monotonic() + seconds
        return replace(self, deadline=ends if self.deadline is None else min(ends, self.deadline))

    def time_left(self) -> float | None:
        """Seconds left before the deadline (None: no deadline; 0 or less: time is up)."""
        return None if self.deadline is None else self.deadline - time.monotonic()
