"""Living messages: the Slack message (channel, ts) a bot-token sink keeps up to date for a
report, and the report's ``updated_at`` it shows.

A message is remembered in the same transaction as the ``delivered`` mark of the entry that
posted it (``remember_message``, called by the outbox), and forgotten by the outbox's prune
once untouched for long enough (``forget_messages``): a report that changes after that gets a
new message.
"""

from __future__ import annotations

from collections.abc import Sequence

from notifier.state.database import Database
from notifier.state.dialect import Connection
from notifier.state.leases import check_fence
from notifier.state.records import Fence, MessageRef


def remember_message(
    conn: Connection, entry_ids: Sequence[int], message: MessageRef, now: float
) -> None:
    """Remember ``message`` for the (sink, project, report) of each of these outbox entries."""
    shown = message[2] if len(message) > 2 else None
    conn.executemany(
        "INSERT INTO messages (sink, project_id, report_id, channel, ts, updated_at, "
        "shown) SELECT sink, project_id, report_id, ?, ?, ?, ? FROM outbox "
        "WHERE id = ? ON CONFLICT (sink, project_id, report_id) DO UPDATE SET "
        "channel = excluded.channel, ts = excluded.ts, "
        "updated_at = excluded.updated_at, shown = excluded.shown",
        [(message[0], message[1], now, shown, i) for i in entry_ids],
    )


def forget_messages(conn: Connection, before: float) -> None:
    """Forget the messages untouched since ``before``."""
    conn.execute("DELETE FROM messages WHERE updated_at < ?", (before,))


class LivingMessages(Database):
    """Reads of the living messages, and a card refreshed after its report's digest."""

    def keep_message(
        self, entry_id: int, message: MessageRef, now: float, *, fence: Fence | None = None
    ) -> None:
        """Remember ``message`` for the (sink, project, report) of a delivered entry, under the
        sink's delivery lease (replicas)."""
        with self._write("remember a living message") as conn:
            check_fence(conn, fence, self.dialect.now, self.dialect.for_share)
            remember_message(conn, [entry_id], message, now)

    def message(
        self, sink: str, project_id: int, report_id: str
    ) -> tuple[str, str, str | None] | None:
        """The ``(channel, ts, shown)`` of the sink's living message about the report, if any
        (``shown``: the report's ``updated_at`` it shows)."""
        rows = self._read(
            "SELECT channel, ts, shown FROM messages "
            "WHERE sink = ? AND project_id = ? AND report_id = ?",
            (sink, project_id, report_id),
        )
        if not rows:
            return None
        channel, ts, shown = rows[0]
        return str(channel), str(ts), shown
