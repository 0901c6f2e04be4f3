"""The PostHog request budget shared by replicas: one pair of token buckets per API key in the
database, so that adding replicas never adds requests (PostHog's limits are per key: 480 a
minute, 4,800 an hour). Each request of any replica takes a token from both, in one short
transaction that locks the key's row; a 429 pauses the key for everyone. The key is stored as
a hash, never as itself. Refills are computed from the database's clock.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from notifier.state.database import Database


def budget_key(api_key: str) -> str:
    """How a key's buckets are named in the database: a hash of it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


class SharedBudget(Database):
    """Token buckets per API key, shared through the database."""

    def take_request(self, key: str, per_minute: int, per_hour: int) -> float:
        """Take one request's tokens for ``key``: 0.0 when taken, else the seconds until one
        could be (nothing taken)."""
        now_sql, lock = self.dialect.now, self.dialect.for_update
        with self._write("take a request from the shared budget") as conn:
            now = float(conn.execute(f"SELECT {now_sql}").fetchone()[0])
            conn.execute(
                "INSERT INTO budget (key, minute_tokens, hour_tokens, at, paused_until) "
                "VALUES (?, ?, ?, ?, 0) ON CONFLICT (key) DO NOTHING",
                (key, float(per_minute), float(per_hour), now),
            )
            columns = "minute_tokens, hour_tokens, at, paused_until"
            minute, hour, at, paused = conn.execute(
                f"SELECT {columns} FROM budget WHERE key = ?{lock}",  # noqa: S608
                (key,),
            ).fetchone()
            elapsed = max(0.0, now - float(at))
            minute = min(float(per_minute), float(minute) + elapsed * per_minute / 60.0)
            hour = min(float(per_hour), float(hour) + elapsed * per_hour / 3600.0)
            wait = max(
                float(paused) - now,
                (1 - minute) * 60.0 / per_minute if minute < 1 - 1e-9 else 0.0,
                (1 - hour) * 3600.0 / per_hour if hour < 1 - 1e-9 else 0.0,
            )
            if wait > 0:
                return wait
            conn.execute(
                "UPDATE budget SET minute_tokens = ?, hour_tokens = ?, at = ? WHERE key = ?",
                (minute - 1, hour - 1, now, key),
            )
            return 0.0

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
