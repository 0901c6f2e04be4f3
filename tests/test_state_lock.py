"""One writer per SQLite state file, and a healthcheck that knows when the writer is gone.

`notifier run` and `notifier once` hold an OS lock (``flock``) on ``<state.path>.lock`` for the
life of the process: a second one on the same file is refused at start (exit 2, naming the
holder's pid), the kernel drops the lock of a SIGKILLed holder, and the commands operators use
on a live system (`outbox`, `dry-run`, `check`, `preview`, `healthcheck`) take no lock.
`notifier healthcheck` says unhealthy once the process that wrote the heartbeat is gone —
stopped cleanly, killed, or its pid now someone else's — instead of trusting a fresh-looking
file for 3 poll intervals.

Real processes (``python -m notifier``) on real files in ``tmp_path``, against the fakes.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from notifier.cli.shared import EXIT_USAGE
from notifier.config.settings import StateSettings
from notifier.runtime.probes import Heartbeat, check_heartbeat, heartbeat_path, write_heartbeat
from notifier.runtime.process import this_process
from notifier.state.lock import StateInUseError, StateLock, lock_path
from tests.factories import World
from tests.helpers import assert_no_secrets, cli, inject, run_notifier, wait_for

LINUX_PROC = Path("/proc/self/stat").exists()
#: a poll interval long enough that a heartbeat stays "fresh" for the whole test (3 × 30 s):
#: only knowing that its writer is gone can make the healthcheck say unhealthy
SLOW = "interval: 30s"


def _state(config: Path) -> Path:
    return config.parent / "state.db"


class Daemon:
    """`notifier run` in a subprocess, its stderr in a file (a full pipe never blocks it)."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.log = config.parent / f"daemon-{time.monotonic_ns()}.log"
        with self.log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "notifier", "run", "-c", str(config)],
                env={**os.environ, **env, "NOTIFIER_STOP_GRACE": "5"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.pid = self.process.pid

    def beat(self) -> dict[str, Any]:
        try:
            beat = heartbeat_path(StateSettings(path=_state(self.config)))
            return dict(json.loads(beat.read_text()))
        except (OSError, ValueError):
            return {}

    def wait_started(self) -> None:
        """Until its heartbeat (written once ``run`` has started) names this process."""
        wait_for(
            lambda: self.beat().get("pid") == self.pid or self.process.poll() is not None,
            20,
            "the daemon's heartbeat",
        )
        assert self.process.poll() is None, self.log.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=15)  # reaped: no zombie left with its pid

    def text(self) -> str:
        return self.log.read_text()


@contextmanager
def daemon(config: Path, env: dict[str, str]) -> Iterator[Daemon]:
    running = Daemon(config, env)
    try:
        running.wait_started()
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()
        assert_no_secrets(running.text(), env)


def healthcheck(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli("healthcheck", "-c", str(config), env=env)


# -- one writer ---------------------------------------------------------------------------------


def test_a_second_notifier_on_one_state_file_is_refused_naming_the_holder(world: World) -> None:
    """While `run` holds the state, a second `once` and a second `run` are refused at start
    (exit 2, which the systemd unit does not restart) naming the holder's pid and what to do;
    the commands operators use on a live system keep working."""
    config = world.make_config()
    db = _state(config)
    with daemon(config, world.env) as holder:
        requests = len(world.posthog.requests)
        for command in ("once", "run"):
            second = run_notifier(command, "-c", str(config), "--log-format", "text", env=world.env)
            assert second.returncode == EXIT_USAGE, (command, second.stderr)
            assert f"state database {db} is in use by another notifier (pid {holder.pid}, " in (
                second.stderr
            )
            assert "`notifier run`, started 20" in second.stderr
            assert "stop it first, or give this one its own state.path" in second.stderr
        # the refused ones polled nothing (only the holder's cycles, one a second, at most)
        assert len(world.posthog.requests) - requests < 20

        lock = lock_path(db)
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
        assert json.loads(lock.read_text())["pid"] == holder.pid

        for args in (("outbox", "list"), ("check",), ("preview",), ("dry-run",)):
            result = cli(*args, "-c", str(config), env=world.env)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert healthcheck(config, world.env).stdout.startswith("healthy: ")
        assert holder.process.poll() is None  # none of them disturbed the holder
        assert holder.stop() == 0, holder.text()


def test_the_lock_is_per_state_file_and_released_at_exit(world: World, tmp_path: Path) -> None:
    """In one process: a held lock refuses `once` (naming this pid), another state file is
    not affected, and once released the same file can be locked again. The lock file is 0600
    whatever the umask."""
    config = world.make_config()
    db = _state(config)
    old = os.umask(0)
    try:
        held = StateLock(db, "test")
        held.acquire()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(lock_path(db).stat().st_mode) == 0o600
        refused = cli("once", "-c", str(config), env=world.env)
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert f"is in use by another notifier (pid {os.getpid()}, `notifier test`" in (
            refused.stderr
        )
        with pytest.raises(StateInUseError) as caught:
            StateLock(db, "once").acquire()
        assert caught.value.holder is not None
        assert caught.value.holder.pid == os.getpid()
        with StateLock(tmp_path / "other.db", "once"):  # another file: its own lock
            pass
    finally:
        held.release()
    assert cli("once", "-c", str(config), env=world.env).returncode == 0


def test_a_sigkilled_holder_does_not_block_the_next_start(world: World) -> None:
    """The kernel drops the lock of a killed process: the lock file still names it, and the
    next `run` starts at once and takes the lock over."""
    config = world.make_config()
    lock = lock_path(_state(config))
    with daemon(config, world.env) as first:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert json.loads(lock.read_text())["pid"] == first.pid  # left behind, not in force
    with daemon(config, world.env) as second:
        assert json.loads(lock.read_text())["pid"] == second.pid
        assert second.stop() == 0, second.text()


# -- the healthcheck knows the writer is gone ---------------------------------------------------


def test_healthcheck_is_unhealthy_after_a_clean_stop(world: World) -> None:
    """After SIGTERM the heartbeat is still fresh (30 s interval), but it says the notifier
    stopped, and `healthcheck` fails at once."""
    config = world.make_config()
    inject(config, "interval: 1s", SLOW)
    with daemon(config, world.env) as running:
        alive = healthcheck(config, world.env)
        assert (alive.returncode, alive.stdout[:9]) == (0, "healthy: "), alive.stdout
        assert running.stop() == 0, running.text()
    after = healthcheck(config, world.env)
    assert after.returncode == 1, after.stdout
    assert after.stdout.startswith(f"unhealthy: the notifier (pid {running.pid}) stopped at "), (
        after.stdout
    )
    assert running.beat()["stopped_at"] is not None


@pytest.mark.skipif(not LINUX_PROC, reason="the writer's process is checked through /proc")
def test_healthcheck_is_unhealthy_once_the_writer_is_killed(world: World) -> None:
    """SIGKILL leaves a fresh heartbeat that says nothing of the stop: `healthcheck` sees the
    pid is gone."""
    config = world.make_config()
    inject(config, "interval: 1s", SLOW)
    with daemon(config, world.env) as running:
        assert healthcheck(config, world.env).returncode == 0
        running.stop(signal.SIGKILL)
    after = healthcheck(config, world.env)
    assert after.returncode == 1, after.stdout
    assert after.stdout == (
        f"unhealthy: the notifier that wrote the heartbeat (pid {running.pid}) is no longer "
        "running\n"
    )


@pytest.mark.skipif(not LINUX_PROC, reason="the writer's process is checked through /proc")
def test_healthcheck_sees_a_reused_pid_and_an_unreaped_writer(tmp_path: Path) -> None:
    """A heartbeat naming a live pid is not enough: the process must have started when the
    writer did (not a newcomer that got its pid), and not be a zombie waiting to be reaped."""
    now = time.time()
    path = heartbeat_path(StateSettings(path=tmp_path / "state.db"))
    mine = Heartbeat.of_this_process(started_at=now, interval=30)
    write_heartbeat(path, mine)
    assert check_heartbeat(path, now).ok  # this very process: alive

    assert mine.pid_start is not None
    write_heartbeat(path, replace(mine, pid_start=mine.pid_start - 1))
    reused = check_heartbeat(path, now)
    assert not reused.ok
    assert reused.reason == (
        f"pid {mine.pid} now belongs to another process: the notifier that wrote the heartbeat "
        "is no longer running"
    )

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        start = _start_ticks(child.pid)
        assert child.stdin is not None
        child.stdin.close()  # it exits; not reaped until wait()
        wait_for(lambda: _state_letter(child.pid) == "Z", 10, "the child to be a zombie")
        write_heartbeat(path, replace(mine, pid=child.pid, pid_start=start))
        zombie = check_heartbeat(path, now)
        assert not zombie.ok
        assert "is no longer running" in zombie.reason
    finally:
        child.wait()


def test_a_heartbeat_from_elsewhere_is_judged_by_its_age_alone(tmp_path: Path) -> None:
    """Written in another pid namespace (another container, another machine) or by an older
    version, the pid says nothing here: the rule of 3 intervals applies, as before."""
    now = time.time()
    path = heartbeat_path(StateSettings(path=tmp_path / "state.db"))
    dead_pid = 2**22 + 1  # above Linux's pid_max: never a live process
    elsewhere = Heartbeat(
        started_at=now, interval=30, pid=dead_pid, pid_start=1, pid_space="another-boot pid:[1]"
    )
    write_heartbeat(path, elsewhere)
    assert check_heartbeat(path, now + 60).ok
    assert not check_heartbeat(path, now + 91).ok
    write_heartbeat(path, replace(elsewhere, pid_space=None, pid_start=None))
    assert check_heartbeat(path, now + 60).ok
    space = this_process()[1]
    if space is not None:  # here, where the pid means something: gone
        write_heartbeat(path, replace(elsewhere, pid_space=space))
        assert not check_heartbeat(path, now).ok


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rfind(")") + 2 :].split()


def _start_ticks(pid: int) -> int:
    return int(_stat_fields(pid)[19])


def _state_letter(pid: int) -> str:
    return _stat_fields(pid)[0]
