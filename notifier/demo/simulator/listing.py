"""How ``FakePostHog`` pages and orders its listings.

DRF's limit/offset paging with absolute ``next``/``previous`` links, and each API version's
``ordering``: V1 and V2 have no tie-breaker (equal keys may come back in any order), V3 and later
end with ``id`` — except V6's default ordering (none asked for, or only unknown fields), which has
none either.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

__all__ = ["is_stable", "paginate", "sort_reports"]

_V2_ORDERING: Final = frozenset({"signal_count", "total_weight", "created_at", "updated_at"})
_V3_ORDERING: Final = _V2_ORDERING | {"status", "is_suggested_reviewer", "id"}
_V4_ORDERING: Final = _V3_ORDERING | {"priority"}
_V3_DEFAULT_ORDER: Final = ("-is_suggested_reviewer", "status", "-updated_at")
#: V6's default (no ``ordering``, or only unknown fields): an inbox order with no tie-breaker,
#: so reports with equal keys come back in any order, a different one on every request.
_V6_DEFAULT_ORDER: Final = ("-is_suggested_reviewer", "priority", "-total_weight")

_DEFAULT_LIMIT: Final = 100


def _sort_key(value: Any) -> tuple[int, Any]:
    """Postgres order: NULLS LAST ascending, NULLS FIRST descending (with ``reverse``)."""
    return (1, 0) if value is None else (0, value)


def _int_param(raw: str | None, *, strict: bool) -> int | None:
    """DRF's ``_positive_int``: None when missing or invalid."""
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    if value is None or value < 0 or (strict and value == 0):
        return None
    return value


def paginate(
    items: list[Any],
    *,
    base: str,
    raw_query: str,
    query: Mapping[str, str],
    count: int | None = None,
    max_limit: int | None = None,
) -> tuple[dict[str, Any], int]:
    """DRF's LimitOffsetPagination, links and all: the body and the offset served.

    ``base`` is the absolute URL of the listing without its query; ``raw_query`` is the query as
    sent (the links keep its other parameters) and ``query`` its parsed form. ``count``, when
    given, replaces ``len(items)`` as the count served and the one the links follow;
    ``max_limit`` caps ``limit`` as a server configured with DRF's ``max_limit`` does.
    """
    limit = _int_param(query.get("limit"), strict=True) or _DEFAULT_LIMIT
    if max_limit is not None:  # DRF's LimitOffsetPagination.max_limit
        limit = min(limit, max_limit)
    offset = _int_param(query.get("offset"), strict=False) or 0
    count = len(items) if count is None else count

    def link(**changes: int | None) -> str:
        params = parse_qs(raw_query, keep_blank_values=True)
        for key, value in changes.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = [str(value)]
        encoded = urlencode(sorted(params.items()), doseq=True)
        return f"{base}?{encoded}" if encoded else base

    next_link = None if offset + limit >= count else link(limit=limit, offset=offset + limit)
    if offset <= 0:
        previous = None
    elif offset - limit <= 0:
        previous = link(limit=limit, offset=None)
    else:
        previous = link(limit=limit, offset=offset - limit)
    results = items[offset : offset + limit] if offset <= count else []
    body = {"count": count, "next": next_link, "previous": previous, "results": results}
    return body, offset


def _ordering(version: int, query: Mapping[str, str]) -> tuple[list[str], bool]:
    """The ORDER BY terms and whether they end with a unique tie-breaker."""
    if version == 1:
        return ["-total_weight", "-updated_at"], False
    allowed = _V2_ORDERING if version == 2 else _V4_ORDERING if version >= 4 else _V3_ORDERING
    terms = [t.strip() for t in query.get("ordering", "").split(",") if t.strip()]
    valid = [t for t in terms if t.removeprefix("-") in allowed]
    if version == 2:
        return valid or ["-signal_count"], False
    if version >= 6 and not valid:
        return list(_V6_DEFAULT_ORDER), False
    return [*(valid or _V3_DEFAULT_ORDER), "id"], True


def is_stable(version: int, query: Mapping[str, str]) -> bool:
    """Whether the listing's order ends with a unique tie-breaker (a function of the data)."""
    return _ordering(version, query)[1]


def sort_reports(
    reports: list[dict[str, Any]],
    query: Mapping[str, str],
    *,
    api_version: int,
    tie_seed: int | None,
) -> list[Any]:
    """``reports`` in the order ``api_version`` lists them for ``query``.

    Without a unique tie-breaker (V1/V2, V6's default) the reports are first shuffled with
    ``tie_seed``, so equal keys come back in an order that changes with the seed; None keeps ties
    stable.
    """
    terms, stable = _ordering(api_version, query)
    result = list(reports)
    if not stable and tie_seed is not None:
        random.Random(tie_seed).shuffle(result)
    for term in reversed(terms):
        name = term.removeprefix("-")
        result.sort(key=lambda r: _sort_key(r.get(name)), reverse=term.startswith("-"))
    return result
