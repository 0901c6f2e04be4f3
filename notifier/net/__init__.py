"""Bounded HTTP, shared by the PostHog adapter and the sinks: every request has a total deadline
(connect, send and every read; ``deadline``), its body is capped as read and as inflated
(``body``), and redirects are never followed (each client talks to its configured origin only,
so no credential is ever sent elsewhere).

``new_client`` makes the httpx client, ``stream`` makes one request within its deadline, and
``fetch`` makes it and reads the capped body. Below the adapters: it imports no other part of
the notifier, and raises httpx's errors (a deadline is an ``httpx.TimeoutException``) and
``TooLarge``; each adapter says what they mean in its own words.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from notifier.net.body import ACCEPT_ENCODING, TooLarge, read_capped, size
from notifier.net.deadline import Transport, env_proxy, within

__all__ = ["TooLarge", "fetch", "new_client", "read_capped", "size", "stream"]

# httpx logs every request's URL at INFO, and httpcore every header at DEBUG (a redirect's
# Location too): a webhook's URL is its credential. Below WARNING they stay silent, as
# ``runtime.logs.setup`` sets them anyway (unless someone set a level on purpose).
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

#: Headers that describe the raw body; the answer ``fetch`` returns holds the decoded one.
_RAW_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def new_client(
    origin: str, *, transport: httpx.BaseTransport | None = None, **options: Any
) -> httpx.Client:
    """An httpx client for requests to ``origin``: redirects never followed, only the encodings
    ``read_capped`` inflates accepted, the deadline kept by every socket operation (through the
    environment's proxy, if it names one for ``origin``). ``transport`` replaces that one
    (tests); ``options`` are httpx.Client's."""
    headers = {"accept-encoding": ACCEPT_ENCODING, **options.pop("headers", {})}
    return httpx.Client(
        transport=transport or Transport(proxy=env_proxy(origin)),
        follow_redirects=False,
        headers=headers,
        **options,
    )


@contextmanager
def stream(
    client: httpx.Client, method: str, url: str, *, timeout: float, **options: Any
) -> Iterator[httpx.Response]:
    """``client.stream(...)``, everything done in the block (the request, reading the answer)
    ending ``timeout`` seconds from now at the latest: then ``httpx.TimeoutException``."""
    with within(timeout), client.stream(method, url, timeout=timeout, **options) as response:
        yield response


def fetch(
    client: httpx.Client, method: str, url: str, *, timeout: float, limit: int, **options: Any
) -> httpx.Response:
    """One request within ``timeout`` seconds in all, its answer read (at most ``limit`` bytes
    as sent and as inflated, else ``TooLarge``) and returned decoded."""
    with stream(client, method, url, timeout=timeout, **options) as response:
        body = read_capped(response, limit)
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in _RAW_BODY_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
    )
