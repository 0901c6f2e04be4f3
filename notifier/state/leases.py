"""Leases: which replica works which unit of work, when replicas share a PostgreSQL state.

A unit is one project's polling (``poll:12345``) or one sink's deliveries (``deliver:slack``). A
replica announces itself (``replicas``: alive until ``expires_at``), and holds a unit through a
row of ``leases``: its owner, an expiry, and a fencing token that grows by one each time the
unit changes hands. Every write made under a lease carries it (``records.Fence``) and is
checked in its own transaction (``check_fence``): a replica that lost the unit — paused past
the expiry, cut off — can never commit a cycle or mark a delivery the new holder owns. Expiry
is judged by the database's clock, so replicas' clocks need not agree.

On SQLite (one instance, which holds the file's lock) no lease is taken: the tables exist,
empty.
"""

from __future__ import annotations

from typing import Final, Protocol

from notifier.core.errors import LeaseLost
from notifier.state.database import Database
from notifier.state.dialect import Connection
from notifier.state.records import Fence


class Holder(Protocol):
    """What polling and delivery ask before working a unit, and put on their writes."""

    def holds(self, unit: str) -> bool:
        """Whether this replica may work ``unit`` now."""
        ...

    def fence(self, unit: str) -> Fence | None:
        """The fence for a write about ``unit`` (None: no leases, nothing to check); raises
        ``LeaseLost`` when the unit is not this replica's any more."""
        ...


class Sole:
    """One instance alone on its state (SQLite, which it holds the lock of): every unit is its
    own, and writes carry no fence."""

    def holds(self, unit: str) -> bool:
        return True

    def fence(self, unit: str) -> Fence | None:
        return None


SOLE: Final = Sole()


def check_fence(conn: Connection, fence: Fence | None, now_sql: str, for_share: str) -> None:
    """Inside a write transaction: refuse it (``LeaseLost``) unless ``fence`` is still the
    unit's current, unexpired lease — and keep the lease row from changing hands until the
    transaction ends (PostgreSQL: ``FOR SHARE``), so the check holds at commit."""
    if fence is None:
        return
    row = conn.execute(
        "SELECT 1 FROM leases WHERE unit = ? AND owner = ? AND token = ? "  # noqa: S608
        f"AND expires_at > {now_sql}{for_share}",
        (fence.unit, fence.owner, fence.token),
    ).fetchone()
    if row is None:
        raise LeaseLost(
            f"{fence.unit}: this replica's lease (token {fence.token}) is no longer current; "
            "another replica holds it, so this write was not kept"
        )


class Leases(Database):
    """Replicas announcing themselves, and leases taken, renewed, released and checked."""

    def fenced(self, conn: Connection, fence: Fence | None) -> None:
        """``check_fence`` in this database's SQL."""
        check_fence(conn, fence, self.dialect.now, self.dialect.for_share)

    def announce(self, replica: str, started_at: float, ttl: float) -> None:
        """This replica is alive for ``ttl`` more seconds (and forget replicas gone a day)."""
        now = self.dialect.now
        with self._write("announce this replica") as conn:
            conn.execute(
                "INSERT INTO replicas (replica, started_at, expires_at) "  # noqa: S608
                f"VALUES (?, ?, {now} + ?) ON CONFLICT (replica) DO UPDATE SET "
                "expires_at = excluded.expires_at",
                (replica, started_at, ttl),
            )
            conn.execute(f"DELETE FROM replicas WHERE expires_at < {now} - 86400")  # noqa: S608

    def retire(self, replica: str) -> None:
        """This replica stops: it is no longer counted when the units are shared."""
        with self._write("retire this replica") as conn:
            conn.execute("DELETE FROM replicas WHERE replica = ?", (replica,))

    def replicas(self) -> list[str]:
        """The replicas alive now, in a stable order."""
        rows = self._read(
            f"SELECT replica FROM replicas WHERE expires_at > {self.dialect.now} "  # noqa: S608
            "ORDER BY replica"
        )
        return [str(row[0]) for row in rows]

    def acquire(self, unit: str, owner: str, ttl: float) -> int | None:
        """Take ``unit`` for ``ttl`` seconds if it is free, expired or already ``owner``'s;
        its new fencing token, or None when another replica holds it."""
        now = self.dialect.now
        with self._write("take a lease") as conn:
            row = conn.execute(
                "INSERT INTO leases (unit, owner, token, expires_at) "  # noqa: S608
                f"VALUES (?, ?, 1, {now} + ?) ON CONFLICT (unit) DO UPDATE SET "
                "owner = excluded.owner, token = leases.token + 1, "
                "expires_at = excluded.expires_at "
                f"WHERE leases.expires_at <= {now} OR leases.owner = excluded.owner "
                "RETURNING token",
                (unit, owner, ttl),
            ).fetchone()
        return None if row is None else int(row[0])

    def renew(self, fence: Fence, ttl: float) -> bool:
        """Extend a lease still held by ``ttl`` seconds from now; False when it is lost."""
        now = self.dialect.now
        with self._write("renew a lease") as conn:
            cursor = conn.execute(
                f"UPDATE leases SET expires_at = {now} + ? "  # noqa: S608
                f"WHERE unit = ? AND owner = ? AND token = ? AND expires_at > {now}",
                (ttl, fence.unit, fence.owner, fence.token),
            )
            return cursor.rowcount == 1

    def release(self, fence: Fence) -> None:
        """Give a unit up at once (it belongs to another replica now, or this one stops)."""
        with self._write("release a lease") as conn:
            conn.execute(
                "UPDATE leases SET expires_at = 0 WHERE unit = ? AND owner = ? AND token = ?",
                (fence.unit, fence.owner, fence.token),
            )

    def leases(self) -> dict[str, tuple[str, int, float]]:
        """Every unexpired lease: unit → (owner, token, seconds left)."""
        now = self.dialect.now
        rows = self._read(
            f"SELECT unit, owner, token, expires_at - {now} FROM leases "  # noqa: S608
            f"WHERE expires_at > {now} ORDER BY unit"
        )
        return {str(r[0]): (str(r[1]), int(r[2]), float(r[3])) for r in rows}
