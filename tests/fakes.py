"""Local fakes of the notifier's destinations: Slack (Web API and incoming webhooks) and a
generic signed-webhook receiver. Real HTTP on 127.0.0.1, so slack-sdk's urllib clients and httpx
are exercised for real (``sinks-and-runtime.md``: no httpx mocking for slack-sdk).

Both answer like the real thing by default and fail on demand (``fail_next``,
``webhook_fail_next``, ``respond_next``); ``stall_seconds`` delays every answer, ``stall_next``
only the next few (then the request is answered as usual: the sender timed out, yet the message
got through). ``WebhookReceiver.on_arrival`` runs when a request has arrived and before it is
answered, so a test can act (kill the sender) while a send is in flight.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from notifier.demo.simulator import BackgroundServer, FakeRequestHandler

__all__ = ["FakeSlack", "ReceivedWebhook", "SlackCall", "SlackMessage", "WebhookReceiver"]

_CHANNEL_ID: Final = re.compile(r"[CGD][A-Z0-9]{8,}")
_TEXT_LIMIT: Final = 40_000


@dataclass(frozen=True)
class SlackMessage:
    """A message Slack accepted (a ``chat.update`` is recorded as a new entry, same ``ts``).

    ``channel`` is what the client sent (a name like ``#alerts`` or an ID); ``channel_id`` is
    what Slack answered with. Webhook posts have ``ts=None``: the client never learns one.
    """

    channel: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None
    ts: str | None
    via: str  # "api" | "webhook"
    method: str  # "chat.postMessage" | "chat.update"
    received_at: float  # time.monotonic() when the request arrived
    channel_id: str = ""
    reply_broadcast: bool = False


@dataclass(frozen=True)
class SlackCall:
    """Every request the fake Slack saw, accepted or not (for counting attempts)."""

    via: str
    method: str
    params: dict[str, Any]
    status: int
    error: str | None
    received_at: float


@dataclass
class _SlackFault:
    error: str
    status: int
    retry_after: int | None
    times: int
    raw: bytes | None = None  # a body that is not JSON (a proxy's error page)


@dataclass
class _PlainFault:
    status: int
    body: bytes
    headers: dict[str, str]
    times: int


def _take(faults: list[Any], lock: threading.Lock) -> Any:
    with lock:
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault


class _OneShotStalls:
    """``stall_next``: delay only the next few requests (mixed into the fake servers)."""

    _stopping: threading.Event

    def _init_stalls(self) -> None:
        self._stalls: list[float] = []
        self._stalls_lock = threading.Lock()

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering them as usual."""
        with self._stalls_lock:
            self._stalls.extend([seconds] * times)

    def _stall_once(self) -> bool:
        """Apply a queued one-shot stall; False when the server was stopped meanwhile."""
        with self._stalls_lock:
            seconds = self._stalls.pop(0) if self._stalls else 0.0
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()


def _text_len(obj: Any) -> int:
    return len(obj.get("text", "")) if isinstance(obj, dict) else 0


def block_errors(blocks: Any) -> list[str]:
    """The Block Kit limits Slack enforces (``docs.slack.dev/reference/block-kit/blocks``)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    errors = (
        []
        if len(blocks) <= 50
        else [f"no more than 50 items allowed [json-pointer:/blocks] ({len(blocks)})"]
    )
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind is None:
            errors.append(f"missing required field: type {where}")
            continue
        text = block.get("text")
        if kind == "header":
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                errors.append(f"must be a plain_text object {where}/text")
            elif _text_len(text) > 150:
                errors.append(f"must be less than 151 characters {where}/text")
        elif kind == "section":
            if _text_len(text) > 3000:
                errors.append(f"must be less than 3001 characters {where}/text")
            if len(block.get("fields") or []) > 10:
                errors.append(f"no more than 10 items allowed {where}/fields")
        elif kind in ("context", "actions"):
            elements = block.get("elements") or []
            limit = 10 if kind == "context" else 25
            if len(elements) > limit:
                errors.append(f"no more than {limit} items allowed {where}/elements")
            for j, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") == "button":
                    if _text_len(element.get("text")) > 75:
                        errors.append(f"must be less than 76 characters {where}/elements/{j}/text")
                    if len(str(element.get("url", ""))) > 3000:
                        errors.append(f"must be less than 3001 characters {where}/elements/{j}/url")
    return errors


class FakeSlack(_OneShotStalls, BackgroundServer):
    """Slack's ``chat.postMessage``, ``chat.update``, ``auth.test`` and one incoming webhook.

    ``channels``: when a set, only those channels (names with or without ``#``, or IDs) exist.
    Names are resolved to stable IDs (``C000000001``…) in answers; ``chat.update`` wants the ID,
    as the real API does. ``delete`` removes a message as a person could; ``arrivals`` gives when
    each post reached a channel.

    The notifier's default pace (one post per second per channel) is lifted for in-process
    tests by the autouse fixture ``unpaced`` in conftest.py; pacing tests are marked ``paced``.
    """

    token: str = "xoxb-test-token"
    webhook_path: Final = "/services/T000/B000/XXXX"
    webhook_channel: Final = "C0WEBHOOK1"

    def __init__(self, *, token: str = "xoxb-test-token") -> None:
        super().__init__()
        self.token = token
        self.channels: set[str] | None = None
        self.messages: list[SlackMessage] = []
        self.calls: list[SlackCall] = []
        self._lock = threading.Lock()
        self._faults: list[_SlackFault] = []
        self._webhook_faults: list[_PlainFault] = []
        self._ids: dict[str, str] = {}
        self._ts_counter = 0
        self._posted: set[tuple[str, str]] = set()
        self._arrived = threading.local()
        self._init_stalls()
        # conversations.info (read-only): channels (names or IDs) the bot has not joined, the
        # private ones, and the scopes auth.test names in X-OAuth-Scopes (None: no header).
        self.not_member: set[str] = set()
        self.private: set[str] = set()
        self.scopes: str | None = None
        # users.lookupByEmail: email → user id; ``lookup_error`` answers every lookup instead
        # (e.g. "missing_scope" for a token without users:read.email).
        self.users: dict[str, str] = {}
        self.lookup_error: str | None = None
        # Interactivity (issue 14): the app-level token apps.connections.open wants, the Socket
        # Mode websocket (started on the first connections.open), chat.postEphemeral's posts and
        # what was POSTed to response URLs (``response_url(name)``), as (name, body).
        self.app_token = "xapp-1-A0FAKE-1-test-app-token"
        self.socket = SocketModeServer()
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []

    @property
    def api_url(self) -> str:
        """Base URL for ``slack_sdk.WebClient(base_url=...)``."""
        return f"{self.origin}/api/"

    @property
    def webhook_url(self) -> str:
        """URL for ``slack_sdk.webhook.WebhookClient``."""
        return f"{self.origin}{self.webhook_path}"

    def fail_next(
        self,
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
        raw: str | None = None,
    ) -> None:
        """Web API answers ``{"ok": false, "error": error}``; ``ratelimited`` is HTTP 429 with a
        ``Retry-After`` (default 1 s) unless another status is given. ``raw`` answers that
        text/html body instead of JSON (what a load balancer in front of Slack sends)."""
        if error == "ratelimited":
            status = 429 if status == 200 else status
            retry_after = 1 if retry_after is None else retry_after
        body = None if raw is None else raw.encode()
        with self._lock:
            self._faults.append(_SlackFault(error, status, retry_after, times, body))

    def webhook_fail_next(
        self, status: int, body: str, *, times: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """The webhook answers ``status`` with plain text (e.g. 410 ``channel_is_archived``),
        plus ``headers`` (e.g. ``Retry-After`` on a 429)."""
        sent = {"Content-Type": "text/plain", **(headers or {})}
        with self._lock:
            self._webhook_faults.append(_PlainFault(status, body.encode(), sent, times))

    def channel_id(self, channel: str) -> str:
        """The ID Slack would answer for a channel name or ID."""
        if _CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#")
        with self._lock:
            return self._ids.setdefault(name, f"C{len(self._ids) + 1:09d}")

    def texts(self) -> list[str | None]:
        """The ``text`` of every accepted message, in order."""
        return [m.text for m in self.messages]

    def delete(self, channel_id: str, ts: str) -> None:
        """Delete a posted message (as a person could): ``chat.update`` then answers
        ``message_not_found``."""
        with self._lock:
            self._posted.discard((channel_id, ts))

    def current(self, channel_id: str, ts: str) -> SlackMessage:
        """The message as the channel shows it now: its post or its latest update."""
        with self._lock:
            return [m for m in self.messages if (m.channel_id, m.ts) == (channel_id, ts)][-1]

    def replies(self, ts: str) -> list[SlackMessage]:
        """The accepted replies in the thread of message ``ts``, in order."""
        with self._lock:
            return [m for m in self.messages if m.thread_ts == ts]

    def arrivals(self, channel_id: str) -> list[float]:
        """When each message posted to the channel (``chat.postMessage`` or the incoming
        webhook, thread replies included; not ``chat.update``) arrived, in order."""
        with self._lock:
            return [
                m.received_at
                for m in self.messages
                if m.channel_id == channel_id and m.method == "chat.postMessage"
            ]

    # ------------------------------------------------------------------------ serving

    def _handle(self, handler: FakeRequestHandler) -> None:
        self._arrived.at = time.monotonic()
        raw = handler.read_body()
        if not (self._stall() and self._stall_once()):
            handler.close_connection = True
            return
        path = handler.path.split("?", 1)[0]
        if path.startswith("/api/"):
            self._api(handler, path.removeprefix("/api/"), raw)
        elif path.startswith("/actions/"):
            self._response_url(handler, path.removeprefix("/actions/"), raw)
        elif path.startswith("/services/"):
            self._webhook(handler, path, raw)
        else:
            handler.reply(404, b"Not Found", {"Content-Type": "text/plain"})

    def _record(
        self, via: str, method: str, params: dict[str, Any], status: int, error: str | None
    ) -> None:
        with self._lock:
            self.calls.append(SlackCall(via, method, params, status, error, self._arrival()))

    def _arrival(self) -> float:
        """When the request being answered (on this server thread) arrived."""
        return float(getattr(self._arrived, "at", time.monotonic()))

    def _params(self, handler: FakeRequestHandler, raw: bytes) -> dict[str, Any] | str:
        """The call's arguments, or an error code."""
        content_type = handler.headers.get("Content-Type", "")
        if "application/json" in content_type:
            try:
                params = json.loads(raw or b"{}")
            except ValueError:
                return "invalid_json"
            return params if isinstance(params, dict) else "invalid_json"
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        query = handler.path.partition("?")[2]
        params.update(dict(parse_qsl(query, keep_blank_values=True)))
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    return "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
        return params

    def _api(self, handler: FakeRequestHandler, method: str, raw: bytes) -> None:
        parsed = self._params(handler, raw)
        params = parsed if isinstance(parsed, dict) else {}
        fault: _SlackFault | None = _take(self._faults, self._lock)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            if fault.raw is not None:
                self._record("api", method, params, fault.status, fault.error)
                handler.reply(fault.status, fault.raw, {"Content-Type": "text/html", **headers})
                return
            self._answer(
                handler, method, params, {"ok": False, "error": fault.error}, fault.status, headers
            )
            return
        auth = handler.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        token = token or str(params.get("token", ""))
        if isinstance(parsed, str):
            body: dict[str, Any] = {"ok": False, "error": parsed}
        elif method == "apps.connections.open" and token:
            body = self._connections_open(token)
        elif not token:
            body = {"ok": False, "error": "not_authed"}
        elif token != self.token:
            body = {"ok": False, "error": "invalid_auth"}
        elif method == "chat.postEphemeral":
            body = self._ephemeral(params)
        elif method == "auth.test":
            body = {
                "ok": True,
                "url": "https://fake-workspace.slack.com/",
                "team": "Fake Workspace",
                "user": "notifier",
                "team_id": "T000",
                "user_id": "U0BOT0001",
                "bot_id": "B0BOT0001",
            }
        elif method in ("chat.postMessage", "chat.update"):
            body = self._chat(method, params)
        elif method == "conversations.info":
            body = self._info(str(params.get("channel") or ""))
        elif method == "users.lookupByEmail":
            body = self._lookup(str(params.get("email") or ""))
        else:
            body = {"ok": False, "error": "unknown_method"}
        scopes = {"X-OAuth-Scopes": self.scopes} if self.scopes is not None else {}
        self._answer(handler, method, params, body, 200, scopes)

    # ------------------------------------------------------------------ interactivity

    @property
    def acks(self) -> list[str]:
        """The envelope ids the app acknowledged over Socket Mode, in order."""
        return self.socket.acks

    def click(self, payload: dict[str, Any]) -> str:
        """Deliver a ``block_actions`` payload over Socket Mode as an ``interactive`` envelope
        (waits for a connected app); its ``envelope_id``."""
        return self.socket.send("interactive", payload)

    def drop_socket(self) -> None:
        """Close the Socket Mode connections (as Slack does when it refreshes one)."""
        self.socket.drop()

    def response_url(self, name: str) -> str:
        """A ``response_url`` on the fake: what is POSTed to it lands in ``responses``."""
        return f"{self.origin}/actions/{name}"

    def stop(self) -> None:
        self.socket.stop()
        super().stop()

    def _connections_open(self, token: str) -> dict[str, Any]:
        """``apps.connections.open``: an app-level token only, as Slack's."""
        if not token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        return {"ok": True, "url": self.socket.new_url()}

    def _ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.postEphemeral``: recorded in ``ephemerals``."""
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        with self._lock:
            self.ephemerals.append(params)
            self._ts_counter += 100
            seconds, micros = divmod(self._ts_counter, 1_000_000)
        return {"ok": True, "message_ts": f"{1_700_000_000 + seconds}.{micros:06d}"}

    def _response_url(self, handler: FakeRequestHandler, name: str, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except ValueError:
            handler.reply_json(400, {"ok": False, "error": "invalid_json"})
            return
        with self._lock:
            self.responses.append((name, body if isinstance(body, dict) else {"body": body}))
        handler.reply_json(200, {"ok": True})

    def _lookup(self, email: str) -> dict[str, Any]:
        """``users.lookupByEmail``: the user with that email (Slack matches it exactly)."""
        if self.lookup_error is not None:
            return {"ok": False, "error": self.lookup_error}
        user = self.users.get(email)
        if user is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": {"id": user, "profile": {"email": email}}}

    def _info(self, channel: str) -> dict[str, Any]:
        """``conversations.info``: by ID only, as Slack's (a name is ``channel_not_found``)."""
        if not _CHANNEL_ID.fullmatch(channel) or not self._channel_exists(channel, channel):
            return {"ok": False, "error": "channel_not_found"}
        names = {channel} | {f"#{n}" for n, i in self._ids.items() if i == channel}
        names |= {n.removeprefix("#") for n in names}
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "is_private": bool(names & self.private),
                "is_archived": False,
                "is_member": not names & self.not_member,
            },
        }

    def _answer(
        self,
        handler: FakeRequestHandler,
        method: str,
        params: dict[str, Any],
        body: dict[str, Any],
        status: int,
        headers: dict[str, str],
    ) -> None:
        self._record("api", method, params, status, None if body.get("ok") else body.get("error"))
        handler.reply_json(
            status, body, {"Content-Type": "application/json; charset=utf-8", **headers}
        )

    def _channel_exists(self, channel: str, channel_id: str) -> bool:
        if self.channels is None:
            return True
        names = {channel, channel.removeprefix("#"), f"#{channel.removeprefix('#')}", channel_id}
        return bool(names & self.channels)

    def _chat(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        text = params.get("text")
        blocks = params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return {"ok": False, "error": "no_text"}
        if blocks is not None and (errors := block_errors(blocks)):
            return {"ok": False, "error": "invalid_blocks", "errors": errors}
        if method == "chat.update" and not _CHANNEL_ID.fullmatch(channel):
            return {"ok": False, "error": "channel_not_found"}
        channel_id = self.channel_id(channel)
        if not self._channel_exists(channel, channel_id):
            return {"ok": False, "error": "channel_not_found"}
        text = None if text is None else str(text)[:_TEXT_LIMIT]
        thread_ts = params.get("thread_ts")
        with self._lock:
            if method == "chat.update":
                ts = str(params.get("ts") or "")
                if (channel_id, ts) not in self._posted:
                    return {"ok": False, "error": "message_not_found"}
            else:
                self._ts_counter += 100
                seconds, micros = divmod(self._ts_counter, 1_000_000)
                ts = f"{1_700_000_000 + seconds}.{micros:06d}"
                self._posted.add((channel_id, ts))
            self.messages.append(
                SlackMessage(
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=None if thread_ts is None else str(thread_ts),
                    ts=ts,
                    via="api",
                    method=method,
                    received_at=self._arrival(),
                    channel_id=channel_id,
                    reply_broadcast=params.get("reply_broadcast") in (True, "true", "1"),
                )
            )
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "text": text or "",
            "ts": ts,
            "user": "U0BOT0001",
            "bot_id": "B0BOT0001",
        }
        if blocks is not None:
            message["blocks"] = blocks
        if thread_ts is not None:
            message["thread_ts"] = str(thread_ts)
        body: dict[str, Any] = {"ok": True, "channel": channel_id, "ts": ts, "message": message}
        if method == "chat.update":
            body["text"] = text or ""
        if not text:
            body["warning"] = "missing_text"
        return body

    def _webhook(self, handler: FakeRequestHandler, path: str, raw: bytes) -> None:
        def plain(status: int, text: str) -> None:
            self._record(
                "webhook", "incoming-webhook", payload, status, None if text == "ok" else text
            )
            handler.reply(status, text.encode(), {"Content-Type": "text/html"})

        payload: dict[str, Any] = {}
        fault: _PlainFault | None = _take(self._webhook_faults, self._lock)
        if fault is not None:
            self._record("webhook", "incoming-webhook", payload, fault.status, fault.body.decode())
            handler.reply(fault.status, fault.body, fault.headers)
            return
        if path != self.webhook_path:
            plain(404, "no_service")
            return
        try:
            loaded = json.loads(raw)
        except ValueError:
            plain(400, "invalid_payload")
            return
        if not isinstance(loaded, dict):
            plain(400, "invalid_payload")
            return
        payload = loaded
        blocks = payload.get("blocks")
        if not payload.get("text") and not blocks and not payload.get("attachments"):
            plain(400, "no_text")
            return
        if blocks is not None and block_errors(blocks):
            plain(400, "invalid_blocks")
            return
        text = payload.get("text")
        thread_ts = payload.get("thread_ts")
        with self._lock:
            self.messages.append(
                SlackMessage(
                    channel=self.webhook_channel,
                    text=None if text is None else str(text)[:_TEXT_LIMIT],
                    blocks=blocks,
                    thread_ts=None if thread_ts is None else str(thread_ts),
                    ts=None,
                    via="webhook",
                    method="chat.postMessage",
                    received_at=self._arrival(),
                    channel_id=self.webhook_channel,
                )
            )
        plain(200, "ok")


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request the receiver saw; ``headers`` keys are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float = field(compare=False)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WebhookReceiver(_OneShotStalls, BackgroundServer):
    """A generic webhook endpoint: records everything, answers ``default_status`` (204).

    ``respond_next`` queues other answers: 503 with ``Retry-After``, 410, a 302 redirect…
    ``on_arrival`` (when set) is called with each request (``status`` 0: not answered yet) as
    soon as it has arrived, before any stall; a request the sender gave up on is still recorded
    once answered.
    """

    def __init__(self, *, default_status: int = 204) -> None:
        super().__init__()
        self.default_status = default_status
        self.received: list[ReceivedWebhook] = []
        self.on_arrival: Callable[[ReceivedWebhook], None] | None = None
        self._lock = threading.Lock()
        self._answers: list[_PlainFault] = []
        self._init_stalls()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/hook``."""
        return f"{self.origin}/hook"

    def respond_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        """Answer the next ``times`` requests with this instead of ``default_status``."""
        with self._lock:
            self._answers.append(_PlainFault(status, body, dict(headers or {}), times))

    def bodies(self) -> list[Any]:
        """Every received body parsed as JSON."""
        return [r.json() for r in self.received]

    def _handle(self, handler: FakeRequestHandler) -> None:
        body = handler.read_body()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        hook = self.on_arrival
        if hook is not None:
            hook(ReceivedWebhook(handler.command, handler.path, headers, body, 0, time.monotonic()))
        if not (self._stall() and self._stall_once()):
            handler.close_connection = True
            return
        answer: _PlainFault | None = _take(self._answers, self._lock)
        if answer is None:
            answer = _PlainFault(self.default_status, b"", {}, 1)
        record = ReceivedWebhook(
            method=handler.command,
            path=handler.path,
            headers=headers,
            body=body,
            status=answer.status,
            received_at=time.monotonic(),
        )
        with self._lock:
            self.received.append(record)
        payload = b"" if answer.status in (204, 304) else answer.body
        handler.reply(answer.status, payload, answer.headers)


class SocketModeServer:
    """Slack's Socket Mode side, on a local websocket (the ``websockets`` library): a URL from
    ``new_url`` (what ``apps.connections.open`` answers) admits one connection, which is greeted
    with ``hello``; ``send`` pushes an envelope to the newest connection; the app's
    acknowledgements are recorded by ``envelope_id`` in ``acks``; ``drop`` closes every
    connection. Started on the first ``new_url``."""

    def __init__(self) -> None:
        self.acks: list[str] = []
        self.connections = 0  # how many were ever accepted (a reconnect adds one)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._tickets: set[str] = set()
        self._open: list[ServerConnection] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def new_url(self) -> str:
        """A one-use ``ws://`` URL with a fresh ticket."""
        with self._lock:
            if self._server is None:
                self._server = serve(self._serve, "127.0.0.1", 0, compression=None)
                self._thread = threading.Thread(
                    target=self._server.serve_forever, name="FakeSlack:socket", daemon=True
                )
                self._thread.start()
            port = self._server.socket.getsockname()[1]
            ticket = uuid.uuid4().hex
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{port}/link/?ticket={ticket}&app_id=A0FAKE"

    def send(self, kind: str, payload: dict[str, Any], *, wait: float = 10.0) -> str:
        """Push an envelope of type ``kind`` to the newest open connection (waiting ``wait``
        seconds for one); its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": False,
            "payload": payload,
        }
        deadline = time.monotonic() + wait
        with self._changed:
            while not self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no Socket Mode connection within {wait:g} s")
                self._changed.wait(left)
            connection = self._open[-1]
        connection.send(json.dumps(envelope))
        return envelope_id

    def drop(self) -> None:
        """Close every open connection (the app should reconnect through a new URL)."""
        with self._lock:
            dropped, self._open = self._open, []
        for connection in dropped:
            connection.close(1001, "refresh")

    def stop(self) -> None:
        self.drop()
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self, connection: ServerConnection) -> None:
        ticket = parse_qsl(connection.request.path.partition("?")[2]) if connection.request else []
        with self._lock:
            given = dict(ticket).get("ticket", "")
            admitted = given in self._tickets
            self._tickets.discard(given)
        if not admitted:
            connection.close(4001, "invalid ticket")
            return
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "A0FAKE"},
                }
            )
        )
        with self._changed:
            self._open.append(connection)
            self.connections += 1
            self._changed.notify_all()
        try:
            for message in connection:
                envelope_id = _envelope_id(message)
                if envelope_id:
                    with self._lock:
                        self.acks.append(envelope_id)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if connection in self._open:
                    self._open.remove(connection)


def _envelope_id(message: str | bytes) -> str | None:
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return str(data["envelope_id"]) if isinstance(data, dict) and data.get("envelope_id") else None
