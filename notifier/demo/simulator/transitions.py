"""V6's report writes as PostHog checks them: the body of a state change, and the moves people may
make (``posthog-today.md``, "Statuses and moves" and "Writing").

Pure functions: ``parse_state`` validates a ``state``/``bulk-state`` body (DRF's 400 bodies for bad
fields, ``{"error": …}`` for bad combinations) and ``refusal`` says why a move is not allowed
(PostHog's 409 sentence), or None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from notifier.demo.simulator.answers import Answer, BadBody
from notifier.demo.simulator.facts import (
    DISMISSAL_REASONS,
    LISTABLE_STATUSES,
    LIVE_STATUSES,
    _error,
    write_error,
)

__all__ = ["StateChange", "invalid", "parse_state", "refusal", "text_field"]

#: ``dismissal_note`` (and a feedback note) at most this long, as PostHog's serializer.
NOTE_MAX: Final = 4000
SNOOZE_MIN: Final = 1
SNOOZE_MAX: Final = 100_000
#: Statuses a report may be resolved from (or suppressed from, then resolved).
_RESOLVABLE: Final = ("ready", "pending_input")


@dataclass(frozen=True)
class StateChange:
    """A validated ``POST {id}/state/`` body."""

    state: str
    dismissal_reason: str | None = None
    dismissal_note: str | None = None
    snooze_for: int | None = None

    @property
    def dismisses(self) -> bool:
        """Whether the change writes a ``dismissal`` artefact (reason or note, on the way to
        ``suppressed`` or ``resolved``)."""
        has_text = self.dismissal_reason is not None or self.dismissal_note is not None
        return has_text and self.state in ("suppressed", "resolved")


def invalid(attr: str | None, code: str, detail: str) -> NoReturn:
    """Refuse the body with DRF's 400 ``validation_error`` for ``attr``."""
    raise BadBody(Answer(400, _error("validation_error", code, detail, attr)))


def _choice(body: Mapping[str, Any], attr: str, choices: tuple[str, ...], *, required: bool) -> Any:
    value = body.get(attr)
    if value is None:
        if required:
            if attr in body:
                invalid(attr, "null", "This field may not be null.")
            invalid(attr, "required", "This field is required.")
        return None
    if not isinstance(value, str) or value not in choices:
        invalid(attr, "invalid_choice", f'"{value}" is not a valid choice.')
    return value


def text_field(body: Mapping[str, Any], attr: str, max_length: int = NOTE_MAX) -> str | None:
    """An optional string of at most ``max_length`` characters (DRF's CharField)."""
    value = body.get(attr)
    if value is None:
        return None
    if not isinstance(value, str):
        invalid(attr, "invalid", "Not a valid string.")
    if len(value) > max_length:
        invalid(attr, "max_length", f"Ensure this field has no more than {max_length} characters.")
    return value


def _snooze(body: Mapping[str, Any]) -> int | None:
    value = body.get("snooze_for")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        invalid("snooze_for", "invalid", "A valid integer is required.")
    try:
        count = int(value)
    except ValueError:
        invalid("snooze_for", "invalid", "A valid integer is required.")
    if count < SNOOZE_MIN:
        detail = f"Ensure this value is greater than or equal to {SNOOZE_MIN}."
        invalid("snooze_for", "min_value", detail)
    if count > SNOOZE_MAX:
        detail = f"Ensure this value is less than or equal to {SNOOZE_MAX}."
        invalid("snooze_for", "max_value", detail)
    return count


def parse_state(body: Mapping[str, Any]) -> StateChange:
    """The state change a body asks for, or ``BadBody`` with PostHog's 400."""
    change = StateChange(
        state=_choice(body, "state", LISTABLE_STATUSES, required=True),
        dismissal_reason=_choice(body, "dismissal_reason", DISMISSAL_REASONS, required=False),
        dismissal_note=text_field(body, "dismissal_note"),
        snooze_for=_snooze(body),
    )
    if change.snooze_for is not None and change.state != "potential":
        message = "snooze_for can only be used with state 'potential'."
        raise BadBody(Answer(400, write_error(message)))
    if change.state == "suppressed" and change.dismissal_reason is None:
        message = "A dismissal_reason is required to suppress a report."
        raise BadBody(Answer(400, write_error(message)))
    return change


def _allowed(current: str, change: StateChange, suppressed_from: str | None) -> bool:
    target = change.state
    if target == "suppressed":
        return current in LIVE_STATUSES
    if target == "failed":
        return current in LIVE_STATUSES or current == "suppressed"
    if target == "resolved":
        return current in _RESOLVABLE or (
            current == "suppressed" and suppressed_from in _RESOLVABLE
        )
    if target == "potential":  # reopen, restore; a snooze from any live status too
        snoozable = change.snooze_for is not None and current in LIVE_STATUSES
        return current in ("resolved", "suppressed") or snoozable
    if target in ("ready", "pending_input"):  # restore
        return current == "suppressed"
    return False  # candidate, in_progress: PostHog's own moves, never a person's


def refusal(current: str, change: StateChange, suppressed_from: str | None = None) -> str | None:
    """PostHog's 409 sentence when a report in ``current`` may not make ``change``, else None.
    ``suppressed_from``: the status a suppressed report had before (resolving needs ready or
    pending_input there)."""
    if _allowed(current, change, suppressed_from):
        return None
    return f"Cannot transition report from {current} to {change.state}"
