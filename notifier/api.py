"""PostHog's response bodies, read purely: bytes → JSON value → ``Page`` or ``Report``.

``decode_json`` turns bytes into a JSON value, ``parse_page`` a JSON value into a ``Page``,
``parse_retrieved`` into the ``Report`` asked for. Whatever the input, each returns or raises
``SourceError``, never anything else (the tests fuzz them); ``parse_report``, for one item,
raises only ``ValueError``. No I/O here: ``notifier.source`` does the HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from notifier.errors import SourceError, SourceErrorKind
from notifier.models import Report, item_version

_SKIP_REASON_CHARS: Final = 200


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
