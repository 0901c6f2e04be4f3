"""Replicas for the process tests: real `notifier run` processes on one real PostgreSQL database
(tests/pg.py), and what the tests read of them — who holds which lease, their logs, their
/readyz — and do to their database (cut the connections, refuse new ones).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg

from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.helpers import assert_no_secrets, wait_for

TTL = 2.0  # seconds: short, so that a takeover happens within a test


class Replica:
    """`notifier run` in a subprocess with its own temporary directory (its heartbeat)."""

    def __init__(self, config: Path, env: dict[str, str], name: str) -> None:
        self.env = env
        self.dir = config.parent / name
        self.dir.mkdir()
        self.log = self.dir / "stderr.log"
        with self.log.open("w") as err:
            command = ["run", "-c", str(config), "--log-format", "json"]
            self.process = subprocess.Popen(
                [sys.executable, "-m", "notifier", *command],
                env={**os.environ, **env, "TMPDIR": str(self.dir), "NOTIFIER_STOP_GRACE": "5"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no lease given back, nothing finished."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    @functools.cached_property
    def url(self) -> str:
        """Where its /healthz, /readyz and /metrics are served (once it has said so)."""
        wait_for(lambda: "notifier running" in self.text(), 30, "the replica's announcement")
        for line in self.text().splitlines():
            if line.startswith("{") and "notifier running" in line and "/readyz" in line:
                return str(json.loads(line)["message"].rsplit(" on ", 1)[1])
        raise AssertionError("no address announced")

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200

    def stop(self) -> None:
        """SIGTERM (a clean stop: leases released), then no secret in what it logged."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert_no_secrets(self.text(), self.env)


class Replicas:
    """The replicas of one test, started and stopped together; more may join."""

    def __init__(self, config: Path, env: dict[str, str], stack: ExitStack) -> None:
        self._config, self._env, self._stack = config, env, stack
        self.all: list[Replica] = []

    def start(self) -> Replica:
        replica = Replica(self._config, self._env, f"replica-{len(self.all)}")
        self.all.append(replica)
        self._stack.callback(replica.stop)
        return replica

    def living(self) -> list[Replica]:
        return [r for r in self.all if r.alive()]

    def by_owner(self, owner: str) -> Replica | None:
        """The living replica of a lease owner's id, if any."""
        return next((r for r in self.living() if r.pid == pid_of(owner)), None)

    def holder(self, url: str, unit: str) -> Replica:
        """The living replica that holds ``unit`` (waiting until one does)."""
        found: list[Replica] = []

        def held() -> bool:
            owner = owners(url).get(unit)
            replica = self.by_owner(owner) if owner else None
            found[:] = [replica] if replica else []
            return bool(found)

        wait_for(held, 30, f"a living replica holding {unit}")
        return found[0]

    def working(self, url: str) -> bool:
        """Every living replica holds a lease, and every lease is a living replica's."""
        held = set(owners(url).values())
        return {str(r.pid) for r in self.living()} == {str(pid_of(o)) for o in held}


@contextmanager
def replicas(config: Path, env: dict[str, str], count: int) -> Iterator[Replicas]:
    with ExitStack() as stack:
        started = Replicas(config, env, stack)
        for _ in range(count):
            started.start()
        yield started


def owners(url: str) -> dict[str, str]:
    """Unit → the replica holding its unexpired lease."""
    with psycopg.connect(url) as conn:
        try:
            rows = conn.execute(
                "SELECT unit, owner FROM leases "
                "WHERE expires_at > EXTRACT(EPOCH FROM clock_timestamp())"
            ).fetchall()
        except psycopg.errors.UndefinedTable:  # no replica has migrated the database yet
            return {}
    return {str(unit): str(owner) for unit, owner in rows}


def pid_of(owner: str) -> int:
    """The pid in a replica id (``host-pid-random``)."""
    return int(owner.rsplit("-", 2)[-2])


def cut_connections(server: str, url: str) -> int:
    """Terminate every connection to ``url``'s database (``pg_terminate_backend``), as a
    database restart or a dropped network would; how many there were."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def database_down(server: str, url: str, down: bool) -> None:
    """Refuse (or allow again) connections to ``url``'s database, and cut the open ones — as a
    database that restarts or a network that partitions would."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(not down).lower()}')
    if down:
        cut_connections(server, url)


OTHER = PROJECT + 1  # the second project of a replicas' config
RULES = "- {name: everything, match: {event: [new, status_changed]}, sinks: [slack, hook]}"


def replica_config(
    make_config: Callable[..., Path],
    postgres_url: str,
    posthog: FakePostHog,
    *,
    posthog_extra: str = "",
    poll_extra: str = "",
) -> Path:
    """The replicas' config: two projects, every new report and status change to Slack and the
    webhook, first run notifying, the state on ``postgres_url`` with a short lease."""
    posthog.add_project(OTHER)
    return make_config(
        rules=RULES,
        first_run="notify",
        project_ids=(PROJECT, OTHER),
        state=f"url: {postgres_url}\nlease_ttl: {TTL}s",
        posthog_extra=posthog_extra,
        poll_extra=poll_extra,
    )
