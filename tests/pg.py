"""A real PostgreSQL for the tests: ``$NOTIFIER_TEST_POSTGRES_URL`` when set (a server the
machine or CI provides), else a throwaway server from the ``pgserver`` package (PostgreSQL
binaries in a wheel; about half a second to start), one per test process, its data in the
session's temporary directory. Every test gets a database of its own (``fresh_database``).
Never a mock, never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ENV = "NOTIFIER_TEST_POSTGRES_URL"


@contextmanager
def server(workdir: Path) -> Iterator[str]:
    """The URL of a PostgreSQL server's maintenance database (``postgres``), for the session."""
    given = os.environ.get(ENV)
    if given:
        yield given
        return
    # pgserver keeps its bookkeeping in the user's runtime directory: this session's, here
    runtime = workdir / "run"
    runtime.mkdir(mode=0o700)
    saved = os.environ.get("XDG_RUNTIME_DIR")
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver  # noqa: PLC0415 - only when no server is given
    finally:
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = saved
    data = workdir / "pgdata"
    pg = pgserver.get_server(data, cleanup_mode="stop")
    try:
        # pgserver's URI has an empty password (``postgres:@``): state.url takes none
        yield pg.get_uri().replace("postgres:@", "postgres@", 1)
    finally:
        pg.cleanup()


def with_database(url: str, name: str) -> str:
    """``url`` naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def fresh_database(url: str) -> str:
    """A new, empty database on the server of ``url``; its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)
