"""The simulated PostHog's data: projects, their reports and artefacts, how they change, and how
each API version shows them.

``ReportData`` is the first part of ``FakePostHog``: tests and the demo change the data through
its public methods (``add_report``, ``update_report``…) at any time, even between two pages of one
listing; the endpoints read it through the ``_``-methods at the end, under the same lock.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from notifier.demo.simulator.facts import (
    _ARTEFACT_V4_EXTRA,
    _KNOWN_KEYS,
    _V1_KEYS,
    _V5_EXTRA,
    _V5_KEYS,
    _V6_EXTRA,
    _V6_KEYS,
)
from notifier.demo.simulator.listing import is_stable, sort_reports

__all__ = ["ReportData"]

_CLOCK_START: Final = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)
_CLOCK_STEP: Final = timedelta(seconds=1, microseconds=1234)

#: A page of a listing cut from the ordered items: ``(body, offset)`` (``listing.paginate``).
Pager = Callable[[list[Any]], tuple[dict[str, Any], int]]


@dataclass
class _Project:
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    artefacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: V6: each report's signals (``GET …/signals/``) and the team's signals config.
    signals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: Bumped by every change to ``reports``; listings sorted under a stable ordering are
    #: cached per generation, so paging through N reports does not sort N reports per page.
    generation: int = 0
    sorted_cache: dict[tuple[Any, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def changed(self) -> None:
        self.generation += 1
        self.sorted_cache.clear()


class ReportData:
    """Projects, reports and artefacts, as PostHog stores them and as ``api_version`` serves them.

    Every version's fields are stored; ``api_version`` (1..6) decides which are served, and
    which reports a listing or a retrieve shows. ``unstable_ties``: V1/V2 orderings have no
    tie-breaker, so equal keys come back in a different order on every request. A fake clock
    gives every change its own ``created_at``/``updated_at``.
    """

    def __init__(self, projects: Iterable[int], *, api_version: int) -> None:
        self.api_version = api_version
        self.unstable_ties = True
        self._data_lock = threading.Lock()
        self._projects: dict[int, _Project] = {pid: _Project() for pid in projects}
        self._clock = _CLOCK_START
        self._serial = 0

    # ----------------------------------------------------------------- data, for tests and demo

    def _tick(self) -> str:
        self._clock += _CLOCK_STEP
        return self._clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _project(self, project_id: int) -> _Project:
        try:
            return self._projects[project_id]
        except KeyError:
            raise KeyError(f"FakePostHog has no project {project_id}; add_project() it") from None

    def _report(self, project_id: int, report_id: str) -> dict[str, Any]:
        try:
            return self._project(project_id).reports[report_id]
        except KeyError:
            raise KeyError(f"project {project_id} has no report {report_id}") from None

    def _render(self, report: Mapping[str, Any], *, listed: bool = False) -> dict[str, Any]:
        """The API's view of a stored report; ``listed``: as a list item (V6's ``metrics``
        items leave out their ``query`` there; a retrieve has it)."""
        version = self.api_version
        keys = _V6_KEYS if version >= 6 else _V5_KEYS if version >= 5 else _V1_KEYS
        out = {k: copy.deepcopy(report[k]) for k in keys if k in report}
        out.update({k: copy.deepcopy(v) for k, v in report.items() if k not in _KNOWN_KEYS})
        if listed and version >= 6 and isinstance(out.get("metrics"), list):
            out["metrics"] = [
                {k: v for k, v in m.items() if k != "query"} if isinstance(m, dict) else m
                for m in out["metrics"]
            ]
        return out

    def add_project(self, project_id: int) -> None:
        """Make ``project_id`` exist (no-op if it does)."""
        with self._data_lock:
            self._projects.setdefault(project_id, _Project())

    def add_report(self, project_id: int, **fields: Any) -> dict[str, Any]:
        """Store a report with PostHog-like defaults; return the API's view of it (a copy).

        Every version's fields are stored; the current ``api_version`` decides which are served
        (``relevant_user_count`` up to V4, the V5 extras from V5, ``collapsed_note_count`` from
        V6). Unknown fields are served by every version.
        """
        with self._data_lock:
            project = self._project(project_id)
            self._serial += 1
            now = self._tick()
            report: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "title": f"Simulated report {self._serial}",
                "summary": f"Signals clustered into simulated report {self._serial}.",
                "status": "ready",
                "total_weight": 1.0,
                "signal_count": 1,
                "relevant_user_count": 1,
                "created_at": now,
                "updated_at": now,
                "artefact_count": 0,
                **copy.deepcopy(_V5_EXTRA),
                **copy.deepcopy(_V6_EXTRA),
            }
            report.update(copy.deepcopy(fields))
            if report["signals_at_run"] is None and "signals_at_run" not in fields:
                report["signals_at_run"] = report["signal_count"]
            report["id"] = str(report["id"])
            project.reports[report["id"]] = report
            project.changed()
            project.artefacts.setdefault(report["id"], [])
            return self._render(report)

    def update_report(self, project_id: int, report_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields; ``updated_at`` moves on unless given. Returns the API's view."""
        with self._data_lock:
            report = self._report(project_id, report_id)
            report.update(copy.deepcopy(fields))
            self._projects[project_id].changed()
            if "updated_at" not in fields:
                report["updated_at"] = self._tick()
            return self._render(report)

    def delete_report(self, project_id: int, report_id: str) -> None:
        """Soft-delete: status ``deleted``, never listed, retrieve answers 404."""
        self.update_report(project_id, report_id, status="deleted")

    def reports(self, project_id: int) -> list[dict[str, Any]]:
        """Every stored report of the project (deleted and suppressed too), in creation order."""
        with self._data_lock:
            return [self._render(r) for r in self._project(project_id).reports.values()]

    def add_artefact(
        self,
        project_id: int,
        report_id: str,
        type: str,
        content: Any,
        *,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """Attach an artefact (the report's ``artefact_count`` follows, without moving its
        ``updated_at``); returns it as V4+ serve it. ``content`` is served as given (PostHog
        sends ``{}`` for content it cannot parse); ``created_at`` defaults to the fake's clock.
        Artefacts are served newest ``created_at`` first."""
        with self._data_lock:
            return self._append_artefact(project_id, report_id, type, content, created_at)

    def _append_artefact(
        self,
        project_id: int,
        report_id: str,
        type: str,
        content: Any,
        created_at: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """``add_artefact`` for a caller holding the lock; ``extra`` overrides V4 fields."""
        report = self._report(project_id, report_id)
        now = self._tick()
        artefact = {
            "id": str(uuid.uuid4()),
            "type": type,
            "content": copy.deepcopy(content),
            "created_at": created_at or now,
            **_ARTEFACT_V4_EXTRA,
            "updated_at": now,
            **extra,
        }
        self._project(project_id).artefacts[report_id].append(artefact)
        report["artefact_count"] = int(report.get("artefact_count") or 0) + 1
        self._project(project_id).changed()
        return copy.deepcopy(artefact)

    # ------------------------------------------------------------ the data as the API shows it

    def _project_ids(self) -> list[int]:
        with self._data_lock:
            return sorted(self._projects)

    def _has_project(self, project_id: int) -> bool:
        with self._data_lock:
            return project_id in self._projects

    def _shown(self, report: Mapping[str, Any] | None) -> bool:
        """Whether a retrieve shows the report: never deleted ones, and V1 only ``ready``."""
        if report is None or report["status"] == "deleted":
            return False
        return self.api_version != 1 or report["status"] == "ready"

    def _retrieve(self, pid: int, rid: str) -> dict[str, Any] | None:
        """The API's view of one report, or None when it answers 404."""
        with self._data_lock:
            report = self._projects[pid].reports.get(rid)
            return self._render(report) if report is not None and self._shown(report) else None

    def _report_page(
        self, pid: int, wanted: list[str], query: Mapping[str, str], page: Pager, *, seed: int
    ) -> tuple[dict[str, Any], int]:
        """One page of the report listing, cut by ``page`` and rendered in one go, so no change
        lands in the middle of it; ``seed`` shuffles V1/V2 ties (with ``unstable_ties``)."""
        with self._data_lock:
            ordered = self._ordered(self._projects[pid], wanted, query, seed)
            body, offset = page(ordered)
            body["results"] = [self._render(r, listed=True) for r in body["results"]]
        return body, offset

    def _ordered(
        self, project: _Project, wanted: list[str], query: Mapping[str, str], seed: int
    ) -> list[dict[str, Any]]:
        """The listed reports in the query's order (the caller holds the lock)."""
        tie_seed = seed if self.unstable_ties else None
        # Orderings that end with a unique tie-breaker (V3+, but not V6's default) make the order
        # a function of the data, computed once per change; other ties may shuffle every time.
        stable = is_stable(self.api_version, query) or not self.unstable_ties
        key = (
            self.api_version,
            query.get("status", ""),
            query.get("ordering", ""),
            self._include_all(query),
        )
        ordered = project.sorted_cache.get(key) if stable else None
        if ordered is None:
            listed = self._listed(project, wanted, include_all=self._include_all(query))
            ordered = sort_reports(listed, query, api_version=self.api_version, tie_seed=tie_seed)
            if stable:
                project.sorted_cache[key] = ordered
        return ordered

    def _include_all(self, query: Mapping[str, str]) -> bool:
        """V6's ``include_all_statuses=true``: the default listing shows ``suppressed`` too."""
        return self.api_version >= 6 and query.get("include_all_statuses", "").lower() == "true"

    def _count_listed(self, pid: int, wanted: list[str], query: Mapping[str, str]) -> int:
        """How many reports the listing would show (V6's ``count_only=true``)."""
        with self._data_lock:
            project = self._projects[pid]
            return len(self._listed(project, wanted, include_all=self._include_all(query)))

    def _listed(
        self, project: _Project, wanted: list[str], *, include_all: bool = False
    ) -> list[dict[str, Any]]:
        """The reports a listing shows: V1 only ``ready``; V2+ the filter, or all but hidden
        (``suppressed`` is shown with V6's ``include_all_statuses``; ``deleted`` never)."""
        stored = list(project.reports.values())
        if self.api_version == 1:
            return [r for r in stored if r["status"] == "ready"]
        hidden = {"deleted"} if wanted or include_all else {"deleted", "suppressed"}
        return [
            r for r in stored if r["status"] not in hidden and (not wanted or r["status"] in wanted)
        ]

    def _artefacts_of(self, pid: int, rid: str) -> list[dict[str, Any]] | None:
        """Copies of the report's artefacts, newest ``created_at`` first; None when the report
        is not shown (404)."""
        with self._data_lock:
            if not self._shown(self._projects[pid].reports.get(rid)):
                return None
            items = sorted(
                self._projects[pid].artefacts.get(rid, []),
                key=lambda a: str(a["created_at"]),
                reverse=True,
            )
            return copy.deepcopy(items)
