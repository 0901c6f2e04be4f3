"""Bounded HTTP (issue 16, items 2–4): every client of the notifier — the PostHog listing, the
Slack bot sink, the Slack incoming-webhook sink and the signed-webhook sink — against hostile
servers on 127.0.0.1:

- a redirect to another origin is never followed: the other server receives nothing (no key,
  no token, no webhook URL, no body);
- an endless body and a gzip bomb are not read or inflated past the client's cap: the request
  fails saying so (or, for a webhook receiver's error body, only a short snippet is read) and
  the server sees the client hang up early;
- a server trickling its answer one byte at a time cannot hold a request past its timeout (nor
  a PostHog request past the cycle's deadline): the request fails as a timeout while the server
  has sent only a small part of its answer.

The hostile peer is a raw TCP server written here: the fakes always answer properly.
"""

from __future__ import annotations

import functools
import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

import pytest

from notifier.config.settings import (
    PostHogSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    WebhookSinkSettings,
)
from notifier.core.errors import SinkError, SourceError, SourceErrorKind
from notifier.posthog import session
from notifier.posthog.client import PostHogClient
from notifier.sinks.slack.bot import SlackSink
from notifier.sinks.slack.incoming import SlackWebhookSink
from notifier.sinks.webhook import WebhookSink
from tests.factories import (
    API_KEY,
    LINKS,
    PROJECT,
    SLACK_TOKEN,
    SLACK_WEBHOOK_PATH,
    WEBHOOK_SECRET,
    delivery,
    new,
)
from tests.helpers import wait_for

MiB = 2**20
#: The trickle: one byte of the answer every TRICKLE seconds. With 1 s timeouts a bounded client
#: hangs up after about 20 bytes; an unbounded one reads the whole answer (tens of seconds).
TRICKLE = 0.05
#: A trickling server that has sent this many bytes has been held for TRICKLE * this (5 s here):
#: far past a 1 s timeout, so a client still reading then had no total deadline.
TRICKLE_BOUND = 100

Answer = Callable[[], Iterator[bytes]]


class Hostile:
    """A raw TCP server on 127.0.0.1: reads each request (head and body), records its head, then
    sends ``answer()``'s chunks, ``pause`` seconds apart. Records the bytes it sent and whether
    a client hung up before the answer was complete (a send failed)."""

    def __init__(self, answer: Answer, *, pause: float = 0.0) -> None:
        self._answer = answer
        self._pause = pause
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.heads: list[str] = []
        self.sent = 0
        self.hung_up = threading.Event()
        self.completed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = self._read_request(conn)
            except OSError:
                return
            with self._lock:
                self.heads.append(head)
            try:
                for chunk in self._answer():
                    if self._stop.is_set():
                        return
                    conn.sendall(chunk)
                    with self._lock:
                        self.sent += len(chunk)
                    if self._pause:
                        self._stop.wait(self._pause)
            except OSError:
                self.hung_up.set()
                return
            self.completed.set()

    @staticmethod
    def _read_request(conn: socket.socket) -> str:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionResetError("the client went away")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        length = next(
            (
                int(line.split(":", 1)[1])
                for line in text.split("\r\n")
                if line.lower().startswith("content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return text


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def redirect(location: str) -> Answer:
    """A 302 to ``location``."""
    return lambda: iter([_head("302 Found", {"Location": location, "Content-Length": "0"})])


def endless(status: str = "200 OK", *, upto: int = 160 * MiB) -> Answer:
    """JSON whitespace without a length, "forever" (``upto`` bytes, so that a client without a
    cap still ends, and the test fails rather than filling the memory)."""

    def answer() -> Iterator[bytes]:
        yield _head(status, {"Content-Type": "application/json", "Connection": "close"})
        chunk = b" " * 65536
        for _ in range(upto // len(chunk)):
            yield chunk

    return answer


@functools.cache
def bomb_body(inflated: int) -> bytes:
    """gzip of ``inflated`` bytes of JSON whitespace: about a thousandth of that on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b" " * MiB
    parts = [packer.compress(block) for _ in range(inflated // MiB)]
    return b"".join([*parts, packer.flush()])


def bomb(inflated: int, status: str = "200 OK") -> Answer:
    body = bomb_body(inflated)
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Content-Length": str(len(body)),
    }
    return lambda: iter([_head(status, headers) + body])


def trickle(body: bytes, status: str = "200 OK", content_type: str = "application/json") -> Answer:
    """The whole answer, status line included, one byte at a time (``Hostile(pause=TRICKLE)``)."""
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    whole = _head(status, headers) + body

    def answer() -> Iterator[bytes]:
        return (whole[i : i + 1] for i in range(len(whole)))

    return answer


def ok_json(payload: Any) -> Answer:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    return lambda: iter([_head("200 OK", headers) + body])


PAGE = json.dumps({"count": 0, "next": None, "results": []}).encode().ljust(400)
SLACK_OK = json.dumps({"ok": True, "channel": "C0123456789", "ts": "1.000001"}).encode().ljust(400)


@pytest.fixture
def hang_up_seen() -> Callable[[Hostile], None]:
    def check(server: Hostile) -> None:
        wait_for(server.hung_up.is_set, 10, "the server saw the client hang up")
        assert not server.completed.is_set()

    return check


# ---------------------------------------------------------------------------------- PostHog


def posthog_client(url: str, *, timeout: float = 1.0) -> PostHogClient:
    settings = PostHogSettings(
        host=url,
        api_key=API_KEY,
        project_ids=(PROJECT,),
        timeout=timeout,
        api_path="signals/reports",
    )
    return PostHogClient(settings, attempts=1, sleep=lambda _s: None)


def listing_error(url: str, *, timeout: float = 1.0, deadline: float | None = None) -> SourceError:
    client = posthog_client(url, timeout=timeout)
    try:
        cycle = client.start_cycle(
            PROJECT, None if deadline is None else time.monotonic() + deadline
        )
        with pytest.raises(SourceError) as caught:
            client.list_reports(PROJECT, cycle=cycle)
    finally:
        client.close()
    return caught.value


def test_posthog_redirect_to_another_origin_sends_nothing_there() -> None:
    """A 302 to another origin fails the listing with the fix; the key goes nowhere else."""
    with Hostile(ok_json({"count": 0, "next": None, "results": []})) as other:
        with Hostile(redirect(f"{other.url}/api/projects/{PROJECT}/")) as server:
            error = listing_error(server.url)
        assert other.heads == []
    assert error.kind is SourceErrorKind.INVALID_RESPONSE
    assert "redirect" in str(error)
    assert "posthog.host" in str(error)
    assert "authorization: bearer" in server.heads[0].lower()


def test_posthog_endless_body_fails_at_the_cap(hang_up_seen: Callable[[Hostile], None]) -> None:
    """An answer without end is read up to 64 MiB, then the listing fails saying so."""
    with Hostile(endless()) as server:
        error = listing_error(server.url, timeout=10)
        hang_up_seen(server)
    assert error.kind is SourceErrorKind.INVALID_RESPONSE
    assert "over 64 MiB" in str(error)
    assert server.sent < 80 * MiB


def test_posthog_announced_oversized_body_is_not_read() -> None:
    """A Content-Length over the cap fails the listing before a byte of the body is read."""

    def answer() -> Iterator[bytes]:
        headers = {"Content-Type": "application/json", "Content-Length": str(512 * MiB)}
        yield _head("200 OK", headers)
        yield from (b" " * 65536 for _ in range(64))  # 4 MiB, then the client must be gone

    with Hostile(answer) as server:
        error = listing_error(server.url)
        wait_for(lambda: server.hung_up.is_set() or server.completed.is_set(), 10, "answer ended")
    assert error.kind is SourceErrorKind.INVALID_RESPONSE
    assert "over 64 MiB" in str(error)
    assert server.hung_up.is_set()


def test_posthog_gzip_bomb_is_not_inflated_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """128 KiB of gzip inflating to 128 MiB: inflation stops at the cap (1 MiB here), the
    listing fails saying so, and the client never holds much more than the cap."""
    monkeypatch.setattr(session, "MAX_ANSWER_BYTES", MiB)
    with Hostile(bomb(128 * MiB)) as server:
        tracemalloc.start()
        try:
            error = listing_error(server.url, timeout=10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert error.kind is SourceErrorKind.INVALID_RESPONSE
    assert "over 1 MiB" in str(error)
    assert "inflated" in str(error)
    assert peak < 16 * MiB, f"{peak / MiB:.0f} MiB held while reading a 1 MiB-capped answer"


def test_posthog_trickle_fails_at_the_timeout(hang_up_seen: Callable[[Hostile], None]) -> None:
    """One byte every 50 ms resets every per-read timeout, yet the request ends at its 1 s
    total deadline: a timeout, with most of the answer never sent."""
    with Hostile(trickle(PAGE), pause=TRICKLE) as server:
        error = listing_error(server.url, timeout=1.0)
        hang_up_seen(server)
    assert error.kind is SourceErrorKind.TRANSIENT
    assert "did not answer within 1s" in str(error)
    assert server.sent < TRICKLE_BOUND


def test_the_cycle_deadline_cuts_a_posthog_request_in_flight(
    hang_up_seen: Callable[[Hostile], None],
) -> None:
    """A 30 s timeout, but the cycle must end in 1 s: the trickling request is cut then."""
    with Hostile(trickle(PAGE), pause=TRICKLE) as server:
        error = listing_error(server.url, timeout=30.0, deadline=1.0)
        hang_up_seen(server)
    assert error.kind is SourceErrorKind.TRANSIENT
    assert "poll.deadline" in str(error)
    assert server.sent < TRICKLE_BOUND


# ------------------------------------------------------------------------------ Slack (bot)


def send_error(sink: SlackSink | SlackWebhookSink) -> SinkError:
    """The error ``sink`` raises sending one new report (it must raise one)."""
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(delivery(new()))
    finally:
        sink.close()
    return caught.value


def slack_error(api_url: str, *, timeout: float = 1.0) -> SinkError:
    settings = SlackSinkSettings(
        name="slack", token=SLACK_TOKEN, channel="C0123456789", api_url=api_url, timeout=timeout
    )
    return send_error(SlackSink(settings, LINKS))


def test_slack_redirect_to_another_origin_sends_no_token_there() -> None:
    """slack_sdk's urllib followed 302s with the bot token: now the redirect is a permanent
    error and the other origin receives nothing."""
    with Hostile(ok_json({"ok": True, "channel": "C0123456789", "ts": "1.0"})) as other:
        with Hostile(redirect(f"{other.url}/api/chat.postMessage")) as server:
            error = slack_error(f"{server.url}/api/")
        assert other.heads == []
    assert error.permanent
    assert "redirect" in str(error)
    assert "api_url" in str(error)
    assert f"authorization: bearer {SLACK_TOKEN}".lower() in server.heads[0].lower()


def test_slack_trickle_fails_at_the_timeout(hang_up_seen: Callable[[Hostile], None]) -> None:
    """Slack trickling its answer cannot hold the delivery thread past the sink's timeout."""
    with Hostile(trickle(SLACK_OK), pause=TRICKLE) as server:
        error = slack_error(f"{server.url}/api/", timeout=1.0)
        hang_up_seen(server)
    assert not error.permanent
    assert "did not answer within 1 s" in str(error)
    assert server.sent < TRICKLE_BOUND


# ------------------------------------------------------------------- Slack incoming webhook


def slack_hook_error(origin: str, *, timeout: float = 1.0) -> SinkError:
    settings = SlackWebhookSinkSettings(
        name="hook", url=origin + SLACK_WEBHOOK_PATH, timeout=timeout
    )
    return send_error(SlackWebhookSink(settings, LINKS))


#: Each Slack sink's error for an answer from a server at ``origin``: the bot token sink (the
#: Web API under ``/api/``) and the incoming webhook.
SLACK_SINKS: dict[str, Callable[[str, float], SinkError]] = {
    "bot": lambda origin, timeout: slack_error(f"{origin}/api/", timeout=timeout),
    "incoming-webhook": lambda origin, timeout: slack_hook_error(origin, timeout=timeout),
}


@pytest.mark.parametrize("sink", list(SLACK_SINKS))
def test_slack_endless_answer_fails_at_the_cap(
    sink: str, hang_up_seen: Callable[[Hostile], None]
) -> None:
    """An answer without end is read up to the cap (1 MiB), then the delivery fails for good."""
    with Hostile(endless(upto=16 * MiB)) as server:
        error = SLACK_SINKS[sink](server.url, 10)
        hang_up_seen(server)
    assert error.permanent
    assert "over 1 MiB" in str(error)


@pytest.mark.parametrize("sink", list(SLACK_SINKS))
def test_slack_gzip_bomb_is_not_inflated_past_the_cap(sink: str) -> None:
    """16 KiB of gzip inflating to 16 MiB: inflation stops at 1 MiB; the delivery fails."""
    with Hostile(bomb(16 * MiB)) as server:
        tracemalloc.start()
        try:
            error = SLACK_SINKS[sink](server.url, 10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert error.permanent
    assert "over 1 MiB" in str(error)
    assert "inflated" in str(error)
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB held while reading a 1 MiB-capped answer"


def test_slack_webhook_redirect_to_another_origin_sends_nothing_there() -> None:
    """The webhook URL is the credential: a redirect is not followed, the other origin
    receives neither the URL nor the message."""
    with Hostile(ok_json("ok")) as other:
        with Hostile(redirect(f"{other.url}{SLACK_WEBHOOK_PATH}")) as server:
            error = slack_hook_error(server.url)
        assert other.heads == []
    assert error.permanent
    assert "redirect" in str(error)


def test_slack_webhook_trickle_fails_at_the_timeout(
    hang_up_seen: Callable[[Hostile], None],
) -> None:
    with Hostile(trickle(b"ok".ljust(400), content_type="text/html"), pause=TRICKLE) as server:
        error = slack_hook_error(server.url, timeout=1.0)
        hang_up_seen(server)
    assert not error.permanent
    assert "did not answer within 1 s" in str(error)
    assert server.sent < TRICKLE_BOUND


# --------------------------------------------------------------------------- signed webhook


def webhook_error(url: str, *, timeout: float = 1.0) -> SinkError:
    settings = WebhookSinkSettings(name="hook", url=url, secret=WEBHOOK_SECRET, timeout=timeout)
    sink = WebhookSink(settings, LINKS)
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(delivery(new()))
    finally:
        sink.close()
    return caught.value


def test_webhook_redirect_to_another_origin_sends_nothing_there() -> None:
    with Hostile(ok_json({})) as other:
        with Hostile(redirect(f"{other.url}/hook")) as server:
            error = webhook_error(f"{server.url}/hook")
        assert other.heads == []
    assert error.permanent
    assert "redirects are not followed" in str(error)


def test_webhook_endless_error_body_is_read_only_for_its_snippet(
    hang_up_seen: Callable[[Hostile], None],
) -> None:
    """A 500 with an endless body: the status decides (retry), a short snippet is quoted, and
    the client hangs up instead of reading on."""
    with Hostile(endless("500 Internal Server Error", upto=16 * MiB)) as server:
        error = webhook_error(f"{server.url}/hook", timeout=10)
        hang_up_seen(server)
    assert not error.permanent
    assert "HTTP 500" in str(error)


def test_webhook_gzip_bomb_error_body_is_not_inflated() -> None:
    """A 500 whose body is a gzip bomb: only the snippet's worth is inflated."""
    with Hostile(bomb(64 * MiB, "500 Internal Server Error")) as server:
        tracemalloc.start()
        try:
            error = webhook_error(f"{server.url}/hook", timeout=10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert not error.permanent
    assert "HTTP 500" in str(error)
    assert peak < 8 * MiB, f"{peak / MiB:.0f} MiB held while quoting a 2 KiB snippet"


def test_webhook_trickle_fails_at_the_timeout(hang_up_seen: Callable[[Hostile], None]) -> None:
    with Hostile(trickle(b"{}".ljust(400)), pause=TRICKLE) as server:
        error = webhook_error(f"{server.url}/hook", timeout=1.0)
        hang_up_seen(server)
    assert not error.permanent
    assert "no answer within 1 s" in str(error)
    assert server.sent < TRICKLE_BOUND


def test_gzip_helper_is_a_bomb() -> None:
    """The bombs above are what they claim: small on the wire, large inflated."""
    body = bomb_body(16 * MiB)
    assert len(body) < 64 * 1024
    assert len(gzip.decompress(body)) == 16 * MiB


def test_an_http_proxy_from_the_environment_is_still_used_and_bounded(
    monkeypatch: pytest.MonkeyPatch, hang_up_seen: Callable[[Hostile], None]
) -> None:
    """httpx read HTTP_PROXY by itself; with the bounded transport the notifier reads it: the
    request goes to the proxy, and a trickling proxy is cut at the timeout like a server."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with Hostile(ok_json({"count": 0, "next": None, "results": []})) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = posthog_client("http://posthog.invalid")
        try:
            assert client.list_reports(PROJECT).reports == {}
        finally:
            client.close()
    assert proxy.heads[0].startswith(f"GET http://posthog.invalid/api/projects/{PROJECT}/")
    with Hostile(trickle(PAGE), pause=TRICKLE) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        error = listing_error("http://posthog.invalid")
        hang_up_seen(proxy)
    assert "did not answer within 1s" in str(error)
    assert proxy.sent < TRICKLE_BOUND


def _page_answer(body: bytes, encoding: str | None) -> Answer:
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    if encoding:
        headers["Content-Encoding"] = encoding
    return lambda: iter([_head("200 OK", headers) + body])


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        (None, lambda b: b),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, no zlib header
    ],
)
def test_answers_up_to_the_cap_are_read_whole(
    monkeypatch: pytest.MonkeyPatch, encoding: str | None, pack: Callable[[bytes], bytes]
) -> None:
    """The cap is a cap, not a cut: an answer of exactly the cap (as sent and inflated) is
    read whole, whatever its encoding; one byte more fails."""
    page = json.dumps({"count": 0, "next": None, "results": []}).encode()
    monkeypatch.setattr(session, "MAX_ANSWER_BYTES", 200_000)
    with Hostile(_page_answer(pack(page.ljust(200_000)), encoding)) as server:
        client = posthog_client(server.url)
        try:
            assert client.list_reports(PROJECT).reports == {}
        finally:
            client.close()
    with Hostile(_page_answer(pack(page.ljust(200_001)), encoding)) as server:
        error = listing_error(server.url)
    assert "over 195.3 KiB" in str(error)
