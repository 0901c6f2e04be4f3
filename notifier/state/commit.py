"""The cycle commit: one cycle's outcome (changed snapshot rows, deleted rows, outbox entries,
the project's baseline and high-water marks) is written in ONE transaction: a crash leaves
either the old state or the new, never half. An event is therefore queued for delivery exactly
when the snapshot that no longer produces it is saved. With replicas, the transaction also
checks that the project's polling lease is still this replica's (``leases.check_fence``), and
the story of each report whose event it queues gains a ``found`` chapter (``state.story``).
"""

from __future__ import annotations

from notifier.state.actions import absorb_actions
from notifier.state.database import Database
from notifier.state.held import write_held
from notifier.state.leases import check_fence
from notifier.state.outbox import insert_entries, outbox_row
from notifier.state.records import CycleWrite
from notifier.state.reminders import write_reminders
from notifier.state.snapshots import mark_project, start_baseline, write_reports
from notifier.state.story import found_chapters, tell


class CycleCommit(Database):
    """``commit_cycle``: snapshot, outbox and project marks, all or nothing."""

    def commit_cycle(self, write: CycleWrite) -> int:
        """Persist one cycle atomically; returns how many outbox entries were added."""
        with self._write("save the cycle") as conn:
            check_fence(conn, write.fence, self.dialect.now, self.dialect.for_share)
            if write.baseline_page:  # a baseline under way: the project is not marked yet
                start_baseline(conn, write)
            else:
                mark_project(conn, write)
            write_reports(conn, write)
            write_held(conn, write)
            absorb_actions(conn, write)
            write_reminders(conn, write)
            added = [  # the events of the entries inserted now (a recomputed cycle adds none)
                event.id
                for event, sink, rules in write.outbox
                if insert_entries(conn, [outbox_row(event, sink, rules, write.now)])
            ]
            tell(conn, found_chapters(write, set(added)))  # the story: what this cycle found
            return len(added)
