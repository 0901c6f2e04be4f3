"""Actions taken from Slack cards (issue 14): one row per click key (``core.actions.Click.key``),
so a double click, Slack's redelivery, or two people — on two replicas — asking the same of the
same card make one PostHog write; and the record of who did what, when, and PostHog's answer,
for ``notifier actions`` and ``notifier explain``.

``begin_action`` claims the key in one transaction: an ``INSERT … ON CONFLICT DO NOTHING`` for a
new key, else one conditional ``UPDATE`` that takes it over only when the last attempt
``failed`` (PostHog unreachable), was ``refused`` more than ``REFUSED_HOLD`` ago (a person may
have fixed the cause: the key's ``task:write`` scope), has been ``pending`` longer than
``STALE_AFTER`` (its replica crashed between claim and write), or was ``done`` but the poll has
since seen the move and the report is back in the status the card showed (a new decision that
happens to have the same key). Both statements are atomic on their own against any concurrent
claim (SQLite: the write transaction excludes other writers; PostgreSQL: the unique key makes a
second insert wait and do nothing, and the update re-checks its condition on the locked row),
so exactly one caller is told ``mine``.

No lease fences a claim or a finish: a click is not a project's unit of work — any replica may
receive it — and the claim itself is the mutual exclusion, by the row's key in the database all
replicas share. The one write about a project's polling, marking a move's echo absorbed
(``absorb_actions``), is made by the cycle commit, in its transaction and under its fence: a
replica that lost the project's lease absorbs nothing, and the holder's next cycle does.

Records are kept ``ACTIONS_KEPT`` (7 days), pruned by ``finish_action``.
"""

from __future__ import annotations

from typing import Any, Final

from notifier.core.actions import Click, ReportAction
from notifier.core.secrets import clip
from notifier.state.database import Database
from notifier.state.dialect import Connection
from notifier.state.records import ActionClaim, ActionMove, ActionRecord, CycleWrite

#: A claim still pending after this many seconds was abandoned (a crash between claim and
#: finish): the next click takes it over. Well above a PostHog write's retries.
STALE_AFTER: Final = 120.0
#: A refusal answers repeats of the same click for this long; after it, a click tries again.
REFUSED_HOLD: Final = 60.0
#: How long records are kept.
ACTIONS_KEPT: Final = 7 * 86400.0
#: The longest ``detail`` kept (PostHog's answer in words).
DETAIL_LIMIT: Final = 500
OUTCOMES: Final = frozenset({"done", "refused", "failed"})

_COLUMNS: Final = (
    "key, project_id, report_id, action, shown_status, user_id, user_name, started_at, "
    "outcome, reason, snooze_for, moves_to, status_after, detail, finished_at, attempts, "
    "channel_id, message_ts, created_at"
)
_TAKE_OVER: Final = (
    "UPDATE actions SET outcome = 'pending', started_at = :now, attempts = attempts + 1, "
    "user_id = :user_id, user_name = :user_name, channel_id = :channel_id, "
    "message_ts = :message_ts, status_after = NULL, detail = NULL, finished_at = NULL, "
    "absorbed_at = NULL WHERE key = :key AND ("
    "outcome = 'failed' "
    "OR (outcome = 'refused' AND finished_at < :now - :refused_hold) "
    "OR (outcome = 'pending' AND started_at < :now - :stale_after) "
    "OR (outcome = 'done' AND absorbed_at IS NOT NULL AND EXISTS (SELECT 1 FROM reports r "
    "WHERE r.project_id = actions.project_id AND r.report_id = actions.report_id "
    "AND r.listed = 1 AND r.status = actions.shown_status)))"
)


def absorb_actions(conn: Connection, write: CycleWrite) -> None:
    """Inside the cycle commit: the moves whose echo this cycle saw are absorbed."""
    conn.executemany(
        "UPDATE actions SET absorbed_at = ? WHERE key = ? AND absorbed_at IS NULL",
        [(write.now, key) for key in write.absorbed],
    )


def _record(row: Any) -> ActionRecord:
    (key, pid, rid, action, shown, uid, uname, at, outcome, reason, snooze, moves_to) = row[:12]
    status_after, detail, finished, attempts, channel, ts, first = row[12:]
    return ActionRecord(
        key=str(key),
        project_id=int(pid),
        report_id=str(rid),
        action=ReportAction(action),
        shown_status=str(shown),
        user_id=str(uid),
        user_name=str(uname),
        at=float(at),
        outcome=str(outcome),
        reason=reason,
        snooze_for=None if snooze is None else int(snooze),
        moves_to=moves_to,
        status_after=status_after,
        detail=detail,
        finished_at=None if finished is None else float(finished),
        attempts=int(attempts),
        channel_id=channel,
        message_ts=ts,
        first_at=float(first),
    )


class Actions(Database):
    """Claims, outcomes and reads of the actions taken from Slack."""

    def begin_action(self, click: Click, now: float) -> ActionClaim:
        """Claim ``click``'s key: ``mine`` when this caller must make the PostHog write (a new
        key, or one whose last attempt may be retried: see the module), else the record of the
        attempt that did or does it. Atomic across threads and replicas."""
        params = {
            "key": click.key,
            "project_id": click.project_id,
            "report_id": click.report_id,
            "action": click.action.value,
            "shown_status": click.shown_status,
            "user_id": click.user_id,
            "user_name": click.user_name,
            "now": now,
            "reason": click.reason,
            "snooze_for": click.snooze_for,
            "moves_to": click.moves_to,
            "channel_id": click.channel_id,
            "message_ts": click.message_ts,
            "refused_hold": REFUSED_HOLD,
            "stale_after": STALE_AFTER,
        }
        with self._write("record an action from Slack") as conn:
            mine = conn.execute(
                "INSERT INTO actions (key, project_id, report_id, action, shown_status, "
                "user_id, user_name, started_at, outcome, reason, snooze_for, moves_to, "
                "attempts, channel_id, message_ts, created_at) VALUES (:key, :project_id, "
                ":report_id, :action, :shown_status, :user_id, :user_name, :now, 'pending', "
                ":reason, :snooze_for, :moves_to, 1, :channel_id, :message_ts, :now) "
                "ON CONFLICT (key) DO NOTHING",
                params,
            ).rowcount == 1 or (conn.execute(_TAKE_OVER, params).rowcount == 1)
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM actions WHERE key = ?",  # noqa: S608
                (click.key,),
            ).fetchone()
        return ActionClaim(mine, _record(row))

    def finish_action(
        self,
        key: str,
        outcome: str,
        *,
        status_after: str | None,
        detail: str,
        now: float,
        attempt: int | None = None,
    ) -> bool:
        """Record what PostHog answered to the claimed write: ``done``, ``refused`` (PostHog
        said no — 409, 403, 400, 404: a person must act) or ``failed`` (transient: the next
        click retries); ``status_after`` the report's status after it, ``detail`` the answer in
        words (scrubbed of secrets). With ``attempt`` (``ActionRecord.attempts`` of the claim),
        a finish from an attempt another has since taken over changes nothing. False when
        nothing pending matched. Forgets records older than ``ACTIONS_KEPT``."""
        if outcome not in OUTCOMES:
            raise ValueError(f"an action ends done, refused or failed, not {outcome!r}")
        with self._write("record an action's outcome") as conn:
            changed = conn.execute(
                "UPDATE actions SET outcome = ?, status_after = ?, detail = ?, finished_at = ? "
                "WHERE key = ? AND outcome = 'pending' "
                "AND (CAST(? AS INTEGER) IS NULL OR attempts = ?)",
                (
                    outcome,
                    status_after,
                    clip(detail, DETAIL_LIMIT),
                    now,
                    key,
                    attempt,
                    attempt,
                ),
            ).rowcount
            conn.execute("DELETE FROM actions WHERE created_at < ?", (now - ACTIONS_KEPT,))
            return changed == 1

    def actions(
        self, *, project_id: int | None = None, report_id: str | None = None, limit: int = 50
    ) -> list[ActionRecord]:
        """The latest actions, newest first: every project's, or a project's, or a report's."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM actions "  # noqa: S608
            "WHERE (CAST(:project_id AS INTEGER) IS NULL OR project_id = :project_id) "
            "AND (CAST(:report_id AS TEXT) IS NULL OR report_id = :report_id) "
            "ORDER BY started_at DESC, key LIMIT :limit",
            {"project_id": project_id, "report_id": report_id, "limit": limit},
        )
        return [_record(row) for row in rows]

    def moves_by_action(self, project_id: int) -> list[ActionMove]:
        """The project's moves made from Slack whose echo no cycle has absorbed yet: ``done``
        ones (the status PostHog reported) and ``pending`` ones (the status asked for: the
        poll may list the move before the write's outcome is recorded), oldest first. A cycle
        that sees a move puts its key in ``CycleWrite.absorbed``."""
        rows = self._read(
            "SELECT key, report_id, COALESCE(status_after, moves_to) FROM actions "
            "WHERE project_id = ? AND absorbed_at IS NULL AND ("
            "(outcome = 'done' AND status_after IS NOT NULL) "
            "OR (outcome = 'pending' AND moves_to IS NOT NULL)) ORDER BY started_at, key",
            (project_id,),
        )
        return [ActionMove(str(key), str(rid), str(status)) for key, rid, status in rows]
