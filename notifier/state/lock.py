"""One writer per SQLite state file: an OS lock on ``<state.path>.lock``.

`notifier run` and `notifier once` take the lock before they open the state and hold it for the
life of the process (across configuration reloads); a second one on the same file is refused at
once with ``StateInUseError``, naming the holder, instead of both polling the same projects and
draining the same outbox (every notification twice). The other commands — `outbox`, `dry-run`,
`check`, `preview`, `healthcheck` — take no lock: operators use them on a live system, and
SQLite's own locking keeps their reads and writes consistent.

The lock is ``flock(2)`` on an open file, so the kernel releases it when the process ends,
however it ends (SIGKILL, the OOM killer, a crash): a dead holder never blocks the next start,
and there is no stale-lock cleanup to get wrong. The file itself is never removed (removing a
lock file races with a process that has just opened it, and two could then hold "the" lock).
It holds the holder's pid, host, command and start time as JSON (mode 0600), for the refusal
message only: the lock, not the file's content, says who holds it. A file left by a dead
holder still names it, and is taken over by the next start.

``flock`` works on local filesystems and, on Linux, on NFS (emulated with NFS byte-range locks);
a filesystem without locks is refused with a message rather than run unguarded.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final

from notifier.core.errors import StateError
from notifier.state.sqlite import make_state_directory

#: how often, and how far apart, a refused start re-reads a holder's file that is being written
_READS: Final = 5
_READ_PAUSE: Final = 0.05


def lock_path(state_path: Path) -> Path:
    """The lock file of the state database at ``state_path``."""
    return state_path.with_name(state_path.name + ".lock")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a state file: what its lock file says."""

    pid: int
    started_at: float  # Unix seconds
    command: str  # "run", "once"
    host: str

    def to_json(self) -> str:
        started = datetime.fromtimestamp(self.started_at, UTC)
        readable = started.isoformat(timespec="seconds").replace("+00:00", "Z")
        data = {
            "pid": self.pid,
            "started_at": self.started_at,
            "started": readable,
            "command": self.command,
            "host": self.host,
        }
        return json.dumps(data) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder a lock file names; None when it names none (empty, half written)."""
        try:
            data = json.loads(text)
            return cls(
                pid=int(data["pid"]),
                started_at=float(data["started_at"]),
                command=str(data["command"]),
                host=str(data["host"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def describe(self) -> str:
        """``pid 4242, `notifier run`, started 2026-12-03 14:02:05 UTC`` (and the host when
        it is another machine: a state file on shared storage)."""
        started = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        where = "" if self.host == socket.gethostname() else f" on host {self.host}"
        return f"pid {self.pid}{where}, `notifier {self.command}`, started {started}"


class StateInUseError(StateError):
    """Another process holds the state file's lock (the CLI exits 2: a person must stop one
    of the two, or give each its own ``state.path``; restarting this one cannot help)."""

    def __init__(self, state_path: Path, holder: Holder | None) -> None:
        self.holder = holder
        who = (
            holder.describe()
            if holder is not None
            else f"its pid is not recorded in {lock_path(state_path)}"
        )
        super().__init__(
            f"state database {state_path} is in use by another notifier ({who}); stop it "
            "first, or give this one its own state.path (two notifiers on one state would "
            "send every notification twice)"
        )


class StateLock:
    """The lock of one state file; ``acquire`` or ``with``, held until ``release``."""

    def __init__(self, state_path: Path, command: str) -> None:
        self.state_path = state_path
        self.path = lock_path(state_path)
        self._command = command
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock without waiting and write this process into the file.

        Raises ``StateInUseError`` when another process holds it, ``StateError`` when the file
        cannot be created or locked."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise StateInUseError(self.state_path, holder) from None
            raise StateError(
                f"cannot lock {self.path} ({exc.strerror or exc}): the filesystem of "
                "state.path must support file locks (a local disk, or NFS with locking)"
            ) from exc
        me = Holder(os.getpid(), time.time(), self._command, socket.gethostname())
        data = me.to_json().encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the lock holds all the same; a refused start then names no pid
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it); the file stays."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        """The lock file, opened for writing (created 0600 whatever the umask; never through
        a symbolic link), its directory created if need be."""
        make_state_directory(self.path)  # as the state database does, with the same words
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise StateError(
                f"cannot open the state's lock file {self.path}: {exc.strerror or exc}; check "
                "that state.path's directory is writable by this user (and the file, if "
                "another user created it)"
            ) from exc
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)  # the umask may have taken bits off; a leftover may have more
        except OSError:
            pass
        return fd


def _read_holder(fd: int) -> Holder | None:
    """The holder the lock file names; re-read a few times while the holder may be writing
    it (it locks first, then writes)."""
    for attempt in range(_READS):
        try:
            holder = Holder.from_json(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        except OSError:
            return None
        if holder is not None:
            return holder
        if attempt + 1 < _READS:
            time.sleep(_READ_PAUSE)
    return None
