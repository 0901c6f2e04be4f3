"""Clicks over Socket Mode (``interactivity.mode: socket``): slack-sdk's built-in
``SocketModeClient`` keeps a websocket to Slack open with the app-level ``xapp-`` token (no
public URL needed), reconnecting on its own when Slack closes or refreshes it.

Each ``interactive`` envelope is acknowledged by its ``envelope_id`` first (Slack wants that
within 3 seconds), then a ``block_actions`` payload is handed to ``dispatch`` on a small thread
pool (``Dispatcher``), so a slow PostHog write never delays an acknowledgement. Other envelopes
are acknowledged and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

from notifier.core.errors import NotifierError
from notifier.sinks.slack.common import sdk_options

log = logging.getLogger("notifier.interact")

#: What a transport hands a click to: the parsed ``block_actions`` payload.
Dispatch = Callable[[Mapping[str, Any]], None]

#: Threads running ``dispatch`` (each click is one PostHog write or two).
WORKERS: Final = 4
#: Seconds for ``apps.connections.open``.
OPEN_TIMEOUT: Final = 10.0
#: Seconds between tries when Slack cannot be reached at start (doubling up to the last).
RETRY_WAITS: Final = (1.0, 2.0, 5.0, 15.0, 60.0)
#: ``apps.connections.open`` errors no retry can fix: the token is wrong.
_TOKEN_ERRORS: Final = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
        "missing_scope",
        "token_revoked",
        "token_expired",
        "account_inactive",
    }
)


def describe(payload: Mapping[str, Any]) -> str:
    """A click in a log line: its action and who clicked (never the response URL)."""
    actions = payload.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else {}
    action = first.get("action_id") if isinstance(first, Mapping) else None
    user = payload.get("user")
    who = user.get("id") if isinstance(user, Mapping) else None
    return f"{str(action or '?')[:60]} by {str(who or '?')[:30]}"


class Dispatcher:
    """Runs ``dispatch`` on ``workers`` threads (``slack-action``); a dispatch that raises is
    logged with its traceback and the next one runs as usual."""

    def __init__(self, dispatch: Dispatch, workers: int = WORKERS) -> None:
        self._dispatch = dispatch
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slack-action")

    def submit(self, payload: Mapping[str, Any]) -> None:
        try:
            self._pool.submit(self._run, payload)
        except RuntimeError:  # shut down: the notifier is stopping
            log.warning("Slack actions: %s not handled: stopping", describe(payload))

    def _run(self, payload: Mapping[str, Any]) -> None:
        try:
            self._dispatch(payload)
        except Exception:
            log.exception("Slack actions: handling the click %s failed", describe(payload))

    def close(self, wait: bool = True) -> None:
        """Take no more clicks; with ``wait``, let the running ones finish."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


class SocketModeReceiver:
    """Slack's clicks over Socket Mode, handed to ``dispatch`` after each is acknowledged.

    ``start`` connects (a wrong token raises ``NotifierError`` saying what to fix; Slack out of
    reach is retried in the background); ``stop`` disconnects and lets running clicks finish.
    ``base_url`` is Slack's Web API (tests: the fake Slack's).
    """

    def __init__(
        self,
        app_token: str,
        dispatch: Dispatch,
        *,
        base_url: str | None = None,
        workers: int = WORKERS,
        ping_interval: float = 5.0,
    ) -> None:
        self._token = app_token
        self._base_url = base_url or WebClient.BASE_URL
        self._ping_interval = ping_interval
        self._dispatcher = Dispatcher(dispatch, workers)
        self._client: SocketModeClient | None = None
        self._hellos = 0
        self._stopping = threading.Event()
        self._retry: threading.Thread | None = None

    def start(self) -> None:
        """Connect to Slack (raises ``NotifierError`` when the app token cannot work)."""
        web = WebClient(base_url=self._base_url, **sdk_options(OPEN_TIMEOUT))
        client = SocketModeClient(
            app_token=self._token,
            web_client=web,
            ping_interval=self._ping_interval,
            concurrency=2,
            on_error_listeners=[self._on_error],
            on_close_listeners=[self._on_close],
        )
        client.message_listeners.append(self._on_message)
        client.socket_mode_request_listeners.append(self._on_request)
        self._client = client
        try:
            client.connect()
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in _TOKEN_ERRORS:
                self.stop()
                raise NotifierError(_token_problem(error)) from None
            self._retry_in_background(f"apps.connections.open answered {error[:40]!r}")
        except Exception as exc:  # noqa: BLE001  # unreachable, timed out, a broken answer
            self._retry_in_background(f"{type(exc).__name__}: {str(exc)[:200]}")

    def stop(self) -> None:
        """Disconnect; running clicks finish (a stopped receiver cannot start again)."""
        self._stopping.set()
        client, self._client = self._client, None
        if client is not None:
            _wake(client)
            client.close()
        if self._retry is not None:
            self._retry.join(timeout=5)
        self._dispatcher.close()

    # --------------------------------------------------------------- the client's callbacks

    def _on_request(self, client: Any, request: SocketModeRequest) -> None:
        """An envelope: acknowledged first, then a click goes to the dispatcher."""
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))
        except Exception as exc:  # noqa: BLE001  # the connection was lost meanwhile
            log.warning(
                "Slack actions: could not acknowledge a %s envelope (%s); Slack shows the user "
                "a warning, the click is handled anyway",
                request.type[:40],
                type(exc).__name__,
            )
        payload = request.payload
        if request.type != "interactive" or payload.get("type") != "block_actions":
            log.debug(
                "Slack actions: ignored a %r envelope (%r)",
                request.type[:40],
                str(payload.get("type"))[:40],
            )
            return
        log.debug("Slack actions: click %s", describe(payload))
        self._dispatcher.submit(payload)

    def _on_message(self, client: Any, message: dict[str, Any], raw: str | None) -> None:
        if message.get("type") != "hello":
            return
        self._hellos += 1
        if self._hellos == 1:
            log.info("Slack actions: Socket Mode connected")
        else:
            log.info("Slack actions: Socket Mode reconnected")

    def _on_close(self, code: int, reason: str | None) -> None:
        if not self._stopping.is_set():
            log.info(
                "Slack actions: Slack closed the Socket Mode connection (%s %s); reconnecting",
                code,
                (reason or "")[:80],
            )

    def _on_error(self, error: Exception) -> None:
        if not self._stopping.is_set():
            log.warning(
                "Slack actions: Socket Mode connection lost (%s); reconnecting",
                type(error).__name__,
            )

    # ------------------------------------------------------------------ start-up retries

    def _retry_in_background(self, why: str) -> None:
        log.warning("Slack actions: cannot connect to Slack (%s); retrying", why)
        self._retry = threading.Thread(target=self._keep_trying, name="slack-socket", daemon=True)
        self._retry.start()

    def _keep_trying(self) -> None:
        tries = 0
        while not self._stopping.wait(RETRY_WAITS[min(tries, len(RETRY_WAITS) - 1)]):
            tries += 1
            client = self._client
            if client is None:
                return
            try:
                client.connect_to_new_endpoint(force=True)
                return
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error in _TOKEN_ERRORS:
                    log.error("Slack actions: %s", _token_problem(error))
                    return
                why = f"apps.connections.open answered {error[:40]!r}"
            except Exception as exc:  # noqa: BLE001  # retried, whatever it was
                why = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.warning("Slack actions: still cannot connect to Slack (%s); retrying", why)


def _wake(client: SocketModeClient) -> None:
    """End the client's receive at once rather than at its 3 s socket timeout: no reconnect,
    the session over, then the socket shut (``close`` then joins a thread that is done)."""
    client.auto_reconnect_enabled = False
    client.current_session_state.terminated = True
    sock = getattr(client.current_session, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _token_problem(error: str) -> str:
    return (
        f"Slack actions: Slack refused the app token ({error}): set interactivity.app_token to "
        "the app-level token (xapp-…) made under Basic Information → App-Level Tokens with the "
        "connections:write scope, or use interactivity.mode: http"
    )
