"""Credentials that are wrong in a way the configuration alone shows: found when it loads (by
``check`` and by every command), not at the first request in production.

Errors: a value that can never work — PostHog's ingestion host (``*.i.posthog.com``) as
``posthog.host``, a project key (``phc_…``) as ``posthog.api_key``, an app-level (``xapp-…``) or
refresh (``xoxe-…``) token or a pasted webhook URL as a Slack ``token``, a placeholder of
``deploy/.env.example`` left in. Each is a validator on its field (``settings``, ``sinks``), so
its message carries the key path. Warnings (``credential_warnings``, through ``advice``): a value
that works but not as meant — a Slack user token (``xoxp-…``) posts as that person.

Messages name what the value starts with, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr

#: How deploy/.env.example's placeholders look (``phx_replace_me``, ``xoxb-replace-me``…).
_PLACEHOLDER: Final = re.compile(r"replace[_-]me", re.IGNORECASE)
#: Bot tokens: ``xoxb-``, and with token rotation ``xoxe.xoxb-``.
_BOT: Final = ("xoxb-", "xoxe.xoxb-")
_USER: Final = ("xoxp-", "xoxe.xoxp-")
_PERSONAL_KEY_HELP: Final = (
    "create a personal API key (PostHog → Settings → Personal API keys; it starts with phx_) "
    "with scope task:read and put it here"
)


def _not_placeholder(value: str, variable: str) -> None:
    if _PLACEHOLDER.search(value):
        raise ValueError(
            "is still a placeholder of the examples (deploy/.env.example, the Kubernetes "
            f"secret.example.yaml); set {variable} to the real value (in deploy/.env, your "
            "secret, or the environment)"
        )


def placeholder_check(variable: str) -> Callable[[SecretStr], SecretStr]:
    """A validator refusing deploy/.env.example's placeholder for the secret ``variable``."""

    def check(secret: SecretStr) -> SecretStr:
        _not_placeholder(secret.get_secret_value(), variable)
        return secret

    return check


def posthog_host(host: str) -> str:
    """``posthog.host`` must be the app's origin: the ingestion host has no API to read."""
    name = (urlsplit(host).hostname or "").lower()
    if name == "i.posthog.com" or name.endswith(".i.posthog.com"):
        region = "eu" if name.startswith("eu") else "us"
        raise ValueError(
            f"{host} is PostHog's ingestion host (it receives events and has no API to read "
            f"reports); use the app's origin, https://{region}.posthog.com (the address you "
            "open PostHog at)"
        )
    return host


def posthog_key(secret: SecretStr) -> SecretStr:
    """``posthog.api_key``: not a placeholder, not a project key."""
    value = secret.get_secret_value().strip()
    _not_placeholder(value, "POSTHOG_PERSONAL_API_KEY")
    if value.startswith("phc_"):
        raise ValueError(
            "starts with phc_: that is the project API key, which only sends events and cannot "
            f"read anything; {_PERSONAL_KEY_HELP}"
        )
    return secret


def slack_token(secret: SecretStr) -> SecretStr:
    """A ``slack`` sink's ``token``: one that can post with chat.postMessage."""
    value = secret.get_secret_value().strip()
    _not_placeholder(value, "SLACK_BOT_TOKEN")
    if value.lower().startswith(("http://", "https://")) or "hooks.slack.com" in value:
        raise ValueError(
            "is a URL (an incoming webhook's?), not a token: for an incoming webhook use a sink "
            "of type slack_webhook with url; for this sink put the app's bot token "
            "(xoxb-…, Slack app → OAuth & Permissions → Bot User OAuth Token) here"
        )
    if value.startswith("xapp-"):
        raise ValueError(
            "starts with xapp-: that is an app-level token (Socket Mode), which cannot post "
            "messages; use the Bot User OAuth Token (xoxb-…, Slack app → OAuth & Permissions)"
        )
    if value.startswith("xoxe-"):
        raise ValueError(
            "starts with xoxe-: that is a refresh token, which cannot post messages; use the "
            "bot token (xoxb-… or xoxe.xoxb-…, Slack app → OAuth & Permissions)"
        )
    return secret


def slack_token_warning(where: str, secret: SecretStr) -> str | None:
    """A Slack token that works, but not as a bot's: say what it does instead."""
    value = secret.get_secret_value().strip()
    if value.startswith(_BOT):
        return None
    if value.startswith(_USER):
        return (
            f"{where}.token: starts with {value.split('-', 1)[0]}-, a user token: messages are "
            "posted as that person, and stop when they leave the workspace; use the Bot User "
            "OAuth Token (xoxb-…, Slack app → OAuth & Permissions)"
        )
    if kind := re.match(r"xox[a-z]-", value):  # another kind: legacy, workspace…
        return (
            f"{where}.token: starts with {kind.group()}, not xoxb-, so it is not a bot token; use "
            "the Bot User OAuth Token (xoxb-…, Slack app → OAuth & Permissions)"
        )
    return None


_APP_LEVEL_HELP: Final = (
    "create an app-level token (Slack app → Basic Information → App-Level Tokens → Generate, "
    "scope connections:write; it starts with xapp-) and put it here"
)
#: Slack's signing secrets: 32 hexadecimal characters.
_SIGNING_SECRET: Final = re.compile(r"[0-9a-f]{32}")


def slack_app_token(secret: SecretStr) -> SecretStr:
    """``interactivity.app_token``: the app-level token Socket Mode connects with."""
    value = secret.get_secret_value().strip()
    _not_placeholder(value, "SLACK_APP_TOKEN")
    if value.startswith("xapp-"):
        return secret
    if value.startswith(_BOT):
        raise ValueError(
            "starts with xoxb-: that is the bot token (it goes in the slack sink's token), "
            f"which cannot open a Socket Mode connection; {_APP_LEVEL_HELP}"
        )
    if value.startswith(_USER):
        raise ValueError(
            "starts with xoxp-: that is a user token, which cannot open a Socket Mode "
            f"connection; {_APP_LEVEL_HELP}"
        )
    kind = re.match(r"[a-z]+[-_.]", value)
    start = f"starts with {kind.group()}" if kind else "does not start with xapp-"
    raise ValueError(f"{start}, so it is not an app-level token; {_APP_LEVEL_HELP}")


def slack_signing_secret(secret: SecretStr) -> SecretStr:
    """``interactivity.signing_secret``: what Slack signs its requests with (32 hex)."""
    value = secret.get_secret_value().strip()
    _not_placeholder(value, "SLACK_SIGNING_SECRET")
    where = "Slack app → Basic Information → App Credentials → Signing Secret (Show)"
    if value.startswith(("xox", "xapp-")):
        raise ValueError(
            f"starts with {value.split('-', 1)[0]}-: that is a token, not the signing secret; "
            f"copy the signing secret from {where}"
        )
    if not _SIGNING_SECRET.fullmatch(value.lower()):
        raise ValueError(
            f"does not look like a Slack signing secret (32 hexadecimal characters; this has "
            f"{len(value)} characters); copy it from {where} (not the Client Secret or the "
            "Verification Token)"
        )
    return secret
