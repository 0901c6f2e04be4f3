"""The configuration's pydantic models: what each section of the YAML may hold, with its types,
limits and defaults (value types in ``config.types``, sinks and templates in ``config.sinks``).
``load`` validates the raw document against ``ConfigModel``; ``schema`` turns it into the
JSON Schema editors use.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from notifier.config import settings as st
from notifier.config.sinks import (
    AnySink,
    Template,
)
from notifier.config.types import (
    Duration,
    Durationish,
    Int,
    Model,
    ProjectIds,
    SinkNames,
    Statuses,
    Text,
    at_least_1s,
    keep_at_least_1s,
    listify,
    origin,
    unique,
)


class PostHogModel(Model):
    host: Annotated[str, AfterValidator(origin)]
    api_key: Text
    project_ids: ProjectIds
    api_path: st.ApiPath = "auto"
    page_size: Annotated[Int, Field(ge=1, le=10000)] = 1000
    timeout: Duration = 30.0
    statuses: Statuses | None = None
    requests_per_minute: Annotated[Int, Field(ge=1)] = 360
    requests_per_hour: Annotated[Int, Field(ge=1)] = 3600


class PollModel(Model):
    interval: Annotated[Durationish, AfterValidator(at_least_1s)] = 60.0
    jitter: Durationish = 5.0
    deadline: Duration | None = None
    full_sync_every: Durationish = 3600.0
    overlap: Durationish = 60.0
    concurrency: Annotated[Int, Field(ge=1, le=32)] = 4


class StateModel(Model):
    path: Text = "./notifier-state.db"


class DeliveryModel(Model):
    give_up_after: Duration = 24 * 3600.0
    backoff_initial: Duration = 5.0
    backoff_max: Duration = 3600.0
    keep_delivered: Annotated[Duration, AfterValidator(keep_at_least_1s)] = 7 * 24 * 3600.0


_LISTEN_HELP: Final = (
    "must be host:port, like 0.0.0.0:9464 (every interface), 127.0.0.1:9464 (this machine "
    "only) or [::]:9464; port 0 picks a free one; null turns the listener off"
)


def _listen(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(_LISTEN_HELP)  # a bare port (9464) too: say which interface
    try:
        st.split_listen(value)
    except ValueError:
        raise ValueError(_LISTEN_HELP) from None
    return value.strip()


class HttpModel(Model):
    listen: Annotated[str | None, BeforeValidator(_listen)] = st.DEFAULT_LISTEN


class SelfAlertsModel(Model):
    after: Durationish = 15 * 60.0
    # None (omitted or null): every sink; []: self-alerts off. Names are checked on the raw dict.
    sinks: Annotated[list[Text], BeforeValidator(listify), AfterValidator(unique)] | None = None


class RuleModel(Model):
    name: Text
    match: Any = None  # checked and compiled by _compile_match
    sinks: SinkNames
    stop: bool = False
    reply_broadcast: bool = Field(
        default=False,
        description="Slack thread replies for events this rule routes also go to the channel",
    )
    template: Template = None


class ConfigModel(Model):
    posthog: PostHogModel
    poll: PollModel = Field(default_factory=PollModel)
    state: StateModel = Field(default_factory=StateModel)
    first_run: st.FirstRun = "baseline"
    delivery: DeliveryModel = Field(default_factory=DeliveryModel)
    sinks: dict[str, AnySink] = Field(default_factory=dict)
    rules: list[RuleModel] = Field(default_factory=list)
    http: HttpModel = Field(default_factory=HttpModel)
    self_alerts: SelfAlertsModel = Field(default_factory=SelfAlertsModel)


SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "posthog": PostHogModel,
    "poll": PollModel,
    "state": StateModel,
    "delivery": DeliveryModel,
    "http": HttpModel,
    "self_alerts": SelfAlertsModel,
}
