"""A signal report as the notifier keeps it: parsed from an API item, its version, and the links
to it in the PostHog app. Pure: parsing and hashing only.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

#: Fields whose change (status unchanged) makes an ``updated`` event, compared only when the
#: field is present in both copies: a PostHog upgrade that adds or drops a field is not a change.
#: Not ``artefact_count``: every note, commit, task run or check result moves it (without moving
#: ``updated_at``), which tells a person nothing; rules still match on it.
TRACKED_FIELDS: Final = (
    "title",
    "summary",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "priority",
    "actionability",
)
#: What a report's version covers besides its status and ``updated_at``: the tracked fields and
#: ``artefact_count``, so the stored copy follows the count (and versions stay what earlier
#: notifiers stored: an upgraded state is not re-parsed in full) though it makes no event.
VERSIONED_FIELDS: Final = (*TRACKED_FIELDS, "artefact_count")

_FLOAT_FIELDS: Final = frozenset({"total_weight"})
_INT_FIELDS: Final = frozenset({"signal_count", "relevant_user_count", "artefact_count"})
_MAX_EXACT: Final = 2**53  # larger counts are not real counts (and not exact as floats)
_STR_FIELDS: Final = frozenset(
    {"title", "summary", "priority", "actionability", "created_at", "updated_at"}
)


#: Every status PostHog documents, in every API version (``posthog-signals-api.md``): the
#: lifecycle, ``failed`` and ``suppressed``, and ``deleted`` (which listings leave out).
STATUSES: Final = (
    "potential",
    "candidate",
    "in_progress",
    "pending_input",
    "ready",
    "resolved",
    "failed",
    "suppressed",
    "deleted",
)


class _Missing:
    """The marker for a field the report does not have (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Turn frozen report data back into plain JSON-serialisable dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def _number(value: Any, kind: type[int] | type[float]) -> int | float | None:
    """Numbers as PostHog sends them, tolerating numeric strings; anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and kind is int:
        return value if abs(value) <= _MAX_EXACT else None
    if not isinstance(value, int | float | str):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):  # not a number, or one too big for a float
        return None
    if not math.isfinite(number):
        return None
    if kind is int:
        return int(number) if number.is_integer() else None
    return number


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


#: How each compared field is read from an API item (the same reading ``Report.from_api`` does).
_READERS: Final[Mapping[str, Any]] = {
    **dict.fromkeys(_STR_FIELDS, as_str),
    **dict.fromkeys(_FLOAT_FIELDS, lambda v: _number(v, float)),
    **dict.fromkeys(_INT_FIELDS, lambda v: _number(v, int)),
}


def item_version(item: Mapping[str, Any]) -> str:
    """``Report.from_api(item).version`` without building the report: the digest of the status,
    the versioned fields the item has and ``updated_at``. A listing compares every item's version
    with its snapshot and parses only those that differ, so this is the per-item cost of a cycle.
    """
    state: dict[str, Any] = {"status": item["status"]}
    for name in VERSIONED_FIELDS:
        if name in item:
            state[name] = _READERS[name](item[name])
    state["updated_at"] = as_str(item.get("updated_at"))
    blob = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Report:
    """One signal report as PostHog returned it; ``raw`` keeps every field, known or not."""

    id: str
    status: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    title: str | None = None
    summary: str | None = None
    total_weight: float | None = None
    signal_count: int | None = None
    relevant_user_count: int | None = None
    artefact_count: int | None = None
    priority: str | None = None
    actionability: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    _version: str | None = field(default=None, init=False, repr=False, compare=False)  # a cache

    @classmethod
    def from_api(cls, item: Any) -> Report:
        """Parse one API item. Raises ``ValueError`` when it has no usable ``id`` or ``status``."""
        if not isinstance(item, Mapping):
            raise ValueError(f"a report must be a JSON object, got {type(item).__name__}")
        report_id = item.get("id")
        if not isinstance(report_id, str) or not report_id.strip():
            raise ValueError("a report has no 'id'")
        status = item.get("status")
        if not isinstance(status, str) or not status:
            raise ValueError(f"report {report_id} has no 'status'")
        values: dict[str, Any] = {}
        for name in _STR_FIELDS:
            value = item.get(name)
            values[name] = value if isinstance(value, str) else None
        for name in _FLOAT_FIELDS:
            values[name] = _number(item.get(name), float)
        for name in _INT_FIELDS:
            values[name] = _number(item.get(name), int)
        return cls(id=report_id, status=status, raw=_freeze(dict(item)), **values)

    def get(self, name: str) -> Any:
        """A field by name: the parsed value for known fields, the raw one otherwise.

        Returns ``MISSING`` when the API did not send the field at all.
        """
        if name not in self.raw:
            return MISSING
        if name in ("id", "status") or name in _READERS:
            return getattr(self, name)
        return self.raw[name]

    def tracked(self) -> dict[str, Any]:
        """The compared fields the API sent, status included, as plain values."""
        out: dict[str, Any] = {"status": self.status}
        for name in TRACKED_FIELDS:
            value = self.get(name)
            if value is not MISSING:
                out[name] = value
        return out

    @property
    def version(self) -> str:
        """A short digest of what the diff compares, ``artefact_count`` and ``updated_at``: one
        report version."""
        if self._version is None:  # frozen, but a cache of its own data may be filled in
            object.__setattr__(self, "_version", item_version(self.raw))
        assert self._version is not None
        return self._version

    def to_json(self) -> dict[str, Any]:
        """The report as the API returned it, as plain JSON."""
        data: dict[str, Any] = thaw(self.raw)
        return data


@dataclass(frozen=True, slots=True)
class Links:
    """Where a human can look at a report in the PostHog app."""

    host: str

    def report(self, project_id: int, report_id: str) -> str:
        """The report's page, the same path PostHog's own Slack cards use."""
        return f"{self.host.rstrip('/')}/project/{project_id}/inbox/reports/{report_id}"

    def recording(self, project_id: int, session_id: str) -> str:
        """A session recording."""
        return f"{self.host.rstrip('/')}/project/{project_id}/replay/{session_id}"
