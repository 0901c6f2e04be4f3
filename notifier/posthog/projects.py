"""A project's name (``ProjectNames``), for cards that show "Storefront" rather than "project
12345": ``GET /api/projects/{id}/`` (scope ``project:read``), through the same session,
retries, budget and cycle deadline as every other read.

Cached for the process: a name is kept ``NAME_TTL`` (6 h); a failure (the scope refused, 404,
no answer, a body that is not JSON, a name that is not a string) is remembered ``FAILURE_TTL``
(1 h), so a project costs one extra request an hour at most, and is logged once per project
and process at INFO. Never raises: without its name, a card shows the project id.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.posthog.paths import project_path
from notifier.posthog.session import Session

log = logging.getLogger(__name__)

#: Seconds a project's name is kept, and a failure to get it remembered.
NAME_TTL: Final = 6 * 3600.0
FAILURE_TTL: Final = 3600.0
#: Seconds the name may take (within the cycle's deadline): a busy request budget or a slow
#: PostHog never holds a cycle back longer.
WINDOW: Final = 5.0
#: The most of a name kept (PostHog's limit is 200 characters).
_MAX_NAME: Final = 200


def _now() -> float:
    """The clock the cache runs on (tests move it)."""
    return time.monotonic()


class ProjectNames:
    """Each project's name, asked once per ``NAME_TTL`` (a failure: once per ``FAILURE_TTL``)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._known: dict[int, tuple[str | None, float]] = {}  # id → (name or None, until)
        self._logged: set[int] = set()

    def name(self, cycle: CycleContext) -> str | None:
        """The cycle's project's name; None when PostHog did not give it (now or within the
        hour). A cycle whose time is up asks nothing and remembers nothing."""
        project_id = cycle.project_id
        with self._lock:
            known = self._known.get(project_id)
        if known is not None and _now() < known[1]:
            return known[0]
        left = cycle.time_left()
        if cycle.cancel.is_set() or (left is not None and left <= 0):
            return known[0] if known is not None else None
        name, why = self._ask(cycle.within(WINDOW))
        if why is None:  # not now (the budget, throttled, stopping): asked again next cycle
            return known[0] if known is not None else None
        with self._lock:
            ttl = NAME_TTL if name is not None else FAILURE_TTL
            self._known[project_id] = (name, _now() + ttl)
            first = name is None and project_id not in self._logged
            if first:
                self._logged.add(project_id)
        if first:
            log.info(
                "project %s: PostHog did not give its name (%s); cards show the project id. %s",
                project_id,
                why,
                _fix(why),
                extra={"event": "project_name_unavailable", "project_id": project_id},
            )
        return name

    def _ask(self, cycle: CycleContext) -> tuple[str | None, str | None]:
        """The name, or None and why not (None: not now, nothing to remember)."""
        project_id = cycle.project_id
        try:
            response = self._session.get(project_path(project_id), {}, cycle)
            if response.status_code == 404:
                return None, "HTTP 404: no such project for this key; check posthog.project_ids"
            body = self._session.decode(response, project_id)
        except SourceError as exc:
            if exc.kind is SourceErrorKind.THROTTLED or cycle.cancel.is_set():
                return None, None
            return None, _reason(exc)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            return None, "its answer has no name"
        return name.strip()[:_MAX_NAME], ""


def _reason(exc: SourceError) -> str:
    """What went wrong, in a few words (the scope said as PostHog names it)."""
    text = str(exc).removeprefix(f"project {exc.project_id}: ")
    if exc.status_code == 403 and "project:read" in text:
        return "HTTP 403: the key lacks the project:read scope"
    if "not JSON" in text or "not valid JSON" in text:
        return "its answer is not JSON"
    return text


def _fix(why: str) -> str:
    if "project:read" in why:
        return "Add project:read to the key to see its name"
    return "It is asked again in an hour"
