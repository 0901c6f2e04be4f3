"""The PostgreSQL backend (``state.url``): one psycopg connection per thread, write
transactions, reads, and the ``StateError`` every failure becomes.

The store's SQL is SQLite's; ``PgConnection`` hands it to psycopg with PostgreSQL's placeholders
(``dialect.postgres_sql``). Connections are in autocommit mode and a write is an explicit
``BEGIN … COMMIT`` (as with SQLite), at PostgreSQL's default isolation (read committed): what
keeps two replicas from writing the same project's or sink's rows is the lease they hold, not
the transaction. A connection that fails is dropped, and the next use opens a new one, so a
database restart costs the operations in flight, nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, Final

from notifier.core.errors import StateError
from notifier.state.database import Database
from notifier.state.dialect import POSTGRES, Cursor, Params, display, postgres_sql
from notifier.state.schema import migrate

if TYPE_CHECKING:
    import psycopg


def _pg() -> Any:
    """psycopg, imported when PostgreSQL is first used (a SQLite notifier never loads it)."""
    import psycopg  # noqa: PLC0415 - lazily, on purpose

    return psycopg


#: Seconds to wait for a connection before saying the database cannot be reached.
CONNECT_TIMEOUT: Final = 10
APPLICATION_NAME: Final = "posthog-signal-notifier"


class PgConnection:
    """A psycopg connection speaking the store's SQL (``dialect.Connection``)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Params = (), /) -> Cursor:
        return self.raw.execute(postgres_sql(sql), parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(postgres_sql(sql), list(parameters))
        return cursor


def _state_error(name: str, exc: psycopg.Error, doing: str) -> StateError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kept = "; nothing of this cycle was kept" if doing == "save the cycle" else ""
    return StateError(
        f"state database {name}: cannot {doing}: {detail}. Check that PostgreSQL is up and "
        f"reachable, and state.url and state.password{kept}"
    )


class PostgresDatabase(Database):
    """The connections to one PostgreSQL database, migrated on open (under an advisory lock).
    Safe to share between threads."""

    dialect = POSTGRES

    def __init__(self, url: str, *, password: str | None = None, read_only: bool = False) -> None:
        """``read_only``: the database as it is, not migrated, every transaction read-only
        (PostgreSQL refuses any write)."""
        self.url = url
        self.name = display(url)
        self._password = password
        self._read_only = read_only
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        if read_only:
            return
        try:
            with self._write("open and migrate") as conn:
                migrate(conn, POSTGRES, self.name)
        except BaseException:
            self.close()
            raise

    def _conn(self) -> psycopg.Connection[Any]:
        """This thread's connection, opened on first use (and again after a failure)."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            options: dict[str, Any] = {
                "autocommit": True,
                "connect_timeout": CONNECT_TIMEOUT,
                "application_name": APPLICATION_NAME,
            }
            if self._password is not None:
                options["password"] = self._password
            if self._read_only:
                options["options"] = "-c default_transaction_read_only=on"
            try:
                conn = _pg().connect(self.url, **options)
            except _pg().Error as exc:
                raise _state_error(self.name, exc, "connect") from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        """Forget a connection that failed: the next use of this thread opens a new one."""
        if conn.broken or conn.closed:
            with suppress(_pg().Error):
                conn.close()
            self._local.conn = None

    @contextmanager
    def _write(self, doing: str) -> Iterator[PgConnection]:
        conn = self._conn()
        try:
            with conn.transaction():
                yield PgConnection(conn)
        except _pg().Error as exc:
            self._drop(conn)
            raise _state_error(self.name, exc, doing) from exc

    def _read(self, sql: str, params: Params = ()) -> list[Any]:
        conn = self._conn()
        try:
            return PgConnection(conn).execute(sql, params).fetchall()
        except _pg().Error as exc:
            self._drop(conn)
            raise _state_error(self.name, exc, "read it") from exc

    def _write_one(self, sql: str, params: Params, doing: str) -> int:
        conn = self._conn()  # autocommit: the statement is its own transaction
        try:
            return int(PgConnection(conn).execute(sql, params).rowcount)
        except _pg().Error as exc:
            self._drop(conn)
            raise _state_error(self.name, exc, doing) from exc

    def schema_version(self) -> int:
        """The schema version the database is at (0: none yet), creating nothing."""
        if self._read("SELECT to_regclass('schema_version') IS NOT NULL")[0][0]:
            rows = self._read("SELECT version FROM schema_version")
            return int(rows[0][0]) if rows else 0
        return 0

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with suppress(_pg().Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()
