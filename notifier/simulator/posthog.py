"""A faithful fake of PostHog's signal reports API, and a story that keeps it changing.

Used by ``notifier demo`` and by the tests. Standard library only: a ``ThreadingHTTPServer`` on
127.0.0.1, port 0, served from a daemon thread.

``FakePostHog`` is as unkind as the real API (see ``posthog-signals-api.md``): two URL prefixes
depending on the API version, V1 listing only ``ready`` reports, DRF limit/offset paging with
absolute ``next`` links built from the ``Host`` header (or an internal host behind a proxy),
orderings without a tie-breaker in V1/V2, 403 bodies in PostHog's shape, 429 without
``Retry-After``. Faults are injected with ``fail_next``/``throttle_next``; ``on_list_page`` lets a
test change the data between two pages of one listing.

``DemoStory`` drives a ``FakePostHog`` through believable report life cycles, one change per call.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

__all__ = [
    "REPORT_STATUSES",
    "BackgroundServer",
    "DemoStory",
    "FakePostHog",
    "FakeRequestHandler",
    "RequestRecord",
]

# --------------------------------------------------------------------------- the HTTP plumbing


class FakeRequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 exchange, handed to the owning ``BackgroundServer._handle``."""

    protocol_version = "HTTP/1.1"
    server_version = "fake/1"

    def do_GET(self) -> None:
        """Dispatch to the owner."""
        self._dispatch()

    def do_POST(self) -> None:
        """Dispatch to the owner."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Dispatch to the owner."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Dispatch to the owner."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Dispatch to the owner."""
        self._dispatch()

    def _dispatch(self) -> None:
        server = cast(_Server, self.server)
        try:
            server.owner._handle(self)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and the demo own the terminal."""

    def read_body(self) -> bytes:
        """The request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Send a complete response with a Content-Length (keeps the connection usable)."""
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "content-length" not in sent and status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def reply_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``payload`` as JSON."""
        self.reply(
            status,
            json.dumps(payload).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: BackgroundServer) -> None:
        self.owner = owner
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeRequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._open_lock:
                self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away
            return
        super().handle_error(request, client_address)


class BackgroundServer:
    """A local HTTP server on 127.0.0.1 (random port) answered from a daemon thread.

    Subclasses implement ``_handle(handler)``. ``stop()`` is fast: it stops the accept loop,
    wakes stalled handlers and closes kept-alive connections, so a client pool cannot keep
    talking to a stopped server.
    """

    def __init__(self) -> None:
        self.stall_seconds: float = 0.0
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Bind, start serving in a daemon thread, return self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_open_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _stall(self) -> bool:
        """Sleep ``stall_seconds``; False when the server was stopped meanwhile."""
        if self.stall_seconds > 0:
            self._stopping.wait(self.stall_seconds)
        return not self._stopping.is_set()

    def _handle(self, handler: FakeRequestHandler) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- PostHog's facts

REPORT_STATUSES: Final = (
    "potential",
    "candidate",
    "in_progress",
    "pending_input",
    "ready",
    "resolved",
    "failed",
    "suppressed",
    "deleted",
)

_V1_KEYS: Final = (
    "id",
    "title",
    "summary",
    "status",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "created_at",
    "updated_at",
    "artefact_count",
)

#: V5's extra fields and their defaults, in the order of ``v5-report.json``.
_V5_EXTRA: Final[dict[str, Any]] = {
    "signals_at_run": None,  # filled with signal_count by add_report
    "charts": [],
    "metrics": [],
    "suggested_prompts": [],
    "priority": None,
    "actionability": None,
    "already_addressed": None,
    "dismissal_reason": None,
    "dismissal_note": None,
    "repo_slug": None,
    "is_suggested_reviewer": False,
    "source_products": [],
    "scout_name": None,
    "implementation_pr_url": None,
    "pull_requests": [],
    "implementation_pr_state": None,
    "implementation_pr_merged": False,
    "tracker_issue_url": None,
    "tracker_issue_reference": None,
    "tracker_issue_error": None,
    "work_state": "unclaimed",
    "assignee": None,
    "refund": None,
    "refund_ineligibility_reason": None,
    "billing_exempt_reason": None,
    "channel_id": None,
}
_V5_KEYS: Final = (
    *(k for k in _V1_KEYS[:6] if k != "relevant_user_count"),
    "signals_at_run",
    "created_at",
    "updated_at",
    "artefact_count",
    *(k for k in _V5_EXTRA if k != "signals_at_run"),
)
_KNOWN_KEYS: Final = frozenset(_V1_KEYS) | frozenset(_V5_EXTRA)

_V2_ORDERING: Final = frozenset({"signal_count", "total_weight", "created_at", "updated_at"})
_V3_ORDERING: Final = _V2_ORDERING | {"status", "is_suggested_reviewer", "id"}
_V4_ORDERING: Final = _V3_ORDERING | {"priority"}
_V3_DEFAULT_ORDER: Final = ("-is_suggested_reviewer", "status", "-updated_at")

_ARTEFACT_V4_EXTRA: Final[dict[str, Any]] = {
    "claim_id": None,
    "pull_request_id": None,
    "updated_at": None,
    "actor_kind": "task",
    "actor_agent": None,
    "created_by": None,
    "task_id": None,
}

_DEFAULT_LIMIT: Final = 100
_CLOCK_START: Final = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
_CLOCK_STEP: Final = timedelta(seconds=1, microseconds=1234)

_LEGACY_PATH: Final = re.compile(
    r"^/api/projects/(?P<pid>[^/]+)/signal_reports(?:/(?P<rid>[^/]+))?(?P<art>/artefacts)?/?$"
)
_NEW_PATH: Final = re.compile(
    r"^/api/projects/(?P<pid>[^/]+)/signals/reports(?:/(?P<rid>[^/]+))?(?P<art>/artefacts)?/?$"
)
_PROJECTS_PATH: Final = re.compile(r"^/api/projects/?$")


def _error(type_: str, code: str, detail: str, attr: str | None = None) -> dict[str, Any]:
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


NOT_FOUND: Final = _error("invalid_request", "not_found", "Not found.")
PROJECT_NOT_FOUND: Final = _error("invalid_request", "not_found", "Project not found.")
NO_KEY: Final = _error(
    "authentication_error", "not_authenticated", "Authentication credentials were not provided."
)
INVALID_KEY: Final = _error(
    "authentication_error",
    "authentication_failed",
    "Personal API key found in request Authorization header is invalid.",
)
SERVER_ERROR: Final = _error("server_error", "error", "A server error occurred.")


def throttled_body(seconds: int) -> dict[str, Any]:
    """PostHog's (DRF's) 429 body; the wait is only in ``detail``."""
    unit = "second" if seconds == 1 else "seconds"
    return _error(
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {seconds} {unit}.",
    )


def _default_error(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    if status == 400:
        return _error("validation_error", "invalid_input", "Invalid input."), {}
    if status in (401, 403):
        return dict(INVALID_KEY), {}
    if status == 404:
        return dict(NOT_FOUND), {}
    if status == 405:
        return _error("invalid_request", "method_not_allowed", "Method not allowed."), {}
    if status == 429:
        return throttled_body(1), {}
    if status == 503:
        detail = "Service temporarily unavailable, try again later."
        return _error("server_error", "service_unavailable", detail), {"Retry-After": "1"}
    if status >= 500:
        return dict(SERVER_ERROR), {}
    return _error("invalid_request", "error", f"Error {status}."), {}


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


def _sort_key(value: Any) -> tuple[int, Any]:
    """Postgres order: NULLS LAST ascending, NULLS FIRST descending (with ``reverse``)."""
    return (1, 0) if value is None else (0, value)


def _int_param(raw: str | None, *, strict: bool) -> int | None:
    """DRF's ``_positive_int``: None when missing or invalid."""
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None or value < 0 or (strict and value == 0):
        return None
    return value


class FakePostHog(BackgroundServer):
    """PostHog's signal reports API, V1 to V5, on a local port.

    Mutable attributes a test may set at any time: ``api_version`` (1..5), ``allowed_projects``
    (projects the key may read; None = all), ``scopes_ok`` (False = key lacks ``task:read``),
    ``link_base`` (origin for ``next``/``previous``; None = from the Host header),
    ``unstable_ties`` (V1/V2 orderings have no tie-breaker: equal keys come back in a different
    order on every request), ``on_list_page``, ``stall_seconds``.
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
        self.unstable_ties = True
        self.on_list_page: Callable[[int, int], None] | None = None
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
            project.artefacts.setdefault(report["id"], [])
            return self._render(report)

    def update_report(self, project_id: int, report_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields; ``updated_at`` moves on unless given. Returns the API's view."""
        with self._lock:
            report = self._report(project_id, report_id)
            report.update(copy.deepcopy(fields))
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
        self, project_id: int, report_id: str, type: str, content: dict[str, Any]
    ) -> None:
        """Attach an artefact (the report's ``artefact_count`` follows)."""
        with self._lock:
            report = self._report(project_id, report_id)
            now = self._tick()
            artefact = {
                "id": str(uuid.uuid4()),
                "type": type,
                "content": copy.deepcopy(content),
                "created_at": now,
                **_ARTEFACT_V4_EXTRA,
                "updated_at": now,
            }
            self._project(project_id).artefacts[report_id].append(artefact)
            report["artefact_count"] = int(report.get("artefact_count") or 0) + 1

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

    def throttle_next(self, seconds: int, times: int = 1) -> None:
        """429 ``throttled_error`` with the wait only in ``detail``: no ``Retry-After``."""
        self.fail_next(429, throttled_body(seconds), times=times, headers={})

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
        if fault is not None:
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
            if page_of is not None and self.on_list_page is not None:
                self.on_list_page(*page_of)
        except Exception as exc:  # noqa: BLE001 - a broken hook must still answer something
            with self._lock:
                self.errors.append(exc)
            answer = _Answer(500, SERVER_ERROR)
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
        if not self.scopes_ok:
            scope = "signal_report:read" if artefacts and self.api_version == 1 else "task:read"
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

    def _page(self, items: list[Any], req: _Req) -> tuple[dict[str, Any], int]:
        """DRF's LimitOffsetPagination, links and all."""
        limit = _int_param(req.query.get("limit"), strict=True) or _DEFAULT_LIMIT
        offset = _int_param(req.query.get("offset"), strict=False) or 0
        count = len(items)
        base = (self.link_base or f"http://{req.host}").rstrip("/") + req.path

        def link(**changes: int | None) -> str:
            params = parse_qs(req.raw_query, keep_blank_values=True)
            for key, value in changes.items():
                if value is None:
                    params.pop(key, None)
                else:
                    params[key] = [str(value)]
            encoded = urlencode(sorted(params.items()), doseq=True)
            return f"{base}?{encoded}" if encoded else base

        next_link = None if offset + limit >= count else link(limit=limit, offset=offset + limit)
        if offset <= 0:
            previous = None
        elif offset - limit <= 0:
            previous = link(limit=limit, offset=None)
        else:
            previous = link(limit=limit, offset=offset - limit)
        results = items[offset : offset + limit] if offset <= count else []
        body = {"count": count, "next": next_link, "previous": previous, "results": results}
        return body, offset

    def _ordering(self, query: Mapping[str, str]) -> tuple[list[str], bool]:
        """The ORDER BY terms and whether they end with a unique tie-breaker."""
        version = self.api_version
        if version == 1:
            return ["-total_weight", "-updated_at"], False
        allowed = _V2_ORDERING if version == 2 else _V4_ORDERING if version >= 4 else _V3_ORDERING
        terms = [t.strip() for t in query.get("ordering", "").split(",") if t.strip()]
        valid = [t for t in terms if t.removeprefix("-") in allowed]
        if version == 2:
            return valid or ["-signal_count"], False
        return [*(valid or _V3_DEFAULT_ORDER), "id"], True

    def _sorted(self, reports: list[dict[str, Any]], query: Mapping[str, str]) -> list[Any]:
        terms, stable = self._ordering(query)
        ordered = list(reports)
        if not stable and self.unstable_ties:
            random.Random(len(self.requests)).shuffle(ordered)
        for term in reversed(terms):
            name = term.removeprefix("-")
            ordered.sort(key=lambda r: _sort_key(r.get(name)), reverse=term.startswith("-"))
        return ordered

    def _list(self, pid: int, req: _Req) -> tuple[_Answer, tuple[int, int] | None]:
        query = req.query
        with self._lock:
            stored = list(self._projects[pid].reports.values())
            if self.api_version == 1:
                visible = [r for r in stored if r["status"] == "ready"]
            else:
                wanted = [s.strip() for s in query.get("status", "").split(",") if s.strip()]
                unknown = [s for s in wanted if s not in REPORT_STATUSES]
                if unknown and self.api_version >= 4:
                    detail = f"Invalid status value(s): {', '.join(unknown)}"
                    body = _error("validation_error", "invalid_input", detail, "status")
                    return _Answer(400, body), None
                hidden = {"deleted"} if wanted else {"deleted", "suppressed"}
                visible = [
                    r
                    for r in stored
                    if r["status"] not in hidden and (not wanted or r["status"] in wanted)
                ]
            ordered = self._sorted(visible, query)
            body, offset = self._page(ordered, req)
            body["results"] = [self._render(r) for r in body["results"]]
        return _Answer(200, body), (pid, offset)

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


# --------------------------------------------------------------------------- the demo story

_STORIES: Final = (
    (
        "Checkout button unresponsive on Safari",
        "Users on Safari 17 tap the Pay button repeatedly and nothing happens; "
        "{users} users abandoned checkout after this.",
        "session_replay",
    ),
    (
        "Onboarding tour stalls on step 3",
        "The product tour waits for a 'Connect data source' click that never registers "
        "on small screens; {users} new sign-ups stopped there.",
        "session_replay",
    ),
    (
        "CSV export times out for large cohorts",
        "Exporting cohorts above 50k persons returns a 504 after 30 s; "
        "{users} users retried the export more than three times.",
        "error_tracking",
    ),
    (
        "Password reset emails arrive after the link expired",
        "Reset links expire after 15 minutes but the mail queue delays some by 20; "
        "{users} users requested a second link within the hour.",
        "logs",
    ),
    (
        "Dashboard filters reset after navigating back",
        "Date-range and property filters are lost on browser back; "
        "{users} users re-applied the same filters repeatedly.",
        "session_replay",
    ),
    (
        "Invite teammate modal throws on empty role",
        "Submitting the invite form without choosing a role raises a TypeError; "
        "{users} users saw the error toast.",
        "error_tracking",
    ),
    (
        "Mobile nav menu covers the cart total",
        "On iOS the sticky menu overlaps the order total during checkout; "
        "{users} users scrolled up and down before paying.",
        "session_replay",
    ),
    (
        "Billing page shows the wrong currency for EU accounts",
        "EU workspaces see prices in USD on the billing page while invoices use EUR; "
        "{users} users opened a support chat from that page.",
        "surveys",
    ),
)

_LIVE: Final = ("potential", "candidate", "in_progress", "pending_input", "ready")
_CANDIDATE_WEIGHT: Final = 1.0


def _signals(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}signal{'' if count == 1 else 's'}"


class DemoStory:
    """Believable life cycles for a few reports; ``step()`` makes one change and says which.

    Deterministic for a seed. Never runs out: new reports keep appearing, old finished ones
    are deleted, a resolved problem can come back as a new report.
    """

    def __init__(self, sim: FakePostHog, project_id: int, seed: int = 7) -> None:
        self.sim = sim
        self.project_id = project_id
        self._rng = random.Random(seed)
        self._next_story = 0
        self._users: dict[str, int] = {}
        self._story_of: dict[str, int] = {}
        sim.add_project(project_id)

    # ----------------------------------------------------------------------------- helpers

    def _all(self) -> list[dict[str, Any]]:
        """The story's own reports (others in the project are left alone)."""
        return [r for r in self.sim.reports(self.project_id) if r["id"] in self._story_of]

    def _with(self, *statuses: str) -> list[dict[str, Any]]:
        return [r for r in self._all() if r["status"] in statuses]

    def _summary(self, report_id: str) -> str:
        _, summary, _ = _STORIES[self._story_of[report_id]]
        return summary.format(users=self._users[report_id])

    def _new(self, status: str, weight: float, signals: int) -> dict[str, Any]:
        index = self._next_story % len(_STORIES)
        self._next_story += 1
        title, summary, product = _STORIES[index]
        users = max(1, signals + self._rng.randint(0, 3))
        report = self.sim.add_report(
            self.project_id,
            title=title,
            summary=summary.format(users=users),
            status=status,
            total_weight=round(weight, 2),
            signal_count=signals,
            relevant_user_count=users,
            source_products=[product],
        )
        self._users[report["id"]] = users
        self._story_of[report["id"]] = index
        self.sim.add_artefact(
            self.project_id,
            report["id"],
            "video_segment",
            {
                "session_id": str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
                "start_time": report["created_at"][:19] + "Z",
                "end_time": report["created_at"][:19] + "Z",
                "distinct_id": f"user_{self._rng.randint(10, 999)}",
                "content": f"Session showing: {title.lower()}.",
                "distance_to_centroid": round(self._rng.uniform(0.05, 0.4), 2),
            },
        )
        return report

    def _update(self, report: dict[str, Any], **fields: Any) -> None:
        self.sim.update_report(self.project_id, report["id"], **fields)

    # ------------------------------------------------------------------------------- story

    def seed_reports(self) -> None:
        """Three reports to start with: one ready, one candidate, one potential."""
        ready = self._new("ready", 2.35, 7)
        self._update(
            ready,
            priority="P1",
            actionability="immediately_actionable",
            already_addressed=False,
            repo_slug="acme/web",
            is_suggested_reviewer=True,
        )
        self._new("candidate", 1.2, 4)
        self._new("potential", 0.4, 1)

    def step(self) -> str:
        """Advance the story by one change; return a one-line description of it."""
        live = self._with(*_LIVE)
        if len(live) < 3:
            return self._appear()
        finished = len(self._with("resolved", "suppressed", "failed"))
        moves: list[tuple[float, Callable[[], str | None]]] = [
            (3.0, self._advance),
            (2.0, self._grow),
            (1.0, self._appear if len(live) < 7 else self._grow),
            (1.0, self._resolve),
            (0.6, self._rework),
            (0.5, self._suppress),
            (0.5 if finished < 8 else 3.0, self._clean_up),
        ]
        while True:
            pick = self._rng.choices([m for _, m in moves], weights=[w for w, _ in moves])[0]
            said = pick()
            if said is not None:
                return said

    def _appear(self) -> str:
        signals = self._rng.randint(1, 2)
        report = self._new("potential", self._rng.uniform(0.2, 0.6), signals)
        return f"new report '{report['title']}' appeared as potential ({_signals(signals)})"

    def _grow(self) -> str | None:
        live = self._with(*_LIVE)
        if not live:
            return None
        report = self._rng.choice(live)
        more = self._rng.randint(1, 3)
        weight = round(float(report["total_weight"]) + more * self._rng.uniform(0.08, 0.25), 2)
        self._users[report["id"]] += self._rng.randint(0, more)
        fields: dict[str, Any] = {
            "signal_count": int(report["signal_count"]) + more,
            "total_weight": weight,
            "relevant_user_count": self._users[report["id"]],
        }
        line = f"'{report['title']}' gathered {_signals(more, 'new ')}, weight now {weight:.2f}"
        if report["status"] == "potential" and weight >= _CANDIDATE_WEIGHT:
            fields["status"] = "candidate"
            line += " → candidate"
        self._update(report, **fields)
        return line

    def _advance(self) -> str | None:
        movable = self._with("potential", "candidate", "in_progress", "pending_input")
        if not movable:
            return None
        report = self._rng.choice(movable)
        title, status = report["title"], report["status"]
        if status == "potential":
            more = self._rng.randint(2, 4)
            weight = float(report["total_weight"]) + more * self._rng.uniform(0.15, 0.3)
            weight = round(max(weight, _CANDIDATE_WEIGHT + 0.05), 2)
            count = int(report["signal_count"]) + more
            self._update(report, status="candidate", total_weight=weight, signal_count=count)
            return f"'{title}' passed the weight threshold ({weight:.2f}): potential → candidate"
        if status == "candidate":
            self._update(report, status="in_progress", signals_at_run=report["signal_count"])
            return f"research started on '{title}': candidate → in_progress"
        if status == "pending_input":
            self._finish_research(report)
            return f"a human answered the question on '{title}': pending_input → ready"
        roll = self._rng.random()
        if roll < 0.08:
            self._update(report, status="failed")
            return f"the research run on '{title}' crashed: in_progress → failed"
        if roll < 0.35:
            self._update(report, status="pending_input", actionability="requires_human_input")
            return f"research on '{title}' needs a human: in_progress → pending_input"
        self._finish_research(report)
        return f"research finished on '{title}': in_progress → ready"

    def _finish_research(self, report: dict[str, Any]) -> None:
        priority = self._rng.choice(("P0", "P1", "P2", "P2", "P3", "P4"))
        self._update(
            report,
            status="ready",
            priority=priority,
            actionability="immediately_actionable",
            already_addressed=False,
            signals_at_run=report["signal_count"],
            summary=self._summary(report["id"]),
        )
        self.sim.add_artefact(
            self.project_id,
            report["id"],
            "priority_judgment",
            {
                "explanation": f"{self._users[report['id']]} users affected.",
                "priority": priority,
                "dollar_value": float(self._rng.randrange(500, 9000, 250)),
            },
        )

    def _resolve(self) -> str | None:
        ready = self._with("ready")
        if not ready:
            return None
        report = self._rng.choice(ready)
        pr = f"https://github.com/acme/web/pull/{self._rng.randint(1000, 9999)}"
        self._update(
            report,
            status="resolved",
            work_state="done",
            implementation_pr_url=pr,
            implementation_pr_state="merged",
            implementation_pr_merged=True,
        )
        return f"the fix for '{report['title']}' was merged ({pr}): ready → resolved"

    def _rework(self) -> str | None:
        ready = self._with("ready")
        if not ready:
            return None
        report = self._rng.choice(ready)
        self._users[report["id"]] += self._rng.randint(2, 6)
        more = self._rng.randint(2, 4)
        summary = self._summary(report["id"]) + " New sessions show it on Chrome as well."
        self._update(
            report,
            summary=summary,
            signal_count=int(report["signal_count"]) + more,
            relevant_user_count=self._users[report["id"]],
            signals_at_run=int(report["signal_count"]) + more,
        )
        return f"'{report['title']}' was re-researched after {more} new signals: summary changed"

    def _suppress(self) -> str | None:
        quiet = self._with("potential", "candidate")
        if not quiet:
            return None
        report = self._rng.choice(quiet)
        self._update(report, status="suppressed", dismissal_reason="not_a_bug")
        return f"'{report['title']}' was dismissed: {report['status']} → suppressed"

    def _clean_up(self) -> str | None:
        finished = self._with("resolved", "suppressed", "failed")
        if len(finished) < 3:
            return None
        report = finished[0]
        self.sim.delete_report(self.project_id, report["id"])
        return f"old {report['status']} report '{report['title']}' was deleted"
