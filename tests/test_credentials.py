"""Wrong credentials are found at `check`, not in production (issue 13, item 3).

Offline, when the configuration loads (so by `check` and every command): a PostHog project key
(phc_) or the ingestion host, a Slack app-level or refresh token or a pasted webhook URL, the
placeholders of deploy/.env.example — errors with the key and the fix; a Slack user token — a
warning. No message shows the secret. `check --online` asks PostHog (one listing request per
project) and Slack (auth.test, conversations.info) read-only, one line per project and per
sink, and exits 1 when one fails — against the real fakes over TCP.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from notifier.config.load import parse_config
from notifier.core.errors import ConfigError
from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT
from tests.fakes import FakeSlack
from tests.helpers import cli, inject

ENV_EXAMPLE = Path(__file__).parents[1] / "deploy" / ".env.example"
CHANNEL = "C0123456789"  # make_config's Slack sink


def config(*, host: str = "https://us.posthog.com", key: str = "phx_good", sinks: str = "") -> str:
    extra = f"\n  {sinks}" if sinks else ""
    return (
        f"posthog:\n  host: {host}\n  api_key: {key}\n  project_ids: [1]\n"
        f"sinks:\n  out: {{type: console}}{extra}\n"
        "rules:\n  - {name: all, sinks: [out]}\n"
    )


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="config.yaml", env=env or {})
    return caught.value.problems


def slack_sink(token: str) -> str:
    return f"team: {{type: slack, token: '{token}', channel: C0123456789}}"


# -- offline ----------------------------------------------------------------------------------


def test_a_project_key_is_an_error_naming_the_personal_key() -> None:
    secret = "phc_AbCdEf0123456789publicProjectKey"
    found = problems(config(key=secret))
    assert len(found) == 1, found
    assert found[0].startswith("posthog.api_key: starts with phc_")
    assert "personal API key" in found[0]
    assert "phx_" in found[0]
    assert secret not in found[0]
    assert secret[4:12] not in found[0]


@pytest.mark.parametrize(
    ("host", "fix"),
    [
        ("https://us.i.posthog.com", "https://us.posthog.com"),
        ("https://eu.i.posthog.com", "https://eu.posthog.com"),
        ("https://us-assets.i.posthog.com", "https://us.posthog.com"),
    ],
)
def test_the_ingestion_host_is_an_error_with_the_app_origin(host: str, fix: str) -> None:
    found = problems(config(host=host))
    assert len(found) == 1, found
    assert found[0].startswith("posthog.host: ")
    assert "ingestion host" in found[0]
    assert f"use the app's origin, {fix}" in found[0]


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("xapp-1-A0123-4567-abcdefSECRET", "starts with xapp-: that is an app-level token"),
        ("xoxe-1-My0xMjM0NTY3ODkwSECRET", "starts with xoxe-: that is a refresh token"),
        ("https://hooks.slack.com/services/T000/B000/SECRETpath", "is a URL"),
    ],
)
def test_a_slack_token_that_cannot_post_is_an_error(token: str, says: str) -> None:
    found = problems(config(sinks=slack_sink(token)))
    assert len(found) == 1, found
    assert found[0].startswith(f"sinks.team.token: {says}")
    assert "xoxb-" in found[0]  # the fix: the bot token
    assert "SECRET" not in found[0]


def test_a_slack_user_token_is_a_warning() -> None:
    token = "xoxp-123-456-789-SECRETuserToken"
    settings = parse_config(config(sinks=slack_sink(token)), source="config.yaml", env={})
    said = [w for w in settings.warnings if w.startswith("sinks.team.token:")]
    assert len(said) == 1, settings.warnings
    assert "starts with xoxp-, a user token" in said[0]
    assert "SECRET" not in said[0]
    rotated = parse_config(
        config(sinks=slack_sink("xoxe.xoxb-1-SECRET")), source="config.yaml", env={}
    )
    assert not [w for w in rotated.warnings if "token" in w]  # a rotating bot token is fine


def env_example() -> dict[str, str]:
    pairs = re.findall(r"^([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    return dict(pairs)


def test_the_placeholders_of_env_example_are_errors_naming_the_variable() -> None:
    """deploy/.env.example copied as it is: each secret it holds is refused with the variable
    to set; read from the file, so a new placeholder there is checked too."""
    placeholders = env_example()
    text = textwrap.dedent(
        """
        posthog:
          host: https://us.posthog.com
          api_key: ${POSTHOG_PERSONAL_API_KEY}
          project_ids: [1]
        state:
          url: postgresql://notifier@db:5432/notifier
          password: ${NOTIFIER_DB_PASSWORD}
        sinks:
          team: {type: slack, token: "${SLACK_BOT_TOKEN}", channel: C0123456789}
          hook: {type: slack_webhook, url: "${SLACK_WEBHOOK_URL}"}
          signed: {type: webhook, url: "https://example.com/in", secret: "${WEBHOOK_SECRET}"}
        rules:
          - {name: all, sinks: [team, hook, signed]}
        """
    )
    found = problems(text, placeholders)
    by_key = {p.split(":", 1)[0]: p for p in found}
    for key, variable in [
        ("posthog.api_key", "POSTHOG_PERSONAL_API_KEY"),
        ("state.password", "NOTIFIER_DB_PASSWORD"),
        ("sinks.team.token", "SLACK_BOT_TOKEN"),
        ("sinks.hook.url", "SLACK_WEBHOOK_URL"),
    ]:
        assert key in by_key, found
        assert "placeholder of the examples (deploy/.env.example" in by_key[key]
        assert variable in by_key[key]
    assert "sinks.signed.secret" in by_key  # whsec_replace_me is not a Standard Webhooks key
    assert len(found) == 5, found
    assert not any(value in p for value in placeholders.values() for p in found)


def test_check_exits_2_on_a_credential_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(key="phc_projectKeySECRET123"))
    result = cli("check", "-c", str(path), env={})
    assert result.returncode == 2
    assert "posthog.api_key: starts with phc_" in result.stderr + result.stdout
    assert "SECRET" not in result.stderr + result.stdout


# -- online -----------------------------------------------------------------------------------


def online(config_path: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    result = cli("check", "--online", "-c", str(config_path), env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("online: ")]
    return result.returncode, lines


def line(lines: list[str], start: str) -> str:
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, lines
    return found[0]


def test_online_all_ok_one_line_per_project_and_sink(
    posthog: FakePostHog,
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
) -> None:
    slack.scopes = "chat:write,chat:write.public,channels:read"
    code, lines = online(make_config(), env)
    assert code == 0, lines
    assert line(lines, f"online: project {PROJECT}:").startswith(
        f"online: project {PROJECT}: ok (the key can list its reports)"
    )
    assert "ok (bot @notifier in Fake Workspace, a member of C0123456789)" in line(
        lines, "online: sink slack:"
    )
    assert "not checked" in line(lines, "online: sink slack-hook:")
    assert "not checked" in line(lines, "online: sink hook:")
    listings = [r for r in posthog.requests if "ordering" in r.query]
    assert len(listings) == 1
    assert listings[0].query["limit"] == "1"
    assert [c.method for c in slack.calls] == ["auth.test", "conversations.info"]


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        pytest.param("key", "the key is wrong or revoked", id="wrong-key"),
        pytest.param("scope", "add the scope 'task:read'", id="no-scope"),
        pytest.param("project", f"add project {PROJECT} to the key", id="other-project"),
    ],
)
def test_online_posthog_key_problems_exit_1(
    posthog: FakePostHog,
    make_config: Callable[..., Path],
    env: dict[str, str],
    fault: str,
    says: str,
) -> None:
    if fault == "key":
        posthog.api_key = "phx_another_key_entirely"
    elif fault == "scope":
        posthog.scopes_ok = False
    else:
        posthog.allowed_projects = {PROJECT + 1}
    code, lines = online(make_config(), env)
    assert code == 1, lines
    said = line(lines, f"online: project {PROJECT}:")
    assert said.startswith(f"online: project {PROJECT}: FAILED: PostHog refused the API key")
    assert "HTTP 403" in said
    assert says in said
    assert line(lines, "online: sink slack:").startswith("online: sink slack: ok")


def test_online_bad_slack_token_exits_1(
    slack: FakeSlack, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    code, lines = online(make_config(), {**env, "SLACK_BOT_TOKEN": "xoxb-revoked-SECRET"})
    assert code == 1, lines
    said = line(lines, "online: sink slack:")
    assert "FAILED: Slack refused the token: invalid_auth" in said
    assert "xoxb- bot token" in said
    assert line(lines, f"online: project {PROJECT}:").startswith(f"online: project {PROJECT}: ok")


@pytest.mark.parametrize(
    ("scopes", "private", "ok", "says"),
    [
        pytest.param("chat:write", False, False, "invite the bot: /invite @notifier", id="public"),
        pytest.param(
            "chat:write,chat:write.public", False, True, "without joining", id="public-ok"
        ),
        pytest.param("chat:write,chat:write.public", True, False, "private channel", id="private"),
    ],
)
def test_online_bot_not_in_the_channel(
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
    scopes: str,
    private: bool,
    ok: bool,
    says: str,
) -> None:
    slack.scopes, slack.not_member = scopes, {CHANNEL}
    slack.private = {CHANNEL} if private else set()
    code, lines = online(make_config(), env)
    said = line(lines, "online: sink slack:")
    assert (code, said.startswith("online: sink slack: ok")) == (0 if ok else 1, ok), lines
    assert says in said


def test_online_token_without_chat_write_exits_1(
    slack: FakeSlack, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    slack.scopes = "channels:read,users:read"
    code, lines = online(make_config(), env)
    assert code == 1
    assert "lacks the chat:write scope" in line(lines, "online: sink slack:")


def test_online_channel_by_name_is_not_checked(
    slack: FakeSlack, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """Slack's conversations.info takes an ID only: a name is said to be unchecked, not
    failed, and no conversations.info is spent on it."""
    path = make_config()
    inject(path, f"channel: {CHANNEL}", "channel: '#product'")
    code, lines = online(path, env)
    assert code == 0, lines
    assert "channel #product not checked" in line(lines, "online: sink slack:")
    assert [c.method for c in slack.calls] == ["auth.test"]


@pytest.mark.parametrize(
    ("token", "ok", "says"),
    [
        pytest.param(None, True, "ok (Socket Mode: the app token can open a connection)", id="ok"),
        pytest.param(
            "xapp-1-A0FAKE-1-revoked", False, "Slack refused the app token (invalid_auth)", id="bad"
        ),
    ],
)
def test_online_asks_slack_to_open_a_socket_mode_connection(
    slack: FakeSlack,
    make_config: Callable[..., Path],
    env: dict[str, str],
    token: str | None,
    ok: bool,
    says: str,
) -> None:
    """With `interactivity` in Socket Mode, `check --online` calls apps.connections.open with
    the app token (the URL it answers is not used) and says whether it works."""
    slack.scopes = "chat:write,chat:write.public"
    app_token = token or slack.app_token
    path = make_config(extra=f"interactivity: {{mode: socket, app_token: {app_token}}}")
    code, lines = online(path, env)
    said = line(lines, "online: interactivity:")
    assert says in said
    assert (code == 0) is ok, lines
    assert app_token not in "\n".join(lines)
    assert "apps.connections.open" in [c.method for c in slack.calls]
