"""Outages under way (self-alerts): a project or sink failing since when, and whether its
failing notice is queued, kept so that a restart neither restarts the ``self_alerts.after``
clock nor repeats the alert, and still says "recovered".
"""

from __future__ import annotations

from notifier.core.secrets import scrub
from notifier.state.database import Database
from notifier.state.records import OutageRow


class Outages(Database):
    """The outages table: read, record, end."""

    def outages(self) -> list[OutageRow]:
        """Every outage under way."""
        rows = self._read("SELECT subject, since, error, hint, alerted FROM outages ORDER BY since")
        return [OutageRow(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows]

    def save_outage(self, outage: OutageRow) -> None:
        """Record an outage, or update it; its error is scrubbed of secrets first."""
        with self._write("record an outage") as conn:
            conn.execute(
                "INSERT INTO outages (subject, since, error, hint, alerted) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET "
                "since = excluded.since, error = excluded.error, hint = excluded.hint, "
                "alerted = excluded.alerted",
                (
                    outage.subject,
                    outage.since,
                    scrub(outage.error),
                    scrub(outage.hint),
                    int(outage.alerted),
                ),
            )

    def end_outage(self, subject: str) -> None:
        """Forget an outage: it is over."""
        with self._write("end an outage") as conn:
            conn.execute("DELETE FROM outages WHERE subject = ?", (subject,))
