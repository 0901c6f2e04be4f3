"""The durable outbox: one entry per (event or notice, sink), delivered at least once.

Entries are inserted once per (event, sink) (``ON CONFLICT ... DO NOTHING``): a recomputed cycle
or a repeated notice adds nothing twice. An entry is ``pending`` until its sink accepts it
(``delivered``) or it fails for good (``dead``, kept with the reason until retried by a person);
each attempt's outcome, for all the entries of a digest, is written in one transaction, and a
delivery's living message in the same one as its mark.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from notifier.core.events import Event
from notifier.core.outbox import Notice, outbox_item_from_json
from notifier.core.secrets import scrub
from notifier.state.database import Database, compact, ids_of
from notifier.state.dialect import Connection
from notifier.state.leases import check_fence
from notifier.state.messages import forget_messages, remember_message
from notifier.state.records import Fence, MessageRef, OutboxEntry
from notifier.state.story import STORY_KEPT, forget_story

_INSERT: Final = (
    "INSERT INTO outbox (event_id, sink, project_id, report_id, event_type, event, rules, "
    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id, sink) DO NOTHING"
)
_COLUMNS: Final = (
    "id, sink, event, rules, state, attempts, created_at, next_attempt_at, last_error, held_by, "
    "held_note"
)
#: when an entry's wait began: its last failed attempt, or its creation (``rebase``)
_WAIT_FROM: Final = (
    "(CASE WHEN last_attempt_at > created_at THEN last_attempt_at ELSE created_at END)"
)
_AHEAD: Final = f"sink = :sink AND state = 'pending' AND {_WAIT_FROM} > :now"
_REBASE: Final = (
    "UPDATE outbox SET "  # noqa: S608 - fixed fragments only
    f"next_attempt_at = :now + CASE WHEN next_attempt_at > {_WAIT_FROM} "
    f"THEN next_attempt_at - {_WAIT_FROM} ELSE 0 END, "
    f"created_at = created_at - ({_WAIT_FROM} - :now), "
    f"last_attempt_at = last_attempt_at - ({_WAIT_FROM} - :now) WHERE {_AHEAD}"
)


def outbox_row(
    item: Event | Notice, sink: str, rules: Sequence[str], now: float
) -> tuple[Any, ...]:
    """The outbox columns of one (event or notice, sink) entry, due at ``now``. A notice about
    a sink has ``project_id`` 0 and the sink's name as ``report_id``."""
    if isinstance(item, Event):
        project_id, report_id, kind = item.project_id, item.report.id, item.type.value
    else:
        project_id, report_id, kind = item.project_id or 0, item.sink or "", item.kind.value
    rules_json = json.dumps(list(rules))
    return (
        item.id,
        sink,
        project_id,
        report_id,
        kind,
        compact(item.to_json()),
        rules_json,
        now,
        now,
    )


def insert_entries(conn: Connection, rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert ``outbox_row`` rows, each (event, sink) once ever; returns how many were new."""
    return sum(conn.execute(_INSERT, row).rowcount for row in rows)


def _entry(row: Sequence[Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row[0],
        sink=row[1],
        event=outbox_item_from_json(json.loads(row[2])),
        rules=tuple(json.loads(row[3])),
        state=row[4],
        attempts=row[5],
        created_at=row[6],
        next_attempt_at=row[7],
        last_error=row[8],
        held_by=row[9],
        held_note=row[10],
    )


class Outbox(Database):
    """Queue, read and mark outbox entries; requeue the dead; prune the delivered."""

    def enqueue_notice(self, notice: Notice, sinks: Sequence[str], now: float) -> int:
        """Queue the notifier's own notice for each sink, once per (notice, sink); returns how
        many entries were added. ``project_id`` is 0 and ``report_id`` the sink's name for a
        notice about a sink."""
        with self._write("queue a self-alert") as conn:
            return insert_entries(conn, (outbox_row(notice, sink, (), now) for sink in sinks))

    def enqueue_event(self, event: Event, sink: str, rules: Sequence[str], now: float) -> int:
        """Queue one event for one sink outside a cycle (a decision taken from a Slack card,
        shown on its living card), once per (event, sink); returns 1 when added."""
        with self._write("queue an event") as conn:
            return insert_entries(conn, [outbox_row(event, sink, rules, now)])

    def entries_where(self, where: str, params: Sequence[Any]) -> list[OutboxEntry]:
        """Entries by a fixed WHERE fragment (never user input) and its parameters."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE {where}"  # noqa: S608 - fixed fragments only
        return [_entry(row) for row in self._read(sql, params)]

    def pending(self, sink: str, limit: int = 100) -> list[OutboxEntry]:
        """A sink's pending entries, oldest first (delivery order)."""
        return self.entries_where(
            "sink = ? AND state = 'pending' ORDER BY id LIMIT ?", (sink, limit)
        )

    def entries(self, state: str, sink: str | None = None) -> list[OutboxEntry]:
        """Entries in one state ('pending', 'dead', 'delivered'), optionally for one sink."""
        if sink is None:
            return self.entries_where("state = ? ORDER BY id", (state,))
        return self.entries_where("state = ? AND sink = ? ORDER BY id", (state, sink))

    def next_due(self, sink: str) -> float | None:
        """When the sink's first pending entry is due, or None when it has none."""
        rows = self._read(
            "SELECT next_attempt_at FROM outbox WHERE sink = ? AND state = 'pending' "
            "ORDER BY id LIMIT 1",
            (sink,),
        )
        return float(rows[0][0]) if rows else None

    def counts(self) -> dict[tuple[str, str], int]:
        """Outbox entries by (sink, state)."""
        rows = self._read("SELECT sink, state, COUNT(*) FROM outbox GROUP BY sink, state")
        return {(sink, state): count for sink, state, count in rows}

    def mark_delivered(
        self,
        entry_ids: int | Sequence[int],
        now: float,
        *,
        message: MessageRef | None = None,
        fence: Fence | None = None,
    ) -> None:
        """The sink accepted the entries (several: one digest). ``message``: the ``(channel,
        ts)`` of the living message the sink now keeps for the entry's report, remembered in
        the same transaction as the mark. ``fence``: the sink's delivery lease (replicas)."""
        ids = ids_of(entry_ids)
        with self._write("record a delivery") as conn:
            check_fence(conn, fence, self.dialect.now, self.dialect.for_share)
            conn.executemany(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, "
                "finished_at = ?, last_error = NULL WHERE id = ?",
                [(now, i) for i in ids],
            )
            if message is not None:
                remember_message(conn, ids, message, now)

    def mark_retry(
        self, entry_ids: int | Sequence[int], next_attempt_at: float, error: str
    ) -> None:
        """A transient failure: try again at ``next_attempt_at``. (Only the tests call it; the
        delivery loop records each attempt with ``mark_failed``.)"""
        self.mark_failed(ids_of(entry_ids), next_attempt_at, error)

    def mark_dead(
        self, entry_ids: int | Sequence[int], now: float, error: str, *, fence: Fence | None = None
    ) -> None:
        """A permanent failure, or retries exhausted: keep it, with the reason, for a person."""
        self.mark_failed([], now, error, dead=ids_of(entry_ids), now=now, fence=fence)

    def mark_failed(
        self,
        retry: Sequence[int],
        next_attempt_at: float,
        error: str,
        *,
        dead: Sequence[int] = (),
        now: float = 0.0,
        reason: str = "",
        fence: Fence | None = None,
    ) -> None:
        """One failed attempt (of a digest: many entries) in one transaction: ``retry`` entries
        are tried again at ``next_attempt_at``; ``dead`` ones are dead-lettered at ``now`` with
        ``reason`` (default: ``error``). Both are scrubbed of secrets before they are kept."""
        error, reason = scrub(error), scrub(reason)
        with self._write("record a retry" if retry else "record a dead letter") as conn:
            check_fence(conn, fence, self.dialect.now, self.dialect.for_share)
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ?, last_attempt_at = ? WHERE id = ?",
                [(next_attempt_at, error, now or None, i) for i in retry],
            )
            conn.executemany(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, finished_at = ?, "
                "last_error = ? WHERE id = ?",
                [(now, reason or error, i) for i in dead],
            )

    def retry_dead(self, now: float, sink: str | None = None) -> int:
        """Put dead entries back in line (``notifier outbox retry``); returns how many."""
        with self._write("requeue dead entries") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?, "
                "next_attempt_at = ?, finished_at = NULL "
                "WHERE state = 'dead' AND (CAST(? AS TEXT) IS NULL OR sink = ?)",
                (now, now, sink, sink),
            )
            return cursor.rowcount

    def prune(self, before: float, *, messages_before: float | None = None) -> int:
        """Forget delivered (and dropped) entries finished before ``before``; dead ones stay
        until retried. Living messages untouched since ``messages_before`` (default
        ``before``) are forgotten too: a report that changes again after that long gets a new
        message; so are the reports' stories older than that."""
        with self._write("prune the outbox") as conn:
            cursor = conn.execute(
                "DELETE FROM outbox WHERE state IN ('delivered', 'dropped') AND finished_at < ?",
                (before,),
            )
            forget_messages(conn, before if messages_before is None else messages_before)
            forget_story(conn, min(before, messages_before or before, time.time() - STORY_KEPT))
            return cursor.rowcount

    def rebase(self, sink: str, now: float) -> int:
        """After the wall clock stepped back (``now`` is earlier than an entry's last attempt or
        creation), move the sink's entries onto the new clock: each is due its own wait (the
        backoff or the Retry-After it was given) after ``now``, not that wait plus the step;
        returns how many were moved (usually none, and then nothing is written)."""
        params = {"sink": sink, "now": now}
        if not self._read(f"SELECT 1 FROM outbox WHERE {_AHEAD} LIMIT 1", params):  # noqa: S608
            return 0
        with self._write("reschedule after the clock went back") as conn:
            return conn.execute(_REBASE, params).rowcount
