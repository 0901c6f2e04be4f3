"""PostHog writes (``Writer``): a reader's action from Slack (``core.actions.Write``) carried out
in PostHog V6 — ``POST …/signals/reports/{id}/state/`` or a note at ``…/{id}/artefacts/`` —
then, after a state write, the note that names the real actor (PostHog credits every write to
the key's owner). That note is best effort: the move happened, so a failed note is a WARNING.

Writes go through the reads' session: the same key, retries (transient 5xx, timeouts, 429),
deadline and request budget, where they take the urgent lane (ahead of every waiting read).
Every failure is a ``WriteError`` whose ``reason`` a Slack user can read (the ephemeral reply
shows it), built from PostHog's two error shapes (``{"error"}`` for refused moves and bad
combinations, ``{type, code, detail, attr}`` for validation, scopes and 404s) and scrubbed of
secrets. Only V6 has writes: a server found to be older is refused without a request, and one
that answers like V4/V5 (405, or 404 for a report it still serves) is recognised as such.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import httpx

from notifier.core.actions import Write, note_body
from notifier.core.context import CycleContext
from notifier.core.errors import SourceError, SourceErrorKind, WriteError
from notifier.core.secrets import clip
from notifier.core.words import status_name
from notifier.posthog.errors import error_body
from notifier.posthog.paths import Paths
from notifier.posthog.session import Session

log = logging.getLogger(__name__)

__all__ = ["NOTE_AUTHOR", "NO_WRITE_API", "WRITE_DEADLINE", "Writer", "Writes"]

#: Seconds a write (with its retries, its budget wait and its note) may take: a reader waits.
WRITE_DEADLINE: Final = 30.0
#: The ``author`` of a follow-up note (``core.actions.write_for``'s default).
NOTE_AUTHOR: Final = "posthog-signal-notifier"
NO_WRITE_API: Final = "this PostHog has no write API; upgrade PostHog or remove `actions:`"
SCOPE_MISSING: Final = (
    "the notifier's PostHog key lacks the task:write scope; add it to the key "
    "(PostHog → Settings → Personal API keys)"
)
GONE: Final = "PostHog no longer has this report"
#: Refusals answered to the writer rather than raised by the session (401 and 403: the key;
#: 405: a server without writes).
_ANSWERED: Final = frozenset({400, 401, 403, 404, 405, 409})
_MOVE: Final = re.compile(r"Cannot transition report from (\w+) to (\w+)")
_PATHS: Final = {"state": "state/", "note": "artefacts/"}


class Writer:
    """Carries out ``Write``s through a session (shared with the reads)."""

    def __init__(self, session: Session, paths: Paths, has_writes: Callable[[int], bool]) -> None:
        """``has_writes(project_id)``: False once the project's server is known to be older
        than V6 (its reports at ``signal_reports/``, or no ``/signals/`` endpoint)."""
        self._session = session
        self._paths = paths
        self._has_writes = has_writes

    def write(
        self, cycle: CycleContext, report_id: str, write: Write, *, author: str = NOTE_AUTHOR
    ) -> dict[str, Any]:
        """PostHog's answer to ``write`` (the report for a state write, the artefact for a
        note), after the follow-up note if ``write.note``; ``WriteError`` when it failed."""
        project_id = cycle.project_id
        if write.kind not in _PATHS:
            raise ValueError(f"unknown write kind {write.kind!r}")
        if not self._has_writes(project_id):
            raise WriteError(NO_WRITE_API)
        base = self._paths.report(project_id, report_id)
        answer = self._post(cycle, base, _PATHS[write.kind], write.body)
        if write.note and write.kind == "state":
            try:
                self._post(cycle, base, _PATHS["note"], note_body(write.note, author))
            except WriteError as exc:
                log.warning(
                    "project %s: report %s was moved, but the note %r could not be added: %s",
                    project_id,
                    report_id,
                    write.note,
                    exc.reason,
                    extra={"event": "write_note_failed", "project_id": project_id},
                )
        return answer

    def _post(
        self, cycle: CycleContext, base: str, tail: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        project_id = cycle.project_id
        try:
            response = self._session.post(base + tail, body, cycle, accept=_ANSWERED)
        except SourceError as exc:
            raise failed(exc, cycle) from exc
        status = response.status_code
        if status == 405 or (status == 404 and self._still_served(cycle, base, response)):
            raise WriteError(NO_WRITE_API, status=status)
        if status >= 300:
            raise refusal(response, project_id)
        try:
            answer = self._session.decode(response, project_id)
        except SourceError as exc:
            raise WriteError(
                f"PostHog made the change but its answer could not be read ({exc})",
                status=status,
            ) from exc
        return answer if isinstance(answer, dict) else {}

    def _still_served(self, cycle: CycleContext, base: str, response: httpx.Response) -> bool:
        """Whether a write's 404 came from a server without writes (V4/V5 serve the report but
        not ``state/``): the report is asked for (one urgent GET)."""
        if "project" in _text(error_body(response) or {}).lower():
            return False  # "Project not found.": said by ``refusal``
        try:
            return self._session.get(base, {}, cycle, urgent=True).status_code < 300
        except SourceError as exc:
            raise failed(exc, cycle) from exc


class Writes:
    """``PostHogClient.write`` (a base of the client, over its session and paths, so that the
    client stays small)."""

    _session: Session
    _paths: Paths
    _cancel: threading.Event

    def asks_signals(self, project_id: int) -> bool:
        """The client's: whether the project's server is V6 as far as is known."""
        raise NotImplementedError

    def write(
        self,
        project_id: int,
        report_id: str,
        write: Write,
        *,
        cycle: CycleContext | None = None,
        author: str = NOTE_AUTHOR,
    ) -> dict[str, Any]:
        """Carry out a reader's action in PostHog: PostHog's answer (the report with its new
        status, or the note artefact); ``WriteError`` in words a reader can act on. Ahead of
        every waiting read in the budget; within ``WRITE_DEADLINE`` seconds unless ``cycle``
        (of this project) says otherwise."""
        if cycle is None:
            cycle = CycleContext(project_id, time.monotonic() + WRITE_DEADLINE, self._cancel)
        elif cycle.project_id != project_id:
            raise ValueError(f"a cycle of project {cycle.project_id} used for {project_id}")
        writer = Writer(self._session, self._paths, self.asks_signals)  # holds nothing
        return writer.write(cycle, report_id, write, author=author)


def _text(body: dict[str, Any]) -> str:
    """PostHog's words in either error shape, cut and scrubbed."""
    for key in ("error", "detail"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return clip(value.strip(), 300)
    return ""


def moved_words(text: str) -> str:
    """A refused move (409) in the card's status names; PostHog's text when it does not parse."""
    match = _MOVE.search(text)
    if match is None:
        return f"PostHog refused: {text}" if text else "PostHog refused the change (HTTP 409)"
    before, after = match.groups()
    if before == after:
        return f"PostHog says the report is already {status_name(after)}"
    return f"PostHog does not allow moving a {status_name(before)} report to {status_name(after)}"


def refusal(response: httpx.Response, project_id: int) -> WriteError:
    """The ``WriteError`` for PostHog's refusal of a write (400, 401, 403, 404, 409)."""
    status = response.status_code
    body = error_body(response) or {}
    text = _text(body)
    if status == 409:
        return WriteError(moved_words(text), status=status)
    if status in (401, 403):
        if "task:write" in text:
            return WriteError(SCOPE_MISSING, status=status)
        return WriteError(
            f"PostHog refused the notifier's key: {text or f'HTTP {status}'}", status=status
        )
    if status == 404:
        if "project" in text.lower():
            return WriteError(
                f"PostHog has no project {project_id} (or the key may not see it); check "
                "posthog.project_ids",
                status=status,
            )
        return WriteError(GONE, status=status)
    attr = body.get("attr")
    words = f"{attr}: {text}" if isinstance(attr, str) and attr else text or f"HTTP {status}"
    return WriteError(f"PostHog refused the change: {words}", status=status)


def failed(exc: SourceError, cycle: CycleContext) -> WriteError:
    """The ``WriteError`` for a write the session gave up on (after its retries)."""
    if cycle.cancel.is_set():
        return WriteError("the notifier is stopping — try again in a minute", retryable=True)
    status = exc.status_code
    if exc.kind is SourceErrorKind.THROTTLED and status is None:  # our own budget said no
        return WriteError(
            "the notifier's PostHog request budget has no room for this now — try again in a "
            "minute",
            retryable=True,
        )
    if status == 429:
        return WriteError(
            "PostHog is rate limiting the notifier's key (HTTP 429) — try again in a minute",
            status=status,
            retryable=True,
        )
    if exc.transient:
        seen = f"HTTP {status}" if status is not None else "no answer"
        return WriteError(
            f"PostHog is unreachable ({seen}) — try again in a minute",
            status=status,
            retryable=True,
        )
    return WriteError(f"the write to PostHog failed: {exc}", status=status)
