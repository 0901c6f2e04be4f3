"""Live configuration: SIGHUP and --watch-config reload the YAML between cycles; an invalid file
is rejected and the running configuration stays; state and pending deliveries survive — on a
SQLite file and, for SIGHUP, on PostgreSQL (where a reload also hands the leases over)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from notifier.config.settings import Settings
from notifier.runtime.metrics import Metrics
from notifier.runtime.service import reloaded
from tests.factories import PROJECT, World
from tests.helpers import wait_for

TO_HOOK = "- {name: to hook, match: {}, sinks: [hook]}"
TO_BOTH = "- {name: to both, match: {}, sinks: [hook, slack]}"


class Daemon:
    """`notifier run` as a subprocess, its stderr collected in a file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, path: Path) -> None:
        self.process = process
        self.log = log
        self.path = path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def daemon(world: World, *args: str, state: str | None = None) -> Iterator[Daemon]:
    """`notifier run ARGS` on a config routing everything to the webhook (TO_HOOK), entered
    once its baseline cycle is done; it must exit 0 on SIGTERM at the end. ``state``: the
    config's state lines (default: a SQLite file)."""
    path = world.make_config(rules=TO_HOOK, state=state)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "stderr"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "notifier",
                    "run",
                    "-c",
                    str(path),
                    "--log-format",
                    "text",
                    *args,
                ],
                env={**os.environ, **world.env},
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        running = Daemon(process, log, path)
        try:
            wait_for(lambda: "first cycle" in running.text(), what="the baseline cycle")
            yield running
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
        assert process.returncode == 0, running.text()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sighup_applies_a_valid_config_from_the_next_cycle(
    world: World, backend: str, request: pytest.FixtureRequest
) -> None:
    """After SIGHUP the new rules route the next events; nothing is re-sent or lost."""
    state = None
    if backend == "postgresql":
        state = f"url: {request.getfixturevalue('postgres_url')}\nlease_ttl: 2s"
    with daemon(world, state=state) as running:
        world.posthog.add_report(PROJECT, title="before the reload")
        wait_for(lambda: len(world.receiver.received) == 1, what="the first delivery")
        world.make_config(rules=TO_BOTH, state=state)
        running.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in running.text(), what="the reload")
        # the old rules serve until the cycle under way ends: add the report once the notifier
        # with the new rules runs, or the old one may still route it
        wait_for(
            lambda: "reloaded configuration running" in running.text(), what="the new notifier"
        )
        # a reload says so; it is not logged as a stop and a start
        assert "notifier stopped" not in running.text()
        assert running.text().count("notifier running") == 1
        world.posthog.add_report(PROJECT, title="after the reload")
        wait_for(lambda: len(world.slack.messages) == 1, what="a Slack message under the new rules")
        wait_for(lambda: len(world.receiver.received) == 2, what="the second webhook")
    assert "after the reload" in str(world.slack.messages[0].blocks)
    assert len(world.receiver.received) == 2  # the first report was not notified again


def test_invalid_config_is_rejected_and_the_old_one_kept(world: World) -> None:
    """A broken file on SIGHUP logs its problems; the daemon keeps running the old rules."""
    with daemon(world) as running:
        good = running.path.read_text()
        running.path.write_text(good.replace("sinks: [hook]", "sinks: [pager]"))
        running.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "config reload rejected" in running.text(), what="the rejection")
        assert "rules[0].sinks[0]: unknown sink 'pager'" in running.text()
        world.posthog.add_report(PROJECT, title="still routed by the old rules")
        wait_for(lambda: len(world.receiver.received) == 1, what="delivery under the old rules")
    assert world.slack.messages == []


def test_watch_config_reloads_on_change_and_pending_deliveries_survive(world: World) -> None:
    """With --watch-config an edit is enough; an entry waiting for a failing receiver before
    the reload is delivered after it, once."""
    receiver = world.receiver
    with daemon(world, "--watch-config") as running:
        receiver.respond_next(503, times=3, headers={"Retry-After": "1"})
        world.posthog.add_report(PROJECT, title="waiting in the outbox")
        wait_for(lambda: len(receiver.received) >= 1, what="a failed attempt")
        world.make_config(rules=TO_BOTH)
        wait_for(lambda: "config reloaded" in running.text(), what="the reload on change")
        wait_for(
            lambda: any(r.status < 300 for r in receiver.received), what="the retried delivery"
        )
    ok = [r for r in receiver.received if r.status < 300]
    assert len(ok) == 1
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_reload_outcomes_are_counted(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> None:
    """A rejected reload counts a failure and sets last-reload-success to 0; a good one 1."""
    path = make_config(rules=TO_HOOK)
    current = load(path)
    metrics = Metrics()
    path.write_text("posthog: {}\n")
    assert reloaded(path, current, metrics) is None
    text = metrics.render()[0].decode()
    assert 'notifier_config_reloads_total{outcome="failure"} 1.0' in text
    assert "notifier_config_last_reload_success 0.0" in text
