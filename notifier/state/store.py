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
from notifier.core.errors import StateError
from notifier.state.actions import Actions
from notifier.state.budget import SharedBudget
from notifier.state.commit import CycleCommit
from notifier.state.held import HeldChanges
from notifier.state.holds import Holds
from notifier.state.leases import Leases
from notifier.state.messages import LivingMessages
from notifier.state.outages import Outages
from notifier.state.postgres import PostgresDatabase
from notifier.state.records import (
    ActionClaim,
    ActionMove,
    ActionRecord,
    CycleWrite,
    Fence,
    OutageRow,
    OutboxEntry,
    ProjectState,
    SnapshotRow,
)
from notifier.state.reminders import Reminders
from notifier.state.schema import SCHEMA_VERSION
from notifier.state.silences import Silences
from notifier.state.snapshots import Snapshots
from notifier.state.sqlite import IN_MEMORY, WAL_LIMIT, SqliteDatabase
from notifier.state.story import Chapter, Story

if TYPE_CHECKING:
    from notifier.state.base import StateStore

__all__ = [
    "WAL_LIMIT",
    "ActionClaim",
    "ActionMove",
    "ActionRecord",
    "Chapter",
    "CycleWrite",
    "Fence",
    "OutageRow",
    "OutboxEntry",
    "PostgresStore",
    "ProjectState",
    "SnapshotRow",
    "StateMissingError",
    "Store",
    "empty_store",
    "open_store",
]


class Store(
    CycleCommit,
    Snapshots,
    HeldChanges,
    Actions,
    Silences,
    Story,
    Holds,
    Reminders,
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
    Actions,
    Silences,
    Story,
    Holds,
    Reminders,
    LivingMessages,
    Outages,
    Leases,
    SharedBudget,
    PostgresDatabase,
):
    """The same, in a PostgreSQL database that replicas share."""


def open_store(
    state: StateSettings, *, first_run: str | None = None, read_only: bool = False
) -> Store | PostgresStore:
    """The store the settings name: PostgreSQL with ``state.url``, else the SQLite file.
    ``first_run`` as for ``Store``. ``read_only``: for the commands that promise to write
    nothing (``dry-run``, ``outbox``): nothing is created or migrated, every write fails, and
    ``StateMissingError`` says when the notifier has not run with this state yet."""
    if not read_only:
        if state.url is None:
            return Store(state.path, first_run=first_run)
        return PostgresStore(state.url, password=_password(state))
    if state.url is None:
        if not state.path.exists():
            raise StateMissingError(str(state.path))
        store: Store | PostgresStore = Store(state.path, read_only=True)
    else:
        store = PostgresStore(state.url, password=_password(state), read_only=True)
    try:
        _readable(store, store.schema_version())
    except BaseException:
        store.close()
        raise
    return store


class StateMissingError(StateError):
    """No state database yet where the settings point (a read-only open)."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"no state at {where} yet: the notifier has not run with this config")


def empty_store() -> Store:
    """A new, empty state in memory (this thread only; nothing on disk): what a read-only
    command plans against when there is no state yet."""
    return Store(IN_MEMORY)


def _password(state: StateSettings) -> str | None:
    return state.password.get_secret_value() if state.password is not None else None


def _readable(store: Store | PostgresStore, version: int) -> None:
    """A read-only store must be at this notifier's schema: it cannot migrate it."""
    if version == 0:
        raise StateMissingError(store.name)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"state database {store.name} was written by a newer notifier (schema {version} > "
            f"{SCHEMA_VERSION}); upgrade the notifier or use another state"
        )
    if version < SCHEMA_VERSION:
        raise StateError(
            f"state database {store.name} was written by an older notifier (schema {version} "
            f"< {SCHEMA_VERSION}); start this notifier once (`notifier once`) to upgrade it, "
            "then try again"
        )


if TYPE_CHECKING:
    # mypy checks both against the contract
    _SQLITE_MEETS_THE_CONTRACT: type[StateStore] = Store
    _POSTGRES_MEETS_THE_CONTRACT: type[StateStore] = PostgresStore
