"""PostHog's own Slack cards (``default_slack_notification_channel`` in the project's signals
config, today's PostHog): the daemon asks once per project after its first good cycle and says
in one WARNING that people would read each ready report twice; nothing when PostHog posts
nowhere, or the server predates the endpoint (V5: a 404, and no more questions). `notifier
check --online` asks the same, read-only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from notifier.config.settings import Settings
from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.helpers import cli, running, wait_for

CONFIG_PATH = f"/api/projects/{PROJECT}/signals/config/"


def config_requests(posthog: FakePostHog) -> int:
    return sum(1 for r in posthog.requests if r.path == CONFIG_PATH)


def cycles(posthog: FakePostHog) -> int:
    return sum(1 for r in posthog.requests if "ordering" in r.query)


@pytest.mark.parametrize(
    ("version", "channel", "asked", "warned"),
    [
        pytest.param(6, "C0PRODUCT", 1, True, id="posthog-posts-to-slack"),
        pytest.param(6, None, 1, False, id="posthog-posts-nowhere"),
        pytest.param(5, "C0PRODUCT", 1, False, id="before-v6-answers-404"),
    ],
)
def test_the_daemon_warns_once_when_posthog_posts_to_slack_too(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    load: Callable[[Path], Settings],
    caplog: pytest.LogCaptureFixture,
    version: int,
    channel: str | None,
    asked: int,
    warned: bool,
) -> None:
    posthog.api_version = version
    posthog.set_signals_config(PROJECT, default_slack_notification_channel=channel)
    posthog.add_report(PROJECT, title="ready and actionable")
    with running(load(make_config())):
        wait_for(lambda: cycles(posthog) >= 3, 20, "three cycles")
    warnings = [r for r in caplog.records if getattr(r, "event", "") == "posthog_notifies_slack"]
    assert config_requests(posthog) == asked  # once per project and process, not per cycle
    assert len(warnings) == (1 if warned else 0)
    if warned:
        text = warnings[0].getMessage()
        assert "C0PRODUCT" in text
        assert "slack, slack-hook" in text  # the sinks that announce them here too


def test_once_does_not_ask(
    posthog: FakePostHog, once: Callable[..., int], make_config: Callable[..., Path]
) -> None:
    """A cron `once` stays at its listing's requests: the question is the daemon's."""
    posthog.set_signals_config(PROJECT, default_slack_notification_channel="C0PRODUCT")
    once()
    assert config_requests(posthog) == 0


@pytest.mark.parametrize(
    ("version", "channel", "says"),
    [
        pytest.param(6, "C0PRODUCT", "warning: project 4242: PostHog itself posts", id="warns"),
        pytest.param(6, None, "online: project 4242: ok", id="ok"),
        pytest.param(5, "C0PRODUCT", "no signals settings (PostHog before V6)", id="before-v6"),
    ],
)
def test_check_online_asks_each_project_once(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    env: dict[str, str],
    version: int,
    channel: str | None,
    says: str,
) -> None:
    """`notifier check --online` asks PostHog (read-only, one request per project) and says
    what it found; `check` alone asks nothing. Warnings do not change the exit code."""
    posthog.api_version = version
    posthog.set_signals_config(PROJECT, default_slack_notification_channel=channel)
    config = str(make_config())
    offline = cli("check", "-c", config, env=env)
    assert (offline.returncode, len(posthog.requests)) == (0, 0)
    online = cli("check", "--online", "-c", config, env=env)
    assert online.returncode == 0, online.stderr
    assert says in online.stdout
    assert config_requests(posthog) == 1
