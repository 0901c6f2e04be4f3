"""The settings of acting on a report from Slack (issue 14): a bot ``slack`` sink's ``actions``
(the buttons on its cards) and the top-level ``interactivity`` block — how Slack's clicks reach
the notifier (Socket Mode with an app-level token, or HTTP on ``http.listen`` verified with the
signing secret) and who may act. ``check_interactivity`` makes the checks across sections on
the raw document (a sink with ``actions`` needs ``interactivity``; ``mode: http`` needs
``http.listen``), each at its key path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from notifier.config.credentials import slack_app_token, slack_signing_secret
from notifier.config.match import choices
from notifier.config.types import Model, Secret, listify, unique
from notifier.config.yamlload import Problem
from notifier.core.actions import ReportAction

ACTION_NAMES: Final = tuple(action.value for action in ReportAction)
#: ``actions`` on a sink that cannot take it (instead of a plain "unknown key").
NO_ACTIONS: Final = (
    "buttons need a bot slack sink (type: slack, with token): Slack sends a click to the app "
    "that posted the card, and an incoming webhook cannot receive clicks (nor update its "
    "message); remove actions here, or route to a slack sink with actions"
)
_NEEDS_INTERACTIVITY: Final = (
    "needs the top-level interactivity block, which says how Slack's clicks reach the notifier: "
    "add interactivity: {{app_token: ${{SLACK_APP_TOKEN}}}} (Socket Mode, no public URL) or "
    "interactivity: {{mode: http, signing_secret: ${{SLACK_SIGNING_SECRET}}}}; or remove "
    "actions from sinks.{name}"
)


def _action(value: object) -> object:
    if value in ACTION_NAMES:
        return value
    word = value if isinstance(value, str) else str(value)
    raise ValueError(f"unknown action {word[:40]!r} ({choices(word, list(ACTION_NAMES))})")


Actions = Annotated[
    tuple[Annotated[ReportAction, BeforeValidator(_action)], ...],
    BeforeValidator(listify),
    AfterValidator(unique),
    Field(
        description="buttons on the card, shown when they fit the report's status: "
        "acknowledge, dismiss, snooze, resolve, reopen (written to PostHog), mute (a 4-hour "
        "silence of the report, the notifier's own) (needs interactivity)"
    ),
]


def _slack_id(kind: str, example: str, starts: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(r"[A-Z0-9]{3,21}", value) or not value.startswith(starts):
            raise ValueError(
                f"{value[:40]!r} is not a Slack {kind} id: give one like {example} ({_FIND[kind]})"
            )
        return value

    return AfterValidator(check)


_FIND: Final = {
    "member": "in Slack, a person's profile → ⋮ → Copy member ID",
    "user group": "in Slack, People → User groups → the group → ⋮ → Copy group ID",
}
UserIds = Annotated[
    tuple[Annotated[str, _slack_id("member", "U0123ABCD", ("U", "W"))], ...],
    BeforeValidator(listify),
    AfterValidator(unique),
]
GroupIds = Annotated[
    tuple[Annotated[str, _slack_id("user group", "S0123ABCD", ("S",))], ...],
    BeforeValidator(listify),
    AfterValidator(unique),
]


class InteractivitySettings(Model):
    """How clicks on the cards' buttons reach the notifier, and who may act. ``mode: socket``
    (the default) connects out to Slack with the app-level ``app_token`` (no public URL);
    ``mode: http`` serves ``POST /slack/actions`` on ``http.listen``, checked with the
    ``signing_secret``. Empty ``allowed_users`` and ``allowed_usergroups``: anyone who can see
    the card may act."""

    mode: Literal["socket", "http"] = "socket"
    app_token: Annotated[Secret, AfterValidator(slack_app_token)] | None = None
    signing_secret: Annotated[Secret, AfterValidator(slack_signing_secret)] | None = None
    allowed_users: UserIds = ()
    allowed_usergroups: GroupIds = ()

    @model_validator(mode="after")
    def _mode_needs(self) -> InteractivitySettings:
        if self.mode == "socket" and self.app_token is None:
            raise ValueError(
                "mode socket (the default) needs app_token: the app-level token (xapp-…, Slack "
                "app → Basic Information → App-Level Tokens, scope connections:write); or set "
                "mode: http with signing_secret"
            )
        if self.mode == "http" and self.signing_secret is None:
            raise ValueError(
                "mode http needs signing_secret (Slack app → Basic Information → App "
                "Credentials → Signing Secret), to verify that requests come from Slack"
            )
        return self

    def words(self) -> str:
        """The mode in words, for ``notifier check``."""
        if self.mode == "http":
            how = "HTTP: POST /slack/actions on http.listen, signed requests"
        else:
            how = "Socket Mode: connects out to Slack with the app-level token"
        people = [*self.allowed_users, *self.allowed_usergroups]
        who = f"allowed: {', '.join(people)}" if people else "anyone who can see the card"
        return f"interactivity: {how}; {who}"


def check_interactivity(raw: dict[Any, Any]) -> list[Problem]:
    """A slack sink with ``actions`` needs ``interactivity``; ``mode: http`` needs
    ``http.listen`` (not null)."""
    problems: list[Problem] = []
    block = raw.get("interactivity")
    sinks = raw.get("sinks")
    for name, body in sinks.items() if isinstance(sinks, dict) else ():
        wants = isinstance(body, dict) and body.get("type") == "slack" and body.get("actions")
        if wants and block is None:
            why = _NEEDS_INTERACTIVITY.format(name=name)
            problems.append((("sinks", str(name), "actions"), why))
    http = raw.get("http")
    off = isinstance(http, dict) and "listen" in http and http["listen"] is None
    if isinstance(block, dict) and block.get("mode") == "http" and off:
        why = (
            "http needs the listener: Slack posts clicks to POST /slack/actions on http.listen, "
            "which is null (off); set http.listen (like 0.0.0.0:9464, behind your HTTPS proxy) "
            "or use mode: socket"
        )
        problems.append((("interactivity", "mode"), why))
    return problems
