"""The parsed configuration: frozen, typed, and free of runtime state.

``notifier.config.load`` turns YAML into these; everything else reads only these. Secret values are
plain strings kept out of ``repr`` so that a logged settings object never shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from notifier.core.rules import Rule
from notifier.render.templates import CompiledTemplates

ApiPath = Literal["auto", "signal_reports", "signals/reports"]
FirstRun = Literal["baseline", "notify"]


@dataclass(frozen=True, slots=True)
class RuleSettings(Rule):
    """A configured rule: how it routes (``core.rules.Rule``) and, for the Slack sinks it routes
    to, the templates that replace the sink's (and the default) text."""

    templates: CompiledTemplates | None = None


@dataclass(frozen=True, slots=True)
class PostHogSettings:
    """Where and how to list signal reports."""

    host: str  # origin only, no trailing slash: https://us.posthog.com
    api_key: str = field(repr=False)
    project_ids: tuple[int, ...]
    api_path: ApiPath = "auto"
    page_size: int = 1000
    timeout: float = 30.0
    statuses: tuple[str, ...] | None = None  # None: the API's default listing
    # One budget for the key, shared by every project: PostHog allows 480/minute, 4,800/hour.
    requests_per_minute: int = 360
    requests_per_hour: int = 3600


@dataclass(frozen=True, slots=True)
class PollSettings:
    """How often each project is listed."""

    interval: float = 60.0
    jitter: float = 5.0
    deadline: float | None = None  # hard limit for one cycle; None: derived from the interval
    full_sync_every: float = 3600.0  # a full listing this often (and on start); 0: always
    overlap: float = 60.0  # incremental listings reach this far before the high-water mark
    concurrency: int = 4  # projects polled at the same time


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where the SQLite state lives."""

    path: Path = Path("./notifier-state.db")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Retry policy for the outbox."""

    give_up_after: float = 24 * 3600.0
    backoff_initial: float = 5.0
    backoff_max: float = 3600.0
    keep_delivered: float = 7 * 24 * 3600.0  # delivered outbox entries are pruned after this


@dataclass(frozen=True, slots=True)
class SelfAlertSettings:
    """When and where the notifier reports its own trouble (a project it cannot poll, a sink
    whose deliveries are dead-lettered). ``sinks`` None: every configured sink; (): none."""

    after: float = 15 * 60.0  # a project failing this long gets a source_failing notice
    sinks: tuple[str, ...] | None = None

    def targets(self, configured: Sequence[str]) -> tuple[str, ...]:
        """The sinks that receive notices, in config order."""
        if self.sinks is None:
            return tuple(configured)
        return tuple(name for name in self.sinks if name in configured)


#: Where ``/healthz``, ``/readyz`` and ``/metrics`` are served when ``http.listen`` is not set.
DEFAULT_LISTEN = "0.0.0.0:9464"


def split_listen(listen: str) -> tuple[str, int]:
    """``host:port`` → ``(host, port)``; IPv6 hosts in brackets (``[::]:9464``). Raises
    ``ValueError`` when it is not that shape or the port is not 0-65535 (0: any free port)."""
    host, sep, port = listen.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or (":" in host and not listen.strip().startswith("[")):
        raise ValueError("must be host:port")
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port")
    if any(ch.isspace() or ch in "/[]@" for ch in host):
        raise ValueError("must be host:port")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The listener for ``/healthz``, ``/readyz`` and ``/metrics``; ``listen`` None: none."""

    listen: str | None = DEFAULT_LISTEN


@dataclass(frozen=True, slots=True)
class SlackSinkSettings:
    """A Slack bot token sink (chat.postMessage)."""

    name: str
    token: str = field(repr=False)
    channel: str
    api_url: str = "https://slack.com/api/"
    timeout: float = 15.0
    type: Literal["slack"] = "slack"
    digest_after: int = 5  # more events than this in one drain: one digest message (0: never)
    enrich: tuple[str, ...] = ()  # ("artefacts",): recordings and judgments in the message
    templates: CompiledTemplates | None = None


@dataclass(frozen=True, slots=True)
class SlackWebhookSinkSettings:
    """A Slack incoming webhook sink: the URL itself is the secret."""

    name: str
    url: str = field(repr=False)
    timeout: float = 15.0
    type: Literal["slack_webhook"] = "slack_webhook"
    digest_after: int = 5
    enrich: tuple[str, ...] = ()
    templates: CompiledTemplates | None = None


@dataclass(frozen=True, slots=True)
class WebhookSinkSettings:
    """A JSON webhook, signed with Standard Webhooks when a secret is set."""

    name: str
    url: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0
    type: Literal["webhook"] = "webhook"
    batch: bool = False  # more than digest_after events: one signal_report.batch payload
    digest_after: int = 5
    enrich: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConsoleSinkSettings:
    """Readable text on standard output."""

    name: str
    type: Literal["console"] = "console"


SinkSettings = (
    SlackSinkSettings | SlackWebhookSinkSettings | WebhookSinkSettings | ConsoleSinkSettings
)


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration."""

    posthog: PostHogSettings
    sinks: Mapping[str, SinkSettings]
    rules: tuple[RuleSettings, ...]
    poll: PollSettings = PollSettings()
    state: StateSettings = StateSettings()
    delivery: DeliverySettings = DeliverySettings()
    http: HttpSettings = HttpSettings()
    self_alerts: SelfAlertSettings = SelfAlertSettings()
    first_run: FirstRun = "baseline"
    source: str = "config.yaml"  # the file it came from, for messages
    warnings: tuple[str, ...] = ()  # valid but unwise: printed by `check` and logged at start

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so logging can redact it wherever it shows up."""
        found: list[str] = [self.posthog.api_key]
        for sink in self.sinks.values():
            if isinstance(sink, SlackSinkSettings):
                found.append(sink.token)
            elif isinstance(sink, SlackWebhookSinkSettings):
                found.append(sink.url)
            elif isinstance(sink, WebhookSinkSettings):
                found.append(sink.url)  # may carry a token in its path or query
                if sink.secret:
                    found.append(sink.secret)
                found.extend(sink.headers.values())
        return tuple(s for s in found if s and len(s) >= 6)
