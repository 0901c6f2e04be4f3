"""The benchmark's PostgreSQL: ``$NOTIFIER_TEST_POSTGRES_URL`` when set, else a throwaway server
from the ``pgserver`` package (binaries in a wheel) with its data and bookkeeping in the
benchmark's temporary directory. One fresh database per measured case (``fresh_database``),
and the CPU time of the server's processes (``server_cpu``), read from /proc, so that the
table can say how much of a cycle the database cost.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ENV = "NOTIFIER_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server: the URL of its maintenance database (no password in it), the
    password if the server needs one, and its postmaster's pid when it runs on this machine
    (for ``server_cpu``)."""

    url: str
    password: str | None
    pid: int | None


def _split_password(url: str) -> tuple[str, str | None]:
    """``url`` without its password (``state.url`` refuses one) and the password."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{parts.username}@{host}" if parts.username else host
    password = unquote(parts.password) if parts.password else None
    return urlunsplit(parts._replace(netloc=netloc)), password or None


@contextmanager
def server(workdir: Path) -> Iterator[Server]:
    """The PostgreSQL the benchmark uses, for the whole run."""
    given = os.environ.get(ENV)
    if given:
        url, password = _split_password(given)
        yield Server(url, password, None)
        return
    runtime = workdir / "run"  # pgserver's bookkeeping: here, not in the user's runtime dir
    runtime.mkdir(mode=0o700)
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver  # noqa: PLC0415 - only when PostgreSQL is benchmarked
    finally:
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = saved
    data = workdir / "pgdata"
    pg = pgserver.get_server(data, cleanup_mode="stop")  # type: ignore[attr-defined]
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        yield Server(pg.get_uri().replace("postgres:@", "postgres@", 1), None, pid)
    finally:
        pg.cleanup()


def fresh_database(srv: Server) -> str:
    """A new, empty database on ``srv``; its URL."""
    import psycopg  # noqa: PLC0415 - only when PostgreSQL is benchmarked

    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(srv.url, password=srv.password, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(srv.url)._replace(path=f"/{name}"))


def server_cpu(srv: Server | None) -> float:
    """CPU seconds (user + system) of the postmaster and its live children (the backends
    serving the worker's connections, the writer, the WAL writer…); 0 when unknown."""
    if srv is None or srv.pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [srv.pid]
    with suppress(OSError):
        children = Path(f"/proc/{srv.pid}/task/{srv.pid}/children").read_text()
        pids += [int(p) for p in children.split()]
    total = 0
    for pid in pids:
        with suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / tick
