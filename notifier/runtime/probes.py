"""Liveness and readiness: the heartbeat file, the rules, and the HTTP listener.

The daemon writes a small JSON heartbeat next to the state database (``<state.path>.heartbeat``)
when it starts and when each poll cycle starts and ends. ``notifier healthcheck`` (Docker
``HEALTHCHECK``, Kubernetes exec probes) reads that file; ``/healthz`` reads the same data from
memory; both judge it with ``liveness``: healthy while a cycle was attempted within
``LIVENESS_INTERVALS`` × ``poll.interval`` (or the process started less long ago, or a cycle is
still running within its deadline). ``readiness`` is ``/readyz``: the state is readable and every
project has had a successful poll or is still within its first interval.

``HealthServer`` serves ``/healthz``, ``/readyz`` and ``/metrics`` from a stdlib
``ThreadingHTTPServer`` (daemon threads); nothing here knows the daemon, which hands it an
``Endpoints`` (``vitals.Vitals``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, Protocol

from notifier import __version__
from notifier.config.settings import split_listen
from notifier.core.errors import NotifierError

log = logging.getLogger(__name__)

#: A process is alive while a cycle was attempted within this many poll intervals.
LIVENESS_INTERVALS: Final = 3
#: A request that has not arrived whole by then is dropped (a slow client holds one thread).
_REQUEST_TIMEOUT: Final = 10.0


def heartbeat_path(state_path: Path) -> Path:
    """Where the daemon using ``state_path`` writes its heartbeat."""
    return state_path.with_name(state_path.name + ".heartbeat")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The daemon's sign of life. Times are Unix seconds."""

    started_at: float
    interval: float  # poll.interval of the running daemon
    pid: int
    last_attempt: float | None = None  # a poll cycle last started (or was skipped, paused)
    last_finished: float | None = None  # a poll cycle last ended
    busy_until: float | None = None  # a cycle is running and its deadline is then
    version: str = __version__

    def to_json(self) -> str:
        """The file's content: the fields, plus readable UTC times for people."""
        data: dict[str, Any] = asdict(self)
        data["readable"] = {
            name: _iso(data[name])
            for name in ("started_at", "last_attempt", "last_finished", "busy_until")
        }
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        """Parse a heartbeat file; ``ValueError`` when it is not one."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            optional = {
                name: None if data.get(name) is None else float(data[name])
                for name in ("last_attempt", "last_finished", "busy_until")
            }
            beat = cls(
                started_at=float(data["started_at"]),
                interval=float(data["interval"]),
                pid=int(data["pid"]),
                version=str(data.get("version", "?")),
                **optional,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a notifier heartbeat ({type(exc).__name__}: {exc})") from exc
        if beat.interval <= 0:
            raise ValueError("not a notifier heartbeat (interval must be positive)")
        return beat


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Replace the heartbeat file atomically (write a temporary file, then rename): a reader
    never sees half a file. Raises ``OSError``."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(beat.to_json(), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's answer: ``ok``, one line saying why, and details for the JSON body."""

    ok: bool
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        """The JSON body of the HTTP answer."""
        status = "ok" if self.ok else "failing"
        return json.dumps({"status": status, "reason": self.reason, **self.detail}).encode()


def liveness(beat: Heartbeat, now: float) -> Verdict:
    """Alive while a cycle was attempted within 3 intervals, or the process started less than
    3 intervals ago, or a running cycle is still within its deadline (a cycle may legitimately
    run for up to ``poll.deadline``, which defaults to 3 intervals or more)."""
    limit = LIVENESS_INTERVALS * beat.interval
    last = max((t for t in (beat.last_attempt, beat.last_finished) if t is not None), default=None)
    detail: dict[str, Any] = {
        "pid": beat.pid,
        "version": beat.version,
        "started_at": _iso(beat.started_at),
        "last_attempt": _iso(beat.last_attempt),
        "limit_seconds": limit,
    }
    if last is None:
        age = max(0.0, now - beat.started_at)
        if age <= limit:
            return Verdict(True, f"started {age:.0f}s ago; the first cycle is under way", detail)
        return Verdict(
            False,
            f"no poll cycle attempted in the {age:.0f}s since the start (pid {beat.pid}; limit "
            f"{limit:g}s = {LIVENESS_INTERVALS} × poll.interval): the scheduler looks stuck",
            detail,
        )
    age = max(0.0, now - last)
    detail["last_activity_age_seconds"] = round(age, 3)
    if age <= limit:
        return Verdict(True, f"a poll cycle was active {age:.0f}s ago (pid {beat.pid})", detail)
    if beat.busy_until is not None and now <= beat.busy_until:
        return Verdict(
            True,
            f"a poll cycle is running; its deadline is in {beat.busy_until - now:.0f}s",
            detail,
        )
    return Verdict(
        False,
        f"no poll cycle attempted for {age:.0f}s (pid {beat.pid}; limit {limit:g}s = "
        f"{LIVENESS_INTERVALS} × poll.interval): the scheduler looks stuck, or the notifier "
        "is not running",
        detail,
    )


def check_heartbeat(path: Path, now: float) -> Verdict:
    """``notifier healthcheck``: read the heartbeat file and judge it with ``liveness``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Verdict(
            False,
            f"no heartbeat at {path}: the notifier has not started, or it runs with another "
            "state.path",
        )
    except OSError as exc:
        return Verdict(False, f"cannot read the heartbeat {path}: {exc.strerror or exc}")
    try:
        beat = Heartbeat.from_json(text)
    except ValueError as exc:
        return Verdict(False, f"heartbeat {path}: {exc}")
    return liveness(beat, now)


class Polled(Protocol):
    """What readiness needs to know about one project (``daemon.ProjectHealth``)."""

    @property
    def last_success(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def failures(self) -> int: ...


def project_ready(polled: Polled, now: float, started_at: float, interval: float) -> str | None:
    """None when the project is ready, else why not."""
    if polled.last_success is not None:
        return None
    if now - started_at < interval:
        return None  # within its first interval: the first cycle is under way
    if polled.last_error:
        runs = f"{polled.failures} failed cycle{'s' if polled.failures != 1 else ''}"
        return f"no successful poll yet ({runs}; last error: {polled.last_error})"
    return "no successful poll yet: the first cycle has not finished"


def readiness(
    projects: Mapping[int, Polled],
    *,
    now: float,
    started_at: float,
    interval: float,
    state_error: str | None,
    config: str,
) -> Verdict:
    """Ready when the state database is readable and every project has had a successful poll
    or is still within its first interval."""
    why = {pid: project_ready(p, now, started_at, interval) for pid, p in projects.items()}
    detail: dict[str, Any] = {
        "config": config,
        "state": state_error or "ok",
        "projects": {
            str(pid): {
                "ready": why[pid] is None,
                "reason": why[pid] or "ok",
                "last_success": _iso(p.last_success),
                "failures_in_a_row": p.failures,
            }
            for pid, p in projects.items()
        },
    }
    waiting = [pid for pid, reason in why.items() if reason is not None]
    problems = [f"state: {state_error}"] if state_error else []
    problems += [f"project {pid}: {why[pid]}" for pid in waiting]
    if problems:
        return Verdict(False, "; ".join(problems), detail)
    return Verdict(True, f"{len(projects)} project(s) polled successfully", detail)


# -- the HTTP listener ----------------------------------------------------------------------


class Endpoints(Protocol):
    """What the listener serves; the daemon implements it."""

    def live(self) -> Verdict: ...
    def ready(self) -> Verdict: ...
    def scrape(self, accept: str) -> tuple[bytes, str]: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoints: Endpoints

    def server_bind(self) -> None:
        # HTTPServer's own also resolves the host's FQDN, which can hang on a broken resolver
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "posthog-signal-notifier"
    sys_version = ""
    timeout = _REQUEST_TIMEOUT

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        endpoints = self.server.endpoints
        try:
            if path in ("/healthz", "/livez"):
                self._verdict(endpoints.live(), head)
            elif path == "/readyz":
                self._verdict(endpoints.ready(), head)
            elif path == "/metrics":
                body, content_type = endpoints.scrape(self.headers.get("accept", ""))
                self._send(200, body, content_type, head)
            elif path == "/":
                text = b"posthog-signal-notifier: /healthz /readyz /metrics\n"
                self._send(200, text, "text/plain; charset=utf-8", head)
            else:
                missing = {"error": "not found; try /healthz, /readyz or /metrics"}
                self._send(404, json.dumps(missing).encode(), "application/json", head)
        except Exception:  # a probe must answer, whatever broke
            log.exception("http: %s failed", path)
            body = b'{"status": "failing", "reason": "internal error"}\n'
            self._send(500, body, "application/json", head)

    def _verdict(self, verdict: Verdict, head: bool) -> None:
        self._send(200 if verdict.ok else 503, verdict.body() + b"\n", "application/json", head)

    def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: %s %s", self.address_string(), format % args)


def _bind_error(listen: str, exc: OSError) -> NotifierError:
    host = listen.rpartition(":")[0]
    if isinstance(exc, socket.gaierror):
        why = f"cannot resolve {host!r}: use an IP address such as 0.0.0.0 or 127.0.0.1"
    elif exc.errno == errno.EADDRINUSE:
        why = "address already in use: set http.listen to another port or null"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges): use a port such as 9464"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = (
            f"{host} is not an address of this machine: use 0.0.0.0 (every interface), "
            "127.0.0.1 or one of its addresses"
        )
    else:
        why = f"cannot listen ({exc.strerror or exc}): set http.listen to another address or null"
    return NotifierError(f"http.listen {listen}: {why}")


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on one address, served from daemon threads."""

    def __init__(self, listen: str, endpoints: Endpoints) -> None:
        host, port = split_listen(listen)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            server_class = type("_Bound", (_Server,), {"address_family": family})
            self._server: _Server = server_class((host, port), _Handler)
        except OSError as exc:
            raise _bind_error(listen, exc) from exc
        self._server.endpoints = endpoints
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="http",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when ``listen`` asked for port 0)."""
        bound = self._server.server_address
        return str(bound[0]), int(bound[1])

    @property
    def url(self) -> str:
        """``http://host:port`` (brackets for IPv6)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving and release the socket; requests in flight finish on their own."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
