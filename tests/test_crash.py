"""Crashes and restarts: `notifier run` as a real subprocess, SIGKILLed at chosen and random
points, stopped with SIGTERM mid-send, and run on a state store that is unusable or full.

The webhook receiver counts deliveries by ``data.event_id``; the expected notifications are the
changes the test made, tracked as it makes them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

import pytest

from notifier.core.errors import StateError
from notifier.core.events import Event, EventType
from notifier.core.report import Report
from notifier.demo.simulator import FakePostHog
from notifier.runtime.service import STOP_GRACE_SECONDS
from notifier.state.store import CycleWrite, SnapshotRow, Store
from tests.factories import PROJECT, World
from tests.fakes import ReceivedWebhook
from tests.helpers import wait_for as shared_wait_for

pytestmark = pytest.mark.slow

SEED = 20260115
KILLS = 12  # plus the one right after the baseline; a multiple of the 6 modes
TO_HOOK = (
    "- {name: everything, match: {event: [new, status_changed, updated, removed]}, sinks: [hook]}"
)
STATUSES = ("candidate", "in_progress", "ready", "pending_input", "failed")
DISK_FULL = (
    "CREATE TRIGGER disk_full BEFORE {op} ON outbox "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)

Key = tuple[str, str, str]  # (event type, report id, the report's updated_at; "" for removed)


# --- helpers ----------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """The shared wait, polling finely: kills must land close to the moment waited for."""
    shared_wait_for(condition, seconds, what, poll=0.01)


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Read the notifier's state from another connection (WAL: never blocks the notifier)."""
    if not db.exists():
        return []
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created, not yet migrated
                return []
            raise


def execute(db: Path, sql: str) -> None:
    with closing(sqlite3.connect(db, timeout=10, isolation_level=None)) as conn:
        conn.execute(sql)


def baselined(db: Path) -> bool:
    """The project is marked baselined (a row without last_success_at: a baseline under way,
    recorded page by page)."""
    sql = "SELECT 1 FROM projects WHERE project_id = ? AND last_success_at IS NOT NULL"
    return bool(query(db, sql, (PROJECT,)))


class Daemon:
    """`notifier run` in a subprocess; stderr goes to a file so a full pipe never blocks it."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr: TextIO = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notifier", "run", "-c", str(config)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def kill(self) -> None:
        """SIGKILL, safe to call from any thread and more than once."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    def wait(self, seconds: float) -> int:
        try:
            return self.process.wait(timeout=seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._stderr.close()

    def text(self) -> str:
        return self.log.read_text()


@contextmanager
def daemon(config: Path, env: dict[str, str], log: Path) -> Iterator[Daemon]:
    running = Daemon(config, env, log)
    try:
        yield running
    finally:
        running.kill()
        running.wait(10)


def stop(running: Daemon, seconds: float = 10) -> tuple[int, float]:
    """SIGTERM; the exit code and how long the exit took."""
    started = time.monotonic()
    running.process.send_signal(signal.SIGTERM)
    code = running.wait(seconds)
    return code, time.monotonic() - started


def stop_cleanly(running: Daemon) -> float:
    """SIGTERM, which must end the daemon with exit code 0; how long the exit took."""
    code, took = stop(running)
    assert code == 0, running.text()
    return took


def key_of(body: dict[str, Any]) -> Key:
    kind = body["type"].removeprefix("signal_report.")
    report = body["data"]["report"]
    return (kind, report["id"], "" if kind == "removed" else report["updated_at"])


class Story:
    """Changes reports and remembers the notification each change must produce.

    A report is changed only once the notifier's snapshot holds its current version, so no two
    changes are merged into one event and every change is exactly one expected notification.
    """

    def __init__(self, posthog: FakePostHog, db: Path, rng: random.Random) -> None:
        self.posthog = posthog
        self.db = db
        self.rng = rng
        self.expected: set[Key] = set()
        self._serial = 0

    def add(self, *, notify: bool = True) -> dict[str, Any]:
        self._serial += 1
        report = self.posthog.add_report(
            PROJECT, title=f"report {self._serial}", status=self.rng.choice(STATUSES)
        )
        if notify:
            self.expected.add(("new", report["id"], report["updated_at"]))
        return report

    def _settled(self) -> list[dict[str, Any]]:
        seen = {
            rid: json.loads(data).get("updated_at")
            for rid, data in query(
                self.db, "SELECT report_id, data FROM reports WHERE project_id = ?", (PROJECT,)
            )
        }
        return [
            r
            for r in self.posthog.reports(PROJECT)
            if r["status"] != "deleted" and seen.get(r["id"]) == r["updated_at"]
        ]

    def change(self) -> None:
        """One random change: a new report, or a status, title or deletion of a settled one."""
        settled = self._settled()
        kind = self.rng.choice(("new", "status", "status", "title", "delete")) if settled else "new"
        if kind == "new":
            self.add()
            return
        report = self.rng.choice(settled)
        rid = report["id"]
        if kind == "status":
            status = self.rng.choice([s for s in STATUSES if s != report["status"]])
            now = self.posthog.update_report(PROJECT, rid, status=status)
            self.expected.add(("status_changed", rid, now["updated_at"]))
        elif kind == "title":
            now = self.posthog.update_report(PROJECT, rid, title=f"{report['title']}+")
            self.expected.add(("updated", rid, now["updated_at"]))
        else:
            self.posthog.delete_report(PROJECT, rid)
            self.expected.add(("removed", rid, ""))


# --- SIGKILL at random points -----------------------------------------------------------------


@pytest.mark.timeout(90)
def test_sigkill_at_random_points_loses_nothing(world: World, tmp_path: Path) -> None:
    """13 SIGKILLs (mid-listing, after the commit, mid-send, at random) while reports change:
    every change is delivered, at most one duplicate per kill, and the state file is sound."""
    rng = random.Random(SEED)
    # every status change is expected at once: nothing held back (poll.settle: 0s)
    config = world.make_config(rules=TO_HOOK, posthog_extra="page_size: 3", poll_extra="settle: 0s")
    db = tmp_path / "state.db"
    story = Story(world.posthog, db, rng)
    for _ in range(7):
        story.add(notify=False)  # recorded silently by the baseline

    kills = 0
    with daemon(config, world.env, tmp_path / "run-0.log") as first:
        wait_for(lambda: baselined(db), 10, "the baseline")
        first.kill()
        kills += 1

    modes = ["listing", "commit", "send", "send-landed", "random", "random"] * (KILLS // 6)
    rng.shuffle(modes)
    for i, mode in enumerate(modes, start=1):
        for _ in range(rng.randint(1, 3)):
            story.change()
        outbox_rows = len(query(db, "SELECT id FROM outbox"))
        running = Daemon(config, world.env, tmp_path / f"run-{i}.log")
        try:
            if mode == "listing":  # killed while a page of the listing is being answered
                pages = [rng.randint(1, 5)]

                def on_page(
                    _project: int, _offset: int, pages: list[int] = pages, target: Daemon = running
                ) -> None:
                    pages[0] -= 1
                    if pages[0] == 0:
                        target.kill()

                world.posthog.on_list_page = on_page
            elif mode.startswith("send"):  # killed with a request at the receiver, unanswered

                def on_arrival(
                    _request: ReceivedWebhook, target: Daemon = running, lost: bool = mode == "send"
                ) -> None:
                    target.kill()
                    if lost:  # the request dies with the sender: the receiver never takes it
                        raise ConnectionResetError("the sender is gone")

                world.receiver.on_arrival = on_arrival
            elif mode == "commit":  # killed once the cycle is committed, before it is sent
                world.receiver.stall_seconds = 0.5
                wait_for(
                    lambda rows=outbox_rows: len(query(db, "SELECT id FROM outbox")) > rows,
                    10,
                    "a committed cycle",
                )
                running.kill()
            else:
                half = rng.uniform(0.0, 0.8)
                time.sleep(half)
                if rng.random() < 0.5:
                    story.change()  # a change while it runs
                time.sleep(rng.uniform(0.0, 0.8))
                running.kill()
            code = running.wait(10)
        finally:
            world.posthog.on_list_page = None
            world.receiver.on_arrival = None
            world.receiver.stall_seconds = 0.0
            running.kill()
        assert code == -signal.SIGKILL, f"run {i} ({mode}) exited by itself:\n{running.text()}"
        kills += 1

    def delivered() -> set[Key]:
        return {key_of(r.json()) for r in list(world.receiver.received)}

    def settled() -> bool:
        pending = query(db, "SELECT COUNT(*) FROM outbox WHERE state != 'delivered'")
        return story.expected <= delivered() and pending == [(0,)]

    with daemon(config, world.env, tmp_path / "run-last.log") as last:
        wait_for(lambda: f"project {PROJECT}: " in last.text(), 10, "a cycle")
        wait_for(settled, 20, "every change delivered")
        stop_cleanly(last)

    by_event: dict[str, list[ReceivedWebhook]] = defaultdict(list)
    for request in world.receiver.received:
        by_event[request.json()["data"]["event_id"]].append(request)
    keys = {event_id: key_of(requests[0].json()) for event_id, requests in by_event.items()}
    assert set(keys.values()) == story.expected  # everything, and nothing that did not happen
    assert len(keys) == len(story.expected)  # one event id per change, however often recomputed
    duplicates = sum(len(requests) - 1 for requests in by_event.values())
    assert duplicates <= kills, f"{duplicates} duplicates for {kills} kills"
    for requests in by_event.values():
        assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    states = query(db, "SELECT state, COUNT(*) FROM outbox GROUP BY state")
    assert states == [("delivered", len(story.expected))]


# --- SIGTERM mid-send -------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sink_timeout", ["2s", "30s"])
def test_sigterm_mid_send_exits_0_and_delivers_after_restart(
    world: World, tmp_path: Path, sink_timeout: str
) -> None:
    """SIGTERM while a send hangs on a stalled receiver (timing out before, or long after, the
    10 s a container gets): exit 0 within 10 s; the entry is delivered after the restart with
    the same webhook-id."""
    world.posthog.add_report(PROJECT, title="already there")
    config = world.make_config(rules=TO_HOOK)
    config.write_text(config.read_text().replace("timeout: 2s", f"timeout: {sink_timeout}"))
    db = tmp_path / "state.db"
    arrived: list[ReceivedWebhook] = []
    with daemon(config, world.env, tmp_path / "run-1.log") as running:
        wait_for(lambda: baselined(db), 10, "the baseline")
        world.receiver.stall_seconds = 60
        world.receiver.on_arrival = arrived.append
        world.posthog.add_report(PROJECT, title="sent while stopping")
        wait_for(lambda: bool(arrived), 10, "the send to start")
        assert stop_cleanly(running) < 10
        assert "SIGTERM" in running.text()
    assert world.receiver.received == []  # the stalled request was never answered
    assert query(db, "SELECT state FROM outbox") == [("pending",)]
    world.receiver.stall_seconds = 0
    world.receiver.on_arrival = None
    with daemon(config, world.env, tmp_path / "run-2.log") as running:
        wait_for(lambda: len(world.receiver.received) == 1, 10, "the delivery after the restart")
        stop_cleanly(running)
    [request] = world.receiver.received
    assert request.json()["data"]["report"]["title"] == "sent while stopping"
    assert request.headers["webhook-id"] == arrived[0].headers["webhook-id"]
    assert query(db, "SELECT state FROM outbox") == [("delivered",)]


@pytest.mark.timeout(60)
def test_sigterm_while_posthog_hangs_abandons_the_cycle_and_loses_nothing(
    world: World, tmp_path: Path
) -> None:
    """SIGTERM while a listing hangs with posthog.timeout 30s: past the stop grace (or at a
    second SIGTERM) the cycle is abandoned with a warning and the daemon exits 0; the change is
    delivered after the restart."""
    assert STOP_GRACE_SECONDS < 10  # `docker stop` sends SIGKILL after 10 s
    world.posthog.add_report(PROJECT, title="already there")
    config = world.make_config(rules=TO_HOOK)
    config.write_text(config.read_text().replace("timeout: 5s", "timeout: 30s"))
    db = tmp_path / "state.db"
    quick = {**world.env, "NOTIFIER_STOP_GRACE": "2"}
    with daemon(config, quick, tmp_path / "run-1.log") as running:
        wait_for(lambda: baselined(db), 10, "the baseline")
        world.posthog.stall_seconds = 60
        world.posthog.add_report(PROJECT, title="found after the restart")
        listed = len(world.posthog.requests)
        wait_for(lambda: len(world.posthog.requests) > listed, 10, "a listing in flight")
        assert stop_cleanly(running) < 10
        assert "did not finish within 2 s of SIGTERM" in running.text()
    patient = {**world.env, "NOTIFIER_STOP_GRACE": "60"}
    with daemon(config, patient, tmp_path / "run-2.log") as running:
        listed = len(world.posthog.requests)
        wait_for(lambda: len(world.posthog.requests) > listed, 10, "a listing in flight")
        running.process.send_signal(signal.SIGTERM)
        wait_for(lambda: "received SIGTERM" in running.text(), 5, "the first SIGTERM")
        code, took = stop(running)  # a second signal: leave now
        assert (code, took < 5) == (0, True), running.text()
        assert "received SIGTERM again" in running.text()
    assert query(db, "SELECT COUNT(*) FROM outbox") == [(0,)]
    world.posthog.stall_seconds = 0
    with daemon(config, world.env, tmp_path / "run-3.log") as running:
        wait_for(lambda: len(world.receiver.received) == 1, 10, "the delivery after the restart")
        stop_cleanly(running)
    assert world.receiver.received[0].json()["data"]["report"]["title"] == "found after the restart"


# --- an unusable or full state store --------------------------------------------------------


@pytest.mark.parametrize("blocker", ["parent is a file", "path is a directory"])
def test_unusable_state_path_is_a_clear_error(world: World, tmp_path: Path, blocker: str) -> None:
    """A state path that cannot be a database: `run` exits 1 at once naming the path and the
    fix, without a traceback; once the path is usable, the notifier starts from scratch."""
    world.posthog.add_report(PROJECT, title="already there")
    config = world.make_config(rules=TO_HOOK)
    if blocker == "parent is a file":
        (tmp_path / "state").write_text("not a directory")
        state = tmp_path / "state" / "state.db"
        expected = f"{tmp_path / 'state'} is a file, not a directory"
    else:
        state = tmp_path / "state.d"
        state.mkdir()
        expected = f"{state}: cannot open it: it is a directory"
    config.write_text(config.read_text().replace(str(tmp_path / "state.db"), str(state)))
    with daemon(config, world.env, tmp_path / "run-1.log") as running:
        code = running.wait(10)
        err = running.text()
    assert code == 1, err
    assert expected in err
    assert "Traceback" not in err
    if blocker == "parent is a file":
        (tmp_path / "state").unlink()
    else:
        state.rmdir()
    with daemon(config, world.env, tmp_path / "run-2.log") as running:
        wait_for(lambda: baselined(state), 10, "the baseline")
        world.posthog.add_report(PROJECT, title="after the fix")
        wait_for(lambda: len(world.receiver.received) == 1, 10, "the delivery")
        stop_cleanly(running)
    assert world.receiver.received[0].json()["data"]["report"]["title"] == "after the fix"


def test_disk_full_keeps_nothing_and_the_next_cycle_delivers_exactly(
    world: World, tmp_path: Path
) -> None:
    """The daemon's cycles fail while the disk is full: a clear error each cycle, the snapshot
    untouched, nothing queued; after the fault is removed the next cycle delivers exactly the
    changes made meanwhile, once each."""
    a = world.posthog.add_report(PROJECT, title="a", status="in_progress")
    world.posthog.add_report(PROJECT, title="b")
    config = world.make_config(rules=TO_HOOK)
    db = tmp_path / "state.db"
    with daemon(config, world.env, tmp_path / "run.log") as running:
        wait_for(lambda: baselined(db), 10, "the baseline")
        before = query(db, "SELECT * FROM reports ORDER BY report_id")
        execute(db, DISK_FULL.format(op="INSERT"))
        new = world.posthog.add_report(PROJECT, title="c")
        changed = world.posthog.update_report(PROJECT, a["id"], status="ready")
        wait_for(lambda: running.text().count("database or disk is full") >= 2, 10, "2 failures")
        assert query(db, "SELECT * FROM reports ORDER BY report_id") == before
        assert query(db, "SELECT COUNT(*) FROM outbox") == [(0,)]
        assert world.receiver.received == []
        error = next(line for line in running.text().splitlines() if "disk is full" in line)
        assert json.loads(error)["level"] == "error"  # JSON logs when not on a terminal
        assert f"state database {db}: cannot save the cycle" in error
        assert "nothing of this cycle was kept" in error
        execute(db, "DROP TRIGGER disk_full")
        wait_for(lambda: len(world.receiver.received) >= 2, 10, "the deliveries")
        cycles = running.text().count(f"project {PROJECT}: ")
        wait_for(lambda: running.text().count(f"project {PROJECT}: ") > cycles, 10, "a cycle")
        stop_cleanly(running)
    assert sorted(key_of(r.json()) for r in world.receiver.received) == sorted(
        [("new", new["id"], new["updated_at"]), ("status_changed", a["id"], changed["updated_at"])]
    )
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_disk_full_while_recording_a_delivery_does_not_repeat_it(
    world: World, load: Callable[[Path], Any], tmp_path: Path
) -> None:
    """A delivery the sink accepted but the full disk cannot record stays pending with a clear
    StateError; later passes retry the record, not the send, so the channel does not get the
    message again on every pass. Only a restart sends it again (same webhook-id)."""
    from notifier.runtime.daemon import Notifier  # noqa: PLC0415

    config = world.make_config(rules=TO_HOOK)
    db = tmp_path / "state.db"
    for restart in (False, True):
        notifier = Notifier(load(config))
        try:
            assert notifier.poll(PROJECT) is not None  # (the baseline the first time)
            world.posthog.add_report(PROJECT, title=f"restart={restart}")
            assert notifier.poll(PROJECT) is not None
            execute(db, DISK_FULL.format(op="UPDATE"))
            for _ in range(3):
                with pytest.raises(StateError) as caught:
                    notifier.drain_all()
                assert "cannot record a delivery: database or disk is full" in str(caught.value)
                assert "nothing of this cycle was kept" not in str(caught.value)
            assert query(db, "SELECT state FROM outbox WHERE state != 'delivered'") == [
                ("pending",)
            ]
            if restart:
                notifier.close()
                notifier = Notifier(load(config))
            execute(db, "DROP TRIGGER disk_full")
            assert notifier.drain_all().delivered == 1
        finally:
            notifier.close()
    assert query(db, "SELECT state FROM outbox") == [("delivered",), ("delivered",)]
    titles = [r.json()["data"]["report"]["title"] for r in world.receiver.received]
    assert titles == ["restart=False", "restart=True", "restart=True"]
    assert (
        world.receiver.received[1].headers["webhook-id"]
        == world.receiver.received[2].headers["webhook-id"]
    )


def test_real_sqlite_full_is_reported_as_such_and_rolled_back(tmp_path: Path) -> None:
    """A genuine SQLITE_FULL mid-cycle (SQLite may roll back by itself) is reported as 'database
    or disk is full', keeps nothing, and the same cycle commits once there is room."""
    store = Store(tmp_path / "s.db")
    try:
        conn = store._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # this connection: a tiny disk
        reports = [
            Report.from_api({"id": f"r{i}", "status": "ready", "title": "x" * 4000})
            for i in range(40)
        ]
        write = CycleWrite(
            PROJECT,
            [SnapshotRow(r, True) for r in reports],
            [],
            [
                (Event.create(EventType.NEW, PROJECT, r, None, {}), "hook", ("all",))
                for r in reports
            ],
            now=1.0,
        )
        with pytest.raises(StateError) as caught:
            store.commit_cycle(write)
        assert "cannot save the cycle: database or disk is full" in str(caught.value)
        assert not conn.in_transaction
        assert store.snapshot(PROJECT) == {}
        assert store.counts() == {}
        assert not store.is_baselined(PROJECT)
        conn.execute("PRAGMA max_page_count = 1073741823")
        assert store.commit_cycle(write) == 40
        assert len(store.snapshot(PROJECT)) == 40
        assert store.integrity_check() == "ok"
    finally:
        store.close()
