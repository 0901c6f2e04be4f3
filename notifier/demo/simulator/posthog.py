"""A faithful fake of PostHog's signal reports API.

Used by ``notifier demo`` and by the tests. ``FakePostHog`` is as unkind as the real API (see
``posthog-signals-api.md``): two URL prefixes depending on the API version, V1 listing only
``ready`` reports, DRF limit/offset paging with absolute ``next`` links built from the ``Host``
header (or an internal host behind a proxy), orderings without a tie-breaker in V1/V2, 403 bodies
in PostHog's shape, 429 without ``Retry-After``. Faults are injected with
``fail_next``/``throttle_next`` (an answer), ``stall_next`` (a late answer) and ``reset_next`` (a
connection dropped mid-body); ``on_list_page`` lets a test change the data between two pages of
one listing, ``rewrite_page`` change a page itself, ``count_override`` make ``count`` lie.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from notifier.demo.simulator.facts import (
    _ARTEFACT_V4_EXTRA,
    _KNOWN_KEYS,
    _LEGACY_PATH,
    _NEW_PATH,
    _PROJECTS_PATH,
    _V1_KEYS,
    _V5_EXTRA,
    _V5_KEYS,
    INVALID_KEY,
    NO_KEY,
    NOT_FOUND,
    PROJECT_NOT_FOUND,
    REPORT_STATUSES,
    SERVER_ERROR,
    _default_error,
    _error,
    throttled_body,
)
from notifier.demo.simulator.listing import paginate, sort_reports
from notifier.demo.simulator.server import BackgroundServer, FakeRequestHandler

__all__ = ["FakePostHog", "RequestRecord"]

_CLOCK_START: Final = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
_CLOCK_STEP: Final = timedelta(seconds=1, microseconds=1234)


@dataclass(frozen=True)
class RequestRecord:
    """One request the fake received. ``port`` is the client's source port (connection reuse)."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    port: int
    received_at: float = field(default=0.0, compare=False)


@dataclass
class _Fault:
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


@dataclass(frozen=True)
class _Req:
    method: str
    path: str
    raw_query: str
    host: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class _Answer:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Project:
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    artefacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Bumped by every change to ``reports``; listings sorted under a stable ordering are
    #: cached per generation, so paging through N reports does not sort N reports per page.
    generation: int = 0
    sorted_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def changed(self) -> None:
        self.generation += 1
        self.sorted_cache.clear()


class FakePostHog(BackgroundServer):
    """PostHog's signal reports API, V1 to V5, on a local port.

    Mutable attributes a test may set at any time: ``api_version`` (1..5), ``allowed_projects``
    (projects the key may read; None = all), ``scopes_ok`` (False = key lacks ``task:read``),
    ``missing_scopes`` (scopes the key lacks, e.g. ``{"signal_report:read"}``, which V1's
    artefacts need; everything else needs ``task:read``), ``link_base`` (origin for
    ``next``/``previous``; None = from the Host header), ``unstable_ties`` (V1/V2 orderings have
    no tie-breaker: equal keys come back in a different order on every request),
    ``on_list_page``, ``stall_seconds``, ``count_override`` (the listing's ``count``, with
    ``next`` links computed from it as DRF would: a count larger than the data gives empty pages
    that still say there is more), ``rewrite_page`` (a hook ``(project_id, offset, body) ->
    body`` that may change a listing page before it is sent: repeat an id, loop ``next``, drop an
    ``id``…).
    """

    def __init__(
        self,
        *,
        api_version: int = 5,
        api_key: str = "phx_test_key",
        projects: Iterable[int] = (1,),
        link_base: str | None = None,
    ) -> None:
        super().__init__()
        self.api_version = api_version
        self.api_key = api_key
        self.link_base = link_base
        self.allowed_projects: set[int] | None = None
        self.scopes_ok = True
        self.missing_scopes: set[str] = set()
        self.unstable_ties = True
        self.on_list_page: Callable[[int, int], None] | None = None
        self.count_override: int | None = None
        self.max_limit: int | None = None  # serve at most this many per page (a capped server)
        self.rewrite_page: Callable[[int, int, dict[str, Any]], dict[str, Any]] | None = None
        self.requests: list[RequestRecord] = []
        #: Exceptions raised while answering (e.g. by ``on_list_page``); answered as 500.
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._projects: dict[int, _Project] = {pid: _Project() for pid in projects}
        self._faults: list[_Fault] = []
        self._clock = _CLOCK_START
        self._serial = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.origin

    # ----------------------------------------------------------------- data, for tests and demo

    def _tick(self) -> str:
        self._clock += _CLOCK_STEP
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _project(self, project_id: int) -> _Project:
        try:
            return self._projects[project_id]
        except KeyError:
            raise KeyError(f"FakePostHog has no project {project_id}; add_project() it") from None

    def _report(self, project_id: int, report_id: str) -> dict[str, Any]:
        try:
            return self._project(project_id).reports[report_id]
        except KeyError:
            raise KeyError(f"project {project_id} has no report {report_id}") from None

    def _render(self, report: Mapping[str, Any]) -> dict[str, Any]:
        keys = _V5_KEYS if self.api_version >= 5 else _V1_KEYS
        out = {k: copy.deepcopy(report[k]) for k in keys if k in report}
        out.update({k: copy.deepcopy(v) for k, v in report.items() if k not in _KNOWN_KEYS})
        return out

    def add_project(self, project_id: int) -> None:
        """Make ``project_id`` exist (no-op if it does)."""
        with self._lock:
            self._projects.setdefault(project_id, _Project())

    def add_report(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """Store a report with PostHog-like defaults; return the API's view of it (a copy).

        Every version's fields are stored; the current ``api_version`` decides which are served
        (``relevant_user_count`` up to V4, the V5 extras from V5). Unknown fields are served
        by every version.
        """
        with self._lock:
            project = self._project(project_id)
            self._serial += 1
            now = self._tick()
            report: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "title": f"Simulated report {self._serial}",
                "summary": f"Signals clustered into simulated report {self._serial}.",
                "status": "ready",
                "total_weight": 1.0,
                "signal_count": 1,
                "relevant_user_count": 1,
                "created_at": now,
                "updated_at": now,
                "artefact_count": 0,
                **copy.deepcopy(_V5_EXTRA),
            }
            report.update(copy.deepcopy(fields))
            if report["signals_at_run"] is None and "signals_at_run" not in fields:
                report["signals_at_run"] = report["signal_count"]
            report["id"] = str(report["id"])
            project.reports[report["id"]] = report
            project.changed()
            project.artefacts.setdefault(report["id"], [])
            return self._render(report)

    def update_report(self, project_id: int, report_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields; ``updated_at`` moves on unless given. Returns the API's view."""
        with self._lock:
            report = self._report(project_id, report_id)
            report.update(copy.deepcopy(fields))
            self._projects[project_id].changed()
            if "updated_at" not in fields:
                report["updated_at"] = self._tick()
            return self._render(report)

    def delete_report(self, project_id: int, report_id: str) -> None:
        """Soft-delete: status ``deleted``, never listed, retrieve answers 404."""
        self.update_report(project_id, report_id, status="deleted")

    def reports(self, project_id: int) -> list[dict[str, Any]]:
        """Every stored report of the project (deleted and suppressed too), in creation order."""
        with self._lock:
            return [self._render(r) for r in self._project(project_id).reports.values()]

    def add_artefact(
        self,
        project_id: int,
        report_id: str,
        type: str,
        content: Any,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """Attach an artefact (the report's ``artefact_count`` follows, without moving its
        ``updated_at``); returns it as V4+ serve it. ``content`` is served as given (PostHog
        sends ``{}`` for content it cannot parse); ``created_at`` defaults to the fake's clock.
        Artefacts are served newest ``created_at`` first."""
        with self._lock:
            report = self._report(project_id, report_id)
            now = self._tick()
            artefact = {
                "id": str(uuid.uuid4()),
                "type": type,
                "content": copy.deepcopy(content),
                "created_at": created_at or now,
                **_ARTEFACT_V4_EXTRA,
                "updated_at": now,
            }
            self._project(project_id).artefacts[report_id].append(artefact)
            report["artefact_count"] = int(report.get("artefact_count") or 0) + 1
            self._project(project_id).changed()
            return copy.deepcopy(artefact)

    # ----------------------------------------------------------------------- fault injection

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
        with self._lock:
            self._faults.append(_Fault(status, payload, sent, times, path_contains))

    def stall_next(
        self, seconds: float, *, times: int = 1, path_contains: str | None = None
    ) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` before answering them
        normally (a client with a shorter timeout gives up first)."""
        with self._lock:
            self._faults.append(
                _Fault(0, b"", {}, times, path_contains, action="stall", stall=seconds)
            )

    def reset_next(
        self, *, times: int = 1, path_contains: str | None = None, keep: int = 40
    ) -> None:
        """Answer the next ``times`` matching requests normally but reset the connection after
        the headers and ``keep`` bytes of the body (at most all but its last byte)."""
        with self._lock:
            self._faults.append(_Fault(0, b"", {}, times, path_contains, action="reset", keep=keep))

    def throttle_next(self, seconds: int, times: int = 1) -> None:
        """429 ``throttled_error`` with the wait only in ``detail``: no ``Retry-After``."""
        self.fail_next(429, throttled_body(seconds), times=times, headers={})

    def clear_faults(self) -> None:
        """Forget every fault not yet served."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, target: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains is None or fault.path_contains in target:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ------------------------------------------------------------------------- the endpoints

    def _handle(self, handler: FakeRequestHandler) -> None:
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        record = RequestRecord(
            method=handler.command,
            path=split.path,
            query=query,
            authorization=handler.headers.get("Authorization"),
            port=handler.client_address[1],
            received_at=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)
        handler.read_body()
        if not self._stall():
            handler.close_connection = True
            return
        fault = self._take_fault(handler.path)
        if fault is not None and fault.action == "stall":
            if self._stopping.wait(fault.stall):  # stopped meanwhile
                handler.close_connection = True
                return
        elif fault is not None and fault.action == "reply":
            handler.reply(fault.status, fault.body, fault.headers)
            return
        req = _Req(
            method=handler.command,
            path=split.path,
            raw_query=split.query,
            host=handler.headers.get("Host") or f"127.0.0.1:{self.port}",
            query=query,
            authorization=record.authorization,
        )
        try:
            answer, page_of = self._route(req)
            if page_of is not None and self.rewrite_page is not None:
                answer.payload = self.rewrite_page(*page_of, answer.payload)
            if page_of is not None and self.on_list_page is not None:
                self.on_list_page(*page_of)
        except Exception as exc:  # noqa: BLE001 - a broken hook must still answer something
            with self._lock:
                self.errors.append(exc)
            answer = _Answer(500, SERVER_ERROR)
        if fault is not None and fault.action == "reset":
            body = json.dumps(answer.payload).encode()
            headers = {"Content-Type": "application/json", **answer.headers}
            handler.reply_reset(answer.status, body, headers, keep=fault.keep)
            return
        handler.reply_json(answer.status, answer.payload, answer.headers)

    def _route(self, req: _Req) -> tuple[_Answer, tuple[int, int] | None]:
        """The answer, and (project, offset) when it is a page of the report list."""
        pattern = _NEW_PATH if self.api_version >= 4 else _LEGACY_PATH
        match = pattern.match(req.path)
        if match is None and not _PROJECTS_PATH.match(req.path):
            return _Answer(404, NOT_FOUND), None
        denied = self._authenticate(req.authorization)
        if denied is not None:
            return denied, None
        if req.method != "GET":
            detail = f'Method "{req.method}" not allowed.'
            return _Answer(405, _error("invalid_request", "method_not_allowed", detail)), None
        if match is None:
            return self._list_projects(req), None
        pid_raw, rid, artefacts = match.group("pid"), match.group("rid"), match.group("art")
        pid = int(pid_raw) if pid_raw.isdigit() else -1
        if self.allowed_projects is not None and pid not in self.allowed_projects:
            detail = f"API key does not have access to the requested project: ID {pid_raw}."
            return _Answer(403, _error("authentication_error", "permission_denied", detail)), None
        with self._lock:
            known = pid in self._projects
        if not known:
            return _Answer(404, PROJECT_NOT_FOUND), None
        scope = "signal_report:read" if artefacts and self.api_version == 1 else "task:read"
        if not self.scopes_ok or scope in self.missing_scopes:
            detail = f"API key missing required scope '{scope}'"
            return _Answer(403, _error("authentication_error", "permission_denied", detail)), None
        if rid is None:
            return self._list(pid, req)
        if artefacts:
            return self._artefacts(pid, rid, req), None
        with self._lock:
            report = self._visible_report(pid, rid)
            return (_Answer(404, NOT_FOUND) if report is None else _Answer(200, report)), None

    def _authenticate(self, authorization: str | None) -> _Answer | None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _Answer(403, NO_KEY)
        if token.strip() != self.api_key:
            return _Answer(403, INVALID_KEY)
        return None

    def _visible_report(self, pid: int, rid: str) -> dict[str, Any] | None:
        report = self._projects[pid].reports.get(rid)
        if report is None or report["status"] == "deleted":
            return None
        if self.api_version == 1 and report["status"] != "ready":
            return None
        return self._render(report)

    def _page(
        self, items: list[Any], req: _Req, count: int | None = None
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

    def _sorted(self, reports: list[dict[str, Any]], query: Mapping[str, str]) -> list[Any]:
        tie_seed = len(self.requests) if self.unstable_ties else None
        return sort_reports(reports, query, api_version=self.api_version, tie_seed=tie_seed)

    def _list(self, pid: int, req: _Req) -> tuple[_Answer, tuple[int, int] | None]:
        query = req.query
        with self._lock:
            project = self._projects[pid]
            wanted = [s.strip() for s in query.get("status", "").split(",") if s.strip()]
            if self.api_version >= 4:
                unknown = [s for s in wanted if s not in REPORT_STATUSES]
                if unknown:
                    detail = f"Invalid status value(s): {', '.join(unknown)}"
                    body = _error("validation_error", "invalid_input", detail, "status")
                    return _Answer(400, body), None
            # V3+ orderings end with a unique tie-breaker: the order is a function of the data,
            # so it is computed once per change. V1/V2 ties may shuffle on every request.
            stable = self.api_version >= 3 or not self.unstable_ties
            key = (self.api_version, query.get("status", ""), query.get("ordering", ""))
            ordered = project.sorted_cache.get(key) if stable else None
            if ordered is None:
                ordered = self._sorted(self._visible(project, wanted), query)
                if stable:
                    project.sorted_cache[key] = ordered
            body, offset = self._page(ordered, req, self.count_override)
            body["results"] = [self._render(r) for r in body["results"]]
        return _Answer(200, body), (pid, offset)

    def _visible(self, project: _Project, wanted: list[str]) -> list[dict[str, Any]]:
        """The reports a listing shows: V1 only ``ready``; V2+ the filter, or all but hidden."""
        stored = list(project.reports.values())
        if self.api_version == 1:
            return [r for r in stored if r["status"] == "ready"]
        hidden = {"deleted"} if wanted else {"deleted", "suppressed"}
        return [
            r for r in stored if r["status"] not in hidden and (not wanted or r["status"] in wanted)
        ]

    def _artefacts(self, pid: int, rid: str, req: _Req) -> _Answer:
        with self._lock:
            if self._visible_report(pid, rid) is None:
                return _Answer(404, NOT_FOUND)
            items = sorted(
                self._projects[pid].artefacts.get(rid, []),
                key=lambda a: str(a["created_at"]),
                reverse=True,
            )
            if self.api_version >= 4:
                body, _ = self._page(copy.deepcopy(items), req)
                return _Answer(200, body)
            if self.api_version <= 2:
                items = [a for a in items if a["type"] == "video_segment"]
            keys = ("id", "type", "content", "created_at")
            results = [{k: copy.deepcopy(a[k]) for k in keys} for a in items]
            return _Answer(200, {"results": results, "count": len(results)})

    def _list_projects(self, req: _Req) -> _Answer:
        with self._lock:
            ids = sorted(self._projects)
        if self.allowed_projects is not None:
            ids = [pid for pid in ids if pid in self.allowed_projects]
        items = [{"id": pid, "name": f"Project {pid}"} for pid in ids]
        body, _ = self._page(items, req)
        return _Answer(200, body)
