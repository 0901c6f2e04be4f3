"""Outbox entries held back by a silence or quiet hours (issue 15), durably: a held entry is in
state ``held`` with what holds it (``held_by``: ``silence:sil_…`` or ``quiet:nights``) and the
words its digest will open with (``held_note``). When the hold ends by itself the entries are
``released``: pending again, due now, keeping both columns so that the drain sends them together
as one digest; when it is expired by hand (or holds with ``drop``) they are ``dropped``: settled,
never sent, kept with the reason like a delivered entry.

Each write is one transaction with the silence's ``held`` count and the report's story
(``state.story``), under the sink's delivery fence (replicas): a crash leaves an entry pending,
held or released — never both sent and held, never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from notifier.core.events import Event
from notifier.state.leases import check_fence
from notifier.state.outbox import Outbox
from notifier.state.records import Fence, OutboxEntry
from notifier.state.story import Chapter, tell

#: ``held_by`` of a silence's hold: this prefix and the silence's id.
SILENCE_PREFIX: Final = "silence:"


def silence_of(held_by: str | None) -> str | None:
    """The silence id of a ``held_by`` (None for quiet hours)."""
    if held_by and held_by.startswith(SILENCE_PREFIX):
        return held_by[len(SILENCE_PREFIX) :]
    return None


def _chapters(
    entries: Sequence[OutboxEntry], kind: str, now: float, **detail: str
) -> list[Chapter]:
    return [
        Chapter(e.event.project_id, e.event.report.id, now, kind, {"sink": e.sink, **detail})
        for e in entries
        if isinstance(e.event, Event)
    ]


class Holds(Outbox):
    """Holding, releasing and dropping outbox entries."""

    def hold(
        self,
        entries: Sequence[OutboxEntry],
        held_by: str,
        note: str,
        now: float,
        *,
        drop: bool = False,
        fence: Fence | None = None,
    ) -> None:
        """Hold ``entries`` (pending ones) for ``held_by``; with ``drop`` settle them at once as
        dropped. A silence's ``held`` count grows by their number, in the same transaction."""
        if not entries:
            return
        ids = [e.id for e in entries]
        with self._write("hold entries") as conn:
            check_fence(conn, fence, self.dialect.now, self.dialect.for_share)
            if drop:
                conn.executemany(
                    "UPDATE outbox SET state = 'dropped', finished_at = ?, held_by = ?, "
                    "held_note = ?, last_error = ? WHERE id = ? AND state = 'pending'",
                    [(now, held_by, note, f"dropped: {note}", i) for i in ids],
                )
            else:
                conn.executemany(
                    "UPDATE outbox SET state = 'held', held_by = ?, held_note = ? "
                    "WHERE id = ? AND state = 'pending'",
                    [(held_by, note, i) for i in ids],
                )
            silence = silence_of(held_by)
            if silence is not None:
                conn.execute(
                    "UPDATE silences SET held = held + ? WHERE id = ?", (len(ids), silence)
                )
            kind = "dropped" if drop else "held"
            tell(conn, _chapters(entries, kind, now, by=held_by, note=note))

    def held_keys(self, sink: str) -> list[str]:
        """What holds the sink's held entries, one ``held_by`` each."""
        rows = self._read(
            "SELECT DISTINCT held_by FROM outbox WHERE sink = ? AND state = 'held'", (sink,)
        )
        return sorted(str(r[0]) for r in rows)

    def held_entries(
        self, sink: str | None = None, held_by: str | None = None
    ) -> list[OutboxEntry]:
        """The held entries (of one sink, of one hold), oldest first."""
        sql = "state = 'held'"
        params: list[str] = []
        if sink is not None:
            sql += " AND sink = ?"
            params.append(sink)
        if held_by is not None:
            sql += " AND held_by = ?"
            params.append(held_by)
        return self.entries_where(sql + " ORDER BY id", params)

    def end_hold(
        self,
        sink: str,
        held_by: str,
        now: float,
        *,
        drop_reason: str | None = None,
        fence: Fence | None = None,
        only: Sequence[OutboxEntry] | None = None,
    ) -> int:
        """The hold ended: its entries for ``sink`` are released (pending, due ``now``), or
        with ``drop_reason`` dropped. ``only``: just these held entries, as the caller read
        them. Returns how many."""
        entries = self.held_entries(sink, held_by) if only is None else only
        if not entries:
            return 0
        with self._write("end a hold") as conn:
            check_fence(conn, fence, self.dialect.now, self.dialect.for_share)
            if drop_reason is None:
                conn.executemany(
                    "UPDATE outbox SET state = 'pending', next_attempt_at = ?, created_at = ? "
                    "WHERE id = ? AND state = 'held'",
                    [(now, now, e.id) for e in entries],
                )
                tell(conn, _chapters(entries, "released", now, by=held_by))
            else:
                conn.executemany(
                    "UPDATE outbox SET state = 'dropped', finished_at = ?, last_error = ? "
                    "WHERE id = ? AND state = 'held'",
                    [(now, f"dropped: {drop_reason}", e.id) for e in entries],
                )
                tell(conn, _chapters(entries, "dropped", now, by=held_by, note=drop_reason))
        return len(entries)
