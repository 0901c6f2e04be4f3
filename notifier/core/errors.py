"""The notifier's exceptions: one root, a few meaningful children.

    NotifierError                  anything the notifier raises on purpose
    ├── ConfigError                the YAML is wrong; carries *every* problem found (exit 2)
    ├── SourceError                PostHog could not be listed or read (one project's cycle fails)
    ├── SinkError                  a delivery failed; ``permanent`` decides retry vs dead letter
    ├── WriteError                 PostHog refused or missed a write (a click's action)
    └── StateError                 the state database cannot be opened or written
        ├── LeaseLost              a write under a lease another replica has taken over
        └── StateDamagedError      it is damaged (or emptied): refused at start (exit 65)

Third-party exceptions (httpx, slack_sdk, sqlite3, yaml, pydantic) are translated into these at
the boundary with ``raise ... from``, so callers above the adapters only ever catch these.
Messages never contain secrets: adapters build them from status codes, PostHog's ``detail`` and
names, never from headers or URLs that carry credentials; and since a peer may echo a credential
in what it answers, every message is scrubbed when the error is constructed
(``core.secrets.scrub``: every configured secret and its derived forms), so an error is clean
wherever it goes — state, probes, notices, logs, the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from notifier.core.secrets import scrub


class NotifierError(Exception):
    """The root of every error the notifier raises on purpose. Its text arguments are scrubbed
    of every secret the process knows."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(arg) if isinstance(arg, str) else arg for arg in args))


class ConfigError(NotifierError):
    """The configuration is invalid. ``problems`` lists every problem, each with its key path."""

    def __init__(self, problems: Sequence[str], source: str = "config") -> None:
        self.problems = [scrub(p) for p in problems]
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: {count} {noun}:\n{lines}")


class SourceErrorKind(StrEnum):
    """Why PostHog could not be read; decides what the operator should do."""

    AUTH = "auth"  # 401/403: key invalid, missing scope, or no access to the project
    NOT_FOUND = "not_found"  # 404 on the project or on both API path prefixes
    BAD_REQUEST = "bad_request"  # 400: e.g. an unknown status in the filter
    THROTTLED = "throttled"  # 429
    TRANSIENT = "transient"  # 5xx, connection errors, timeouts
    INVALID_RESPONSE = "invalid_response"  # the body is not what the API documents


class SourceError(NotifierError):
    """Listing or reading a project's reports failed; nothing of that cycle is kept."""

    def __init__(
        self,
        message: str,
        *,
        kind: SourceErrorKind,
        project_id: int | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind = kind
        self.project_id = project_id
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed if simply tried again later."""
        return self.kind in (SourceErrorKind.TRANSIENT, SourceErrorKind.THROTTLED)


class SinkError(NotifierError):
    """A delivery failed. Permanent failures are dead-lettered at once, others retried."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
    ) -> None:
        self.permanent = permanent
        self.retry_after = retry_after
        super().__init__(message)


class WriteError(NotifierError):
    """A write to PostHog (a reader's action from Slack) was refused or could not be made.
    ``reason`` is in words the reader can act on (the ephemeral reply shows it); ``status`` is
    PostHog's HTTP status (None: no answer); ``retryable``: the same write may succeed later."""

    def __init__(self, reason: str, *, status: int | None = None, retryable: bool = False) -> None:
        self.reason = scrub(reason)
        self.status = status
        self.retryable = retryable
        super().__init__(self.reason)


class StateError(NotifierError):
    """The state database cannot be opened, migrated or written."""


class LeaseLost(StateError):
    """A write made under a lease this replica no longer holds (another took the unit over):
    refused, nothing of it kept. The new holder does the work."""


class StateDamagedError(StateError):
    """The state file cannot be used as it is — damaged, or emptied when starting afresh would
    notify every report again: restarting cannot fix it, a person must restore a backup or
    move the file away (the CLI exits 65, which the systemd unit does not restart)."""
