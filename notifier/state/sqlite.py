"""The SQLite backend: the file itself, one connection per thread, write transactions, reads,
and the ``StateError`` every failure becomes.

Each thread gets its own connection; WAL mode lets the delivery threads read while a cycle
writes, and ``synchronous=FULL`` makes a committed transaction survive a power cut. A write
transaction (``_write``) is all or nothing: on any error it is rolled back and the original
error is reported, naming the file and what was being done. Times are Unix seconds (float).

Opening checks the file first: a new one is created 0600 (SQLite gives its ``-wal`` and ``-shm``
the same mode), whatever the umask; an existing one must pass ``PRAGMA quick_check``, and a
damaged one (or a zero-length one where starting afresh is not safe) is refused with
``StateDamagedError``, which restarting cannot fix.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final

from notifier.core.errors import StateDamagedError, StateError
from notifier.state.database import Database
from notifier.state.dialect import SQLITE
from notifier.state.schema import migrate

log = logging.getLogger(__name__)

WAL_LIMIT: Final = 4 * 1024 * 1024
#: The path of a database in memory, each thread its own, nothing on disk
IN_MEMORY: Final = ":memory:"
#: SQLite's primary result codes for a file that is not, or no longer, a sound database
_DAMAGED: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
#: how many of ``PRAGMA quick_check``'s problems a refusal quotes
_PROBLEMS_SHOWN: Final = 3


def _damaged(path: Path, what: str) -> StateDamagedError:
    return StateDamagedError(
        f"state database {path} is damaged or not a notifier state file ({what}); the "
        "notifier cannot use it, and restarting will not help. Stop the notifier, then restore "
        'a backup (docs/operations.md, "Back up and restore the state") or move it away, '
        "with its -wal and -shm files, to start afresh (a new baseline per first_run)"
    )


def _state_error(path: Path, exc: sqlite3.Error, doing: str) -> StateError:
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED:
        return _damaged(path, f"cannot {doing}: {exc}")
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


def _emptied(path: Path, first_run: str | None) -> None:
    """A zero-length state file (truncated by a bad copy or restore, a full disk, a stray
    ``>``): whatever it held is gone. An ERROR when going on is safe (``first_run: baseline``:
    nothing is sent again); refused otherwise."""
    gone = (
        f"state database {path} is empty (0 bytes): all previous state is gone (the snapshot, "
        "pending deliveries, dead letters, living messages)"
    )
    if first_run == "baseline":
        log.error(
            "%s. Every current report will be treated per first_run (baseline): recorded "
            "silently, and only later changes notified. If that is wrong, stop the notifier "
            "and restore a backup",
            gone,
            extra={"event": "state_emptied"},
        )
        return
    why = (
        "every current report would be notified again (first_run: notify)"
        if first_run == "notify"
        else "it is left as it is"
    )
    raise StateDamagedError(
        f'{gone}; refused: {why}. Restore a backup (docs/operations.md, "Back up and restore '
        'the state"), or move it away to start afresh on purpose'
    )


def _empty(path: Path) -> bool:
    """A zero-length file with no write-ahead log to recover it from."""
    wal = path.with_name(path.name + "-wal")
    return (
        path.is_file() and path.stat().st_size == 0 and not (wal.is_file() and wal.stat().st_size)
    )


def make_state_directory(path: Path) -> None:
    """The folder of the state file ``path``, created if need be; ``StateError`` naming what is
    in the way (a file where a folder should be) and what to do."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.is_file()), None)
        reason = f"{blocker} is a file, not a directory" if blocker else exc.strerror
        raise StateError(
            f"state directory {path.parent} cannot be created: {reason}; "
            "point state.path at a writable directory"
        ) from exc


def _create_private(path: Path) -> None:
    """Create the database file 0600 whatever the umask (SQLite gives its -wal and -shm files
    the mode of the database); an existing file is left as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # opening it reports the problem, with its hint
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def read_only_uri(path: Path) -> str:
    """The URI that opens ``path`` read-only and leaves the folder as it is: ``mode=ro``, and
    ``immutable=1`` when no ``-wal`` file shows a notifier using it (a reader in WAL mode
    would otherwise create the -wal and -shm files, and leave them behind)."""
    wal = path.with_name(path.name + "-wal")
    return path.resolve().as_uri() + ("?mode=ro" if wal.exists() else "?mode=ro&immutable=1")


class SqliteDatabase(Database):
    """The connections to one SQLite file, created and migrated on open. Safe to share between
    threads."""

    def __init__(
        self, path: Path | str, *, first_run: str | None = None, read_only: bool = False
    ) -> None:
        """Open (creating it 0600) and migrate the file at ``path``; ``StateDamagedError`` when
        it is damaged, or empty while ``first_run`` (of the notifier that polls with it) is not
        ``baseline`` (``None``: a command that does not poll, which leaves it untouched).
        ``read_only``: the file as it is (see ``read_only_uri``), neither created nor migrated;
        every write fails."""
        self.path = Path(path)
        self.name = str(self.path.resolve())
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._read_only = read_only
        if read_only:
            if _empty(self.path):
                _emptied(self.path, None)  # refused, left as it is
            return
        in_memory = str(path) == IN_MEMORY
        if not in_memory:
            make_state_directory(self.path)
        try:
            if in_memory:
                pass  # one thread's database, gone when closed (``dry-run`` without a state)
            elif _empty(self.path):
                _emptied(self.path, first_run)
            elif self.path.exists():
                self.quick_check()
            else:
                _create_private(self.path)
            with self._write("open and migrate") as conn:
                migrate(conn, SQLITE, str(self.path))
        except BaseException:
            self.close()
            raise

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened (WAL, full sync) on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                if self._read_only:
                    conn = sqlite3.connect(
                        read_only_uri(self.path),
                        uri=True,
                        isolation_level=None,
                        check_same_thread=False,
                        timeout=30,
                    )
                    return self._keep(conn)
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # WAL shrinks back
            except sqlite3.Error as exc:
                raise _state_error(self.path, exc, "open it") from exc
            self._keep(conn)
        return conn

    def _keep(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """``conn`` as this thread's connection, closed by ``close``."""
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def schema_version(self) -> int:
        """The schema version the file is at (0: none yet)."""
        return int(self._read("PRAGMA user_version")[0][0])

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

    def _read(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
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

    def quick_check(self) -> None:
        """``PRAGMA quick_check`` (a few seconds at most for a large file): ``StateDamagedError``
        quoting the first problems found."""
        problems = [str(row[0]) for row in self._read(f"PRAGMA quick_check({_PROBLEMS_SHOWN})")]
        if problems != ["ok"]:
            raise _damaged(self.path, "PRAGMA quick_check: " + "; ".join(problems))

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file: 'ok' when sound."""
        return str(self._read("PRAGMA integrity_check")[0][0])
