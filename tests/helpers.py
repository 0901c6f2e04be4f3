"""Small helpers shared by the test modules."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from notifier.config.settings import Settings
from notifier.runtime.daemon import Notifier


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


def run_notifier(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m notifier ARGS`` with ``env`` added to this environment; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@contextmanager
def running(settings: Settings) -> Iterator[Notifier]:
    """``Notifier.run`` in a thread; stopped and closed afterwards. Fails the test if ``run``
    raised or its thread did not stop."""
    notifier = Notifier(settings)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            notifier.run(stop)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, name="notifier-under-test", daemon=True)
    thread.start()
    try:
        wait_for(lambda: notifier.started_at is not None or failed, 10, "run to start", poll=0.02)
        yield notifier
    finally:
        stop.set()
        thread.join(timeout=15)
        notifier.close()
    assert not thread.is_alive()
    assert not failed, failed
