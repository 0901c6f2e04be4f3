"""What the tests build from: the checkout report every rendering and sink test starts from,
the events made of it (change a field with ``report(title=…)`` or ``new(status=…)``), and
``Notifiers``, which builds notifiers for a test and closes them when it ends (the
``notifiers`` fixture).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from notifier.config.settings import Settings
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Links, Report
from notifier.cycle.pipeline import CyclePlan
from notifier.demo.simulator import FakePostHog
from notifier.posthog.client import PostHogClient
from notifier.runtime.daemon import Notifier
from tests.fakes import FakeSlack, WebhookReceiver

API_KEY = "phx_e2e_secret_key_0123456789"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_TOKEN = "xoxb-e2e-SECRET-token-123"
SLACK_WEBHOOK_PATH = "/services/T0E2E/B0E2E/SECRETwebhookPath123"  # the URL's secret part
PROJECT = 4242
SLACK_APP_TOKEN = "xapp-1-A0E2E-1-SECRETappToken789"  # interactivity: Socket Mode
SLACK_SIGNING_SECRET = "e2eSECRETsigning0a1b2c3d4e5f6789"  # interactivity: HTTP

#: What must never show up in output, logs, exception text or state files.
SECRETS: dict[str, str] = {
    "API_KEY": API_KEY,
    "SLACK_TOKEN": SLACK_TOKEN,
    "SLACK_WEBHOOK_PATH": SLACK_WEBHOOK_PATH,
    "WEBHOOK_SECRET": WEBHOOK_SECRET,
    "WEBHOOK_SECRET (base64 part)": WEBHOOK_SECRET.removeprefix("whsec_"),
    "SLACK_APP_TOKEN": SLACK_APP_TOKEN,
    "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
}


def leaked(text: str | bytes) -> list[str]:
    """The names of the recognisable secrets that appear in ``text``."""
    if isinstance(text, bytes):
        return [name for name, secret in SECRETS.items() if secret.encode() in text]
    return [name for name, secret in SECRETS.items() if secret in text]


LINKS = Links("https://us.posthog.com")
RAW: dict[str, Any] = {
    "id": "0c9e7d1e-2b7a-4c1e-9a53-6f2f1d8b7a11",
    "title": "Checkout button unresponsive on Safari",
    "summary": "Users on Safari 17 tap the Pay button repeatedly and nothing happens.",
    "status": "ready",
    "total_weight": 2.35,
    "signal_count": 7,
    "relevant_user_count": 12,
    "created_at": "2026-01-14T09:12:03.512345Z",
    "updated_at": "2026-01-15T16:40:11.004211Z",
    "artefact_count": 7,
}
URL = "https://us.posthog.com/project/1/inbox/reports/0c9e7d1e-2b7a-4c1e-9a53-6f2f1d8b7a11"
INJECTIONS = ("<!channel>", "<!here>", "<@U1>", "<#C1>", "<https://evil|x>", "<!subteam^S1>")


def report(**fields: Any) -> Report:
    return Report.from_api({**RAW, **fields})


def new(**fields: Any) -> Event:
    return Event.create(EventType.NEW, 1, report(**fields), None, {})


def status_changed() -> Event:
    before = report(status="in_progress")
    return Event.create(
        EventType.STATUS_CHANGED, 1, report(), before, {"status": ("in_progress", "ready")}
    )


def updated() -> Event:
    before = report(total_weight=1.2, signal_count=3)
    after = report(total_weight=2.4, signal_count=5)
    changes = {"total_weight": (1.2, 2.4), "signal_count": (3, 5)}
    return Event.create(EventType.UPDATED, 1, after, before, changes)


def removed() -> Event:
    return Event.create(EventType.REMOVED, 1, report(), report(), {})


def delivery(
    event: Event, sink: str = "sink", rules: tuple[str, ...] = ("ready-reports",)
) -> Delivery:
    """A first delivery of ``event`` to ``sink``, routed by ``rules``."""
    return Delivery(outbox_id=1, sink=sink, event=event, rules=rules)


class Notifiers:
    """Builds the notifiers of one test and closes them when it ends."""

    def __init__(self) -> None:
        self._open: list[Notifier] = []

    def build(
        self, settings: Settings, *, waits: list[float] | None = None, **parts: Any
    ) -> Notifier:
        """``Notifier(settings, **parts)``; with ``waits``, its PostHog client records the
        waits between retries there instead of sleeping (sharing ``parts["budget"]``)."""
        if waits is not None:
            parts["source"] = PostHogClient(
                settings.posthog, sleep=waits.append, budget=parts.get("budget")
            )
        notifier = Notifier(settings, **parts)
        self._open.append(notifier)
        return notifier

    def close(self, notifier: Notifier) -> None:
        """Close one before the test ends (a restart, a reconfiguration)."""
        self._open.remove(notifier)
        notifier.close()

    def close_all(self) -> None:
        while self._open:
            self.close(self._open[-1])


@dataclass
class Run:
    """A Notifier whose PostHog client records its retry waits instead of sleeping."""

    notifiers: Notifiers
    settings: InitVar[Settings]
    waits: list[float] = field(default_factory=list)
    notifier: Notifier = field(init=False)

    def __post_init__(self, settings: Settings) -> None:
        self.notifier = self.notifiers.build(settings, waits=self.waits)

    def reconfigure(self, settings: Settings) -> None:
        """The operator fixed the config: a new notifier takes over the state and each
        project's poll health."""
        old = self.notifier
        self.notifiers.close(old)
        self.notifier = self.notifiers.build(settings, waits=self.waits, health=old.health)

    def poll(self, project_id: int = PROJECT) -> CyclePlan | None:
        return self.notifier.poll(project_id)

    def later(self, project_id: int = PROJECT) -> None:
        """Let any pause PostHog asked for (or backoff) run out."""
        self.notifier.health[project_id].not_before = 0.0

    def state(self, project_id: int = PROJECT) -> dict[str, tuple[str, bool]]:
        """The snapshot: report id → (version, listed)."""
        rows = self.notifier.store.snapshot(project_id)
        return {rid: (row.report.version, row.listed) for rid, row in rows.items()}


def runs(
    make_config: Callable[..., Path], load: Callable[[Path], Settings], notifiers: Notifiers
) -> Callable[..., Run]:
    """A factory of Runs built from make_config(**config) (``timeout`` overrides
    posthog.timeout), closed after the test."""

    def make(*, timeout: float | None = None, **config: Any) -> Run:
        # These tests are about full listings (paging, removals): every cycle lists everything
        # unless a test says otherwise. Incremental listings have tests/test_polling.py.
        config.setdefault("poll_extra", "full_sync_every: 0s")
        settings = load(make_config(**config))
        if timeout is not None:
            posthog = settings.posthog.model_copy(update={"timeout": timeout})
            settings = settings.model_copy(update={"posthog": posthog})
        return Run(notifiers, settings)

    return make


def events(plan: CyclePlan | None) -> set[tuple[str, str]]:
    assert plan is not None, "the cycle failed"
    return {(e.type.value, e.report.id) for e in plan.events}


def errors(caplog: pytest.LogCaptureFixture, level: int = logging.ERROR) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


@dataclass(frozen=True)
class World:
    """The fakes a notifier under test talks to and the config that points it at them (the
    ``world`` fixture): ``make_config(**kwargs)`` writes config.yaml, ``env`` holds the
    ``${VAR}``s it reads."""

    posthog: FakePostHog
    slack: FakeSlack
    receiver: WebhookReceiver
    make_config: Callable[..., Path]
    env: dict[str, str]


def block_actions_payload(
    action_id: str,
    block_id: str,
    *,
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    selected: str | None = None,
    value: str | None = None,
    channel: str = "C000000001",
    message_ts: str = "1700000000.000100",
    response_url: str = "https://hooks.slack.com/actions/T000/1/fakeResponseUrl",
) -> dict[str, Any]:
    """A click as Slack sends it (``docs.slack.dev``, "block_actions payload"): a button
    (``value``), or a ``static_select`` when ``selected`` (the chosen option's value)."""
    element: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": "1700000100.123456",
    }
    if selected is None:
        element |= {"type": "button", "text": {"type": "plain_text", "text": action_id}}
        if value is not None:
            element["value"] = value
    else:
        element |= {
            "type": "static_select",
            "selected_option": {
                "text": {"type": "plain_text", "text": selected},
                "value": selected,
            },
            "placeholder": {"type": "plain_text", "text": "Choose"},
        }
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": "T000"},
        "api_app_id": "A0FAKE",
        "token": "legacyVerificationToken",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1700000100.1234.abcdef",
        "team": {"id": "T000", "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "alerts"},
        "message": {
            "type": "message",
            "subtype": "bot_message",
            "ts": message_ts,
            "bot_id": "B0BOT0001",
            "text": "a report card",
        },
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [element],
    }
