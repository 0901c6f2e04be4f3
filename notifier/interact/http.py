"""Clicks over HTTP (``interactivity.mode: http``): ``POST /slack/actions`` on the notifier's
HTTP listener (``http.listen``), Slack's "Interactivity Request URL".

The listener bounds the request (a Content-Length of at most 64 KiB, read within the request
timeout); here each request is verified with slack-sdk's ``SignatureVerifier`` (Slack's v0
signature over ``v0:{timestamp}:{body}`` with the app's signing secret, a timestamp at most 5
minutes away), answered at once — 200 with an empty body — and only then, for a
``block_actions`` payload, handed to ``dispatch`` on a worker thread. A request that is not
Slack's gets 401 and changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from notifier.interact.socket import WORKERS, Dispatch, Dispatcher, describe

log = logging.getLogger("notifier.interact")

#: The path Slack posts clicks to (the app's Interactivity Request URL ends with it).
PATH: Final = "/slack/actions"
#: How far a request's timestamp may be from this machine's clock (Slack's own rule).
MAX_SKEW: Final = 5 * 60
#: Seconds between two WARNING lines about refused requests (the rest are DEBUG).
WARN_EVERY: Final = 60.0

_EMPTY: Final = (200, b"", "text/plain; charset=utf-8")


def _error(status: int, text: str) -> tuple[int, bytes, str]:
    return status, json.dumps({"error": text}).encode() + b"\n", "application/json"


class SlackActions:
    """The ``POST /slack/actions`` route (a ``listener.PostRoute``): verify, answer, dispatch."""

    def __init__(self, signing_secret: str, dispatch: Dispatch, *, workers: int = WORKERS) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._dispatcher = Dispatcher(dispatch, workers)
        self._warned = 0.0
        self._quiet = 0  # refusals since the last WARNING
        self._lock = threading.Lock()

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes, str]:
        """One request (on a listener worker thread): the answer; a verified click is handed
        to the dispatcher before this returns, and runs after."""
        problem = self._unverified(body, headers)
        if problem is not None:
            self._refused(problem)
            return _error(
                401,
                "not signed by Slack with this app's signing secret within the last 5 minutes: "
                "check interactivity.signing_secret and this machine's clock",
            )
        try:
            form = parse_qs(body.decode("utf-8"), max_num_fields=20)
            payload = json.loads(form["payload"][0]) if "payload" in form else None
        except (ValueError, RecursionError) as exc:
            log.warning("Slack actions: a signed request had an unreadable payload (%s)", exc)
            return _error(400, "the payload field is not JSON")
        if payload is None:  # Slack's URL check (ssl_check=1) or a form without a click
            log.debug("Slack actions: a request without a payload (%s)", sorted(form)[:5])
            return _EMPTY
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            kind = payload.get("type") if isinstance(payload, dict) else type(payload).__name__
            log.debug("Slack actions: ignored a %r payload", str(kind)[:40])
            return _EMPTY
        log.debug("Slack actions: click %s", describe(payload))
        self._dispatcher.submit(payload)
        return _EMPTY

    def close(self, wait: bool = True) -> None:
        """Take no more clicks; with ``wait``, let the running ones finish."""
        self._dispatcher.close(wait)

    def _unverified(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        """Why the request is not Slack's (None: it is)."""
        stamp = headers.get("x-slack-request-timestamp", "").strip()
        signature = headers.get("x-slack-signature", "").strip()
        if not stamp or not signature:
            return "no X-Slack-Request-Timestamp or X-Slack-Signature header"
        if not stamp.isdigit():
            return "a malformed X-Slack-Request-Timestamp"
        if abs(time.time() - int(stamp)) > MAX_SKEW:
            return "a timestamp more than 5 minutes away (a replay, or this machine's clock is off)"
        try:
            valid = self._verifier.is_valid(body=body, timestamp=stamp, signature=signature)
        except (TypeError, ValueError):  # a non-ASCII signature
            valid = False
        return None if valid else "a bad signature (is interactivity.signing_secret this app's?)"

    def _refused(self, problem: str) -> None:
        """One WARNING a minute at most (anyone can post to the listener), DEBUG otherwise."""
        now = time.monotonic()
        with self._lock:
            loud = now - self._warned >= WARN_EVERY or not self._warned
            quiet, self._quiet = (self._quiet, 0) if loud else (0, self._quiet + 1)
            if loud:
                self._warned = now
        more = f" ({quiet} more refused since the last warning)" if quiet else ""
        level = logging.WARNING if loud else logging.DEBUG
        log.log(level, "Slack actions: refused a request with %s%s", problem, more)
