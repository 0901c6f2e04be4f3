"""The settings: what each section of the YAML may hold, with its types, limits and defaults —
and, once loaded, what every other part of the notifier reads. One set of frozen pydantic
models (value types in ``config.types``, the sinks in ``config.sinks``): ``load`` validates the
document against ``Settings``; ``schema`` turns the same models into the JSON Schema editors
use. Secrets are ``SecretStr``, so a printed or logged settings object never shows one.

A few fields are filled in by the loader, never written in the YAML (``types.derived``): a
rule's compiled ``match`` and ``templates``, a sink's ``name`` and ``templates``, the file the
settings came from and the warnings about them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    InstanceOf,
    SecretStr,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema

from notifier.config.credentials import placeholder_check, posthog_host, posthog_key
from notifier.config.interactivity import InteractivitySettings
from notifier.config.intervals import QuietHours, TimeIntervalSettings, compile_intervals
from notifier.config.reminders import ReminderSettings
from notifier.config.silences import SilenceSettings
from notifier.config.sinks import (
    AnySink,
    Compiled,
    ConsoleSinkSettings,
    SinkSettings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    Template,
    WebhookSinkSettings,
)
from notifier.config.types import (
    Duration,
    Durationish,
    Int,
    Model,
    ProjectIds,
    Secret,
    SinkNames,
    Statuses,
    Text,
    at_least_1s,
    derived,
    keep_at_least_1s,
    listify,
    origin,
    unique,
)
from notifier.core.intervals import TimeInterval
from notifier.core.reminders import Watch
from notifier.core.rules import ROUTING_BUDGET, Match
from notifier.core.settle import SETTLE

__all__ = [
    "ConsoleSinkSettings",
    "DeliverySettings",
    "HttpSettings",
    "InteractivitySettings",
    "PollSettings",
    "PostHogSettings",
    "RuleSettings",
    "SelfAlertSettings",
    "Settings",
    "SinkSettings",
    "SlackSinkSettings",
    "SlackWebhookSinkSettings",
    "StateSettings",
    "WebhookSinkSettings",
    "split_listen",
]

ApiPath = Literal["auto", "signal_reports", "signals/reports"]
FirstRun = Literal["baseline", "notify"]
#: Where ``/healthz``, ``/readyz`` and ``/metrics`` are served when ``http.listen`` is not set.
DEFAULT_LISTEN: Final = "0.0.0.0:9464"


class PostHogSettings(Model):
    """Where and how to list signal reports."""

    host: Annotated[str, AfterValidator(origin), AfterValidator(posthog_host)]  # origin only
    api_key: Annotated[Secret, AfterValidator(posthog_key)]
    project_ids: ProjectIds
    api_path: ApiPath = "auto"
    page_size: Annotated[Int, Field(ge=1, le=10000)] = 1000
    timeout: Duration = 30.0
    statuses: Statuses | None = None  # None: the API's default listing
    # One budget for the key, shared by every project: PostHog allows 480/minute, 4,800/hour.
    requests_per_minute: Annotated[Int, Field(ge=1)] = 360
    requests_per_hour: Annotated[Int, Field(ge=1)] = 3600


class PollSettings(Model):
    """How often each project is listed. ``jitter`` is never more than ``interval`` (the loader
    caps it, with a warning)."""

    interval: Annotated[Durationish, AfterValidator(at_least_1s)] = 60.0
    jitter: Durationish = 5.0
    deadline: Duration | None = None  # hard limit for one cycle; None: derived from the interval
    full_sync_every: Durationish = 3600.0  # a full listing this often (state's clock); 0: always
    overlap: Durationish = 60.0  # incremental listings reach this far before the high-water mark
    concurrency: Annotated[Int, Field(ge=1, le=32)] = 4  # projects polled at the same time
    routing_budget: Duration = ROUTING_BUDGET  # all regex searches of one cycle together
    settle: Durationish = SETTLE  # a move back into research is held this long; 0: never


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str):
        raise ValueError("must be text; quote it")
    if not value.strip():
        raise ValueError("must not be empty")
    return Path(value.strip()).expanduser()


_POSTGRES_HELP: Final = (
    "must be a PostgreSQL URL like postgresql://notifier@db.example:5432/notifier (the password "
    "in state.password, ${VAR} or state.password_file, not in the URL)"
)


def _postgres_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")) or any(c.isspace() for c in url):
        raise ValueError(_POSTGRES_HELP)
    try:
        parts = urlsplit(url)
        password = parts.password or any(
            name.lower() == "password" for name, _ in parse_qsl(parts.query)
        )
    except ValueError:
        raise ValueError(_POSTGRES_HELP) from None
    if password:  # the URL is shown in messages: it must not carry a secret
        raise ValueError(
            "holds a password; remove it from the URL and put it in state.password "
            "(or ${VAR}, or state.password_file)"
        )
    return url


def _lease_ttl(seconds: float) -> float:
    if seconds < 1:
        raise ValueError(
            "must be at least 1s: leases are renewed a few times within it; try 30s (a replica "
            "that dies is replaced within it)"
        )
    return seconds


class StateSettings(Model):
    """Where the state lives: a SQLite file (``path``; one instance; the loader makes a relative
    path relative to the config file's folder) or PostgreSQL (``url``; replicas sharing the work
    through leases that last ``lease_ttl``)."""

    path: Annotated[
        Path, BeforeValidator(_path), WithJsonSchema({"type": "string", "minLength": 1})
    ] = Path("./notifier-state.db")
    url: Annotated[str, AfterValidator(_postgres_url)] | None = Field(
        default=None, description="postgresql://user@host:5432/db: PostgreSQL instead of SQLite"
    )
    password: (
        Annotated[Secret, AfterValidator(placeholder_check("NOTIFIER_DB_PASSWORD"))] | None
    ) = None
    lease_ttl: Annotated[Duration, AfterValidator(_lease_ttl)] = 30.0

    @model_validator(mode="after")
    def _one_backend(self) -> StateSettings:
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError(
                "set either path (SQLite: one instance) or url (PostgreSQL: replicas), not both"
            )
        if self.password is not None and self.url is None:
            raise ValueError("password is for url (PostgreSQL); remove it or set url")
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which database holds the state."""
        return "sqlite" if self.url is None else "postgresql"


class DeliverySettings(Model):
    """Retry policy for the outbox. ``backoff_max`` is never under ``backoff_initial`` (the
    loader raises it, with a warning)."""

    give_up_after: Duration = 24 * 3600.0
    backoff_initial: Duration = 5.0
    backoff_max: Duration = 3600.0
    # delivered outbox entries are pruned after this
    keep_delivered: Annotated[Duration, AfterValidator(keep_at_least_1s)] = 7 * 24 * 3600.0


_LISTEN_HELP: Final = (
    "must be host:port, like 0.0.0.0:9464 (every interface), 127.0.0.1:9464 (this machine "
    "only) or [::]:9464; port 0 picks a free one; null turns the listener off"
)


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


def _listen(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(_LISTEN_HELP)  # a bare port (9464) too: say which interface
    try:
        split_listen(value)
    except ValueError:
        raise ValueError(_LISTEN_HELP) from None
    return value.strip()


class HttpSettings(Model):
    """The listener for ``/healthz``, ``/readyz`` and ``/metrics``; ``listen`` None: none."""

    listen: Annotated[str | None, BeforeValidator(_listen)] = DEFAULT_LISTEN
    # /healthz and /readyz tell callers other than loopback the verdict only, unless True
    details: bool = False


class SelfAlertSettings(Model):
    """When and where the notifier reports its own trouble (a project it cannot poll, a sink
    whose deliveries are dead-lettered). They always go to the log, ``/metrics`` and
    ``/readyz``; to sinks only when ``sinks`` names them (None, not set: none, and the daemon
    and ``check`` say so; (): none, on purpose)."""

    after: Durationish = 15 * 60.0  # a project failing this long gets a source_failing notice
    # Names are checked on the raw document (``checks.check_self_alerts``).
    sinks: Annotated[tuple[Text, ...], BeforeValidator(listify), AfterValidator(unique)] | None = (
        None
    )

    def targets(self, configured: Sequence[str]) -> tuple[str, ...]:
        """The sinks that receive notices, in the order ``sinks`` names them."""
        if self.sinks is None:
            return ()
        return tuple(name for name in self.sinks if name in configured)


#: A rule's ``match``: the YAML block is checked and compiled by ``checks.check_rules`` (with
#: every problem at its key path), and the loader puts the compiled ``Match`` here.
CompiledMatch = Annotated[InstanceOf[Match], WithJsonSchema({})]


class RuleSettings(QuietHours):
    """A configured rule: how it routes (it is a ``core.rules.Rule``) and, for the Slack sinks
    it routes to, the templates that replace the sink's (and the default) text."""

    name: Text
    match: CompiledMatch = Field(default_factory=Match)  # none: every event
    sinks: SinkNames
    stop: bool = False
    reply_broadcast: bool = Field(
        default=False,
        description="Slack thread replies for events this rule routes also go to the channel",
    )
    template: Template = None
    templates: Compiled = derived()


def _slack_user_id(value: str) -> str:
    """A Slack member id, as ``people:`` maps reviewers to (``<@U0123ABCD>`` mentions it)."""
    if not SLACK_USER_ID.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r} is not a Slack member id: give one like U0123ABCD (in Slack, a "
            "person's profile → ⋮ → Copy member ID)"
        )
    return value


#: A Slack member id (``U…``, or ``W…`` on Enterprise Grid).
SLACK_USER_ID: Final = re.compile(r"[UW][A-Z0-9]{2,20}")
#: ``people:``: a GitHub login or an email → the Slack member id to @-mention.
People = dict[Annotated[str, Field(min_length=1)], Annotated[str, AfterValidator(_slack_user_id)]]


class Settings(Model):
    """The whole configuration."""

    posthog: PostHogSettings
    poll: PollSettings = PollSettings()
    state: StateSettings = StateSettings()
    first_run: FirstRun = "baseline"
    delivery: DeliverySettings = DeliverySettings()
    sinks: dict[str, AnySink] = Field(default_factory=dict)
    rules: tuple[RuleSettings, ...] = ()
    http: HttpSettings = HttpSettings()
    interactivity: InteractivitySettings | None = Field(
        default=None, description="how clicks on the cards' buttons (a slack sink's actions) arrive"
    )
    self_alerts: SelfAlertSettings = SelfAlertSettings()
    people: People = Field(
        default_factory=dict,
        description="GitHub login or email → Slack member id (U…): suggested reviewers "
        "@-mentioned on Slack cards (sinks with enrich: [artefacts])",
    )
    reminders: tuple[ReminderSettings, ...] = Field(
        default=(), description="announce again a report that stays where nobody picks it up"
    )
    silences: tuple[SilenceSettings, ...] = Field(
        default=(), description="standing silences: what they match is not delivered"
    )
    time_intervals: tuple[TimeIntervalSettings, ...] = Field(
        default=(),
        description="named quiet hours, as in Alertmanager; sinks and rules use them in "
        "mute_during and active_during",
    )
    source: SkipJsonSchema[str] = derived("config.yaml")  # the file it came from, for messages
    # valid but unwise: printed by `check` and logged at start
    warnings: SkipJsonSchema[tuple[str, ...]] = derived(())

    def intervals(self) -> dict[str, TimeInterval]:
        """The ``time_intervals`` by lower-cased name, for ``QuietHours.quiet()``."""
        return dict(compile_intervals(self.time_intervals))

    def watches(self) -> tuple[Watch, ...]:
        """The ``reminders``, as the cycle follows them."""
        return tuple(reminder.watch() for reminder in self.reminders)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so logging can redact it wherever it shows up."""
        found = (s.get_secret_value() for s in _secret_fields(self))
        return tuple(s for s in found if s and len(s) >= 6)


def _secret_fields(value: Any) -> Iterator[SecretStr]:
    """Every ``SecretStr`` in a settings tree, in declaration (and config) order."""
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_fields(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_fields(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _secret_fields(item)


#: The sections under the top level, by key, for the checks of the raw document.
SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "posthog": PostHogSettings,
    "poll": PollSettings,
    "state": StateSettings,
    "delivery": DeliverySettings,
    "http": HttpSettings,
    "interactivity": InteractivitySettings,
    "self_alerts": SelfAlertSettings,
}
