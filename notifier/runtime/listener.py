"""The HTTP listener for ``/healthz``, ``/readyz`` and ``/metrics``, built for hostile clients.

It is unauthenticated and listens on every interface by default, so nothing a client does may
cost the process more than a bounded share:

- One ``asyncio`` event loop thread owns every socket: an idle or trickling connection costs a
  file descriptor, never a thread. At most ``max_connections`` are open; when a new one finds
  them all taken, the oldest that has not yet sent a whole request is dropped to make room (a
  probe sends its request at once, a slowloris client never does), and when every slot is
  busy answering, the newcomer is answered 503 and closed at once.
- A request head must arrive whole within ``request_timeout`` seconds (however steadily it
  trickles) and within ``MAX_HEAD`` bytes; the answer must be computed and sent within
  ``ANSWER_TIMEOUT``. One request per connection.
- The endpoints (which may read the state database) run on ``workers`` threads.
- A client that hangs up (reset, broken pipe, closed early) or times out is one DEBUG line.
- ``posts`` adds POST routes (``/slack/actions``): a body needs a Content-Length of at most
  ``MAX_BODY`` (411, 413) and must arrive, with the head, within ``request_timeout``.

Remote callers are told the verdict only (status code and a short reason); the full details,
which may hold upstream error text and file paths, go to loopback callers, or to everyone with
``details=True`` (``http.details``).
"""

from __future__ import annotations

import asyncio
import errno
import io
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.client import parse_headers
from typing import Any, Final, Protocol

from notifier.config.settings import split_listen
from notifier.core.errors import NotifierError

log = logging.getLogger("notifier.runtime.probes")  # the listener's lines, as before

#: Connections open at once (each one file descriptor; systemd's default limit is 1,024).
MAX_CONNECTIONS: Final = 64
#: Threads computing answers (``/readyz`` and ``/metrics`` may wait for the state database).
WORKERS: Final = 4
#: Seconds a client has to send its whole request head.
REQUEST_TIMEOUT: Final = 5.0
#: Seconds to compute and send an answer (``/readyz`` waits up to 10 s for the state).
ANSWER_TIMEOUT: Final = 15.0
#: Bytes a request head (request line and headers) may take.
MAX_HEAD: Final = 8192
#: Bytes a POST body may take (Slack's interaction payloads are a few KiB).
MAX_BODY: Final = 64 * 1024
_BACKLOG: Final = 128
_HANG_UPS: Final = (ConnectionError, asyncio.IncompleteReadError, EOFError)


class Answer(Protocol):
    """A probe's verdict (``probes.Verdict``)."""

    @property
    def ok(self) -> bool: ...
    def body(self, *, details: bool = True) -> bytes: ...


#: A POST route: (body, headers with lower-case names) → (status, body, content type), on a
#: worker thread.
PostRoute = Callable[[bytes, Mapping[str, str]], tuple[int, bytes, str]]


class Endpoints(Protocol):
    """What the listener serves; the daemon implements it (``vitals.Vitals``)."""

    def live(self) -> Answer: ...
    def ready(self) -> Answer: ...
    def scrape(self, accept: str) -> tuple[bytes, str]: ...


def is_local(host: str) -> bool:
    """Whether a peer address is this machine's loopback (127.0.0.0/8, ::1, IPv4-mapped)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _response(status: int, body: bytes, content_type: str, head: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "server: posthog-signal-notifier",
        f"content-type: {content_type}",
        f"content-length: {len(body)}",
        "cache-control: no-store",
        "connection: close",
    ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + (b"" if head else body)


def _json(status: int, data: dict[str, str], head: bool = False) -> bytes:
    return _response(status, json.dumps(data).encode() + b"\n", "application/json", head)


_BUSY: Final = _json(503, {"status": "busy", "reason": "too many connections; try again"})


def answer(endpoints: Endpoints, method: str, target: str, accept: str, details: bool) -> bytes:
    """The whole HTTP answer to one request (on a worker thread)."""
    head = method == "HEAD"
    if method not in ("GET", "HEAD"):
        return _json(405, {"error": f"method {method[:20]!r} not allowed; use GET"})
    path = target.split("?", 1)[0]
    try:
        if path in ("/healthz", "/livez", "/readyz"):
            verdict = endpoints.ready() if path == "/readyz" else endpoints.live()
            body = verdict.body(details=details) + b"\n"
            return _response(200 if verdict.ok else 503, body, "application/json", head)
        if path == "/metrics":
            return _response(200, *endpoints.scrape(accept), head)
        if path == "/":
            text = b"posthog-signal-notifier: /healthz /readyz /metrics\n"
            return _response(200, text, "text/plain; charset=utf-8", head)
        return _json(404, {"error": "not found; try /healthz, /readyz or /metrics"}, head)
    except Exception:  # a probe must answer, whatever broke
        log.exception("http: %r failed", path[:100])
        return _json(500, {"status": "failing", "reason": "internal error"}, head)


async def _read_head(reader: asyncio.StreamReader) -> list[bytes]:
    """The request line and header lines, up to the blank line; [] when too long."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line over the reader's limit
            return []
        if not line.endswith(b"\n"):
            raise EOFError("closed before the request was complete")
        size += len(line)
        if size > MAX_HEAD:
            return []
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


class _Connections:
    """The listener's connections, in the loop thread: open ones, and which are still reading
    their request (oldest first)."""

    def __init__(
        self,
        endpoints: Endpoints,
        details: bool,
        limit: int,
        timeout: float,
        pool: ThreadPoolExecutor,
        *,
        posts: Mapping[str, PostRoute] | None = None,
    ) -> None:
        self.endpoints, self.details, self.limit, self.timeout = endpoints, details, limit, timeout
        self.pool: ThreadPoolExecutor = pool
        self.posts: Mapping[str, PostRoute] = posts or {}
        self.open: set[asyncio.StreamWriter] = set()
        self.reading: dict[asyncio.StreamWriter, None] = {}  # insertion order: the oldest first

    def admit(self, writer: asyncio.StreamWriter) -> bool:
        """Room for ``writer``: drop the oldest connection still reading when full; False when
        every slot is busy answering."""
        if len(self.open) >= self.limit:
            if not self.reading:
                return False
            oldest = next(iter(self.reading))
            self.reading.pop(oldest)
            self.open.discard(oldest)
            log.debug("http: %s dropped to make room for a new connection", _peer(oldest))
            oldest.transport.abort()
        self.open.add(writer)
        self.reading[writer] = None
        return True

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read one request within the timeout, answer it, close."""
        host = _peer(writer)
        if not self.admit(writer):
            log.debug("http: %s refused: every connection slot is busy", host)
            writer.write(_BUSY)
            writer.close()
            return
        clean = False
        try:
            async with asyncio.timeout(self.timeout):
                lines = await _read_head(reader)
                body = await self._read_body(reader, lines)
            self.reading.pop(writer, None)
            async with asyncio.timeout(ANSWER_TIMEOUT):
                data, status = await self._answer(lines, host, body)
                writer.write(data)
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            clean = True
            log.debug("http: %s %s", host, status)
        except TimeoutError:
            log.debug("http: %s dropped: no complete request or answer in time", host)
        except _HANG_UPS as exc:
            log.debug("http: %s hung up (%s)", host, type(exc).__name__)
        except asyncio.CancelledError:  # closing; not re-raised: 3.11's start_server logs an
            return  # ERROR for a cancelled connection task (fixed in 3.12)
        finally:
            self.reading.pop(writer, None)
            self.open.discard(writer)
            if not clean:
                writer.transport.abort()

    def _route(self, lines: list[bytes]) -> PostRoute | None:
        """The POST route a request head asks for (None: not a POST to a route)."""
        parts = lines[0].decode("latin-1").split() if lines else []
        if len(parts) != 3 or parts[0] != "POST":
            return None
        return self.posts.get(parts[1].split("?", 1)[0])

    async def _read_body(self, reader: asyncio.StreamReader, lines: list[bytes]) -> bytes | int:
        """A POST route's body; the status refusing it (411, 413); b"" for other requests."""
        if self._route(lines) is None:
            return b""
        length = str(_headers(lines).get("content-length", "")).strip()
        if not length.isdigit() or _headers(lines).get("transfer-encoding"):
            return 411
        if int(length) > MAX_BODY:
            return 413
        return await reader.readexactly(int(length))

    async def _answer(self, lines: list[bytes], host: str, body: bytes | int) -> tuple[bytes, str]:
        if not lines:
            return _json(431, {"error": f"request head over {MAX_HEAD} bytes"}), "431"
        parts = lines[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _json(400, {"error": "not an HTTP request"}), "400"
        method, target = parts[0], parts[1]
        headers = _headers(lines)
        accept, loop = headers.get("accept", ""), asyncio.get_running_loop()
        route = self._route(lines)
        if isinstance(body, int):
            data = _json(body, {"error": _REFUSED[body]})
        elif route is not None:
            status, text, kind = await loop.run_in_executor(self.pool, route, body, headers)
            data = _response(status, text, kind, head=False)
        elif target.split("?", 1)[0] in self.posts:
            data = _json(405, {"error": f"method {method[:20]!r} not allowed; use POST"})
        else:
            details = self.details or is_local(host)
            data = await loop.run_in_executor(
                self.pool, answer, self.endpoints, method, target, accept, details
            )
        return data, f"{method[:10]} {target[:100]!r} {data[9:12].decode()}"


_REFUSED: Final = {
    411: "send the body with a Content-Length header (chunked bodies are not taken)",
    413: f"body over {MAX_BODY // 1024} KiB",
}


def _headers(lines: list[bytes]) -> dict[str, str]:
    """A request head's headers, names in lower case (the last of a repeated one)."""
    parsed = parse_headers(io.BytesIO(b"".join(lines[1:]) + b"\r\n"))
    return {name.lower(): str(value) for name, value in parsed.items()}


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


def _loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """asyncio's own complaints: a client's hang-up is DEBUG, anything else is an ERROR."""
    exc = context.get("exception")
    if isinstance(exc, _HANG_UPS):
        log.debug("http: %s (%s)", context.get("message"), type(exc).__name__)
        return
    info = (type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None
    log.error("http listener: %s", context.get("message"), exc_info=info)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (as ``socketserver.TCPServer`` binds: address reuse,
    the system's IPv6 dual-stack default). Raises ``OSError``."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


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
    """``/healthz``, ``/readyz`` and ``/metrics`` on one address: one event loop thread
    (``http``) and at most ``workers`` threads (``http-worker``), whatever clients do."""

    def __init__(
        self,
        listen: str,
        endpoints: Endpoints,
        *,
        details: bool = False,
        max_connections: int = MAX_CONNECTIONS,
        request_timeout: float = REQUEST_TIMEOUT,
        workers: int = WORKERS,
        posts: Mapping[str, PostRoute] | None = None,
    ) -> None:
        host, port = split_listen(listen)
        try:
            self._socket = _bind(host, port)
        except OSError as exc:
            raise _bind_error(listen, exc) from exc
        bound = self._socket.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self._connections = _Connections(
            endpoints, details, max_connections, request_timeout, self._pool, posts=posts
        )
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_loop_error)
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="http", daemon=True)
        self._thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(
                    self._connections.serve, sock=self._socket, limit=MAX_HEAD, backlog=_BACKLOG
                )
            )
            ready.set()
            loop.run_forever()
            server.close()
            for writer in list(self._connections.open):
                writer.transport.abort()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            ready.set()
            self._socket.close()
            loop.close()

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when ``listen`` asked for port 0)."""
        return self._address

    @property
    def url(self) -> str:
        """``http://host:port`` (brackets for IPv6)."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving, drop the open connections and release the socket."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
