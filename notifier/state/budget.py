"""The PostHog request budget shared by replicas: one pair of token buckets per API key in the
database, so that adding replicas never adds requests (PostHog's limits are per key: 480 a
minute, 4,800 an hour). Each request of any replica takes a token from both, in one
conditional ``UPDATE`` of the key's row (one round trip); a 429 pauses the key for everyone.
The key is stored as a hash, never as itself. Refills are computed from the database's clock.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol

from notifier.state.database import Database
from notifier.state.dialect import Dialect

#: Tokens are floats refilled continuously: a bucket this close to one token has one.
_EPSILON = 1e-9


@functools.lru_cache(maxsize=2)
def _take_sql(dialect: Dialect) -> str:
    """The conditional take: both buckets refilled to the statement's time, one token taken
    from each when both have one and the key is not paused (parameters ``key``, ``per_minute``,
    ``per_hour``)."""
    now, greatest, least = dialect.statement_now, dialect.greatest, dialect.least
    elapsed = f"{greatest}(0.0, {now} - at)"
    minute = f"{least}(:per_minute, minute_tokens + {elapsed} * :per_minute / 60.0)"
    hour = f"{least}(:per_hour, hour_tokens + {elapsed} * :per_hour / 3600.0)"
    return (
        f"UPDATE budget SET minute_tokens = {minute} - 1, hour_tokens = {hour} - 1, "  # noqa: S608
        f"at = {greatest}(at, {now}) "
        f"WHERE key = :key AND paused_until <= {now} "
        f"AND {minute} >= 1 - {_EPSILON} AND {hour} >= 1 - {_EPSILON}"
    )


def budget_key(api_key: str) -> str:
    """How a key's buckets are named in the database: a hash of it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class SharedBudget(Database):
    """Token buckets per API key, shared through the database."""

    def take_request(self, key: str, per_minute: int, per_hour: int) -> float:
        """Take one request's tokens for ``key``: 0.0 when taken, else the seconds until one
        could be (nothing taken).

        Taking is one conditional ``UPDATE`` (one round trip on PostgreSQL, atomic on its own:
        the row is locked and the condition re-checked against any concurrent take), since it
        runs before every PostHog request, on a thread that competes with page parsing."""
        taken = self._write_one(
            _take_sql(self.dialect),
            {"key": key, "per_minute": per_minute, "per_hour": per_hour},
            "take a request from the shared budget",
        )
        if taken:
            return 0.0
        row = self._read(
            f"SELECT minute_tokens, hour_tokens, at, paused_until, {self.dialect.now} "  # noqa: S608
            "FROM budget WHERE key = ?",
            (key,),
        )
        if not row:  # the key's first request: its buckets start full
            self._write_one(
                "INSERT INTO budget (key, minute_tokens, hour_tokens, at, paused_until) "  # noqa: S608
                f"VALUES (?, ?, ?, {self.dialect.now}, 0) ON CONFLICT (key) DO NOTHING",
                (key, float(per_minute), float(per_hour)),
                "start the shared budget",
            )
            return self.take_request(key, per_minute, per_hour)
        minute, hour, at, paused, now = (float(value) for value in row[0])
        elapsed = max(0.0, now - at)
        minute = min(float(per_minute), minute + elapsed * per_minute / 60.0)
        hour = min(float(per_hour), hour + elapsed * per_hour / 3600.0)
        return max(
            paused - now,
            (1 - minute) * 60.0 / per_minute if minute < 1 - _EPSILON else 0.0,
            (1 - hour) * 3600.0 / per_hour if hour < 1 - _EPSILON else 0.0,
            0.001,  # refused, even if a token came since: never "taken"
        )

    def pause_requests(self, key: str, seconds: float) -> None:
        """PostHog answered 429: no replica sends a request with ``key`` for ``seconds``."""
        now_sql = self.dialect.now
        with self._write("pause the shared budget") as conn:
            conn.execute(
                f"UPDATE budget SET paused_until = {now_sql} + ? "  # noqa: S608
                f"WHERE key = ? AND paused_until < {now_sql} + ?",
                (seconds, key, seconds),
            )


class _Buckets(Protocol):
    def take_request(self, key: str, per_minute: int, per_hour: int) -> float: ...

    def pause_requests(self, key: str, seconds: float) -> None: ...


class KeyBudget:
    """One API key's shared buckets, as the PostHog client's ``RequestBudget`` takes them."""

    def __init__(self, store: _Buckets, api_key: str, per_minute: int, per_hour: int) -> None:
        self._store = store
        self._key = budget_key(api_key)
        self._per_minute = per_minute
        self._per_hour = per_hour

    def take(self) -> float:
        return self._store.take_request(self._key, self._per_minute, self._per_hour)

    def pause(self, seconds: float) -> None:
        self._store.pause_requests(self._key, seconds)
