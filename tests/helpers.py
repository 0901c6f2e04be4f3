"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object],
    seconds: float = 20,
    what: str = "condition",
    *,
    poll: float = 0.05,
) -> None:
    """Wait until ``condition()`` is true; fail the test after ``seconds``. A bound, not a
    timing assertion: a fast machine passes sooner, a slow one still passes."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g} s: {what}")
        time.sleep(poll)
