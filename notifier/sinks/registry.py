"""Where events go: one module per sink behind the small ``Sink`` protocol.

``SINK_TYPES`` is the explicit registry (settings model → factory); ``build_sinks`` turns the
configured sinks' models into ready objects, sharing one ``Pacer`` (Slack's one message per
second per channel, workspace pauses on 429) between them. Building does no I/O: connections
open on first send.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final

from notifier.config.settings import (
    ConsoleSinkSettings,
    RuleSettings,
    SinkSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    WebhookSinkSettings,
)
from notifier.core.errors import ConfigError
from notifier.core.report import Links
from notifier.sinks.base import Sink
from notifier.sinks.console import ConsoleSink
from notifier.sinks.slack.bot import SlackSink
from notifier.sinks.slack.incoming import SlackWebhookSink
from notifier.sinks.slack.pace import Pacer, bot_keys, webhook_keys
from notifier.sinks.webhook import WebhookSink

#: (settings, links, rules by name, the shared pacer, the ``people:`` map) → the sink.
SinkFactory = Callable[
    [SinkSettings, Links, Mapping[str, RuleSettings], Pacer, Mapping[str, str]], Sink
]


def _slack(
    settings: SinkSettings,
    links: Links,
    rules: Mapping[str, RuleSettings],
    pacer: Pacer,
    people: Mapping[str, str],
) -> Sink:
    assert isinstance(settings, SlackSinkSettings)
    return SlackSink(settings, links, rules=rules, pacer=pacer, people=people)


def _slack_webhook(
    settings: SinkSettings,
    links: Links,
    rules: Mapping[str, RuleSettings],
    pacer: Pacer,
    people: Mapping[str, str],
) -> Sink:
    assert isinstance(settings, SlackWebhookSinkSettings)
    return SlackWebhookSink(settings, links, rules=rules, pacer=pacer, people=people)


def _webhook(
    settings: SinkSettings, links: Links, _r: Mapping[str, RuleSettings], _p: Pacer, _m: Any
) -> Sink:
    assert isinstance(settings, WebhookSinkSettings)
    return WebhookSink(settings, links)


def _console(
    settings: SinkSettings, links: Links, _r: Mapping[str, RuleSettings], _p: Pacer, _m: Any
) -> Sink:
    assert isinstance(settings, ConsoleSinkSettings)
    return ConsoleSink(settings, links)


SINK_TYPES: Final[dict[type[SinkSettings], SinkFactory]] = {
    SlackSinkSettings: _slack,
    SlackWebhookSinkSettings: _slack_webhook,
    WebhookSinkSettings: _webhook,
    ConsoleSinkSettings: _console,
}


def build_sink(
    settings: SinkSettings,
    links: Links,
    *,
    rules: Mapping[str, RuleSettings] | None = None,
    pacer: Pacer | None = None,
    people: Mapping[str, str] | None = None,
) -> Sink:
    """The sink for one settings model. Raises ``ConfigError`` for a type with no factory.
    ``people``: the config's ``people:`` map (suggested reviewers → Slack member ids)."""
    factory = SINK_TYPES.get(type(settings))
    if factory is None:
        kind = type(settings).__name__
        raise ConfigError([f"sinks.{settings.name}.type: no sink is registered for {kind}"])
    pacer = pacer if pacer is not None else Pacer()
    return factory(settings, links, rules or {}, pacer, people or {})


def build_sinks(
    settings: Mapping[str, SinkSettings],
    links: Links,
    *,
    rules: Mapping[str, RuleSettings] | None = None,
    cancel: threading.Event | None = None,
    pacer: Pacer | None = None,
    people: Mapping[str, str] | None = None,
) -> dict[str, Sink]:
    """Every configured sink by name, sharing one pacer.

    ``rules`` (by name) give the Slack sinks ``reply_broadcast`` and rule templates; ``cancel``
    (the notifier's stop) cuts pacing waits short; ``pacer`` replaces the shared one (tests).
    """
    shared = pacer if pacer is not None else Pacer(cancel=cancel)
    return {
        name: build_sink(sink, links, rules=rules, pacer=shared, people=people)
        for name, sink in settings.items()
    }


def workspace_of(settings: SinkSettings) -> Hashable | None:
    """The Slack workspace a sink posts to (the key its pacing and 429 pauses share), or None
    for a sink that is not Slack's. Replicas keep the sinks of one workspace together."""
    if isinstance(settings, SlackSinkSettings):
        return bot_keys(settings.api_url, settings.token.get_secret_value(), settings.channel)[1]
    if isinstance(settings, SlackWebhookSinkSettings):
        return webhook_keys(settings.url.get_secret_value())[1]
    return None
