"""Where a project's reports are served (``Paths``): the API path prefix this PostHog version
serves (``posthog.api_path``, or found on a listing's first page), and the paths built on it.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote

import httpx

from notifier.config.settings import PostHogSettings
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind
from notifier.posthog.errors import detail_of
from notifier.posthog.session import Session

log = logging.getLogger(__name__)

PREFIXES: Final = ("signals/reports", "signal_reports")  # newest first


def _path(project_id: int, prefix: str, report_id: str | None = None) -> str:
    tail = f"{report_id}/" if report_id else ""
    return f"/api/projects/{project_id}/{prefix}/{tail}"


def project_path(project_id: int) -> str:
    """One project (its name, timezone…): the same path in every API version."""
    return f"/api/projects/{project_id}/"


class Paths:
    """Each project's API path prefix: the configured one, or the one its first listing page
    was found at."""

    def __init__(self, settings: PostHogSettings, session: Session) -> None:
        self._settings = settings
        self._session = session
        self._fixed = settings.api_path if settings.api_path != "auto" else None
        self._prefix: dict[int, str] = {}

    def listing(self, project_id: int) -> str:
        """The listing's path, once ``first_page`` found it."""
        return _path(project_id, self._prefix[project_id])

    def report(self, project_id: int, report_id: str) -> str:
        """One report's path (the newest prefix when no listing has found one yet)."""
        prefix = self._fixed or self._prefix.get(project_id) or PREFIXES[0]
        return _path(project_id, prefix, quote(report_id, safe=""))

    def first_page(self, params: dict[str, Any], cycle: CycleContext) -> httpx.Response:
        """The cycle's project's first page, finding the API path prefix this PostHog version
        serves."""
        project_id = cycle.project_id
        known = self._fixed or self._prefix.get(project_id)
        candidates = (known,) if known else PREFIXES
        details: list[str] = []
        for prefix in candidates:
            response = self._session.get(_path(project_id, prefix), params, cycle)
            if response.status_code != 404:
                if self._prefix.get(project_id) != prefix:
                    log.debug("project %s: reports are at %s/", project_id, prefix)
                self._prefix[project_id] = prefix
                return response
            details.append(detail_of(response))
        if any("project" in d.lower() for d in details):
            message = (
                f"project {project_id}: PostHog says 'Project not found.'; check "
                "posthog.project_ids (the numeric id in your project's URL, or GET /api/projects/)"
            )
        else:
            tried = " and ".join(f"{p}/" for p in candidates)
            message = (
                f"project {project_id}: no signal reports API at {tried} on "
                f"{self._settings.host}; is this a PostHog instance with Signals enabled? "
                "(set posthog.api_path if it lives elsewhere)"
            )
        raise SourceError(
            message, kind=SourceErrorKind.NOT_FOUND, project_id=project_id, status_code=404
        )
