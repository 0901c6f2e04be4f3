"""The simulated PostHog's endpoints: which request gets which answer, as unkind as the real API.

``PostHogApi`` is the part of ``FakePostHog`` that answers one parsed request, without HTTP:
two URL prefixes depending on the API version (``/signal_reports`` up to V3, ``/signals/reports``
from V4), the key and its scopes checked with 403 bodies in PostHog's shape, per-project access,
400 for an unknown ``status`` filter (V4+; V6 also for ``deleted``, listing the accepted values),
DRF limit/offset paging with absolute ``next`` links built from the ``Host`` header (or
``link_base``, an internal host behind a proxy), and the artefacts each version serves. V6 adds
``count_only``, ``include_all_statuses``, ``…/{id}/signals/``, ``…/signals/config/`` and the
writes (``POST``; ``task:write``), which ``ReportWrites`` answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from notifier.demo.simulator.answers import Answer, ApiRequest, BadBody, json_object
from notifier.demo.simulator.facts import (
    _LEGACY_PATH,
    _NEW_PATH,
    _PROJECT_PATH,
    _PROJECTS_PATH,
    _V6_PATH,
    INVALID_KEY,
    LISTABLE_STATUSES,
    NO_KEY,
    NOT_FOUND,
    PROJECT_NOT_FOUND,
    REPORT_STATUSES,
    _error,
    project_body,
)
from notifier.demo.simulator.listing import paginate
from notifier.demo.simulator.writes import ReportWrites

__all__ = ["Answer", "ApiRequest", "PostHogApi"]


#: The answer, and (project, offset) when it is a page of the report list.
Routed = tuple[Answer, tuple[int, int] | None]


#: V6: (what the path names, method) -> the action; any other method is a 405.
_V6_ACTIONS: Final = {
    ("list", "GET"): "list",
    ("report", "GET"): "retrieve",
    ("artefacts", "GET"): "artefacts",
    ("artefacts", "POST"): "note",
    ("signals", "GET"): "signals",
    ("config", "GET"): "config",
    ("bulk-state", "POST"): "bulk-state",
    ("state", "POST"): "state",
    ("claim", "POST"): "claim",
    ("feedback", "POST"): "feedback",
}
_V6_WRITES: Final = frozenset({"note", "bulk-state", "state", "claim", "feedback"})


def _permission_denied(detail: str) -> Answer:
    return Answer(403, _error("authentication_error", "permission_denied", detail))


def _not_allowed(method: str) -> Answer:
    detail = f'Method "{method}" not allowed.'
    return Answer(405, _error("invalid_request", "method_not_allowed", detail))


def _v6_target(match: re.Match[str]) -> str:
    """What a V6 path names: the listing, the config, bulk-state, a report or its action."""
    if match.group("config"):
        return "config"
    rid, sub = match.group("rid"), match.group("sub")
    if rid is None:
        return "list"
    if sub is None:
        return "bulk-state" if rid == "bulk-state" else "report"
    return sub


class PostHogApi(ReportWrites):
    """The signal reports API, V1 to V6, over ``ReportWrites`` (and so the data below it).

    Settings a test may change at any time: ``api_key``, ``allowed_projects`` (projects the key
    may read; None = all), ``scopes_ok`` (False = key lacks ``task:read``), ``missing_scopes``
    (e.g. ``{"signal_report:read"}``, which V1's artefacts need), ``link_base`` (origin for
    ``next``/``previous``; None = from the Host header), ``count_override`` (the listing's
    ``count``, ``next`` links following it as DRF's would) and ``max_limit`` (at most this many
    per page, a capped server), ``project_names`` (project id → the name ``GET
    /api/projects/{id}/`` and the project list show; default ``Project {id}``; reading a
    project needs ``project:read``, which ``missing_scopes`` may take away).
    """

    def __init__(
        self, projects: Iterable[int], *, api_version: int, api_key: str, link_base: str | None
    ) -> None:
        ReportWrites.__init__(self, projects, api_version=api_version)
        self.api_key = api_key
        self.link_base = link_base
        self.allowed_projects: set[int] | None = None
        self.scopes_ok = True
        self.missing_scopes: set[str] = set()
        self.count_override: int | None = None
        self.max_limit: int | None = None
        self.project_names: dict[int, str] = {}

    def _route(self, req: ApiRequest) -> Routed:
        """The answer, and (project, offset) when it is a page of the report list."""
        project = _PROJECT_PATH.match(req.path)
        if project is not None:  # the same path in every version
            return self._one_project(req, project.group("pid")), None
        if self.api_version >= 6:
            return self._route_v6(req)
        pattern = _NEW_PATH if self.api_version >= 4 else _LEGACY_PATH
        match = pattern.match(req.path)
        if match is None and not _PROJECTS_PATH.match(req.path):
            return Answer(404, NOT_FOUND), None
        denied = self._authenticate(req.authorization)
        if denied is not None:
            return denied, None
        if req.method != "GET":
            return _not_allowed(req.method), None
        if match is None:
            return self._list_projects(req), None
        pid_raw, rid, artefacts = match.group("pid"), match.group("rid"), match.group("art")
        pid = int(pid_raw) if pid_raw.isdigit() else -1
        denied = self._refused(pid_raw, pid, artefacts=bool(artefacts))
        if denied is not None:
            return denied, None
        if rid is None:
            return self._list(pid, req)
        if artefacts:
            return self._artefacts(pid, rid, req), None
        report = self._retrieve(pid, rid)
        return (Answer(404, NOT_FOUND) if report is None else Answer(200, report)), None

    def _route_v6(self, req: ApiRequest) -> Routed:
        """V6: only ``signals/…`` paths; reads as V5's, plus signals, config and the writes."""
        match = _V6_PATH.match(req.path)
        if match is None and not _PROJECTS_PATH.match(req.path):
            return Answer(404, NOT_FOUND), None
        denied = self._authenticate(req.authorization)
        if denied is not None:
            return denied, None
        if match is None:
            return (
                self._list_projects(req) if req.method == "GET" else _not_allowed(req.method)
            ), None
        action = _V6_ACTIONS.get((_v6_target(match), req.method))
        if action is None:
            return _not_allowed(req.method), None
        pid_raw, rid = match.group("pid"), match.group("rid")
        pid = int(pid_raw) if pid_raw.isdigit() else -1
        denied = self._refused(pid_raw, pid, artefacts=False, write=action in _V6_WRITES)
        if denied is not None:
            return denied, None
        if action in _V6_WRITES:
            try:
                body = json_object(req.body)
            except BadBody as bad:
                return bad.answer, None
            return self._write(action, pid, None if action == "bulk-state" else rid, body), None
        if action == "list":
            return self._list(pid, req)
        if action == "config":
            return Answer(200, self._signals_config(pid)), None
        assert rid is not None
        if action == "artefacts":
            return self._artefacts(pid, rid, req), None
        found = self._report_signals(pid, rid) if action == "signals" else self._retrieve(pid, rid)
        return (Answer(404, NOT_FOUND) if found is None else Answer(200, found)), None

    def project_name(self, project_id: int) -> str:
        """The project's name, as PostHog shows it."""
        return self.project_names.get(project_id, f"Project {project_id}")

    def _one_project(self, req: ApiRequest, pid_raw: str) -> Answer:
        """``GET /api/projects/{id}/``: the key, its projects and ``project:read``, then the
        project (404 ``Not found.`` when there is none)."""
        denied = self._authenticate(req.authorization)
        if denied is not None:
            return denied
        if req.method != "GET":
            return _not_allowed(req.method)
        pid = int(pid_raw) if pid_raw.isdigit() else -1
        if self.allowed_projects is not None and pid not in self.allowed_projects:
            return _permission_denied(
                f"API key does not have access to the requested project: ID {pid_raw}."
            )
        if "project:read" in self.missing_scopes:
            return _permission_denied("API key missing required scope 'project:read'")
        if not self._has_project(pid):
            return Answer(404, NOT_FOUND)
        return Answer(200, project_body(pid, self.project_name(pid)))

    def _authenticate(self, authorization: str | None) -> Answer | None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return Answer(403, NO_KEY)
        if token.strip() != self.api_key:
            return Answer(403, INVALID_KEY)
        return None

    def _refused(
        self, pid_raw: str, pid: int, *, artefacts: bool, write: bool = False
    ) -> Answer | None:
        """403 when the key may not read the project (or lacks the scope), 404 when the
        project does not exist; None when the request may go on."""
        if self.allowed_projects is not None and pid not in self.allowed_projects:
            return _permission_denied(
                f"API key does not have access to the requested project: ID {pid_raw}."
            )
        if not self._has_project(pid):
            return Answer(404, PROJECT_NOT_FOUND)
        scope = "signal_report:read" if artefacts and self.api_version == 1 else "task:read"
        if write:
            scope = "task:write"
        if (
            not self.scopes_ok
            or scope in self.missing_scopes
            or (write and not self.write_scope_ok)
        ):
            return _permission_denied(f"API key missing required scope '{scope}'")
        return None

    def _page(
        self, items: list[Any], req: ApiRequest, count: int | None = None
    ) -> tuple[dict[str, Any], int]:
        """DRF's LimitOffsetPagination, links and all."""
        base = (self.link_base or f"http://{req.host}").rstrip("/") + req.path
        return paginate(
            items,
            base=base,
            raw_query=req.raw_query,
            query=req.query,
            count=count,
            max_limit=self.max_limit,
        )

    def _list(self, pid: int, req: ApiRequest) -> Routed:
        wanted = [s.strip() for s in req.query.get("status", "").split(",") if s.strip()]
        if self.api_version >= 4:
            known = LISTABLE_STATUSES if self.api_version >= 6 else REPORT_STATUSES
            unknown = [s for s in wanted if s not in known]
            if unknown:
                detail = f"Invalid status value(s): {', '.join(unknown)}"
                if self.api_version >= 6:
                    detail += f". Accepted values: {', '.join(LISTABLE_STATUSES)}"
                body = _error("validation_error", "invalid_input", detail, "status")
                return Answer(400, body), None
        if self.api_version >= 6 and req.query.get("count_only", "").lower() == "true":
            count = self._count_listed(pid, wanted, req.query)
            if self.count_override is not None:
                count = self.count_override
            return Answer(
                200, {"count": count, "next": None, "previous": None, "results": []}
            ), None
        body, offset = self._report_page(
            pid,
            wanted,
            req.query,
            lambda ordered: self._page(ordered, req, self.count_override),
            seed=req.number,
        )
        return Answer(200, body), (pid, offset)

    def _artefacts(self, pid: int, rid: str, req: ApiRequest) -> Answer:
        items = self._artefacts_of(pid, rid)
        if items is None:
            return Answer(404, NOT_FOUND)
        if self.api_version >= 4:
            body, _ = self._page(items, req)
            return Answer(200, body)
        if self.api_version <= 2:
            items = [a for a in items if a["type"] == "video_segment"]
        keys = ("id", "type", "content", "created_at")
        results = [{k: a[k] for k in keys} for a in items]
        return Answer(200, {"results": results, "count": len(results)})

    def _list_projects(self, req: ApiRequest) -> Answer:
        ids = self._project_ids()
        if self.allowed_projects is not None:
            ids = [pid for pid in ids if pid in self.allowed_projects]
        items = [{"id": pid, "name": self.project_name(pid)} for pid in ids]
        body, _ = self._page(items, req)
        return Answer(200, body)
