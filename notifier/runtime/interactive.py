"""The clicks' way in while the daemon runs (``interactivity:``): Socket Mode or the HTTP route,
each handing payloads to ``interact.handler.ActionHandler`` after acknowledging Slack.

The sink that owns a clicked card is the one whose living message about the report has the
clicked message's ``ts`` (``StateStore.message``); Slack's API for usergroup members
(``usergroups.users.list``, scope ``usergroups:read``) is asked through the first sink with
``actions:``, and the answer kept ``GROUPS_TTL`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

from slack_sdk.errors import SlackApiError, SlackClientError

from notifier.config.settings import Settings, SlackSinkSettings
from notifier.core.actions import Click
from notifier.interact.handler import ActionHandler
from notifier.interact.http import PATH, SlackActions
from notifier.interact.socket import SocketModeReceiver
from notifier.posthog.client import PostHogClient
from notifier.runtime.listener import PostRoute
from notifier.sinks.slack.bot import bot_client
from notifier.state.base import StateStore

log = logging.getLogger(__name__)

#: Seconds a usergroup's members are kept before Slack is asked again.
GROUPS_TTL: Final = 600.0


class Interactivity:
    """Socket Mode or the HTTP route, and the handler behind them."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: PostHogClient,
        store: StateStore,
        wake: Callable[[Iterable[str]], None],
        slack_url: str | None = None,
    ) -> None:
        config = settings.interactivity
        assert config is not None
        self._config = config
        self._store = store
        self._acting = {
            name: sink
            for name, sink in settings.sinks.items()
            if isinstance(sink, SlackSinkSettings) and sink.actions
        }
        self._groups = _Groups(config.allowed_usergroups, next(iter(self._acting.values()), None))
        self.handler = ActionHandler(
            source=source,
            store=store,
            owner_of=self._owner,
            allowed=self._allowed,
            wake=lambda sink: wake([sink]),
        )
        self._receiver: SocketModeReceiver | None = None
        self._route: SlackActions | None = None
        self._slack_url = slack_url or next(
            (s.api_url for s in self._acting.values()), "https://slack.com/api/"
        )

    @classmethod
    def of(
        cls,
        settings: Settings,
        source: PostHogClient,
        store: StateStore,
        wake: Callable[[Iterable[str]], None],
    ) -> Interactivity | _Off:
        """The clicks' way in when a sink has ``actions:`` and ``interactivity:`` is set; else
        one that serves nothing."""
        acting = any(
            isinstance(sink, SlackSinkSettings) and sink.actions for sink in settings.sinks.values()
        )
        if settings.interactivity is None or not acting:
            return _Off()
        return cls(settings, source=source, store=store, wake=wake)

    def posts(self) -> dict[str, PostRoute]:
        """The HTTP listener's POST routes (``mode: http``), else none."""
        if self._config.mode != "http" or self._config.signing_secret is None:
            return {}
        self._route = SlackActions(self._config.signing_secret.get_secret_value(), self.handler)
        return {PATH: self._route}

    def start(self) -> None:
        """Connect Socket Mode (``mode: socket``); the HTTP route is served by the listener."""
        if self._config.mode == "socket" and self._config.app_token is not None:
            self._receiver = SocketModeReceiver(
                self._config.app_token.get_secret_value(), self.handler, base_url=self._slack_url
            )
            self._receiver.start()

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None
        if self._route is not None:
            self._route.close()
            self._route = None
        self.handler.close()

    def _owner(self, click: Click) -> str | None:
        """The sink whose living message is the clicked card (the only acting sink when the
        state does not say: a card posted before living messages were kept)."""
        for name in self._acting:
            found = self._store.message(name, click.project_id, click.report_id)
            if found is not None and found[1] == click.message_ts:
                return name
        return next(iter(self._acting)) if len(self._acting) == 1 else None

    def _allowed(self, user_id: str) -> bool:
        users, groups = self._config.allowed_users, self._config.allowed_usergroups
        if not users and not groups:
            return True
        return user_id in users or user_id in self._groups.members()


class _Off:
    """No sink has actions: nothing to serve."""

    def posts(self) -> dict[str, PostRoute]:
        return {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Groups:
    """The members of the allowed usergroups, asked of Slack at most every ``GROUPS_TTL``."""

    def __init__(self, groups: tuple[str, ...], sink: SlackSinkSettings | None) -> None:
        self._groups = groups
        self._sink = sink
        self._lock = threading.Lock()
        self._members: frozenset[str] = frozenset()
        self._at = -GROUPS_TTL

    def members(self) -> frozenset[str]:
        if not self._groups or self._sink is None:
            return frozenset()
        with self._lock:
            if time.monotonic() - self._at >= GROUPS_TTL:
                self._members = self._fetch(self._sink) or self._members
                self._at = time.monotonic()
            return self._members

    def _fetch(self, sink: SlackSinkSettings) -> frozenset[str] | None:
        client, http = bot_client(sink)
        found: set[str] = set()
        try:
            for group in self._groups:
                answer = client.usergroups_users_list(usergroup=group)
                found.update(str(u) for u in answer.get("users") or ())
        except (SlackApiError, SlackClientError) as exc:
            log.warning(
                "could not read the members of interactivity.allowed_usergroups (%s); the bot "
                "token needs usergroups:read. Until then only allowed_users may act",
                type(exc).__name__,
                extra={"event": "usergroups_failed"},
            )
            return None
        finally:
            http.close()
        return frozenset(found)
