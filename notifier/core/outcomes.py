"""How a poll cycle and a delivery attempt ended: the words the metrics count them under, the
logs print and the self-alerts act on."""

from __future__ import annotations

from enum import StrEnum

from notifier.core.errors import SourceError, SourceErrorKind, StateError


class PollOutcome(StrEnum):
    """How one project's poll cycle ended: done, skipped, or why it failed (PostHog's
    ``SourceErrorKind`` values, the state database, a bug)."""

    SUCCESS = "success"
    PAUSED = "paused"  # not attempted: the project waits after errors
    AUTH = SourceErrorKind.AUTH.value
    NOT_FOUND = SourceErrorKind.NOT_FOUND.value
    BAD_REQUEST = SourceErrorKind.BAD_REQUEST.value
    THROTTLED = SourceErrorKind.THROTTLED.value
    TRANSIENT = SourceErrorKind.TRANSIENT.value
    INVALID_RESPONSE = SourceErrorKind.INVALID_RESPONSE.value
    STATE_ERROR = "state_error"
    INTERNAL_ERROR = "internal_error"

    @classmethod
    def failed(cls, error: Exception) -> PollOutcome:
        """The outcome of a cycle that raised ``error``."""
        if isinstance(error, SourceError):
            return cls(error.kind.value)
        if isinstance(error, StateError):
            return cls.STATE_ERROR
        return cls.INTERNAL_ERROR  # a bug


class DeliveryOutcome(StrEnum):
    """How one delivery attempt (an entry, or a digest of several) ended."""

    DELIVERED = "delivered"
    RETRYING = "retrying"  # a transient failure: the entry waits for its next attempt
    DEAD = "dead"  # dead-lettered: permanent, or failing past delivery.give_up_after
