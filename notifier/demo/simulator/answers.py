"""One request as the simulated PostHog's endpoints see it, and their answer, without HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from notifier.demo.simulator.facts import _error

__all__ = ["Answer", "ApiRequest", "BadBody", "json_object"]


@dataclass(frozen=True)
class ApiRequest:
    """One request as the endpoints see it; ``number`` counts the requests received so far."""

    method: str
    path: str
    raw_query: str
    host: str
    query: dict[str, str]
    authorization: str | None
    number: int
    body: bytes = b""


@dataclass
class Answer:
    """A status, a JSON payload and extra headers."""

    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


class BadBody(Exception):
    """A request body PostHog refuses; ``answer`` is what it sends back."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.payload)
        self.answer = answer


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``), or ``BadBody`` with DRF's
    400: ``parse_error`` for bytes that are not JSON, ``invalid`` for JSON that is no object."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        detail = f"JSON parse error - {exc}"
        raise BadBody(Answer(400, _error("validation_error", "parse_error", detail))) from None
    if not isinstance(data, dict):
        detail = f"Invalid data. Expected a dictionary, but got {type(data).__name__}."
        body_ = _error("validation_error", "invalid", detail, "non_field_errors")
        raise BadBody(Answer(400, body_))
    return data
