"""The SQLite file itself: one connection per thread, write transactions, reads, and the
``StateError`` every failure becomes.

Each thread gets its own connection; WAL mode lets the delivery threads read while a cycle
writes, and ``synchronous=FULL`` makes a committed transaction survive a power cut. A write
transaction (``_write``) is all or nothing: on any error it is rolled back and the original
error is reported, naming the file and what was being done. Times are Unix seconds (float).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from notifier.core.errors import StateError
from notifier.state.schema import migrate

WAL_LIMIT: Final = 4 * 1024 * 1024


def _state_error(path: Path, exc: sqlite3.Error, doing: str) -> StateError:
    if path.is_dir():
        return StateError(
            f"state database {path}: cannot {doing}: it is a directory; point state.path at a "
            f"file (e.g. {path / 'notifier-state.db'})"
        )
    kept = "; nothing of this cycle was kept" if doing == "save the cycle" else ""
    return StateError(
        f"state database {path}: cannot {doing}: {exc}. Check that state.path is on a writable "
        f"volume with free space{kept}"
    )


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back what is still open, never masking the error that got us here."""
    if conn.in_transaction:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def compact(data: Any) -> str:
    """``data`` as JSON without spaces, as stored in the TEXT columns."""
    return json.dumps(data, separators=(",", ":"))


def ids_of(ids: int | Sequence[int]) -> list[int]:
    """One id or several, as a list."""
    return [ids] if isinstance(ids, int) else list(ids)


class Database:
    """The connections to one SQLite file, created and migrated on open. Safe to share between
    threads; the base of every part of ``Store``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            blocker = next((p for p in self.path.parents if p.is_file()), None)
            reason = f"{blocker} is a file, not a directory" if blocker else exc.strerror
            raise StateError(
                f"state directory {self.path.parent} cannot be created: {reason}; "
                "point state.path at a writable directory"
            ) from exc
        with self._write("open and migrate") as conn:
            migrate(conn, self.path)

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened (WAL, full sync) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # WAL shrinks back
            except sqlite3.Error as exc:
                raise _state_error(self.path, exc, "open it") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back on any error;
        a database error becomes a ``StateError`` saying what could not be ``doing``."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # SQLITE_FULL, IOERR, BUSY and NOMEM may already have rolled the transaction back;
            # the original error is the one worth reporting either way.
            _rollback(conn)
            raise _state_error(self.path, exc, doing) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one query, on this thread's connection."""
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _state_error(self.path, exc, "read it") from exc

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file: 'ok' when sound."""
        return str(self._read("PRAGMA integrity_check")[0][0])
