"""``Database``: what every part of the store (snapshots, the cycle commit, the outbox, living
messages, outages) stands on, whichever database holds the state — a write transaction
(``_write``), a read (``_read``), ``close``, and the ``name`` messages and per-sink locks use.
``sqlite.SqliteDatabase`` and ``postgres.PostgresDatabase`` implement it; the parts' SQL is the
same for both (``dialect``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from notifier.state.dialect import SQLITE, Connection, Dialect, Params


def compact(data: Any) -> str:
    """``data`` as JSON without spaces, as stored in the TEXT columns."""
    return json.dumps(data, separators=(",", ":"))


def ids_of(ids: int | Sequence[int]) -> list[int]:
    """One id or several, as a list."""
    return [ids] if isinstance(ids, int) else list(ids)


class Database:
    """The connections to the state database; safe to share between threads."""

    #: The database, for messages and the per-sink delivery locks: a file's path, or a
    #: PostgreSQL URL (which holds no password).
    name: str
    #: What differs in its SQL (``dialect``).
    dialect: Dialect = SQLITE

    def _write(self, doing: str) -> AbstractContextManager[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error; a
        database error becomes a ``StateError`` saying what could not be ``doing``."""
        raise NotImplementedError

    def _read(self, sql: str, params: Params = ()) -> list[Any]:
        """The rows of one query."""
        raise NotImplementedError

    def _write_one(self, sql: str, params: Params, doing: str) -> int:
        """One statement, atomic on its own: how many rows it changed. PostgreSQL runs it in
        one round trip (no ``BEGIN``/``COMMIT``), for the hottest small writes."""
        with self._write(doing) as conn:
            return int(conn.execute(sql, params).rowcount)

    def close(self) -> None:
        """Release every connection."""
        raise NotImplementedError
