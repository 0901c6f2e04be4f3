"""``Store``: the SQLite state database, one object made of its parts, each in its module:
connections and transactions (``database``), snapshots (``snapshots``), the cycle commit
(``commit``), the outbox (``outbox``), living messages (``messages``) and outages (``outages``).

The SQL is plain (no SQLite-only upserts beyond ``INSERT ... ON CONFLICT``, which PostgreSQL
shares) so that a PostgreSQL backend can meet the same contract, ``base.StateStore``. The
records the store speaks in (``records``) and ``WAL_LIMIT`` are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier.state.commit import CycleCommit
from notifier.state.database import WAL_LIMIT
from notifier.state.messages import LivingMessages
from notifier.state.outages import Outages
from notifier.state.outbox import Outbox
from notifier.state.records import CycleWrite, OutageRow, OutboxEntry, ProjectState, SnapshotRow
from notifier.state.snapshots import Snapshots

if TYPE_CHECKING:
    from notifier.state.base import StateStore

__all__ = [
    "WAL_LIMIT",
    "CycleWrite",
    "OutageRow",
    "OutboxEntry",
    "ProjectState",
    "SnapshotRow",
    "Store",
]


class Store(CycleCommit, Snapshots, Outbox, LivingMessages, Outages):
    """SQLite-backed snapshots, outbox, living messages and outages over one set of per-thread
    connections. Safe to share between threads."""


if TYPE_CHECKING:
    _MEETS_THE_CONTRACT: type[StateStore] = Store  # mypy checks Store against StateStore
