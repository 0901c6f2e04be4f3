"""A report's signals (PostHog V6: ``GET …/signals/reports/{id}/signals/``), read purely: the
answer → its signals → the session recordings they point at.

``parse_signals`` turns the answer into its list of signals or raises ``SourceError``;
``read_recordings`` reads any signals into up to ``MAX_RECORDINGS`` recordings and never
raises. Only ``session_replay`` signals with a usable ``extra.session_id`` count: their
``segment_title``, ``problem_type``, ``start_time``/``end_time`` (the segment) and, when PostHog
sends it, ``session_start_time`` (the recording's start, from which a replay link's ``t``
counts). No I/O here: ``notifier.posthog.client`` does the HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from notifier.core.events import Recording
from notifier.core.times import parse_instant
from notifier.posthog.parse import MAX_RECORDINGS, SESSION_ID, invalid, text, time_value

SESSION_REPLAY: Final = "session_replay"
#: A problem type goes into a message as a word or two: PostHog's are short snake_case names.
_PROBLEM_CHARS: Final = 40


def parse_signals(body: Any, project_id: int, report_id: str) -> tuple[Any, ...]:
    """The signals of a ``/signals/`` answer (``{"report": {...}, "signals": [...]}``), as
    served; ``SourceError`` when it is not one. Items are not read here."""
    if not isinstance(body, Mapping) or not isinstance(body.get("signals"), list):
        raise invalid(
            project_id,
            f"the signals of report {report_id[:100]} are not a JSON object with a 'signals' list",
        )
    return tuple(body["signals"])


def _problem(value: Any) -> str | None:
    found = text(value, _PROBLEM_CHARS)
    return found if found is None or found.replace("_", "").isalnum() else None


def _recording(signal: Any) -> tuple[datetime | None, Recording] | None:
    """A session_replay signal's recording and when the signal was made; None for any other
    signal or one without a usable session id."""
    if not isinstance(signal, Mapping) or signal.get("source_product") != SESSION_REPLAY:
        return None
    extra = signal.get("extra")
    if not isinstance(extra, Mapping):
        return None
    session = extra.get("session_id")
    if not isinstance(session, str) or not SESSION_ID.fullmatch(session):
        return None
    recording = Recording(
        session_id=session,
        text=text(signal.get("content")),
        start_time=time_value(extra.get("start_time")),
        end_time=time_value(extra.get("end_time")),
        title=text(extra.get("segment_title")),
        problem_type=_problem(extra.get("problem_type")),
        session_start=time_value(extra.get("session_start_time")),
    )
    return parse_instant(signal.get("timestamp")), recording


def read_recordings(signals: Iterable[Any]) -> tuple[Recording, ...]:
    """Up to ``MAX_RECORDINGS`` recordings of distinct sessions from a report's signals, newest
    first (by ``timestamp`` when every session-replay signal has a readable one, else in the
    order served). Any JSON values: other signals and unusable ones are skipped; never raises.
    """
    found = [r for r in (_recording(s) for s in signals) if r is not None]
    if found and all(moment is not None for moment, _ in found):
        found.sort(key=lambda f: f[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    recordings: list[Recording] = []
    for _, recording in found:
        if len(recordings) == MAX_RECORDINGS:
            break
        if all(r.session_id != recording.session_id for r in recordings):
            recordings.append(recording)
    return tuple(recordings)
