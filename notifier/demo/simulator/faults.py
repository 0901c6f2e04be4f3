"""Faults a test injects into the simulated PostHog: a wrong answer, a late one, a cut one.

``FaultInjection`` is the part of ``FakePostHog`` that queues them: ``fail_next`` and
``throttle_next`` answer instead of PostHog (its error bodies, a 429 without ``Retry-After``),
``stall_next`` answers late, ``reset_next`` drops the connection mid-body. ``FakePostHog._handle``
takes the first matching fault of each request and plays it out.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from notifier.demo.simulator.facts import _default_error, throttled_body

__all__ = ["Fault", "FaultInjection"]


@dataclass
class Fault:
    """One queued fault, served to the next ``times`` requests whose path contains
    ``path_contains`` (any request when None)."""

    status: int
    body: bytes
    headers: dict[str, str]
    times: int
    path_contains: str | None
    #: "reply": answer status/body/headers; "stall": wait ``stall`` seconds, then answer
    #: normally; "reset": answer normally but drop the connection after ``keep`` body bytes.
    action: str = "reply"
    stall: float = 0.0
    keep: int = 0


class FaultInjection:
    """The queue of faults not yet served, oldest first."""

    def __init__(self) -> None:
        self._faults_lock = threading.Lock()
        self._faults: list[Fault] = []

    def fail_next(
        self,
        status: int,
        body: Any = None,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        path_contains: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead.

        ``body`` defaults to PostHog's error body for the status (503 also gets
        ``Retry-After: 1`` unless ``headers`` is given); ``raw`` sends exact bytes (an HTML
        error page, truncated JSON). ``path_contains`` matches the path with its query.
        """
        default_body, default_headers = _default_error(status)
        if raw is not None:
            payload = raw
            content_type = "text/html" if raw.lstrip().startswith(b"<") else "application/json"
        else:
            payload = json.dumps(default_body if body is None else body).encode()
            content_type = "application/json"
        sent = {"Content-Type": content_type, **(default_headers if headers is None else headers)}
        self._queue(Fault(status, payload, sent, times, path_contains))

    def stall_next(
        self, seconds: float, *, times: int = 1, path_contains: str | None = None
    ) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` before answering them
        normally (a client with a shorter timeout gives up first)."""
        self._queue(Fault(0, b"", {}, times, path_contains, action="stall", stall=seconds))

    def reset_next(
        self, *, times: int = 1, path_contains: str | None = None, keep: int = 40
    ) -> None:
        """Answer the next ``times`` matching requests normally but reset the connection after
        the headers and ``keep`` bytes of the body (at most all but its last byte)."""
        self._queue(Fault(0, b"", {}, times, path_contains, action="reset", keep=keep))

    def throttle_next(self, seconds: int, times: int = 1) -> None:
        """429 ``throttled_error`` with the wait only in ``detail``: no ``Retry-After``."""
        self.fail_next(429, throttled_body(seconds), times=times, headers={})

    def clear_faults(self) -> None:
        """Forget every fault not yet served."""
        with self._faults_lock:
            self._faults.clear()

    def _queue(self, fault: Fault) -> None:
        with self._faults_lock:
            self._faults.append(fault)

    def _take_fault(self, target: str) -> Fault | None:
        """The first fault matching ``target`` (path and query), counted as served once."""
        with self._faults_lock:
            for fault in self._faults:
                if fault.path_contains is None or fault.path_contains in target:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
