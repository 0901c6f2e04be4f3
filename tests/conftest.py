"""Shared fixtures: the fake PostHog, fake Slack and webhook receiver on 127.0.0.1, and a
helper that writes a YAML config pointing the real notifier at them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from notifier.config import parse_config
from notifier.daemon import Notifier
from notifier.settings import Settings
from notifier.simulator import FakePostHog
from tests.fakes import FakeSlack, WebhookReceiver

API_KEY = "phx_e2e_secret_key_0123456789"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PROJECT = 4242


@pytest.fixture
def posthog() -> Iterator[FakePostHog]:
    with FakePostHog(api_key=API_KEY, projects=(PROJECT,)) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as fake:
        yield fake


DEFAULT_RULES = """
- name: everything
  match: {event: [new, status_changed, updated, removed]}
  sinks: [slack, hook]
"""


@pytest.fixture
def make_config(
    tmp_path: Path, posthog: FakePostHog, slack: FakeSlack, receiver: WebhookReceiver
) -> Callable[..., Path]:
    """Write config.yaml for the fakes; returns its path. Rules and extra YAML are overridable."""

    def make(
        rules: str = DEFAULT_RULES,
        first_run: str = "baseline",
        posthog_extra: str = "",
        extra: str = "",
        project_ids: tuple[int, ...] = (PROJECT,),
    ) -> Path:
        text = f"""
posthog:
  host: {posthog.url}
  api_key: ${{POSTHOG_PERSONAL_API_KEY}}
  project_ids: [{", ".join(map(str, project_ids))}]
  timeout: 5s
{textwrap.indent(textwrap.dedent(posthog_extra).strip(), "  ")}
poll:
  interval: 1s
  jitter: 0s
state:
  path: {tmp_path / "state.db"}
first_run: {first_run}
delivery:
  give_up_after: 1h
  backoff_initial: 0.05s
  backoff_max: 0.2s
sinks:
  slack:
    type: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: C0123456789
    api_url: {slack.api_url}
    timeout: 2s
  slack-hook:
    type: slack_webhook
    url: ${{SLACK_WEBHOOK_URL}}
    timeout: 2s
  hook:
    type: webhook
    url: {receiver.url}
    secret: ${{WEBHOOK_SECRET}}
    timeout: 2s
{textwrap.dedent(extra).strip()}
rules:
{textwrap.indent(textwrap.dedent(rules).strip(), "  ")}
"""
        path = tmp_path / "config.yaml"
        path.write_text(text)
        return path

    return make


@pytest.fixture
def env(slack: FakeSlack) -> dict[str, str]:
    """The environment the config's ${VAR}s come from."""
    return {
        "POSTHOG_PERSONAL_API_KEY": API_KEY,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@pytest.fixture
def load(env: dict[str, str]) -> Callable[[Path], Settings]:
    def load_settings(path: Path) -> Settings:
        return parse_config(path.read_text(), source=str(path), env=env, base_dir=path.parent)

    return load_settings


@pytest.fixture
def once(
    make_config: Callable[..., Path], load: Callable[[Path], Settings]
) -> Iterator[Callable[..., int]]:
    """Run `notifier once` in-process with a config built by make_config(**kwargs)."""
    opened: list[Notifier] = []

    def run(max_wait: float = 5.0, **config: Any) -> int:
        notifier = Notifier(load(make_config(**config)))
        opened.append(notifier)
        try:
            return notifier.once(max_wait=max_wait)
        finally:
            notifier.close()

    return run
