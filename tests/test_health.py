"""Health, readiness and metrics: the liveness and readiness rules, the heartbeat file and
`notifier healthcheck`, and `/healthz`, `/readyz`, `/metrics` scraped over real HTTP from
`Notifier.run` running against the fake PostHog, Slack and webhook receiver."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from notifier import __version__
from notifier.config.load import parse_config
from notifier.config.settings import HttpSettings, Settings, StateSettings
from notifier.config.types import inputs
from notifier.core.errors import ConfigError, NotifierError
from notifier.runtime.daemon import Notifier
from notifier.runtime.probes import (
    Heartbeat,
    check_heartbeat,
    heartbeat_path,
    liveness,
    readiness,
    write_heartbeat,
)
from tests.factories import PROJECT, World
from tests.helpers import cli, running
from tests.helpers import wait_for as shared_wait_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
LISTEN = 'http: {listen: "127.0.0.1:0"}'  # what make_config writes
T0 = 1_700_000_000.0


def wait_for(condition: Callable[[], object], seconds: float = 10, what: str = "") -> None:
    """The shared wait, polling every 20 ms."""
    shared_wait_for(condition, seconds, what, poll=0.02)


# --- the rules, with explicit times ---------------------------------------------------------


def test_liveness_rule() -> None:
    """Alive within 3 intervals of the start or of the last cycle activity, or while a running
    cycle is within its deadline; otherwise not, saying for how long and the limit."""
    fresh = Heartbeat(started_at=T0, interval=60, pid=7)
    assert liveness(fresh, T0 + 179).ok
    starting = liveness(fresh, T0 + 181)
    assert not starting.ok
    assert "no poll cycle attempted in the 181s since the start" in starting.reason

    beat = Heartbeat(started_at=T0, interval=60, pid=7, last_attempt=T0 + 100)
    assert liveness(beat, T0 + 280).ok
    stale = liveness(beat, T0 + 281)
    assert not stale.ok
    assert "no poll cycle attempted for 181s (pid 7; limit 180s = 3 × poll.interval)" in (
        stale.reason
    )
    # a cycle that ended recently counts as activity, whenever it started
    assert liveness(Heartbeat(T0, 60, 7, last_attempt=T0, last_finished=T0 + 200), T0 + 380).ok
    # a long cycle still within its deadline keeps it alive; past the deadline it does not
    busy = Heartbeat(T0, 60, 7, last_attempt=T0, busy_until=T0 + 400)
    assert liveness(busy, T0 + 399).ok
    assert "deadline" in liveness(busy, T0 + 399).reason
    assert not liveness(busy, T0 + 401).ok


@dataclass
class Polled:
    last_success: float | None = None
    last_error: str | None = None
    failures: int = 0


def test_readiness_rule() -> None:
    """Ready when the state is readable and every project succeeded once or is within its first
    interval; the reason names each project that is not ready and why."""

    def verdict(now: float, state_error: str | None = None, **projects: Polled) -> bool:
        v = readiness(
            {int(k[1:]): p for k, p in projects.items()},
            now=now,
            started_at=T0,
            interval=60,
            state_error=state_error,
            config="c.yaml",
        )
        return v.ok

    assert verdict(T0 + 59, p1=Polled(), p2=Polled(last_error="x", failures=1))
    assert not verdict(T0 + 61, p1=Polled(last_success=T0 + 1), p2=Polled())
    assert verdict(T0 + 3600, p1=Polled(last_success=T0 + 1), p2=Polled(last_success=T0 + 9))
    assert not verdict(T0 + 61, "state database x: cannot read it", p1=Polled(T0 + 1))
    failing = readiness(
        {1: Polled(last_success=T0), 2: Polled(last_error="project 2: HTTP 403", failures=3)},
        now=T0 + 120,
        started_at=T0,
        interval=60,
        state_error=None,
        config="c.yaml",
    )
    assert failing.reason == (
        "project 2: no successful poll yet (3 failed cycles; last error: project 2: HTTP 403)"
    )
    assert failing.detail["projects"]["1"]["ready"] is True
    assert failing.detail["projects"]["2"]["failures_in_a_row"] == 3


def test_heartbeat_file_round_trip(tmp_path: Path) -> None:
    """Written atomically (no temporary file left), read back equal; a broken or missing file
    is unhealthy with a reason."""
    path = heartbeat_path(StateSettings(path=tmp_path / "state.db"))
    assert path.name == "state.db.heartbeat"
    beat = Heartbeat(started_at=T0, interval=30, pid=42, last_attempt=T0 + 5)
    write_heartbeat(path, beat)
    assert Heartbeat.from_json(path.read_text()) == beat
    assert [p.name for p in tmp_path.iterdir()] == ["state.db.heartbeat"]
    assert check_heartbeat(path, T0 + 60).ok
    assert not check_heartbeat(path, T0 + 96).ok
    path.write_text('{"started_at": "soon"}')
    assert "not a notifier heartbeat" in check_heartbeat(path, T0).reason
    assert "no heartbeat at" in check_heartbeat(tmp_path / "nope", T0).reason


# --- the http section -------------------------------------------------------------------------

BASE = "posthog: {host: https://us.posthog.com, api_key: phx_123456, project_ids: [1]}\n"


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("", "0.0.0.0:9464"),
        ("http: {}", "0.0.0.0:9464"),
        ("http: {listen: null}", None),
        ("http: {listen: '127.0.0.1:0'}", "127.0.0.1:0"),
        ("http: {listen: '[::]:9464'}", "[::]:9464"),
        ("http: {listen: 'metrics.internal:9100'}", "metrics.internal:9100"),
    ],
)
def test_http_listen_accepted(text: str, listen: str | None) -> None:
    assert parse_config(BASE + text, source="t.yaml", env={}).http.listen == listen


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http: {listen: 9464}", "http.listen: must be host:port, like 0.0.0.0:9464"),
        ("http: {listen: ':9464'}", "http.listen: must be host:port"),
        ("http: {listen: 'localhost:99999'}", "http.listen: must be host:port"),
        ("http: {listen: '::1:9464'}", "http.listen: must be host:port"),
        ("http: {listne: x}", "http.listne: unknown key (did you mean 'listen'?)"),
    ],
)
def test_http_listen_rejected(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, source="t.yaml", env={})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(problem)


def test_example_documents_the_http_section() -> None:
    text = EXAMPLE.read_text()
    assert re.search(r"^http:", text, re.MULTILINE)
    for key in inputs(HttpSettings):
        assert re.search(rf"^\s*#?\s*{key}:", text, re.MULTILINE), key


# --- the daemon over real HTTP ------------------------------------------------------------------


def get(notifier: Notifier, path: str, **headers: str) -> httpx.Response:
    assert notifier.http is not None
    return httpx.get(notifier.http.url + path, headers=headers, timeout=5)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition, by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str):
    return found.get((name, frozenset(labels.items())))


def test_healthz_and_metrics_after_a_cycle_with_events_and_deliveries(
    world: World, load: Callable[[Path], Settings]
) -> None:
    """After a cycle that finds two new reports and delivers them (one dead-lettered by the
    receiver's 410), /healthz is 200 and /metrics holds every family with those numbers."""
    world.posthog.add_report(PROJECT, title="one", status="ready")
    world.posthog.add_report(PROJECT, title="two", status="candidate")
    world.receiver.respond_next(410)
    started = time.time()
    # without self-alerts: the dead letter would also be reported to Slack (test_self_alerts.py)
    config = world.make_config(first_run="notify", extra="self_alerts: {sinks: []}")
    with running(load(config)) as notifier:
        project = str(PROJECT)
        wait_for(lambda: len(world.slack.messages) == 2 and len(world.receiver.received) == 2)

        def delivered_and_dead() -> bool:
            found = samples(get(notifier, "/metrics").text)
            return value(found, "notifier_deliveries_total", sink="hook", outcome="dead") == 1

        wait_for(delivered_and_dead, what="the dead letter counted")
        health = get(notifier, "/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.json()["pid"] == os.getpid()
        ready = get(notifier, "/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["projects"][project]["ready"] is True

        response = get(notifier, "/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        found = samples(response.text)
        assert value(found, "notifier_polls_total", project_id=project, outcome="success") >= 1
        assert value(found, "notifier_poll_duration_seconds_count", project_id=project) >= 1
        last = value(found, "notifier_last_successful_poll_timestamp_seconds", project_id=project)
        assert started <= last <= time.time()
        assert value(found, "notifier_last_cycle_attempt_timestamp_seconds") >= started
        assert value(found, "notifier_reports", project_id=project, status="ready") == 1
        assert value(found, "notifier_reports", project_id=project, status="candidate") == 1
        assert value(found, "notifier_events_total", project_id=project, type="new") == 2
        assert value(found, "notifier_deliveries_total", sink="slack", outcome="delivered") == 2
        assert value(found, "notifier_deliveries_total", sink="hook", outcome="delivered") == 1
        assert value(found, "notifier_deliveries_total", sink="slack", outcome="dead") == 0
        assert value(found, "notifier_delivery_duration_seconds_count", sink="slack") == 2
        assert value(found, "notifier_outbox_entries", sink="hook", state="dead") == 1
        assert value(found, "notifier_outbox_entries", sink="hook", state="pending") == 0
        assert value(found, "notifier_outbox_entries", sink="slack-hook", state="pending") == 0
        assert value(found, "notifier_posthog_requests_total", status_code="200") >= 1
        assert value(found, "notifier_config_reloads_total", outcome="success") == 0
        assert value(found, "notifier_config_last_reload_success") == 1
        assert value(found, "notifier_config_last_reload_success_timestamp_seconds") >= started
        assert (
            value(found, "notifier_build_info", version=__version__, python=sys.version.split()[0])
            == 1
        )
        assert value(found, "notifier_project_ready", project_id=project) == 1
        assert value(found, "notifier_poll_consecutive_failures", project_id=project) == 0
        assert value(found, "notifier_state_ok") == 1
        assert value(found, "process_open_fds") is not None
        assert not [name for name, _ in found if name.endswith("_created")]

        openmetrics = get(notifier, "/metrics", accept="application/openmetrics-text")
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.endswith("# EOF\n")
        assert get(notifier, "/nope").status_code == 404
    assert notifier.http is None  # the listener stopped with the daemon


def test_readyz_waits_for_each_project_first_success(
    world: World, load: Callable[[Path], Settings]
) -> None:
    """PostHog failing past a project's first interval: /readyz 503 naming the project and the
    error, /healthz still 200 (the scheduler is fine); once PostHog answers, /readyz is 200."""
    world.posthog.fail_next(500, times=1000)
    with running(load(world.make_config())) as notifier:
        started = notifier.started_at
        assert started is not None

        def failed_once() -> bool:
            return notifier.health[PROJECT].failures >= 1

        wait_for(failed_once, what="a failed cycle")
        wait_for(lambda: time.time() > started + 1, what="the end of the first interval")
        response = get(notifier, "/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "failing"
        assert f"project {PROJECT}: no successful poll yet" in body["reason"]
        assert "HTTP 500" in body["reason"]
        assert body["projects"][str(PROJECT)]["ready"] is False
        assert get(notifier, "/healthz").status_code == 200
        found = samples(get(notifier, "/metrics").text)
        failed = value(found, "notifier_polls_total", project_id=str(PROJECT), outcome="transient")
        assert failed >= 1
        assert value(found, "notifier_project_ready", project_id=str(PROJECT)) == 0
        assert value(found, "notifier_posthog_requests_total", status_code="500") >= 3

        world.posthog.clear_faults()
        wait_for(lambda: get(notifier, "/readyz").status_code == 200, what="/readyz 200")
        assert get(notifier, "/readyz").json()["projects"][str(PROJECT)]["failures_in_a_row"] == 0


def test_listen_address_in_use_is_a_clear_error(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> None:
    """A port already taken stops `run` before anything starts, naming http.listen and the fix."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = make_config()
        path.write_text(path.read_text().replace(LISTEN, f'http: {{listen: "127.0.0.1:{port}"}}'))
        notifier = Notifier(load(path))
        try:
            with pytest.raises(NotifierError) as caught:
                notifier.run(threading.Event())
        finally:
            notifier.close()
    assert str(caught.value) == (
        f"http.listen 127.0.0.1:{port}: address already in use: set http.listen to another "
        "port or null"
    )
    assert not notifier.heartbeat_path.exists()


# --- notifier healthcheck ---------------------------------------------------------------------


def healthcheck(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return cli("healthcheck", "-c", str(config), env=env)


def test_healthcheck_command(
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    """Exit 0 while the daemon's heartbeat is fresh (with http.listen null: the file is all it
    needs), 1 when it is stale or missing, and 1 when the config is invalid (Docker reserves
    2 for health checks)."""
    path = make_config()
    path.write_text(path.read_text().replace(LISTEN, "http: {listen: null}"))
    settings = load(path)
    beat_file = heartbeat_path(settings.state)

    missing = healthcheck(path, env)
    assert (missing.returncode, missing.stdout) == (
        1,
        f"unhealthy: no heartbeat at {beat_file}: the notifier has not started, or it runs "
        "with another state.path\n",
    )

    with running(settings) as notifier:
        assert notifier.http is None
        wait_for(lambda: notifier.health[PROJECT].cycles >= 1, what="a cycle")
        fresh = healthcheck(path, env)
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert fresh.stdout.startswith("healthy: a poll cycle was active ")
        beat = Heartbeat.from_json(beat_file.read_text())
        assert (beat.pid, beat.interval) == (os.getpid(), 1.0)
        assert beat.last_attempt is not None

    old = time.time() - 100
    write_heartbeat(
        beat_file, Heartbeat(started_at=old - 10, interval=1, pid=4321, last_attempt=old)
    )
    stale = healthcheck(path, env)
    assert stale.returncode == 1
    assert re.fullmatch(
        r"unhealthy: no poll cycle attempted for 10\ds \(pid 4321; limit 3s = 3 × poll\.interval\)"
        r": the scheduler looks stuck, or the notifier is not running\n",
        stale.stdout,
    ), stale.stdout

    broken = tmp_path / "broken.yaml"
    broken.write_text("posthog: {}\n")
    invalid = healthcheck(broken, env)
    assert invalid.returncode == 1
    assert "posthog.host: required key is missing" in invalid.stderr
