"""Trying one's own config without PostHog: `notifier demo -c` runs the user's rules, templates
and sinks against the simulated PostHog (never the config's PostHog, never the config's state),
and `notifier simulate` serves the simulated PostHog on its own until a signal."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from tests.factories import WEBHOOK_SECRET
from tests.fakes import WebhookReceiver
from tests.helpers import cli, wait_for

#: the config's PostHog: nothing listens there, and the demo must not try
UNREACHABLE = "https://posthog.invalid"


def _config(
    tmp_path: Path, receiver: WebhookReceiver, *, api_key: str = "phx_never_used_1"
) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
posthog:
  host: {UNREACHABLE}
  api_key: {api_key}
  project_ids: [4242]
state:
  path: {tmp_path / "user-state.db"}
sinks:
  hook:
    type: webhook
    url: {receiver.url}
    secret: ${{WEBHOOK_SECRET}}
    timeout: 2s
rules:
  - name: ready only
    match: {{status: ready}}
    sinks: [hook]
"""
    )
    return path


def test_demo_with_config_delivers_signed_webhooks_to_its_sink(tmp_path: Path) -> None:
    """`demo -c --yes` routes the simulated reports through the config's rule to its webhook
    sink, signed with its secret; says which projects were simulated and that the config's
    PostHog was not contacted; and leaves the config's state path alone."""
    state = tmp_path / "user-state.db"
    with WebhookReceiver() as receiver:
        path = _config(tmp_path, receiver)
        result = cli(
            "demo", "-c", str(path), "--cycles", "2", "--interval", "0.3", "--yes",
            env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert receiver.received, result.stdout
        for hook in receiver.received:
            verified = Webhook(WEBHOOK_SECRET).verify(hook.body, hook.headers)
            assert verified["data"]["report"]["status"] == "ready"  # the rule, not every event
            assert verified["data"]["project_id"] == 4242
    assert "4242" in result.stdout
    assert UNREACHABLE in result.stdout
    assert "not contacted" in result.stdout
    assert "sink hook: " in result.stdout
    assert not state.exists()
    assert not list(tmp_path.glob("user-state*"))  # nor its journal, nor a heartbeat


def test_demo_with_config_leaves_an_existing_state_untouched(tmp_path: Path) -> None:
    """The config's state file, when there is one, is neither read nor written."""
    state = tmp_path / "user-state.db"
    state.write_bytes(b"not a database: the demo must not even open it")
    before = state.stat()
    with WebhookReceiver() as receiver:
        path = _config(tmp_path, receiver)
        result = cli(
            "demo", "-c", str(path), "--cycles", "1", "--interval", "0.3", "--yes",
            env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert state.read_bytes() == b"not a database: the demo must not even open it"
    assert state.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "user-state.db"]


def test_demo_with_config_sends_nothing_without_yes(tmp_path: Path) -> None:
    """A demo would post made-up reports to real people: without --yes it lists the sinks it
    would send to and how to go ahead, exits 2 and sends nothing."""
    with WebhookReceiver() as receiver:
        path = _config(tmp_path, receiver)
        result = cli(
            "demo", "-c", str(path), "--cycles", "1", env={"WEBHOOK_SECRET": WEBHOOK_SECRET}
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert receiver.received == []
    said = result.stdout + result.stderr
    assert "hook (webhook)" in said
    assert "--yes" in said
    assert receiver.url not in said  # a webhook URL may carry a token: its target says where


def test_demo_with_config_needs_no_posthog_key(tmp_path: Path) -> None:
    """The config's PostHog key is not used, so an unset ${VAR} for it is no obstacle (a
    newcomer's copy of the example has one); a sink's unset ${VAR} still is."""
    with WebhookReceiver() as receiver:
        path = _config(tmp_path, receiver, api_key="${DEMO_TEST_UNSET_POSTHOG_KEY}")
        os.environ.pop("DEMO_TEST_UNSET_POSTHOG_KEY", None)
        result = cli(
            "demo", "-c", str(path), "--cycles", "1", "--interval", "0.3", "--yes",
            env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        os.environ.pop("WEBHOOK_SECRET", None)
        result = cli("demo", "-c", str(path), "--cycles", "1", "--yes", env={})
        assert result.returncode == 2
        assert "WEBHOOK_SECRET" in result.stderr


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's stdout, line by line, read by a thread (so a wait can be bounded)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_simulate_serves_posthog_until_a_signal(signum: signal.Signals) -> None:
    """`simulate --port 0` prints a host, a key and the project ids to put in a config; the host
    answers a real listing request with that key; the story moves on; a signal stops it, 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "notifier", "simulate", "--port", "0", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines, seen = _lines(process), []

        def said(pattern: str) -> re.Match[str] | None:
            while not lines.empty():
                seen.append(lines.get())
            return re.search(pattern, "".join(seen))

        wait_for(lambda: said(r"meanwhile"), 15, "the host, the key and the story")
        host = said(r"host: (http://127\.0\.0\.1:\d+)")
        key = said(r"api_key: (phx_\w+)")
        project = said(r"project_ids: \[(\d+)\]")
        assert host, "".join(seen)
        assert key, "".join(seen)
        assert project, "".join(seen)
        listing = httpx.get(
            f"{host[1]}/api/projects/{project[1]}/signals/reports/",
            headers={"Authorization": f"Bearer {key[1]}"},
            timeout=5,
        )
        assert listing.status_code == 200, listing.text
        assert listing.json()["results"]
        wrong = httpx.get(
            f"{host[1]}/api/projects/{project[1]}/signals/reports/",
            headers={"Authorization": "Bearer phx_wrong"},
            timeout=5,
        )
        assert wrong.status_code in (401, 403)
        process.send_signal(signum)
        code = process.wait(timeout=10)
        errors = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert code == 0, errors


def test_demo_with_a_failing_sink_ends_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink that keeps failing does not keep the demo running: after its cycles the sinks get
    DELIVERY_GRACE, then the demo says what is still pending there and exits 1."""
    monkeypatch.setattr("notifier.demo.run.DELIVERY_GRACE", 0.5)
    with WebhookReceiver(default_status=503) as receiver:
        path = _config(tmp_path, receiver)
        results: list[subprocess.CompletedProcess[str]] = []

        def demo() -> None:
            results.append(
                cli(
                    "demo",
                    "-c",
                    str(path),
                    "--cycles",
                    "1",
                    "--interval",
                    "0.3",
                    "--yes",
                    env={"WEBHOOK_SECRET": WEBHOOK_SECRET},
                )
            )

        thread = threading.Thread(target=demo, daemon=True)
        thread.start()
        wait_for(lambda: results, 20, "the demo to end despite a failing sink")
        assert receiver.received  # it did try
    assert results[0].returncode == 1
    assert "sink hook: 0 delivered" in results[0].stdout
    assert "still pending" in results[0].stdout
