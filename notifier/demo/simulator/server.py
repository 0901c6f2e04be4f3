"""The HTTP plumbing shared by every fake server: a ``ThreadingHTTPServer`` on 127.0.0.1, port 0,
served from a daemon thread, with a fast ``stop()``.

Subclasses of ``BackgroundServer`` (``FakePostHog`` here, the Slack and webhook fakes in the
tests) implement ``_handle(handler)`` and answer with ``FakeRequestHandler.reply``/``reply_json``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast

__all__ = ["BackgroundServer", "FakeRequestHandler"]


class FakeRequestHandler(BaseHTTPRequestHandler):
    """One HTTP/1.1 exchange, handed to the owning ``BackgroundServer._handle``."""

    protocol_version = "HTTP/1.1"
    server_version = "fake/1"
    # Headers and body go out in two writes: with Nagle on, the body waits for the client's
    # delayed ACK of the headers (tens of milliseconds a request on loopback).
    disable_nagle_algorithm = True

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
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:  # the client went away mid-body: as a real server, drop it
            raise ConnectionResetError("the request body ended early")
        return body

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

    def reply_reset(
        self, status: int, body: bytes, headers: Mapping[str, str] | None = None, *, keep: int = 0
    ) -> None:
        """Send the status, the headers (announcing all of ``body``) and only the first ``keep``
        bytes of it, then reset the connection (RST): a connection dropped mid-body."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: max(0, min(keep, len(body) - 1))])
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            # SO_LINGER on, timeout 0: close() sends RST instead of an orderly FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

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
        super().__init__(("127.0.0.1", owner.listen_port), FakeRequestHandler)

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
        #: the port ``start`` binds (0: a free one, as tests want; ``notifier simulate --port``)
        self.listen_port = 0
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
            kwargs={"poll_interval": 0.01},  # stop() waits for the loop to notice
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
