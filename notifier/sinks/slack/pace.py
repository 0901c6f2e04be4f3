"""Pacing Slack: at most one message per second per channel, and a pause for the whole workspace
when Slack answers 429.

One ``Pacer`` is shared by every sink ``build_sinks`` makes, so two sinks posting to the same
channel share its second, and a ``Retry-After`` one sink receives holds back every sink of that
workspace. Keys are opaque: sinks build them (``channel_key``, ``workspace_key``...) from their
settings, hashing the secret parts, and they never appear in a message.

What counts: every ``chat.postMessage`` (cards, thread replies, digests, notices) and every
incoming-webhook post takes the channel's second. ``chat.update`` does not: Slack's 1/s is a
limit on *posting* to a channel, while ``chat.update`` is metered per workspace (Tier 3, ~50 a
minute) and adds nothing to the channel; in a living message it is always followed by a paced
thread reply, so it never outruns the channel's pace anyway. It does wait out a workspace pause.

The second is counted from the end of the previous post to the start of the next, so Slack
sees the posts at least a second apart whatever the network latency. A post Slack refused
(``ok: false``, an error status) put nothing in the channel: the sink marks its turn unused
and the next post need not wait for it. Waits watch ``cancel``
(shutdown stays fast); a wait longer than ``max_wait`` (a long ``Retry-After``) is not slept in
the delivery thread but raised as a transient ``SinkError`` with that ``retry_after``, so the
outbox reschedules the entry exactly.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from notifier.core.errors import SinkError

#: Slack: about one message per second per channel (chat.postMessage and incoming webhooks).
#: Read when a ``Pacer`` is made without an interval; the tests' fake Slack sets it to 0 while
#: it runs (they count messages, not seconds), so it is not ``Final``.
CHANNEL_INTERVAL = 1.0
#: Longer waits are handed back to the outbox instead of blocking the sink's thread.
MAX_WAIT: Final = 10.0
#: A 429 without Retry-After pauses the workspace this long.
DEFAULT_PAUSE: Final = 1.0


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def bot_keys(api_url: str, token: str, channel: str) -> tuple[Hashable, Hashable]:
    """(channel, workspace) keys of a bot-token sink: the channel by (API URL, channel); the
    workspace by API URL and token, since Slack meters an app's token per workspace."""
    return ("api", api_url, channel), ("api", api_url, _digest(token))


def webhook_keys(url: str) -> tuple[Hashable, Hashable]:
    """(channel, workspace) keys of an incoming webhook: the URL is the channel (fixed at
    install); the workspace is the host and team id of ``/services/T…/B…/…`` (every webhook of
    one workspace shares its limits), or the URL itself when it has no such path."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "services":
        workspace: Hashable = ("hook", parts.hostname, segments[1])
    else:
        workspace = ("hook", _digest(url))
    return ("hook", _digest(url)), workspace


@dataclass(slots=True)
class Turn:
    """One post's turn; the sink sets ``used = False`` when Slack refused the post."""

    used: bool = True


class Pacer:
    """Per-channel spacing and per-workspace pauses; thread-safe.

    ``interval`` defaults to ``CHANNEL_INTERVAL`` (read when the pacer is made). ``clock`` is
    monotonic seconds; ``wait(seconds)`` sleeps and returns True when the sleep was cut short
    because the notifier is stopping (default: ``cancel.wait``). Tests inject both, so nothing
    really sleeps.
    """

    def __init__(
        self,
        interval: float | None = None,
        *,
        cancel: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self.interval = CHANNEL_INTERVAL if interval is None else interval
        self.max_wait = max_wait
        self._cancel = cancel if cancel is not None else threading.Event()
        self._clock = clock
        self._wait = wait if wait is not None else self._cancel.wait
        self._lock = threading.Lock()
        self._next: dict[Hashable, float] = {}  # channel → the earliest next post
        self._paused: dict[Hashable, float] = {}  # workspace → paused until

    @contextmanager
    def post(self, channel: Hashable, workspace: Hashable) -> Iterator[Turn]:
        """Around one post to ``channel``: waits for its turn, and keeps the channel's next
        turn a full ``interval`` after this post has ended (unless the turn was not used)."""
        previous, reserved = self._acquire(channel, workspace)
        turn = Turn()
        try:
            yield turn
        finally:
            with self._lock:
                if turn.used:
                    done = self._clock() + self.interval
                    self._next[channel] = max(self._next.get(channel, 0.0), done)
                elif self._next.get(channel) == reserved:  # nobody took a turn since
                    self._next[channel] = previous

    def ready(self, workspace: Hashable) -> None:
        """Before a call that takes no channel turn (``chat.update``): wait out a pause."""
        self._acquire(None, workspace)

    def pause(self, workspace: Hashable, seconds: float | None) -> None:
        """Slack answered 429: nothing goes to the workspace for ``seconds`` (its Retry-After)."""
        seconds = DEFAULT_PAUSE if seconds is None else max(0.0, seconds)
        with self._lock:
            until = self._clock() + seconds
            self._paused[workspace] = max(self._paused.get(workspace, 0.0), until)

    def paused_for(self, workspace: Hashable) -> float:
        """Seconds the workspace is still paused (0 when it is not)."""
        with self._lock:
            return max(0.0, self._paused.get(workspace, 0.0) - self._clock())

    def _acquire(self, channel: Hashable | None, workspace: Hashable) -> tuple[float, float]:
        """Wait for the turn; returns the channel's previous next turn and the one reserved."""
        while True:
            with self._lock:
                now = self._clock()
                paused = self._paused.get(workspace, 0.0)
                turn = self._next.get(channel, 0.0) if channel is not None else 0.0
                ready_at = max(paused, turn)
                if ready_at <= now:
                    if channel is None:
                        return 0.0, 0.0
                    self._next[channel] = now + self.interval  # extended when the post ends
                    return turn, now + self.interval
            delay = ready_at - now
            if delay > self.max_wait:
                raise SinkError(
                    f"Slack asked to slow down (HTTP 429): not posting for another "
                    f"{delay:.0f} s; will retry",
                    permanent=False,
                    retry_after=delay,
                )
            if self._wait(delay) or self._cancel.is_set():
                raise SinkError(
                    "the notifier is stopping; the message goes out after the restart",
                    permanent=False,
                    retry_after=0.0,
                )
