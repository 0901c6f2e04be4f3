"""Sharing the work among replicas: how units are dealt out, grouped and held, and what a
replica does when its database goes away — with keepers on a real PostgreSQL database.
(tests/test_store.py pins the lease table's own contract; tests/test_replicas.py runs real
processes.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.errors import LeaseLost
from notifier.runtime.leases import LeaseKeeper, share, units_of
from notifier.state.store import PostgresStore
from tests.replicas import database_down

SINKS = {
    "alerts": {"type": "slack", "token": "xoxb-team-one-token", "channel": "C1"},
    "triage": {"type": "slack", "token": "xoxb-team-one-token", "channel": "C2"},
    "other-team": {"type": "slack", "token": "xoxb-team-two-token", "channel": "C1"},
    "hook": {"type": "webhook", "url": "https://hooks.example/in"},
}


def settings(**state: Any) -> Settings:
    document = {
        "posthog": {
            "host": "https://us.posthog.com",
            "api_key": "phx_lease_test",
            "project_ids": [1, 2],
        },
        "sinks": SINKS,
        "rules": [{"name": "all", "sinks": list(SINKS)}],
        "state": state or {"url": "postgresql://notifier@db/notifier"},
    }
    return parse_config(yaml.safe_dump(document), source="t.yaml", env={})


def test_units_are_dealt_round_robin_over_sorted_replicas() -> None:
    """Every unit to exactly one replica, evenly; a replica that joins takes its share."""
    units = [f"u{i}" for i in range(7)]
    alone = share(units, [], "b")
    assert alone == set(units)
    shares = [share(units, ["a", "b", "c"], me) for me in "abc"]
    assert set().union(*shares) == set(units)
    assert sum(len(s) for s in shares) == 7
    assert sorted(len(s) for s in shares) == [2, 2, 3]


def test_slack_sinks_of_one_workspace_are_one_unit() -> None:
    """Two sinks with one bot token post to one workspace: one replica paces both (one post a
    second per channel, one pause on a 429); another workspace and a webhook are their own."""
    units, aliases = units_of(settings())
    assert units == [
        "poll:1",
        "poll:2",
        "deliver:alerts+triage",
        "deliver:hook",
        "deliver:other-team",
    ]
    assert aliases["deliver:triage"] == "deliver:alerts+triage"
    assert aliases["deliver:hook"] == "deliver:hook"


@pytest.fixture
def stores(postgres_url: str) -> Iterator[list[PostgresStore]]:
    opened = [PostgresStore(postgres_url) for _ in range(2)]
    yield opened
    for store in opened:
        store.close()


def test_two_keepers_split_the_units_and_a_leaving_one_hands_them_over(
    stores: list[PostgresStore],
) -> None:
    """Two keepers hold disjoint shares that cover every unit; when one leaves (release_all),
    the other takes everything at its next round; a name is answered through its alias."""
    units, aliases = units_of(settings())
    a = LeaseKeeper(stores[0], units, ttl=30.0, replica="a", aliases=aliases)
    b = LeaseKeeper(stores[1], units, ttl=30.0, replica="b", aliases=aliases)
    a.step()  # alone: takes everything
    b.step()  # b's share is held by a until a's next round
    a.step()  # a hands b's share over
    b.step()  # b takes it
    assert set(a.held()).isdisjoint(b.held())
    assert set(a.held()) | set(b.held()) == set(units)
    assert a.held()
    assert b.held()
    owner = a if a.holds("deliver:triage") else b
    assert owner.holds("deliver:alerts")  # the same workspace, the same replica
    fence = owner.fence("deliver:triage")
    assert fence is not None
    assert fence.unit == "deliver:alerts+triage"
    a.release_all()
    b.step()
    assert b.held() == sorted(units)
    with pytest.raises(LeaseLost):
        a.fence("poll:1")


def test_a_keeper_that_cannot_reach_the_database_stops_at_once(
    stores: list[PostgresStore], postgres_server: str, postgres_url: str
) -> None:
    """The database goes away: the next round fails, every unit is dropped at once (no send it
    could not record) and the replica counts as unreachable; once it is back, the next round
    takes the share again."""
    units, aliases = units_of(settings())
    keeper = LeaseKeeper(stores[0], units, ttl=30.0, replica="a", aliases=aliases)
    rounds: list[tuple[list[str], int, bool]] = []
    keeper.on_round = lambda held, lost, failed: rounds.append((held, lost, failed))
    keeper.step()
    assert keeper.reachable
    assert keeper.holds("poll:1")
    database_down(postgres_server, postgres_url, down=True)
    try:
        keeper.step()
        assert not keeper.reachable
        assert keeper.held() == []
        assert not keeper.holds("poll:1")
        assert rounds[-1] == ([], len(units), True)
    finally:
        database_down(postgres_server, postgres_url, down=False)
    keeper.step()
    assert keeper.reachable
    assert keeper.held() == sorted(units)
