"""PostHog's facts, as ``FakePostHog`` serves them (see ``posthog-signals-api.md``).

Report statuses, the fields each API version serves, the artefact fields added in V4, the URL
prefixes, V6's vocabularies (dismissal reasons, problem types, the team config) and error bodies in
PostHog's two shapes: DRF's ``{type, code, detail, attr}`` and the writes' ``{"error": …}``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from notifier.core.report import STATUSES

__all__ = [
    "DISMISSAL_REASONS",
    "INVALID_KEY",
    "LISTABLE_STATUSES",
    "LIVE_STATUSES",
    "NOT_FOUND",
    "NO_KEY",
    "PROBLEM_TYPES",
    "PROJECT_NOT_FOUND",
    "REPORT_STATUSES",
    "SERVER_ERROR",
    "SIGNALS_CONFIG_DEFAULTS",
    "project_body",
    "throttled_body",
    "write_error",
]

REPORT_STATUSES: Final = STATUSES

_V1_KEYS: Final = (
    "id",
    "title",
    "summary",
    "status",
    "total_weight",
    "signal_count",
    "relevant_user_count",
    "created_at",
    "updated_at",
    "artefact_count",
)

#: V5's extra fields and their defaults, in the order of ``v5-report.json``.
_V5_EXTRA: Final[dict[str, Any]] = {
    "signals_at_run": None,  # filled with signal_count by add_report
    "charts": [],
    "metrics": [],
    "suggested_prompts": [],
    "priority": None,
    "actionability": None,
    "already_addressed": None,
    "dismissal_reason": None,
    "dismissal_note": None,
    "repo_slug": None,
    "is_suggested_reviewer": False,
    "source_products": [],
    "scout_name": None,
    "implementation_pr_url": None,
    "pull_requests": [],
    "implementation_pr_state": None,
    "implementation_pr_merged": False,
    "tracker_issue_url": None,
    "tracker_issue_reference": None,
    "tracker_issue_error": None,
    "work_state": "unclaimed",
    "assignee": None,
    "refund": None,
    "refund_ineligibility_reason": None,
    "billing_exempt_reason": None,
    "channel_id": None,
}
_V5_KEYS: Final = (
    *(k for k in _V1_KEYS[:6] if k != "relevant_user_count"),
    "signals_at_run",
    "created_at",
    "updated_at",
    "artefact_count",
    *(k for k in _V5_EXTRA if k != "signals_at_run"),
)
#: V6's extra fields and their defaults (``relevant_user_count`` stays gone).
_V6_EXTRA: Final[dict[str, Any]] = {"collapsed_note_count": 0}
_V6_KEYS: Final = (
    *_V5_KEYS[: _V5_KEYS.index("artefact_count") + 1],
    *_V6_EXTRA,
    *_V5_KEYS[_V5_KEYS.index("artefact_count") + 1 :],
)
_KNOWN_KEYS: Final = frozenset(_V1_KEYS) | frozenset(_V5_EXTRA) | frozenset(_V6_EXTRA)

#: The statuses a V6 ``status`` filter accepts (``deleted`` is answered with 400).
LISTABLE_STATUSES: Final = tuple(s for s in STATUSES if s != "deleted")
#: The live statuses: research and its results, neither finished nor dismissed.
LIVE_STATUSES: Final = ("potential", "candidate", "in_progress", "pending_input", "ready")
DISMISSAL_REASONS: Final = (
    "already_fixed",
    "report_unclear",
    "analysis_wrong",
    "wrong_repo",
    "wontfix_intentional",
    "wontfix_irrelevant",
    "fixed_outside_posthog",
    "pr_merged",
    "other",
)
PROBLEM_TYPES: Final = (
    "confusion",
    "abandonment",
    "blocking_exception",
    "non_blocking_exception",
    "failure",
)
#: ``GET /signals/config/`` of a project nobody configured (PostHog's ``SignalTeamConfig``).
SIGNALS_CONFIG_DEFAULTS: Final[dict[str, Any]] = {
    "default_autostart_priority": "P4",
    "default_slack_notification_channel": None,
    "autostart_enabled": None,
    "autostart_base_branches": {},
    "max_reports_per_day": None,
}

_ARTEFACT_V4_EXTRA: Final[dict[str, Any]] = {
    "claim_id": None,
    "pull_request_id": None,
    "updated_at": None,
    "actor_kind": "task",
    "actor_agent": None,
    "created_by": None,
    "task_id": None,
}

_LEGACY_PATH: Final = re.compile(
    r"^/api/projects/(?P<pid>[^/]+)/signal_reports(?:/(?P<rid>[^/]+))?(?P<art>/artefacts)?/?$"
)
_NEW_PATH: Final = re.compile(
    r"^/api/projects/(?P<pid>[^/]+)/signals/reports(?:/(?P<rid>[^/]+))?(?P<art>/artefacts)?/?$"
)
#: V6: everything under ``signals/``; ``sub`` is a report's action, ``config`` the team config.
_V6_PATH: Final = re.compile(
    r"^/api/projects/(?P<pid>[^/]+)/signals/(?:reports(?:/(?P<rid>[^/]+)"
    r"(?:/(?P<sub>artefacts|signals|state|claim|feedback))?)?|(?P<config>config))/?$"
)
_PROJECTS_PATH: Final = re.compile(r"^/api/projects/?$")
#: One project (``GET /api/projects/{id}/``, the same path in every version).
_PROJECT_PATH: Final = re.compile(r"^/api/projects/(?P<pid>[^/]+)/?$")
#: The organization every simulated project belongs to.
_ORGANIZATION: Final = "0190d8a2-5f6e-7c1b-9a3e-2b4c6d8e0f12"


def project_body(project_id: int, name: str) -> dict[str, Any]:
    """A project as ``GET /api/projects/{id}/`` answers it (a handful of PostHog's fields)."""
    return {
        "id": project_id,
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"posthog-project-{project_id}")),
        "organization": _ORGANIZATION,
        "api_token": f"phc_simulated{project_id:08d}",
        "name": name,
        "created_at": "2025-01-06T09:00:00Z",
        "timezone": "UTC",
        "is_demo": False,
    }


def _error(type_: str, code: str, detail: str, attr: str | None = None) -> dict[str, Any]:
    return {"type": type_, "code": code, "detail": detail, "attr": attr}


NOT_FOUND: Final = _error("invalid_request", "not_found", "Not found.")
PROJECT_NOT_FOUND: Final = _error("invalid_request", "not_found", "Project not found.")
NO_KEY: Final = _error(
    "authentication_error", "not_authenticated", "Authentication credentials were not provided."
)
INVALID_KEY: Final = _error(
    "authentication_error",
    "authentication_failed",
    "Personal API key found in request Authorization header is invalid.",
)
SERVER_ERROR: Final = _error("server_error", "error", "A server error occurred.")


def write_error(message: str) -> dict[str, Any]:
    """The body of a write PostHog refuses (400 bad data, 409 a move not allowed)."""
    return {"error": message}


def throttled_body(seconds: int) -> dict[str, Any]:
    """PostHog's (DRF's) 429 body; the wait is only in ``detail``."""
    unit = "second" if seconds == 1 else "seconds"
    return _error(
        "throttled_error",
        "throttled",
        f"Request was throttled. Expected available in {seconds} {unit}.",
    )


def _default_error(status: int) -> tuple[dict[str, Any], dict[str, str]]:
    if status == 400:
        return _error("validation_error", "invalid_input", "Invalid input."), {}
    if status in (401, 403):
        return dict(INVALID_KEY), {}
    if status == 404:
        return dict(NOT_FOUND), {}
    if status == 405:
        return _error("invalid_request", "method_not_allowed", "Method not allowed."), {}
    if status == 429:
        return throttled_body(1), {}
    if status == 503:
        detail = "Service temporarily unavailable, try again later."
        return _error("server_error", "service_unavailable", detail), {"Retry-After": "1"}
    if status >= 500:
        return dict(SERVER_ERROR), {}
    return _error("invalid_request", "error", f"Error {status}."), {}
