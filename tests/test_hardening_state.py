"""Clocks, state files and exit codes (issue 16, item 7): a wall clock stepped back never holds
a retry longer than its wait; an emptied state file is said loudly (and refused when going on
would notify every report again); a damaged one is refused at start with its own exit status
and the right hint; the state, its WAL and the heartbeat are created 0600 whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notifier.cli.shared import EXIT_BAD_STATE
from notifier.config.settings import DeliverySettings, Settings
from notifier.core.errors import SinkError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Report
from notifier.delivery.drain import Deliverer
from notifier.state.store import CycleWrite, Store
from tests.factories import PROJECT, World
from tests.helpers import cli, run_notifier, running, wait_for

HOUR = 3600.0
SETTINGS = DeliverySettings(give_up_after=6 * HOUR, backoff_initial=10, backoff_max=100)
DAMAGED_HINT = "damaged"


class Sink:
    """Fails as scripted, then accepts; records what it accepted."""

    def __init__(self, failures: list[SinkError] | None = None) -> None:
        self.name = "s"
        self.failures = list(failures or [])
        self.accepted: list[str] = []

    def send(self, delivery: Delivery) -> None:
        if self.failures:
            raise self.failures.pop(0)
        assert isinstance(delivery.event, Event)
        self.accepted.append(delivery.event.report.id)

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.db")
    yield s
    s.close()


def queue(store: Store, *report_ids: str, now: float) -> None:
    events = [
        Event.create(EventType.NEW, 1, Report.from_api({"id": r, "status": "ready"}), None, {})
        for r in report_ids
    ]
    store.commit_cycle(CycleWrite(1, [], [], [(e, "s", ("rule",)) for e in events], now=now))


# -- 1. retry times under a wall clock stepped back -------------------------------------------


def test_a_clock_stepped_back_retries_within_backoff_max(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A transient failure waits at most backoff_max, even when the wall clock then steps back
    an hour (it used to wait that hour too); the step is logged as a WARNING."""
    clock = Clock(100_000.0)
    sink = Sink([SinkError("HTTP 503", permanent=False)])
    queue(store, "a", now=clock.now)
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=clock)
    assert deliverer.drain("s").retrying == 1
    clock.now -= HOUR - 1  # NTP steps the clock back an hour, a second later
    deliverer.drain("s")
    clock.now += SETTINGS.backoff_max
    assert deliverer.drain("s").delivered == 1
    assert sink.accepted == ["a"]
    assert any("clock" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_an_entry_queued_before_the_clock_stepped_back_goes_at_once(store: Store) -> None:
    """An entry queued (due at once) just before the step is not held until the clock catches
    up again."""
    clock = Clock(100_000.0)
    queue(store, "a", now=clock.now)
    clock.now -= HOUR
    sink = Sink()
    assert Deliverer(store, {"s": sink}, SETTINGS, clock=clock).drain("s").delivered == 1
    assert store.next_due("s") is None


def test_a_long_retry_after_is_kept_across_a_clock_step(store: Store) -> None:
    """A Retry-After longer than backoff_max is still honoured, not cut short, and not
    lengthened by the hour the clock stepped back."""
    clock = Clock(100_000.0)
    sink = Sink([SinkError("HTTP 429", permanent=False, retry_after=500)])
    queue(store, "a", now=clock.now)
    deliverer = Deliverer(store, {"s": sink}, SETTINGS, clock=clock)
    deliverer.drain("s")
    clock.now -= HOUR
    assert deliverer.drain("s").delivered == 0  # the delivery thread sees the step
    clock.now += 499
    assert deliverer.drain("s").delivered == 0
    clock.now += 1
    assert deliverer.drain("s").delivered == 1


# -- 2. an emptied state file -------------------------------------------------------------------


def _state(path: Path) -> Path:
    return path.parent / "state.db"


def test_an_emptied_state_file_is_an_error_and_baseline_goes_on(world: World) -> None:
    """A zero-length state file (it had content: truncated by a bad restore, a full disk, a
    `>` by mistake) is an ERROR naming the file and what it means; with first_run: baseline
    going on is safe (nothing is sent again), so `once` takes a new baseline."""
    world.posthog.add_report(PROJECT, title="Already known")
    path = world.make_config()
    assert cli("once", "-c", str(path), env=world.env).returncode == 0
    _state(path).write_bytes(b"")
    result = cli("once", "-c", str(path), env=world.env)
    assert result.returncode == 0, result.stderr
    error = next(line for line in result.stderr.splitlines() if '"level": "error"' in line)
    assert str(_state(path)) in error
    assert "empty" in error
    assert "previous state is gone" in error
    assert "first_run" in error
    assert world.slack.messages == []


def test_an_emptied_state_file_is_refused_when_first_run_notifies(world: World) -> None:
    """With first_run: notify, going on would send every current report again: `once` refuses,
    leaves the file as it is, and says how to start afresh on purpose."""
    world.posthog.add_report(PROJECT, title="Already sent")
    path = world.make_config(first_run="notify")
    assert cli("once", "-c", str(path), env=world.env).returncode == 0
    sent = len(world.slack.messages)
    _state(path).write_bytes(b"")
    result = cli("once", "-c", str(path), env=world.env)
    assert result.returncode == EXIT_BAD_STATE, result.stderr
    assert "first_run: notify" in result.stderr
    assert "move it away" in result.stderr
    assert _state(path).stat().st_size == 0  # not healed behind the operator's back
    assert len(world.slack.messages) == sent


# -- 3. a damaged state file --------------------------------------------------------------------


def _damage(db: Path, start: int) -> None:
    """Garbage over the file from ``start`` on (0: the header too)."""
    size = db.stat().st_size
    assert size > start
    with db.open("r+b") as f:
        f.seek(start)
        f.write(bytes((i * 37 + 11) % 251 for i in range(size - start)))


@pytest.fixture
def damaged(world: World) -> Callable[[int], Path]:
    """A config whose state file was written by a run, then damaged from an offset."""

    def make(start: int) -> Path:
        for n in range(30):
            world.posthog.add_report(PROJECT, title=f"report {n} " + "x" * 2000)
        path = world.make_config()
        assert cli("once", "-c", str(path), env=world.env).returncode == 0
        assert not Path(f"{_state(path)}-wal").exists()
        _damage(_state(path), start)
        return path

    return make


def _refused(result_stderr: str, db: Path) -> None:
    assert str(db) in result_stderr
    assert DAMAGED_HINT in result_stderr
    assert "restore a backup" in result_stderr
    assert "move it away" in result_stderr
    assert "free space" not in result_stderr


@pytest.mark.parametrize("start", [0, 4096], ids=["header", "pages"])
def test_a_damaged_state_file_is_refused_by_once(
    world: World, damaged: Callable[[int], Path], start: int
) -> None:
    """Garbage over the header or over the pages: `once` refuses at start with the dedicated
    exit status and the right hint (restore a backup or move it away), not "free space"."""
    path = damaged(start)
    result = cli("once", "-c", str(path), env=world.env)
    assert result.returncode == EXIT_BAD_STATE, result.stderr
    _refused(result.stderr, _state(path))


def test_a_damaged_state_file_is_refused_by_run(
    world: World, damaged: Callable[[int], Path]
) -> None:
    """`notifier run`, a real process, exits at start with the status systemd does not restart."""
    path = damaged(4096)
    result = run_notifier("run", "-c", str(path), env=world.env, timeout=30)
    assert result.returncode == EXIT_BAD_STATE, result.stderr
    _refused(result.stderr, _state(path))


def test_the_systemd_unit_does_not_restart_on_a_damaged_state() -> None:
    unit = Path(__file__).resolve().parent.parent / "deploy" / "systemd" / "notifier.service"
    statuses = [
        value
        for line in unit.read_text().splitlines()
        if line.startswith("RestartPreventExitStatus=")
        for value in line.partition("=")[2].split()
    ]
    assert str(EXIT_BAD_STATE) in statuses
    assert "2" in statuses


def test_the_help_of_run_and_once_names_the_exit_status() -> None:
    for command in ("run", "once"):
        result = cli(command, "--help", env={})
        assert result.returncode == 0
        assert str(EXIT_BAD_STATE) in result.stdout


# -- 4. file modes --------------------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0 for the test (files would be world-writable unless created 0600 on purpose)."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.mark.usefixtures("open_umask")
def test_state_wal_and_heartbeat_are_0600(world: World, load: Callable[[Path], Settings]) -> None:
    """Under umask 0 the state database, its WAL and the heartbeat are created 0600."""
    settings = load(world.make_config())
    db = settings.state.path
    with running(settings) as notifier:
        wait_for(notifier.heartbeat_path.exists, 10, "the heartbeat")
        wal = Path(f"{db}-wal")
        wait_for(wal.exists, 10, "the WAL")
        assert (_mode(db), _mode(wal), _mode(notifier.heartbeat_path)) == ("0o600",) * 3
