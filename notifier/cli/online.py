"""`notifier check --online`: ask PostHog and Slack, read-only, whether the credentials work.

Per project: one listing request (one report) says whether the key, its scope and the project
work (``SourceError``'s kinds and fixes), and the project's signals settings whether PostHog
itself posts ready reports to Slack too. Per Slack bot sink: ``auth.test`` (the token, and its
scopes from ``X-OAuth-Scopes``), then ``conversations.info`` on the channel (by ID only, as
Slack takes it) whether the bot can post there; with Socket Mode interactivity,
``apps.connections.open`` whether the app token works. Nothing is written or sent anywhere. One line
per project and per sink: ``ok`` or what is wrong and the fix; the caller exits 1 if any is
wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from notifier.config.settings import Settings, SlackSinkSettings
from notifier.core.errors import SinkError, SourceError
from notifier.posthog.client import PostHogClient
from notifier.runtime.doubles import posthog_posts_to_slack, slack_sinks
from notifier.sinks.base import header
from notifier.sinks.slack.bot import CHANNEL_ID, HINTS, bot_client
from notifier.sinks.slack.common import sdk_options

#: The incremental listing's cut-off: every report was updated before it, so one page ends it.
_EVERYTHING_OLDER: Final = datetime(9999, 1, 1, tzinfo=UTC)
_APP: Final = "api.slack.com/apps → your app → OAuth & Permissions"


@dataclass(frozen=True)
class Finding:
    """One line of the online check: ``ok`` or not, and what to say."""

    ok: bool
    text: str


def check_online(settings: Settings, out: TextIO) -> bool:
    """Ask PostHog and the Slack sinks (read-only); write one line per project and per sink.
    True when every check passed."""
    passed = True
    for finding in [*_projects(settings), *_sinks(settings), *_interactivity(settings)]:
        out.write(f"{finding.text}\n")
        passed = passed and finding.ok
    return passed


# -- PostHog ---------------------------------------------------------------------------------


def _projects(settings: Settings) -> list[Finding]:
    """One listing request (one report) per project, then its signals settings."""
    probe = settings.posthog.model_copy(update={"page_size": 1})
    source = PostHogClient(probe, attempts=1)
    found: list[Finding] = []
    try:
        for pid in settings.posthog.project_ids:
            try:
                source.list_changed(pid, _EVERYTHING_OLDER)
            except SourceError as exc:
                found.append(Finding(False, f"online: project {pid}: FAILED: {_reason(exc)}"))
                continue
            found += _signals(settings, source, pid)
    finally:
        source.close()
    return found


def _reason(exc: SourceError) -> str:
    """The error without its ``project N:`` prefix (the line already names the project)."""
    return str(exc).removeprefix(f"project {exc.project_id}: ")


def _signals(settings: Settings, source: PostHogClient, pid: int) -> list[Finding]:
    """The project's line once its listing worked, and whether PostHog posts to Slack itself."""
    ok = f"online: project {pid}: ok (the key can list its reports)"
    try:
        config = source.signals_config(pid)
    except SourceError as exc:
        return [Finding(True, f"{ok}; signals settings not read: {_reason(exc)}")]
    if config is None:
        return [Finding(True, f"{ok}; no signals settings (PostHog before V6)")]
    warning = posthog_posts_to_slack(pid, config, slack_sinks(settings))
    return [Finding(True, ok)] + ([Finding(True, f"warning: {warning}")] if warning else [])


# -- sinks -----------------------------------------------------------------------------------


def _sinks(settings: Settings) -> list[Finding]:
    found = []
    for name, sink in settings.sinks.items():
        if isinstance(sink, SlackSinkSettings):
            found.append(_slack(name, sink))
        elif sink.type != "console":
            found.append(
                Finding(
                    True,
                    f"online: sink {name}: not checked ({sink.type} has no read-only request; "
                    f"`notifier test-sink {name}` sends a sample)",
                )
            )
    return found


def _slack(name: str, sink: SlackSinkSettings) -> Finding:
    """``auth.test``, then whether the bot can post in the channel."""
    where = f"online: sink {name}"
    client, http = bot_client(sink)
    try:
        try:
            auth = client.auth_test()
        except SlackApiError as exc:
            return Finding(False, f"{where}: FAILED: Slack refused the token: {_hint(exc, sink)}")
        bot = str(auth.get("user") or "your-app")
        who = f"bot @{bot} in {auth.get('team') or 'the workspace'}"
        scopes = header(auth.headers, "X-OAuth-Scopes")
        granted = None if scopes is None else {s.strip() for s in scopes.split(",")}
        if granted is not None and "chat:write" not in granted:
            return Finding(
                False,
                f"{where}: FAILED: the token ({who}) lacks the chat:write scope; add it "
                f"({_APP} → Bot Token Scopes) and reinstall the app",
            )
        return _channel((where, who, bot), sink.channel, granted, client.conversations_info)
    except (SinkError, SlackClientError) as exc:
        return Finding(False, f"{where}: FAILED: {exc}")
    finally:
        http.close()


def _interactivity(settings: Settings) -> list[Finding]:
    """Socket Mode: ``apps.connections.open`` with the app token (the URL it answers is not
    used). HTTP: nothing to ask; Slack must reach ``/slack/actions``."""
    config = settings.interactivity
    if config is None:
        return []
    where = "online: interactivity"
    if config.mode == "http" or config.app_token is None:
        return [
            Finding(
                True,
                f"{where}: http, not checked (Slack must reach POST /slack/actions on "
                "http.listen through your HTTPS proxy: click a button of `notifier test-sink`)",
            )
        ]
    api_url = next(
        (s.api_url for s in settings.sinks.values() if isinstance(s, SlackSinkSettings)),
        "https://slack.com/api/",
    )
    client = WebClient(base_url=api_url, **sdk_options(10.0))
    try:
        client.apps_connections_open(app_token=config.app_token.get_secret_value())
    except SlackApiError as exc:
        code = str(exc.response.get("error") or "refused")
        return [
            Finding(
                False,
                f"{where}: FAILED: Slack refused the app token ({code}); interactivity.app_token "
                "must be the app-level token (xapp-…) with connections:write, from "
                "api.slack.com/apps → your app → Basic Information → App-Level Tokens, and "
                "Socket Mode must be on",
            )
        ]
    except SlackClientError as exc:
        return [Finding(False, f"{where}: FAILED: Slack did not answer: {type(exc).__name__}")]
    return [Finding(True, f"{where}: ok (Socket Mode: the app token can open a connection)")]


def _hint(exc: SlackApiError, sink: SlackSinkSettings) -> str:
    code = str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    hint = HINTS.get(code)
    return f"{code}: {hint.format(channel=sink.channel)}" if hint else code


def _channel(
    said: tuple[str, str, str],
    channel: str,
    granted: set[str] | None,
    info: Callable[..., Any],
) -> Finding:
    """Whether the bot can post in ``channel`` (``conversations.info``, by ID only).
    ``said``: the line's start, the bot and workspace in words, the bot's user name."""
    where, who, _ = said
    if not CHANNEL_ID.fullmatch(channel):
        return Finding(
            True,
            f"{where}: ok ({who}); channel {channel} not checked: Slack looks channels up by "
            "ID, so put the channel's ID in channel (like C0123456789: channel details, at "
            "the bottom) to have membership checked",
        )
    try:
        found = info(channel=channel).get("channel") or {}
    except SlackApiError as exc:
        code = str(exc.response.get("error") or "")
        if code == "missing_scope":
            return Finding(
                True,
                f"{where}: ok ({who}); membership in {channel} not checked: the token lacks "
                "channels:read (groups:read for a private channel), which this check needs",
            )
        return Finding(
            False,
            f"{where}: FAILED: channel {channel}: {code}: "
            + HINTS.get(code, "Slack refused conversations.info").format(channel=channel),
        )
    return _membership(said, channel, found, granted)


def _membership(
    said: tuple[str, str, str], channel: str, found: dict[str, Any], granted: set[str] | None
) -> Finding:
    where, who, bot = said
    if found.get("is_archived"):
        return Finding(False, f"{where}: FAILED: {HINTS['is_archived'].format(channel=channel)}")
    if found.get("is_member"):
        return Finding(True, f"{where}: ok ({who}, a member of {channel})")
    invite = f"invite the bot: /invite @{bot} in {channel}"
    if found.get("is_private"):
        return Finding(
            False,
            f"{where}: FAILED: the bot is not a member of private channel {channel}; {invite}",
        )
    if granted is not None and "chat:write.public" in granted:
        return Finding(
            True, f"{where}: ok ({who}; posts in {channel} without joining: chat:write.public)"
        )
    lacks = "lacks chat:write.public" if granted is not None else "may lack chat:write.public"
    return Finding(
        False,
        f"{where}: FAILED: the bot is not a member of {channel} and {lacks}; {invite}, or "
        f"add chat:write.public ({_APP}) and reinstall the app",
    )
