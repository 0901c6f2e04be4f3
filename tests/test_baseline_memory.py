"""A first start records its baseline page by page (issue 12, item 6), on SQLite and PostgreSQL.

What it costs in memory is measured by the benchmark (``bench/run.py``, "first start"); these
tests pin what it does: each listing page is committed as it is read (under the poll lease),
the project is marked baselined only once the whole listing is recorded, an interrupted
baseline is finished by the next cycle silently for every report that existed before the
notifier first ran, and a report created after that first attempt began is announced, once.
"""

from __future__ import annotations

import functools
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from notifier.config.settings import Settings, StateSettings
from notifier.core.errors import LeaseLost
from notifier.cycle.baseline import baseline_cycle
from notifier.demo.simulator import FakePostHog
from notifier.posthog.client import PostHogClient
from notifier.runtime.leases import LeaseKeeper
from notifier.state.base import StateStore
from notifier.state.records import Fence
from notifier.state.store import open_store
from tests.factories import PROJECT, Notifiers, World
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import cli
from tests.test_crash import baselined, daemon, query

Once = Callable[..., int]
PAGES = "page_size: 2"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The config's state section: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return f"path: {tmp_path / 'state.db'}"
    return f"url: {request.getfixturevalue('postgres_url')}"


@pytest.fixture
def once(once: Once, state: str) -> Once:
    """conftest's ``once``, with the state on the backend of this run."""
    return functools.partial(once, state=state)


def _open(state: str) -> StateStore:
    return open_store(StateSettings.model_validate(yaml.safe_load(state)))


def _rows_now(state: str) -> int:
    """How many snapshot rows the database holds, read behind the notifier's back (its own
    connection: the SQLite file in WAL mode, or PostgreSQL)."""
    where = yaml.safe_load(state)
    if "path" in where:
        with sqlite3.connect(f"file:{where['path']}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM reports").fetchone()[0])
    with psycopg.connect(where["url"]) as conn:
        row = conn.execute("SELECT COUNT(*) FROM reports").fetchone()
        assert row is not None
        return int(row[0])


def _webhooks(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    """(event type, report id) of every webhook received."""
    bodies = [json.loads(r.body) for r in receiver.received]
    return [(b["type"], b["data"]["report"]["id"]) for b in bodies]


def _created_now() -> dict[str, str]:
    """created_at/updated_at of a report PostHog creates now (real time: the fake's own clock
    is in the past, so every report it dates itself existed before the notifier started)."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"created_at": now, "updated_at": now}


def test_a_baseline_of_several_pages_is_committed_page_by_page_and_silently(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    once: Once,
    state: str,
) -> None:
    """Seven reports over four pages: no event, every report recorded, and the pages already
    read are in the database while later ones are still being served (not held in memory
    until the end)."""
    ids = [posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(7)]
    seen: dict[int, int] = {}  # listing offset → snapshot rows in the database as it is served
    posthog.on_list_page = lambda _pid, offset: seen.setdefault(offset, _rows_now(state))
    assert once(posthog_extra=PAGES) == 0
    assert slack.messages == []
    assert receiver.received == []
    assert sorted(seen) == [0, 2, 4, 6]
    # the page at offset 6 is requested ahead while the one at 4 is read: by then the pages at
    # offsets 0 and 2 are committed (4 rows), before the listing has ended
    assert seen[0] == 0
    assert seen[6] >= 4
    store = _open(state)
    try:
        assert set(store.snapshot(PROJECT)) == set(ids)
        marks = store.project_state(PROJECT)
        assert marks.baselined
        assert marks.high_water is not None
        assert marks.full_sync_at is not None
    finally:
        store.close()
    posthog.update_report(PROJECT, ids[3], status="resolved")
    assert once(posthog_extra=PAGES) == 0
    assert _webhooks(receiver) == [("signal_report.status_changed", ids[3])]


def test_an_interrupted_baseline_is_finished_silently_and_later_reports_are_announced(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    once: Once,
    state: str,
) -> None:
    """PostHog fails on the third page of the first cycle: the two pages read are kept, the
    project is not marked baselined. Meanwhile a recorded report changes, another goes away,
    an unrecorded one changes and a new one is created. The next cycle finishes the baseline:
    no event for any report that existed before the notifier first ran, every report recorded
    as it is now, the vanished one forgotten; the report created after the notifier started is
    announced, once."""
    ids = [posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(7)]
    posthog.fail_next(500, times=3, path_contains="offset=4")  # every attempt of the cycle
    assert once(posthog_extra=PAGES, max_wait=0) == 1
    store = _open(state)
    try:
        assert set(store.snapshot(PROJECT)) == set(ids[:4])
        assert not store.project_state(PROJECT).baselined
    finally:
        store.close()

    posthog.update_report(PROJECT, ids[0], status="resolved")  # recorded, then changed
    posthog.delete_report(PROJECT, ids[1])  # recorded, then gone
    posthog.update_report(PROJECT, ids[5], title="changed before it was recorded")
    late = posthog.add_report(PROJECT, title="created after the notifier started", **_created_now())
    assert once(posthog_extra=PAGES) == 0
    assert _webhooks(receiver) == [("signal_report.new", late["id"])]
    assert len(slack.messages) == 1

    store = _open(state)
    try:
        snapshot = store.snapshot(PROJECT)
        assert set(snapshot) == (set(ids) - {ids[1]}) | {late["id"]}
        assert snapshot[ids[0]].report.status == "resolved"
        assert snapshot[ids[5]].report.title == "changed before it was recorded"
        assert store.project_state(PROJECT).baselined
    finally:
        store.close()
    assert once(posthog_extra=PAGES) == 0  # nothing again
    assert len(receiver.received) == 1
    assert len(slack.messages) == 1


def test_a_recorded_report_the_finishing_listing_skips_is_fetched_and_kept(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once, state: str
) -> None:
    """A report recorded by the failed attempt that the next attempt's listing does not bring
    (paging skipped it) is fetched by id and kept, not forgotten — else a later listing would
    announce it as new."""
    ids = [posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(7)]
    posthog.fail_next(500, times=3, path_contains="offset=4")
    assert once(posthog_extra=PAGES, max_wait=0) == 1

    def skip_first(_pid: int, offset: int, body: dict[str, Any]) -> dict[str, Any]:
        if offset == 0:
            posthog.rewrite_page = None
            body["results"] = [r for r in body["results"] if r["id"] != ids[0]]
        return body

    posthog.rewrite_page = skip_first
    assert once(posthog_extra=PAGES) == 0
    assert any(r.path.endswith(f"/{ids[0]}/") for r in posthog.requests)  # fetched by id
    store = _open(state)
    try:
        assert set(store.snapshot(PROJECT)) == set(ids)
        assert store.project_state(PROJECT).baselined
    finally:
        store.close()
    assert once(posthog_extra=PAGES) == 0
    assert receiver.received == []


def test_a_report_created_after_the_start_is_announced_even_when_every_attempt_fails_first(
    posthog: FakePostHog, receiver: WebhookReceiver, once: Once
) -> None:
    """The first page fails: nothing is recorded, but the start is. A report created after it
    is announced by the cycle that completes the baseline; the older ones are not."""
    old = posthog.add_report(PROJECT, title="there before the notifier")
    posthog.fail_next(503, times=3, path_contains="offset=0")
    assert once(posthog_extra=PAGES, max_wait=0) == 1
    late = posthog.add_report(PROJECT, title="created during the outage", **_created_now())
    assert once(posthog_extra=PAGES) == 0
    assert _webhooks(receiver) == [("signal_report.new", late["id"])]
    assert old["id"] != late["id"]


def test_a_change_made_while_the_baseline_pages_is_announced_by_the_next_incremental_cycle(
    posthog: FakePostHog,
    receiver: WebhookReceiver,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    notifiers: Notifiers,
    state: str,
) -> None:
    """A report on the first page changes while the baseline reads the third: its change is
    after what the baseline recorded, and the next cycle — incremental, from the baseline's
    high-water mark with no overlap — announces it (the mark does not skip it)."""
    ids = [posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(7)]

    def change_during_the_baseline(_pid: int, offset: int) -> None:
        if offset == 4:
            posthog.on_list_page = None
            posthog.update_report(PROJECT, ids[0], status="resolved")

    posthog.on_list_page = change_during_the_baseline
    settings = load(
        make_config(posthog_extra=PAGES, poll_extra="overlap: 0s\nfull_sync_every: 1h", state=state)
    )
    notifier = notifiers.build(settings)
    if isinstance(notifier.leases, LeaseKeeper):  # PostgreSQL: take the project's lease
        notifier.leases.step()
    first = notifier.poll(PROJECT)
    assert first is not None
    assert first.baseline
    assert first.events == ()
    second = notifier.poll(PROJECT)
    assert second is not None
    assert second.incremental
    assert [(e.type.value, e.report.id) for e in second.events] == [("status_changed", ids[0])]


def test_baseline_pages_are_committed_under_the_poll_lease(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    state: str,
) -> None:
    """Each page's commit carries the poll unit's fencing token: once another replica takes
    the project over mid-baseline, the next page's commit is refused (LeaseLost), nothing after
    it is kept, and the project is not marked baselined."""
    ids = [posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(7)]
    settings = load(make_config(posthog_extra=PAGES, state=state))
    store = _open(state)
    source = PostHogClient(settings.posthog)
    unit = f"poll:{PROJECT}"
    token = store.acquire(unit, "a", 60.0)
    assert token is not None
    fence = Fence(unit, "a", token)

    def take_over(_pid: int, offset: int) -> None:
        if offset == 4:  # requested ahead while the page at offset 2 is read
            store.release(fence)
            assert store.acquire(unit, "b", 60.0) is not None

    posthog.on_list_page = take_over
    try:
        with pytest.raises(LeaseLost):
            baseline_cycle(
                PROJECT, source=source, store=store, rules=(), now=time.time(), fence=fence
            )
        recorded = set(store.snapshot(PROJECT))
        assert set(ids[:2]) <= recorded <= set(ids[:4])
        assert not store.project_state(PROJECT).baselined
    finally:
        source.close()
        store.close()


@pytest.mark.slow
def test_a_baseline_killed_mid_listing_is_finished_by_the_next_start(
    world: World, tmp_path: Path
) -> None:
    """`notifier run` SIGKILLed while PostHog answers the sixth of ten pages: the pages
    committed stay, the project is not marked baselined; the next `notifier once` finishes the
    baseline with no event for the thirty reports that were there, and announces the one
    created after the first start."""
    ids = [world.posthog.add_report(PROJECT, title=f"old {i}")["id"] for i in range(30)]
    config = world.make_config(posthog_extra="page_size: 3")
    db = tmp_path / "state.db"
    with daemon(config, world.env, tmp_path / "run.log") as running:

        def kill_on_the_sixth_page(_pid: int, offset: int) -> None:
            if offset == 15:
                world.posthog.on_list_page = None
                running.kill()

        world.posthog.on_list_page = kill_on_the_sixth_page
        assert running.wait(30) == -signal.SIGKILL, running.text()
    recorded = {rid for (rid,) in query(db, "SELECT report_id FROM reports")}
    assert 3 <= len(recorded) < 30
    assert recorded <= set(ids)
    assert not baselined(db)

    late = world.posthog.add_report(PROJECT, title="after the first start", **_created_now())
    rules = "- {name: all, match: {}, sinks: [hook]}"
    result = cli(
        "once",
        "-c",
        str(world.make_config(posthog_extra="page_size: 3", rules=rules)),
        env=world.env,
    )
    assert result.returncode == 0, result.stderr
    assert _webhooks(world.receiver) == [("signal_report.new", late["id"])]
    recorded = {rid for (rid,) in query(db, "SELECT report_id FROM reports")}
    assert recorded == {*ids, late["id"]}
    assert baselined(db)
