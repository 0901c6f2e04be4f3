"""The state store, one object made of its parts, each in its module: snapshots
(``snapshots``), the cycle commit (``commit``), the outbox (``outbox``), living messages
(``messages``) and outages (``outages``), over a database — ``Store`` on a SQLite file
(``sqlite``), ``PostgresStore`` on PostgreSQL (``postgres``). Both meet one contract,
``base.StateStore``, with the same SQL (``dialect``); ``open_store`` picks one from the
settings. The records the store speaks in (``records``) and ``WAL_LIMIT`` are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from notifier.config.settings import StateSettings
from notifier.state.budget import SharedBudget
from notifier.state.commit import CycleCommit
from notifier.state.held import HeldChanges
from notifier.state.leases import Leases
from notifier.state.messages import LivingMessages
from notifier.state.outages import Outages
from notifier.state.outbox import Outbox
from notifier.state.postgres import PostgresDatabase
from notifier.state.records import (
    CycleWrite,
    Fence,
    OutageRow,
    OutboxEntry,
    ProjectState,
    SnapshotRow,
)
from notifier.state.snapshots import Snapshots
from notifier.state.sqlite import WAL_LIMIT, SqliteDatabase

if TYPE_CHECKING:
    from notifier.state.base import StateStore

__all__ = [
    "WAL_LIMIT",
    "CycleWrite",
    "Fence",
    "OutageRow",
    "OutboxEntry",
    "PostgresStore",
    "ProjectState",
    "SnapshotRow",
    "Store",
    "open_store",
]


class Store(
    CycleCommit,
    Snapshots,
    HeldChanges,
    Outbox,
    LivingMessages,
    Outages,
    Leases,
    SharedBudget,
    SqliteDatabase,
):
    """Snapshots, outbox, living messages and outages in one SQLite file, over per-thread
    connections. Safe to share between threads."""


class PostgresStore(
    CycleCommit,
    Snapshots,
    HeldChanges,
    Outbox,
    LivingMessages,
    Outages,
    Leases,
    SharedBudget,
    PostgresDatabase,
):
    """The same, in a PostgreSQL database that replicas share."""


def open_store(state: StateSettings, *, first_run: str | None = None) -> Store | PostgresStore:
    """The store the settings name: PostgreSQL with ``state.url``, else the SQLite file.
    ``first_run`` as for ``Store``."""
    if state.url is None:
        return Store(state.path, first_run=first_run)
    password = state.password.get_secret_value() if state.password is not None else None
    return PostgresStore(state.url, password=password)


if TYPE_CHECKING:
    # mypy checks both against the contract
    _SQLITE_MEETS_THE_CONTRACT: type[StateStore] = Store
    _POSTGRES_MEETS_THE_CONTRACT: type[StateStore] = PostgresStore
