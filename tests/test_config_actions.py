"""The configuration of the cards' buttons (issue 14): a slack sink's ``actions``, the top-level
``interactivity`` block and its credentials, each mistake reported with its key path and fix
(never the secret); ``check`` and ``test-sink`` showing them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.config.interactivity import InteractivitySettings
from notifier.config.types import inputs
from notifier.core.actions import ReportAction
from tests.fakes import FakeSlack
from tests.helpers import cli
from tests.test_config import EXAMPLE, parse, problems

APP_TOKEN = "xapp-1-A0APP-1234567890-0123456789abcdef0123456789abcdef"
SIGNING = "0123456789abcdef0123456789abcdef"
SOCKET = {"interactivity": {"app_token": APP_TOKEN}}
WITH_ACTIONS = {"sinks": {"product-channel": {"actions": ["acknowledge", "dismiss"]}}}


def test_a_slack_sink_with_actions_and_socket_mode() -> None:
    settings = parse({**WITH_ACTIONS, **SOCKET})
    sink = settings.sinks["product-channel"]
    assert sink.actions == (ReportAction.ACKNOWLEDGE, ReportAction.DISMISS)
    clicks = settings.interactivity
    assert clicks is not None
    assert (clicks.mode, clicks.allowed_users, clicks.allowed_usergroups) == ("socket", (), ())
    assert clicks.app_token is not None
    assert clicks.app_token.get_secret_value() == APP_TOKEN
    assert APP_TOKEN in settings.secrets()
    assert parse().sinks["product-channel"].actions == ()  # default: no buttons
    assert parse().interactivity is None


def test_http_mode_with_the_people_allowed() -> None:
    settings = parse(
        {
            **WITH_ACTIONS,
            "interactivity": {
                "mode": "http",
                "signing_secret": SIGNING,
                "allowed_users": ["U0ALICE", "W0GRID"],
                "allowed_usergroups": "S0ONCALL",
            },
        }
    )
    clicks = settings.interactivity
    assert clicks is not None
    assert clicks.allowed_users == ("U0ALICE", "W0GRID")
    assert clicks.allowed_usergroups == ("S0ONCALL",)
    assert SIGNING in settings.secrets()


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            {"sinks": {"product-channel": {"actions": ["acknowledge", "dismis"]}}, **SOCKET},
            [
                "sinks.product-channel.actions[1]: unknown action 'dismis' (did you mean "
                "'dismiss'? valid: acknowledge, dismiss, snooze, resolve, reopen, mute)"
            ],
            id="unknown-action",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"actions": ["dismiss"]}}, **SOCKET},
            [
                "sinks.team-hook.actions: buttons need a bot slack sink (type: slack, with "
                "token): Slack sends a click to the app that posted the card, and an incoming "
                "webhook cannot receive clicks (nor update its message); remove actions here, "
                "or route to a slack sink with actions"
            ],
            id="actions-on-an-incoming-webhook",
        ),
        pytest.param(
            WITH_ACTIONS,
            [
                "sinks.product-channel.actions: needs the top-level interactivity block, which "
                "says how Slack's clicks reach the notifier: add interactivity: {app_token: "
                "${SLACK_APP_TOKEN}} (Socket Mode, no public URL) or interactivity: {mode: "
                "http, signing_secret: ${SLACK_SIGNING_SECRET}}; or remove actions from "
                "sinks.product-channel"
            ],
            id="missing-interactivity",
        ),
        pytest.param(
            {**WITH_ACTIONS, "interactivity": {"mode": "socket"}},
            [
                "interactivity: mode socket (the default) needs app_token: the app-level token "
                "(xapp-…, Slack app → Basic Information → App-Level Tokens, scope "
                "connections:write); or set mode: http with signing_secret"
            ],
            id="socket-without-app-token",
        ),
        pytest.param(
            {**WITH_ACTIONS, "interactivity": {"mode": "http"}},
            [
                "interactivity: mode http needs signing_secret (Slack app → Basic Information "
                "→ App Credentials → Signing Secret), to verify that requests come from Slack"
            ],
            id="http-without-signing-secret",
        ),
        pytest.param(
            {
                **WITH_ACTIONS,
                "interactivity": {"mode": "http", "signing_secret": SIGNING},
                "http": {"listen": None},
            },
            [
                "interactivity.mode: http needs the listener: Slack posts clicks to POST "
                "/slack/actions on http.listen, which is null (off); set http.listen (like "
                "0.0.0.0:9464, behind your HTTPS proxy) or use mode: socket"
            ],
            id="http-without-listener",
        ),
        pytest.param(
            {"interactivity": {"app_token": APP_TOKEN, "allowed_users": ["alice"]}},
            [
                "interactivity.allowed_users[0]: 'alice' is not a Slack member id: give one "
                "like U0123ABCD (in Slack, a person's profile → ⋮ → Copy member ID)"
            ],
            id="user-not-an-id",
        ),
        pytest.param(
            {"interactivity": {"app_token": APP_TOKEN, "allowed_usergroups": ["U0ALICE"]}},
            [
                "interactivity.allowed_usergroups[0]: 'U0ALICE' is not a Slack user group id: "
                "give one like S0123ABCD (in Slack, People → User groups → the group → ⋮ → "
                "Copy group ID)"
            ],
            id="group-not-a-group-id",
        ),
        pytest.param(
            {"interactivity": {"app_token": APP_TOKEN, "mode": "sockets"}},
            [
                "interactivity.mode: must be one of 'socket' or 'http' (got 'sockets'); did you "
                "mean 'socket'?"
            ],
            id="unknown-mode",
        ),
        pytest.param(
            {"interactivity": {"app_tokn": APP_TOKEN}},
            ["interactivity.app_tokn: unknown key (did you mean 'app_token'?)"],
            id="misspelt-key",
        ),
    ],
)
def test_problem_message(patch: dict[str, Any], expected: list[str]) -> None:
    """Each mistake alone, with its key path, what is wrong and the fix."""
    assert problems(patch) == expected


HELP = (
    "create an app-level token (Slack app → Basic Information → App-Level Tokens → Generate, "
    "scope connections:write; it starts with xapp-) and put it here"
)
WHERE = "Slack app → Basic Information → App Credentials → Signing Secret (Show)"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        pytest.param(
            "app_token",
            "xoxb-1234-5678-SECRETbotTOKEN",
            "starts with xoxb-: that is the bot token (it goes in the slack sink's token), "
            f"which cannot open a Socket Mode connection; {HELP}",
            id="bot-token-as-app-token",
        ),
        pytest.param(
            "app_token",
            "xoxp-1234-5678-SECRETuserTOKEN",
            "starts with xoxp-: that is a user token, which cannot open a Socket Mode "
            f"connection; {HELP}",
            id="user-token-as-app-token",
        ),
        pytest.param(
            "app_token",
            "SECRETnotatokenatall123",
            f"does not start with xapp-, so it is not an app-level token; {HELP}",
            id="not-a-token",
        ),
        pytest.param(
            "app_token",
            "xapp-replace-me",
            "is still a placeholder of the examples (deploy/.env.example, the Kubernetes "
            "secret.example.yaml); set SLACK_APP_TOKEN to the real value (in deploy/.env, your "
            "secret, or the environment)",
            id="app-token-placeholder",
        ),
        pytest.param(
            "signing_secret",
            "SECRET-too-short",
            "does not look like a Slack signing secret (32 hexadecimal characters; this has 16 "
            f"characters); copy it from {WHERE} (not the Client Secret or the Verification "
            "Token)",
            id="signing-secret-shape",
        ),
        pytest.param(
            "signing_secret",
            "xoxb-1234-5678-SECRETbotTOKEN",
            f"starts with xoxb-: that is a token, not the signing secret; copy the signing "
            f"secret from {WHERE}",
            id="token-as-signing-secret",
        ),
        pytest.param(
            "signing_secret",
            "replace_me",
            "is still a placeholder of the examples (deploy/.env.example, the Kubernetes "
            "secret.example.yaml); set SLACK_SIGNING_SECRET to the real value (in deploy/.env, "
            "your secret, or the environment)",
            id="signing-secret-placeholder",
        ),
    ],
)
def test_wrong_kind_of_credential(key: str, value: str, expected: str) -> None:
    """A token of the wrong kind is an error naming what it is and where the right one is,
    never echoing it."""
    mode = "http" if key == "signing_secret" else "socket"
    found = problems({"interactivity": {"mode": mode, key: value}})
    assert found == [f"interactivity.{key}: {expected}"]
    assert not any(value in problem for problem in found)


def test_secrets_from_files(tmp_path: Path) -> None:
    """``app_token_file`` and ``signing_secret_file``, like every other secret."""
    (tmp_path / "app").write_text(APP_TOKEN + "\n")
    (tmp_path / "signing").write_text(SIGNING + "\n")
    block = {"app_token_file": "app", "signing_secret_file": "signing"}
    settings = parse({"interactivity": block}, base_dir=tmp_path)
    assert settings.interactivity is not None
    assert settings.interactivity.app_token is not None
    assert settings.interactivity.app_token.get_secret_value() == APP_TOKEN


def test_example_documents_interactivity() -> None:
    """Every key of the block, and a slack sink's actions, appear in config.example.yaml."""
    text = EXAMPLE.read_text()
    for key in [*inputs(InteractivitySettings), "actions"]:
        assert re.search(rf"^\s*#?\s*{key}:", text, re.MULTILINE), key
    assert "${SLACK_APP_TOKEN}" in text


def with_buttons(path: Path) -> Path:
    """The test config with the slack sink's buttons on (Socket Mode)."""
    config = yaml.safe_load(path.read_text())
    config["sinks"]["slack"]["actions"] = ["acknowledge", "dismiss", "snooze", "resolve"]
    config["interactivity"] = {"app_token": APP_TOKEN, "allowed_users": ["U0ALICE"]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_check_prints_the_actions_and_the_mode(
    make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    result = cli("check", "-c", str(with_buttons(make_config())), env=env)
    assert result.returncode == 0, result.stderr
    assert "actions: acknowledge, dismiss, snooze, resolve" in result.stdout
    assert "interactivity: Socket Mode" in result.stdout
    assert "allowed: U0ALICE" in result.stdout
    assert APP_TOKEN not in result.stdout


def test_test_sink_shows_the_buttons(
    slack: FakeSlack, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """`test-sink` posts the sample (a ready report) with the sink's buttons."""
    result = cli("test-sink", "slack", "-c", str(with_buttons(make_config())), env=env)
    assert result.returncode == 0, result.stderr
    assert "with buttons: acknowledge, dismiss, snooze, resolve" in result.stdout
    [message] = slack.messages
    assert message.blocks is not None
    ids = [
        element["action_id"]
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert ids[-4:] == ["report.acknowledge", "report.resolve", "report.snooze", "report.dismiss"]
