"""Suggested reviewers → Slack member ids, so a card @-mentions them (``<@U0123ABCD>``).

A reviewer is resolved, as a Slack sink sends, by the config's ``people:`` map (its GitHub
login or its email, case-insensitively), else — bot sinks only, whose token may have the
``users:read.email`` scope — by ``users.lookupByEmail``. Lookups are cached for the process and
the workspace (found or not found), and a workspace whose token may not look people up (no
scope, wrong token type) is not asked again. A failed lookup is one DEBUG line and the reviewer
is shown by name: it never fails, nor holds back, a delivery. After a lookup that may heal (a
timeout, a 429) the card's other reviewers are not looked up, so one card waits for at most one
failing request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from typing import Final

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from notifier.config.settings import SLACK_USER_ID
from notifier.core.errors import SinkError
from notifier.core.events import Event, Reviewer

log = logging.getLogger(__name__)

#: ``users.lookupByEmail`` codes meaning this token may never look anyone up: stop asking.
_NEVER: Final = frozenset(
    {"missing_scope", "not_allowed_token_type", "invalid_auth", "account_inactive", "no_permission"}
)
#: Codes meaning this email has no Slack user: cached as nobody.
_NOBODY: Final = frozenset({"users_not_found", "user_not_found"})


class LookupFailed(Exception):
    """A lookup that did not answer: ``code`` says why, ``final`` whether asking again is
    pointless for the email (``"email"``), the workspace (``"workspace"``) or neither."""

    def __init__(self, code: str, final: str | None) -> None:
        super().__init__(code)
        self.code = code
        self.final = final


Lookup = Callable[[str], str | None]

# The process's lookups, shared by every sink of a workspace (a reload keeps them):
# (workspace, email) → member id or None (nobody), and the workspaces that may not look up.
_cache: dict[tuple[Hashable, str], str | None] = {}
_refused: set[Hashable] = set()
_lock = threading.Lock()


def lookup_by_email(client: WebClient) -> Lookup:
    """``users.lookupByEmail`` through a sink's client: the member id, None for nobody;
    ``LookupFailed`` otherwise."""

    def lookup(email: str) -> str | None:
        try:
            response = client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            data = getattr(exc.response, "data", None)
            code = data.get("error") if isinstance(data, dict) else None
            code = str(code or f"http_{getattr(exc.response, 'status_code', 0)}")[:80]
            if code in _NOBODY:
                return None
            raise LookupFailed(code, "workspace" if code in _NEVER else None) from exc
        except SinkError as exc:  # no answer (bounded transport): may heal
            raise LookupFailed(str(exc)[:200], None) from exc
        user = response.get("user")
        found = user.get("id") if isinstance(user, dict) else None
        return found if isinstance(found, str) and SLACK_USER_ID.fullmatch(found) else None

    return lookup


class People:
    """Resolves an event's suggested reviewers for one sink: ``known`` is the ``people:`` map,
    ``lookup`` the sink's ``users.lookupByEmail`` (None: incoming webhooks, no Web API),
    ``workspace`` the key its cache is shared under."""

    def __init__(
        self,
        known: Mapping[str, str],
        *,
        sink: str,
        lookup: Lookup | None = None,
        workspace: Hashable = None,
    ) -> None:
        self.known: Mapping[str, str] = {k.strip().casefold(): v for k, v in known.items()}
        self._sink = sink
        self._lookup = lookup
        self._workspace = workspace

    def resolve(self, event: Event) -> Event:
        """The event with each reviewer's ``slack_id`` set where one is found."""
        reviewers = event.enrichment.reviewers
        if not reviewers:
            return event
        asking = [self._lookup is not None]  # False after a failure: the rest go by name
        resolved = tuple(self._one(r, asking) for r in reviewers)
        return replace(event, enrichment=replace(event.enrichment, reviewers=resolved))

    def _one(self, reviewer: Reviewer, asking: list[bool]) -> Reviewer:
        for key in (reviewer.login, reviewer.email):
            found = self.known.get(key.casefold()) if key else None
            if found is not None:
                return replace(reviewer, slack_id=found)
        if reviewer.email is None or not asking[0]:
            return reviewer
        found = self._ask(reviewer, reviewer.email.casefold(), asking)
        return replace(reviewer, slack_id=found) if found else reviewer

    def _ask(self, reviewer: Reviewer, email: str, asking: list[bool]) -> str | None:
        """The member id by email: from the cache, else one lookup (cached when final)."""
        key = (self._workspace, email)
        with _lock:
            if self._workspace in _refused:
                asking[0] = False
                return None
            if key in _cache:
                return _cache[key]
        assert self._lookup is not None
        try:
            found = self._lookup(email)
        except LookupFailed as exc:
            asking[0] = False
            with _lock:
                if exc.final == "workspace":
                    _refused.add(self._workspace)
            log.debug(
                "slack sink %s: users.lookupByEmail could not resolve suggested reviewer %s "
                "(%s); shown by name, not mentioned — map them under people: in the config, "
                "or give the Slack app the users:read.email scope",
                self._sink,
                reviewer.login or reviewer.name or "?",
                exc.code,
                extra={"event": "reviewer_lookup_failed", "sink": self._sink},
            )
            return None
        with _lock:
            _cache[key] = found
        return found


def forget() -> None:
    """Empty the process's lookups (tests)."""
    with _lock:
        _cache.clear()
        _refused.clear()
