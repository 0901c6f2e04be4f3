"""The two ways a click on a card comes in (issue 14, item 2): Socket Mode (slack-sdk's
built-in client against the fake Slack's websocket) and ``POST /slack/actions`` on the HTTP
listener (verified with Slack's v0 signature). Either way Slack is answered first and the
payload is handed to ``dispatch`` on a worker thread afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from notifier.core.errors import NotifierError
from notifier.interact.http import SlackActions
from notifier.interact.socket import SocketModeReceiver
from notifier.runtime.listener import HealthServer
from tests.factories import SLACK_APP_TOKEN, SLACK_SIGNING_SECRET, block_actions_payload
from tests.fakes import FakeSlack
from tests.helpers import wait_for

BLOCK = "ra1|4242|0c9e7d1e-2b7a-4c1e-9a53-6f2f1d8b7a11|ready"


class Collector:
    """A ``dispatch`` that records what it is handed; ``gate`` (when set) holds each call until
    it is set; ``fail_first`` raises on the first call."""

    def __init__(self, *, gate: threading.Event | None = None, fail_first: bool = False) -> None:
        self.gate = gate
        self.fail_first = fail_first
        self.started: list[Mapping[str, Any]] = []
        self.payloads: list[Mapping[str, Any]] = []
        self.threads: set[str] = set()

    def __call__(self, payload: Mapping[str, Any]) -> None:
        self.started.append(payload)
        self.threads.add(threading.current_thread().name)
        if self.fail_first and len(self.started) == 1:
            raise RuntimeError("the handler broke on this click")
        if self.gate is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        self.payloads.append(payload)

    def actions(self) -> list[str]:
        return [p["actions"][0]["action_id"] for p in self.payloads]


def click(action: str = "report.acknowledge", **fields: Any) -> dict[str, Any]:
    return block_actions_payload(action, BLOCK, **fields)


# --------------------------------------------------------------------------- Socket Mode


@pytest.fixture
def app_slack(slack: FakeSlack) -> FakeSlack:
    slack.app_token = SLACK_APP_TOKEN
    return slack


def receiving(slack: FakeSlack, dispatch: Collector, **options: Any) -> SocketModeReceiver:
    receiver = SocketModeReceiver(SLACK_APP_TOKEN, dispatch, base_url=slack.api_url, **options)
    receiver.start()
    return receiver


def test_socket_click_is_acknowledged_before_dispatch_runs(
    app_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    dispatch = Collector(gate=gate)
    receiver = receiving(app_slack, dispatch)
    try:
        wait_for(
            lambda: any("Slack actions: Socket Mode connected" in m for m in caplog.messages),
            10,
            "the connected line",
        )
        envelope = app_slack.click(click(user_name="alice"))
        wait_for(lambda: dispatch.started, 10, "dispatch called")
        # dispatch is still held: the ack went out before it, not after it
        wait_for(lambda: envelope in app_slack.acks, 5, "the envelope acknowledged")
        assert not dispatch.payloads
        gate.set()
        wait_for(lambda: dispatch.payloads, 5, "dispatch finished")
        assert dispatch.payloads[0]["user"]["username"] == "alice"
        assert dispatch.payloads[0]["actions"][0]["block_id"] == BLOCK
        assert not any(name.startswith("MainThread") for name in dispatch.threads)
    finally:
        gate.set()
        receiver.stop()


def test_socket_click_arrives_after_the_socket_is_dropped(
    app_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    dispatch = Collector()
    # slack-sdk notices a closed socket at its next check, every ping_interval (default 5 s)
    receiver = receiving(app_slack, dispatch, ping_interval=0.5)
    try:
        app_slack.click(click("report.acknowledge"))
        wait_for(lambda: len(dispatch.payloads) == 1, 10, "the first click")
        app_slack.drop_socket()
        wait_for(lambda: app_slack.socket.connections >= 2, 15, "a new connection")
        # the new connection is the app's once its hello is handled (as Slack, the fake sends
        # an envelope only on a connection the app has taken up)
        wait_for(
            lambda: any("Socket Mode reconnected" in m for m in caplog.messages),
            15,
            "the app to take up the new connection",
        )
        second = app_slack.click(click("report.dismiss", selected="already_fixed"))
        wait_for(lambda: len(dispatch.payloads) == 2, 10, "the click after the drop")
        assert dispatch.actions() == ["report.acknowledge", "report.dismiss"]
        # the ack goes out before the dispatch, but the fake records it on its own thread
        wait_for(lambda: second in app_slack.acks, 5, "the click after the drop acknowledged")
        assert any("Socket Mode reconnected" in m for m in caplog.messages)
    finally:
        receiver.stop()


def test_socket_dispatch_that_raises_is_logged_and_the_next_click_works(
    app_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    dispatch = Collector(fail_first=True)
    receiver = receiving(app_slack, dispatch)
    try:
        first = app_slack.click(click("report.resolve"))
        wait_for(lambda: dispatch.started, 10, "the failing dispatch")
        wait_for(
            lambda: any(r.exc_info for r in caplog.records if r.levelno == logging.ERROR),
            5,
            "the failure logged with its traceback",
        )
        failed = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
        assert "report.resolve" in failed[0].getMessage()
        assert "the handler broke on this click" in str(failed[0].exc_info[1])  # type: ignore[index]
        app_slack.click(click("report.snooze", selected="50"))
        wait_for(lambda: dispatch.payloads, 10, "the next click")
        assert dispatch.actions() == ["report.snooze"]
        wait_for(lambda: first in app_slack.acks, 5, "the failing click acknowledged")
    finally:
        receiver.stop()


def test_socket_other_envelopes_are_acknowledged_and_ignored(app_slack: FakeSlack) -> None:
    dispatch = Collector()
    receiver = receiving(app_slack, dispatch)
    try:
        event = app_slack.socket.send("events_api", {"event": {"type": "app_mention"}})
        view = app_slack.socket.send("interactive", {"type": "view_submission", "view": {}})
        last = app_slack.click(click())
        wait_for(lambda: dispatch.payloads, 10, "the click")
        wait_for(lambda: {event, view, last} <= set(app_slack.acks), 5, "every envelope acked")
        assert dispatch.actions() == ["report.acknowledge"]
    finally:
        receiver.stop()


def test_socket_wrong_app_token_is_said_in_words(app_slack: FakeSlack) -> None:
    app_slack.app_token = "xapp-1-A0E2E-1-anotherToken"
    receiver = SocketModeReceiver(SLACK_APP_TOKEN, Collector(), base_url=app_slack.api_url)
    with pytest.raises(NotifierError, match="app-level token") as raised:
        receiver.start()
    assert "invalid_auth" in str(raised.value)
    assert "xapp-1-A0E2E" not in str(raised.value)
    receiver.stop()


def test_socket_bot_token_instead_of_app_token_is_said_in_words(app_slack: FakeSlack) -> None:
    receiver = SocketModeReceiver("xoxb-not-an-app-token", Collector(), base_url=app_slack.api_url)
    with pytest.raises(NotifierError, match="xapp-"):
        receiver.start()
    receiver.stop()


# --------------------------------------------------------------------------- HTTP


class Probes:
    """The listener's probe endpoints (not what is tested here)."""

    class _Up:
        ok = True

        def body(self, *, details: bool = True) -> bytes:
            return b'{"status": "ok"}'

    def live(self) -> Probes._Up:
        return self._Up()

    def ready(self) -> Probes._Up:
        return self._Up()

    def scrape(self, accept: str) -> tuple[bytes, str]:
        return b"", "text/plain"


@pytest.fixture
def actions_url() -> Iterator[tuple[str, Collector, threading.Event]]:
    gate = threading.Event()
    gate.set()
    dispatch = Collector(gate=gate)
    route = SlackActions(SLACK_SIGNING_SECRET, dispatch)
    server = HealthServer(
        "127.0.0.1:0", Probes(), posts={"/slack/actions": route}, request_timeout=1.0
    )
    try:
        yield f"{server.url}/slack/actions", dispatch, gate
    finally:
        gate.set()
        server.close()
        route.close()


def signed(
    body: bytes, *, secret: str = SLACK_SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    """The headers Slack sends: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    timestamp = str(int(time.time() if at is None else at))
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form(payload: Mapping[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_http_signed_click_is_answered_then_dispatched(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, _ = actions_url
    body = form(click("report.dismiss", selected="wontfix_irrelevant"))
    answer = httpx.post(url, content=body, headers=signed(body), timeout=5)
    assert (answer.status_code, answer.content) == (200, b"")
    wait_for(lambda: dispatch.payloads, 5, "the click dispatched")
    element = dispatch.payloads[0]["actions"][0]
    assert element["selected_option"]["value"] == "wontfix_irrelevant"
    assert all(name.startswith("slack-action") for name in dispatch.threads)


def test_http_answers_before_a_slow_dispatch_finishes(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, gate = actions_url
    gate.clear()
    body = form(click())
    answer = httpx.post(url, content=body, headers=signed(body), timeout=5)
    assert answer.status_code == 200
    wait_for(lambda: dispatch.started, 5, "dispatch started")
    assert not dispatch.payloads  # still held: the 200 did not wait for it
    gate.set()
    wait_for(lambda: dispatch.payloads, 5, "dispatch finished")


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("bad signature", lambda b: signed(b, secret="not-the-signing-secret")),
        ("stale timestamp", lambda b: signed(b, at=time.time() - 360)),
        ("missing headers", lambda b: {"Content-Type": "application/x-www-form-urlencoded"}),
        (
            "garbage timestamp",
            lambda b: {**signed(b), "X-Slack-Request-Timestamp": "yesterday"},
        ),
        ("non-ascii signature", lambda b: {**signed(b), "X-Slack-Signature": "v0=é"}),
    ],
)
def test_http_unverified_request_is_401_and_nothing_dispatched(
    actions_url: tuple[str, Collector, threading.Event],
    caplog: pytest.LogCaptureFixture,
    case: str,
    headers: Any,
) -> None:
    url, dispatch, _ = actions_url
    body = form(click())
    raw = {k: v.encode() for k, v in headers(body).items()}  # é: sent as UTF-8 bytes
    answer = httpx.post(url, content=body, headers=raw, timeout=5)
    assert answer.status_code == 401, case
    assert "signing secret" in answer.json()["error"]
    # one more, signed: it is dispatched alone (nothing of the refused one got through)
    answer = httpx.post(url, content=body, headers=signed(body), timeout=5)
    assert answer.status_code == 200
    wait_for(lambda: dispatch.payloads, 5, "the signed click")
    assert len(dispatch.started) == 1
    assert any("refused" in m for m in caplog.messages)
    assert SLACK_SIGNING_SECRET not in answer.text


def test_http_oversized_body_is_413_and_nothing_dispatched(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, _ = actions_url
    payload = click()
    payload["message"]["text"] = "x" * 70_000
    body = form(payload)
    answer = httpx.post(url, content=body, headers=signed(body), timeout=5)
    assert answer.status_code == 413
    assert "64 KiB" in answer.json()["error"]
    assert not dispatch.started


def test_http_body_without_length_is_411(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, _ = actions_url
    body = form(click())

    def chunks() -> Iterator[bytes]:
        yield body

    answer = httpx.post(url, content=chunks(), headers=signed(body), timeout=5)
    assert answer.status_code == 411
    assert not dispatch.started


def test_http_body_that_never_completes_is_dropped(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    """A client that declares a body and trickles less of it is cut off at the request
    timeout (a small one here), and nothing is dispatched."""
    url, dispatch, _ = actions_url
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /slack/actions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\npayload="
        )
        sock.settimeout(10)
        assert sock.recv(1024) == b""  # closed without an answer
    assert not dispatch.started


def test_http_ssl_check_and_other_payloads_are_200_and_ignored(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, _ = actions_url
    check = b"ssl_check=1&token=legacyVerificationToken"
    assert httpx.post(url, content=check, headers=signed(check), timeout=5).status_code == 200
    other = form({"type": "view_submission", "view": {}})
    assert httpx.post(url, content=other, headers=signed(other), timeout=5).status_code == 200
    last = form(click())
    assert httpx.post(url, content=last, headers=signed(last), timeout=5).status_code == 200
    wait_for(lambda: dispatch.payloads, 5, "the click")
    assert dispatch.actions() == ["report.acknowledge"]
    assert len(dispatch.started) == 1


def test_http_signed_but_malformed_payload_is_400(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, dispatch, _ = actions_url
    body = b"payload=%7Bnot+json"
    answer = httpx.post(url, content=body, headers=signed(body), timeout=5)
    assert answer.status_code == 400
    assert not dispatch.started


def test_http_get_on_the_route_is_405(
    actions_url: tuple[str, Collector, threading.Event],
) -> None:
    url, _, _ = actions_url
    assert httpx.get(url, timeout=5).status_code == 405
