"""Silences added with `notifier silence add` (schema 9): kept in the state, so they survive a
restart and replicas sharing a PostgreSQL state share them. One row per silence: its matchers
(as text, parsed again when read: ``core.silences.parse_matcher``), start, end, who and why,
``drop``, when it was expired by hand, and ``held``: how many events it held back (counted by the
delivery, ``count_held``). Each write is one statement, atomic on its own; nothing is fenced: a
silence is no project's or sink's unit of work.

Silences that ended more than ``SILENCES_KEPT`` ago are forgotten when one is added.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from notifier.core.silences import Silence, new_silence_id, parse_matcher
from notifier.state.database import Database, compact

log = logging.getLogger(__name__)

#: How long a silence that ended is kept (for `notifier silence list` and `explain`).
SILENCES_KEPT: Final = 30 * 86400.0
#: What ``silences`` lists besides the active ones: those that ended this recently.
RECENT: Final = 86400.0

_COLUMNS: Final = "id, matchers, starts_at, ends_at, author, comment, drop_events, expired_at, held"


def _silence(row: Any) -> Silence | None:
    sid, matchers, starts, ends, author, comment, drop, expired, held = row
    try:
        parsed = tuple(parse_matcher(text) for text in json.loads(matchers))
    except (ValueError, TypeError) as exc:  # written by another version, or by hand
        log.warning("silence %s is ignored: %s", sid, exc, extra={"event": "silence_unreadable"})
        return None
    return Silence(
        id=str(sid),
        matchers=parsed,
        starts_at=float(starts),
        ends_at=None if ends is None else float(ends),
        author=str(author),
        comment=str(comment),
        drop=bool(drop),
        expired_at=None if expired is None else float(expired),
        held=int(held),
    )


class Silences(Database):
    """Adding, listing and expiring silences, and counting what they held."""

    def add_silence(self, silence: Silence) -> str:
        """Store ``silence`` (a new ``sil_…`` id when it has none); returns its id."""
        sid = silence.id or new_silence_id()
        with self._write("add a silence") as conn:
            conn.execute(
                f"INSERT INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    sid,
                    compact([str(m) for m in silence.matchers]),
                    silence.starts_at,
                    silence.ends_at,
                    silence.author,
                    silence.comment,
                    int(silence.drop),
                    silence.expired_at,
                    silence.held,
                ),
            )
            conn.execute(
                "DELETE FROM silences WHERE COALESCE(expired_at, ends_at) < ?",
                (silence.starts_at - SILENCES_KEPT,),
            )
        return sid

    def silences(self, now: float, *, recent: float = RECENT) -> list[Silence]:
        """The active silences and those that ended within ``recent`` seconds of ``now``
        (pending ones too: not started yet), oldest first."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM silences "  # noqa: S608
            "WHERE COALESCE(expired_at, ends_at) IS NULL OR COALESCE(expired_at, ends_at) >= ? "
            "ORDER BY starts_at, id",
            (now - recent,),
        )
        return [s for s in map(_silence, rows) if s is not None]

    def silence(self, silence_id: str) -> Silence | None:
        """One silence by id, whatever its state; None when unknown."""
        rows = self._read(
            f"SELECT {_COLUMNS} FROM silences WHERE id = ?",  # noqa: S608
            (silence_id,),
        )
        return _silence(rows[0]) if rows else None

    def expire_silence(self, silence_id: str, now: float) -> bool:
        """End a silence by hand now; False when it is unknown or already over."""
        changed = self._write_one(
            "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL "
            "AND (ends_at IS NULL OR ends_at > ?)",
            (now, silence_id, now),
            "expire a silence",
        )
        return changed == 1

    def count_held(self, silence_id: str, count: int) -> None:
        """``count`` more events held by the silence."""
        self._write_one(
            "UPDATE silences SET held = held + ? WHERE id = ?",
            (count, silence_id),
            "count what a silence held",
        )
