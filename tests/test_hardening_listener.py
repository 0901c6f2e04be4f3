"""The health listener under hostile clients (issue 16, item 5): idle and trickling
connections far above the cap cannot make `/healthz` unreachable or multiply threads, a slow
client is dropped, clients that hang up are one DEBUG line, and remote callers get the verdict
only (details from loopback or with ``http.details: true``)."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.runtime import probes
from notifier.runtime.probes import HealthServer, Heartbeat, Verdict, liveness, readiness
from tests.factories import World
from tests.helpers import inject, running, wait_for

#: What a failing project's upstream error and the state path look like in full details.
UPSTREAM = "HTTP 401: upstream said 'Invalid token k-9f8e7d' for /api/projects/1"
STATE_PATH = "/var/lib/notifier/state.db"


@dataclass
class Polled:
    last_success: float | None = None
    last_error: str | None = None
    failures: int = 0


class Endpoints:
    """What the daemon's ``Vitals`` serves, with a project failing on an upstream error;
    ``gate``, when given, holds ``/readyz`` until it is set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self.started = time.time() - 600
        self.entered = 0  # /readyz requests taken up

    def live(self) -> Verdict:
        return liveness(Heartbeat(self.started, 60, 4321, last_attempt=time.time()), time.time())

    def ready(self) -> Verdict:
        self.entered += 1
        if self.gate is not None:
            self.gate.wait(10)
        return readiness(
            {1: Polled(last_error=UPSTREAM, failures=3)},
            now=time.time(),
            started_at=self.started,
            interval=60,
            state_error=f"state database {STATE_PATH}: disk I/O error",
            config="/etc/notifier/config.yaml",
        )

    def scrape(self, accept: str) -> tuple[bytes, str]:
        return b"up 1\n", "text/plain; version=0.0.4"


@contextmanager
def serving(endpoints: Endpoints, listen: str = "127.0.0.1:0", **limits: Any) -> Iterator[str]:
    server = HealthServer(listen, endpoints, **limits)
    try:
        port = server.address[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def idle(url: str, count: int, stack: ExitStack, trickle: bytes = b"") -> list[socket.socket]:
    """``count`` connections that send ``trickle`` (a request's first bytes) and then nothing.
    Connected without blocking: a full accept queue must not stall the test."""
    host, port = url.removeprefix("http://").split(":")
    opened = []
    for _ in range(count):
        sock = stack.enter_context(socket.socket())
        sock.setblocking(False)
        sock.connect_ex((host, int(port)))
        opened.append(sock)
    if trickle:
        for sock in opened:
            wait_for(lambda s=sock: s.send(trickle) if _writable(s) else 0, 5, "connected")
    return opened


def _writable(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 and _connected(sock)


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a client that crashed or timed out does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- exhaustion -------------------------------------------------------------------------------


def test_idle_and_trickling_connections_cannot_exhaust_the_listener() -> None:
    """300 connections (far above the cap) that sent nothing or half a request: `/healthz`
    still answers at once, and the listener's threads stay few."""
    before = threading.active_count()
    with serving(Endpoints()) as url, ExitStack() as stack:
        idle(url, 150, stack)
        idle(url, 150, stack, trickle=b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        response = httpx.get(url + "/healthz", timeout=5)
        took = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
        assert took < 3, f"/healthz took {took:.2f}s"
        grown = threading.active_count() - before
        assert grown <= 8, f"{grown} threads for 300 idle connections"


def test_a_trickling_client_is_dropped_after_the_request_timeout() -> None:
    """A slowloris client sending a byte every 50 ms never completes its request: it is dropped
    once the request timeout (here 0.5 s) has passed, however steadily it trickles."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with serving(Endpoints(), request_timeout=0.5) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            started, dropped = time.monotonic(), False
            for byte in request[:-4]:  # never the end of the head
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    dropped = True
                    break
                if time.monotonic() - started > 5:
                    break
                time.sleep(0.05)
            assert dropped, "still connected after 5 s of trickling"
            assert time.monotonic() - started < 4


def test_connections_over_the_cap_answered_at_once_when_every_slot_is_busy() -> None:
    """With every slot busy answering (two /readyz held by a slow state read), a third
    connection is answered 503 at once rather than queued without bound."""
    gate = threading.Event()
    endpoints = Endpoints(gate)
    with serving(endpoints, max_connections=2, workers=2) as url, ExitStack() as stack:
        held = idle(url, 2, stack, trickle=b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: endpoints.entered == 2, 5, "both requests taken up")
        try:
            busy = httpx.get(url + "/healthz", timeout=5)
            assert busy.status_code == 503
            assert "busy" in busy.text
        finally:
            gate.set()
        for sock in held:
            sock.setblocking(True)
            sock.settimeout(5)
            assert sock.recv(100).startswith(b"HTTP/1.1 503")  # the two are answered


# --- hang-ups ---------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["mid-request", "before the answer"])
def test_a_client_that_hangs_up_is_one_debug_line(
    when: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """A reset while the request is still arriving, or after it while the answer is being
    prepared: one DEBUG line from the listener, no ERROR, no traceback on stderr."""
    caplog.set_level(logging.DEBUG)
    gate = threading.Event()
    endpoints = Endpoints(gate)
    with serving(endpoints) as url:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)), timeout=5)
        if when == "mid-request":
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHo")
            time.sleep(0.1)  # not an assertion: lets the listener start reading
        else:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_for(lambda: endpoints.entered == 1, 5, "the request taken up")
        reset(sock)
        gate.set()

        def hung_up() -> bool:
            return any("hung up" in r.getMessage() for r in caplog.records)

        wait_for(hung_up, 5, "a DEBUG line about the hang-up")
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200  # still serving
    lines = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.DEBUG
    assert lines[0].exc_info is None
    loud = [f"{r.name} {r.levelname} {r.getMessage()}" for r in caplog.records if r.levelno >= 30]
    assert not loud
    assert "Traceback" not in capfd.readouterr().err


# --- what remote callers are told ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("fd00::2", False),
        ("", False),
        ("not an address", False),
    ],
)
def test_is_local(host: str, local: bool) -> None:
    assert probes.is_local(host) is local


def _other_address() -> str | None:
    """An IPv4 address of this machine other than loopback, to call the listener from."""
    candidates: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, suppress(OSError):
        probe.connect(("192.0.2.254", 9))  # nothing is sent: the route picks the source
        candidates.append(str(probe.getsockname()[0]))
    with suppress(OSError):
        candidates += [str(i[4][0]) for i in socket.getaddrinfo(socket.gethostname(), None)]
    for address in candidates:
        if ":" in address or address.startswith("127.") or address == "0.0.0.0":
            continue
        with socket.socket() as sock:
            try:
                sock.bind((address, 0))
            except OSError:
                continue
        return address
    return None


OTHER = _other_address()
remote_only = pytest.mark.skipif(OTHER is None, reason="no non-loopback address to call from")


def get_from(address: str, url: str, path: str) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=5) as client:
        return client.get(url + path)


def _remote_url(url: str) -> str:
    assert OTHER is not None
    return url.replace("127.0.0.1", OTHER)


@remote_only
def test_remote_callers_get_the_verdict_only() -> None:
    """From another address: status code and a short verdict, never upstream text or paths;
    from 127.0.0.1 the full details, as before."""
    assert OTHER is not None
    with serving(Endpoints(), listen="0.0.0.0:0") as url:
        remote = _remote_url(url)
        ready = get_from(OTHER, remote, "/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "failing",
            "reason": "not ready: the state database cannot be read; a project is failing",
        }
        live = get_from(OTHER, remote, "/healthz")
        assert live.status_code == 200
        assert live.json() == {"status": "ok", "reason": "alive"}
        for text in (ready.text, live.text):
            assert "k-9f8e7d" not in text
            assert STATE_PATH not in text
            assert "4321" not in text

        local = httpx.get(url + "/readyz", timeout=5)
        assert local.status_code == 503
        assert "k-9f8e7d" in local.text
        assert STATE_PATH in local.text
        assert local.json()["projects"]["1"]["failures_in_a_row"] == 3


def test_verdict_bodies() -> None:
    """The public body is the verdict; the detailed one as before."""
    ready = Endpoints().ready()
    assert json.loads(ready.body(details=False)) == {
        "status": "failing",
        "reason": "not ready: the state database cannot be read; a project is failing",
    }
    assert UPSTREAM in json.loads(ready.body())["reason"]
    fine = readiness({}, now=1, started_at=0, interval=60, state_error=None, config="c")
    assert json.loads(fine.body(details=False)) == {"status": "ok", "reason": "ready"}
    stuck = liveness(Heartbeat(0, 60, 1), now=1000)
    assert json.loads(stuck.body(details=False))["reason"].startswith("not alive: ")


BASE = "posthog: {host: https://us.posthog.com, api_key: phx_123456, project_ids: [1]}\n"


def test_http_details_setting() -> None:
    def details(text: str) -> bool:
        return parse_config(BASE + text, source="t.yaml", env={}).http.details

    assert details("") is False
    assert details("http: {details: true}") is True


@remote_only
def test_http_details_true_shows_details_to_remote_callers(
    world: World, load: Callable[[Path], Settings]
) -> None:
    """The daemon with ``http: {listen: 0.0.0.0:0, details: true}``: a remote caller gets the
    full body of /healthz."""
    assert OTHER is not None
    config = world.make_config()
    inject(config, 'http: {listen: "127.0.0.1:0"}', 'http: {listen: "0.0.0.0:0", details: true}')
    with running(load(config)) as notifier:
        assert notifier.http is not None
        url = f"http://{OTHER}:{notifier.http.address[1]}"
        body = get_from(OTHER, url, "/healthz").json()
        assert body["pid"] > 0
        assert body["status"] == "ok"
