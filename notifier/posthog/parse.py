"""PostHog's response bodies, read purely: bytes → JSON value → ``Page``, ``Report`` or
``Enrichment``.

``decode_json`` turns bytes into a JSON value, ``parse_page`` a JSON value into a ``Page``,
``parse_retrieved`` into the ``Report`` asked for, ``parse_artefact_page`` into an
``ArtefactPage``. Whatever the input, each returns or raises ``SourceError``, never anything else
(the tests fuzz them); ``parse_report``, for one item, raises only ``ValueError``;
``parse_enrichment`` reads any artefacts into an ``Enrichment`` and never raises. No I/O here:
``notifier.posthog.client`` does the HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from notifier.core.errors import SourceError, SourceErrorKind
from notifier.core.events import NO_ENRICHMENT, Enrichment, Recording, Reviewer
from notifier.core.report import Report, item_version
from notifier.core.times import parse_instant

_SKIP_REASON_CHARS: Final = 200

#: Recordings a message shows at most (newest first).
MAX_RECORDINGS: Final = 3
#: Untrusted text kept from an artefact (a segment's description, a judgment's explanation):
#: renderers cut it shorter; this bounds what the outbox stores.
ARTEFACT_TEXT_CHARS: Final = 1000
_TIME_CHARS: Final = 64
#: A session id goes into a URL path (``/replay/{session_id}``): PostHog's are UUIDs; anything
#: that is not a short run of unreserved URL characters is not used.
SESSION_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}", re.ASCII)
VIDEO_SEGMENT: Final = "video_segment"
PRIORITY_JUDGMENT: Final = "priority_judgment"
ACTIONABILITY_JUDGMENT: Final = "actionability_judgment"
SUGGESTED_REVIEWERS: Final = "suggested_reviewers"
#: Suggested reviewers kept from a report (PostHog suggests a few); a login, name or email
#: longer than ``_PERSON_CHARS`` is not one.
MAX_REVIEWERS: Final = 10
_PERSON_CHARS: Final = 254


@dataclass(frozen=True, slots=True)
class Page:
    """One listing page as PostHog sent it, parsed.

    ``reports`` in the order served (an id may repeat); ``skipped`` says why each unreadable item
    was left out; ``items`` is how many items ``results`` held (the offset advances by it);
    ``count`` is the server's total when it sent a usable one; ``has_next`` is ``next`` read only
    as "there is more" (it is never followed).
    """

    reports: tuple[Report, ...]
    skipped: tuple[str, ...]
    items: int
    count: int | None
    has_next: bool
    #: Every usable item in the order served, as ``(id, updated_at, report)``; ``report`` is
    #: None for an item ``known`` says is unchanged (it was not parsed).
    served: tuple[tuple[str, str | None, Report | None], ...] = ()


def invalid(project_id: int, message: str) -> SourceError:
    """An ``INVALID_RESPONSE`` error for the project."""
    return SourceError(
        f"project {project_id}: {message}",
        kind=SourceErrorKind.INVALID_RESPONSE,
        project_id=project_id,
    )


def decode_json(
    content: bytes, project_id: int, *, status: int = 200, content_type: str | None = None
) -> Any:
    """A body as a JSON value; ``SourceError`` when it is not JSON (an HTML page, a cut body)."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        kind = content_type or "no content type"
        cut = " cut short or corrupt;" if content_type and "json" in content_type else ""
        raise invalid(
            project_id,
            f"PostHog's answer is not JSON (HTTP {status}, {kind}, {len(content)} bytes;{cut} "
            f"{type(exc).__name__}); usually a proxy or login page answering instead of "
            "PostHog: check that posthog.host is the PostHog app origin (not *.i.posthog.com)",
        ) from exc


def _count(value: Any) -> int | None:
    """DRF's ``count``, tolerating a numeric string; None when unusable."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:  # not an integer, or too many digits to convert
            return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None


def parse_report(item: Any) -> Report:
    """One API item as a ``Report``; ``ValueError`` for anything unreadable (never another
    exception, whatever JSON value ``item`` is)."""
    try:
        return Report.from_api(item)
    except ValueError:
        raise
    except (ArithmeticError, RecursionError) as exc:  # e.g. a number too large for a float
        report_id = item.get("id") if isinstance(item, Mapping) else None
        which = f"report {report_id}" if isinstance(report_id, str) else "a report"
        raise ValueError(f"{which} could not be read ({type(exc).__name__}: {exc})") from exc


def _unchanged(item: Any, known: Mapping[str, tuple[str, bool]]) -> tuple[str, str | None] | None:
    """``(id, updated_at)`` when the item is a usable report whose version equals its listed
    snapshot's (so it need not be parsed); None when it must be parsed."""
    if not isinstance(item, Mapping):
        return None
    report_id, status = item.get("id"), item.get("status")
    if not (isinstance(report_id, str) and report_id.strip()):
        return None
    if not (isinstance(status, str) and status):
        return None
    seen = known.get(report_id)
    if seen is None or not seen[1]:
        return None
    try:
        if item_version(item) != seen[0]:
            return None
    except (ArithmeticError, RecursionError, ValueError):
        return None  # parse_report says what is wrong with it
    updated = item.get("updated_at")
    return report_id, updated if isinstance(updated, str) else None


def parse_page(
    body: Any, project_id: int, known: Mapping[str, tuple[str, bool]] | None = None
) -> Page:
    """A listing page's JSON value as a ``Page``; ``SourceError`` when it is not a page at all.

    Items that are not readable reports (no ``id``, no ``status``, not an object…) are skipped
    and named in ``Page.skipped``; they never fail the page. With ``known`` (the snapshot's
    ``id → (version, listed)``), items whose version is unchanged are only listed in ``served``:
    a quiet cycle builds no ``Report`` at all.
    """
    if not isinstance(body, Mapping):
        raise invalid(
            project_id,
            f"PostHog's answer is a JSON {type(body).__name__}, not an object; is posthog.host "
            "the PostHog app origin?",
        )
    results = body.get("results")
    if not isinstance(results, list):
        raise invalid(project_id, "a listing page has no 'results' list")
    reports: list[Report] = []
    skipped: list[str] = []
    served: list[tuple[str, str | None, Report | None]] = []
    for item in results:
        same = _unchanged(item, known) if known else None
        if same is not None:
            served.append((*same, None))
            continue
        try:
            report = parse_report(item)
        except ValueError as exc:
            skipped.append(str(exc)[:_SKIP_REASON_CHARS])
            continue
        reports.append(report)
        served.append((report.id, report.updated_at, report))
    return Page(
        reports=tuple(reports),
        skipped=tuple(skipped),
        items=len(results),
        count=_count(body.get("count")),
        has_next=bool(body.get("next")),
        served=tuple(served),
    )


def parse_retrieved(body: Any, project_id: int, report_id: str) -> Report:
    """The JSON value of a retrieve as a ``Report``; ``SourceError`` when it is not the report
    asked for."""
    try:
        report = parse_report(body)
    except ValueError as exc:
        raise invalid(project_id, f"report {report_id} could not be read: {exc}") from exc
    if report.id != report_id:
        raise invalid(
            project_id, f"fetching report {report_id} answered with report {report.id[:100]}"
        )
    return report


# ------------------------------------------------------------------------------ artefacts


@dataclass(frozen=True, slots=True)
class ArtefactPage:
    """One answer of a report's artefacts endpoint: its items as served (any JSON values,
    newest first) and whether there is more (V4+ pages; V1–V3 answer everything at once)."""

    items: tuple[Any, ...]
    has_next: bool


def parse_artefact_page(body: Any, project_id: int, report_id: str) -> ArtefactPage:
    """An artefacts answer (``{"results": [...], "count": n}``, plus ``next`` from V4) as an
    ``ArtefactPage``; ``SourceError`` when it is not one. Items are not read here."""
    if not isinstance(body, Mapping) or not isinstance(body.get("results"), list):
        raise invalid(
            project_id,
            f"the artefacts of report {report_id[:100]} are not a JSON object with a "
            "'results' list",
        )
    return ArtefactPage(items=tuple(body["results"]), has_next=bool(body.get("next")))


def text(value: Any, limit: int = ARTEFACT_TEXT_CHARS) -> str | None:
    """A non-empty string, trimmed and bounded (an ellipsis marks the cut); else None."""
    if not isinstance(value, str):
        return None
    found = value.strip()
    if len(found) > limit:
        found = found[: limit - 1].rstrip() + "…"
    return found or None


def time_value(value: Any) -> str | None:
    """A segment's start or end as PostHog sent it: a timestamp, or a finite number of
    seconds; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value) if abs(value) < 1e15 else None  # also rules out inf and nan
    return text(value, _TIME_CHARS)


def _typed(items: Iterable[Any]) -> list[tuple[str, Any]]:
    """``(type, content)`` of the items an enrichment reads, newest first: in the order served
    (PostHog serves artefacts newest first), or by ``created_at`` when every one has a readable
    one. A content that is not an object reads as ``{}`` (what PostHog sends for unparseable
    content), but for ``suggested_reviewers``, whose content is a list (else ``[]``)."""
    wanted = (VIDEO_SEGMENT, PRIORITY_JUDGMENT, ACTIONABILITY_JUDGMENT, SUGGESTED_REVIEWERS)
    found: list[tuple[datetime | None, str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("type") not in wanted:
            continue
        content = item.get("content")
        if item["type"] == SUGGESTED_REVIEWERS:
            content = content if isinstance(content, list) else []
        elif not isinstance(content, Mapping):
            content = {}
        found.append((parse_instant(item.get("created_at")), item["type"], content))
    if found and all(moment is not None for moment, _, _ in found):
        found.sort(key=lambda f: f[0] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [(kind, content) for _, kind, content in found]


def parse_enrichment(items: Iterable[Any]) -> Enrichment:
    """What a report's artefacts add to its message: up to ``MAX_RECORDINGS`` recordings of
    distinct sessions, newest first (``video_segment`` items whose ``session_id`` is a usable
    id; ``text`` is the segment's own ``content`` description, trimmed), and the explanation of
    the latest ``priority_judgment`` and the latest ``actionability_judgment`` (None when that
    latest one has none: an older one may explain another verdict), and the reviewers of the
    latest ``suggested_reviewers``.

    Any JSON values at all: unknown types, missing fields, ``content`` ``{}`` are skipped or
    read as absent; never raises.
    """
    recordings: list[Recording] = []
    sessions: set[str] = set()
    explanations: dict[str, str | None] = {}
    reviewers: tuple[Reviewer, ...] | None = None  # of the latest suggested_reviewers
    for kind, content in _typed(items):
        if kind == SUGGESTED_REVIEWERS:
            reviewers = _reviewers(content) if reviewers is None else reviewers
            continue
        if kind != VIDEO_SEGMENT:
            explanations.setdefault(kind, text(content.get("explanation")))
            continue
        session = content.get("session_id")
        if len(recordings) >= MAX_RECORDINGS or not isinstance(session, str):
            continue
        if session in sessions or not SESSION_ID.fullmatch(session):
            continue
        sessions.add(session)
        recordings.append(
            Recording(
                session_id=session,
                text=text(content.get("content")),
                start_time=time_value(content.get("start_time")),
                end_time=time_value(content.get("end_time")),
            )
        )
    enrichment = Enrichment(
        recordings=tuple(recordings),
        priority_explanation=explanations.get(PRIORITY_JUDGMENT),
        actionability_explanation=explanations.get(ACTIONABILITY_JUDGMENT),
        reviewers=reviewers or (),
    )
    return NO_ENRICHMENT if enrichment == NO_ENRICHMENT else enrichment


def _person(value: Any) -> str | None:
    """A login, name or email: one line, not blank, not too long; else None."""
    found = text(value, _PERSON_CHARS + 1)
    if found is None or len(found) > _PERSON_CHARS or "\n" in found:
        return None
    return found


def _reviewers(content: list[Any]) -> tuple[Reviewer, ...]:
    """A ``suggested_reviewers`` content (``[{github_login, github_name, user: {email,
    first_name, last_name} | null}, …]``) as at most ``MAX_REVIEWERS`` reviewers, one per
    login or email; entries naming nobody are skipped."""
    found: list[Reviewer] = []
    seen: set[str] = set()
    for entry in content:
        if not isinstance(entry, Mapping):
            continue
        raw = entry.get("user")
        user: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        full = " ".join(
            p for p in (_person(user.get("first_name")), _person(user.get("last_name"))) if p
        )
        login, email = _person(entry.get("github_login")), _person(user.get("email"))
        key = (login or email or "").casefold()
        if not key or key in seen:
            continue
        seen.add(key)
        name = _person(full) or _person(entry.get("github_name"))
        found.append(Reviewer(login=login, name=name, email=email))
        if len(found) >= MAX_REVIEWERS:
            break
    return tuple(found)


def judgments_found(items: Sequence[Any]) -> bool:
    """Whether the latest judgment of each kind is among ``items``: reading stops there (issue
    12: one artefacts request for a report with many). Suggested reviewers are taken from the
    pages read; older ones are not sought (a second request for every busy report)."""
    kinds = {kind for kind, _ in _typed(items)}
    return {PRIORITY_JUDGMENT, ACTIONABILITY_JUDGMENT} <= kinds


def artefacts_suffice(items: Sequence[Any]) -> bool:
    """Whether older artefacts need not be read: ``MAX_RECORDINGS`` recordings and a latest
    judgment of each kind are already among ``items``."""
    if not judgments_found(items):
        return False
    return len(parse_enrichment(items).recordings) >= MAX_RECORDINGS
