"""A total deadline for one httpx request: connect, send and every read end by it.

httpx's timeouts are per operation: a server sending one byte a second never lets a 30 s read
timeout fire, and holds the request for as long as it likes. Here every socket operation's
timeout is shrunk to the time left before the request's deadline, so the request as a whole
ends by it, whatever the server does.

How: ``Transport`` is httpx's own ``HTTPTransport`` (its request and exception mapping, kept as
is) over an httpcore connection pool (or HTTP proxy) built with ``DeadlineBackend``, httpcore's
socket backend whose streams read the deadline of the request in progress from a context
variable, which ``within`` sets around a request. A context variable because one pool serves
every thread of a client (PostHog pages are fetched ahead on worker threads), and each
thread's request has its own deadline. Once the time is up an operation raises httpcore's
timeout for it, which httpx turns into ``httpx.ConnectTimeout`` / ``ReadTimeout`` /
``WriteTimeout``, so callers' ``except httpx.TimeoutException`` still applies.

httpx's ``HTTPTransport`` takes no network backend, so ``Transport`` sets the pool it
delegates to (``_pool``, the one attribute of ``HTTPTransport``; the trickle tests of
tests/test_hardening_http.py fail should httpx stop using it).
With a transport of our own, httpx no longer reads ``HTTPS_PROXY`` & co., so ``env_proxy`` does
(``urllib.request.getproxies`` and ``proxy_bypass``, as urllib and httpx read them).

Not bounded: the name lookup (``getaddrinfo`` takes no timeout), and a TLS handshake as a whole
(each of its reads is bounded by the time left when it began).
"""

from __future__ import annotations

import contextlib
import ssl
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

__all__ = ["DeadlineBackend", "Transport", "env_proxy", "time_left", "within"]

#: The deadline (``time.monotonic()``) of the request this thread is making; None: none.
_DEADLINE: ContextVar[float | None] = ContextVar("notifier_request_deadline", default=None)
#: Writes are split so that each piece gets the time left, not the whole write the first one's.
_WRITE_PIECE = 64 * 1024


@contextlib.contextmanager
def within(seconds: float) -> Iterator[float]:
    """Every socket operation of this thread in the block ends ``seconds`` from now at the
    latest (or by an enclosing block's deadline, if sooner). Yields the deadline."""
    ends = time.monotonic() + max(0.0, seconds)
    outer = _DEADLINE.get()
    deadline = ends if outer is None else min(ends, outer)
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left before this thread's request deadline (None: no deadline)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def _shrunk(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` cut to the time left; raises ``expired`` once the time is up."""
    left = time_left()
    if left is None:
        return timeout
    if left <= 0:
        raise expired("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _shrunk(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_PIECE):
            piece = bytes(view[start : start + _WRITE_PIECE])
            self._stream.write(piece, _shrunk(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _shrunk(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, its streams bounded by the current request's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _shrunk(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, wait, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _shrunk(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class Transport(httpx.HTTPTransport):
    """httpx's transport over a pool whose sockets keep the request's deadline (``within``);
    through ``proxy`` (an ``http://`` or ``https://`` proxy URL) when given."""

    def __init__(self, *, proxy: str | None = None) -> None:
        super().__init__()
        context = httpx.create_ssl_context()
        backend = DeadlineBackend()
        if proxy:
            url = httpx.URL(proxy)
            self._pool = httpcore.HTTPProxy(
                proxy_url=httpcore.URL(
                    scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
                ),
                proxy_auth=(url.username, url.password) if url.username else None,
                ssl_context=context,
                network_backend=backend,
            )
        else:
            self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=backend)


def env_proxy(url: str) -> str | None:
    """The HTTP(S) proxy the environment asks for to reach ``url`` (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``); None: connect directly."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy if urlsplit(proxy).scheme in ("http", "https") else None
