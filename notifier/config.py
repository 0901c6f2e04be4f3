"""YAML → ``Settings``, reporting every problem at once, each with its key path and a fix.

The pipeline: read the document (``yamlload``: size cap, no aliases, ``${VAR}``, ``*_file``
secrets) → check unknown keys and the rules on the raw dict → validate types with the pydantic
models below → build the frozen ``Settings``. Problems from every step land in one
``ConfigError``. Messages come from key paths and our own words, never from input values, and
any secret value is scrubbed from them anyway.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from notifier import settings as st
from notifier.config_match import choices, compile_match, regex_texts
from notifier.errors import ConfigError
from notifier.rules import REGEX_MAX_SIZE, Match, Rule, regex_size
from notifier.yamlload import (
    Loc,
    Problem,
    expand_env,
    format_loc,
    load_yaml,
    read_secret_files,
    read_text,
)

__all__ = ["load_config", "parse_config", "parse_duration"]

_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SINK_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
#: All rule regexes together, in ``rules.regex_size`` units: compiling is memory and time.
_REGEX_TOTAL_MAX: Final = 5 * REGEX_MAX_SIZE
_WHSEC_HELP: Final = (
    "must be 'whsec_' followed by base64 of 24-64 random bytes; generate one with: python -c "
    "\"import base64,os; print('whsec_' + base64.b64encode(os.urandom(32)).decode())\""
)


def _shown(value: float) -> str:
    return f"{value * 1000:g}ms" if 0 < value < 1 else f"{value:g}s"


def parse_duration(value: object) -> float:
    """``90s``, ``5m``, ``1h``, ``1d``, ``500ms`` or a number of seconds → seconds (≥ 0)."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.fullmatch(value.strip())):
        seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds < 0:
        # the value is not echoed: it may be a secret put in the wrong place
        raise ValueError("invalid duration; use a number of seconds or 500ms, 90s, 5m, 1h, 1d")
    return seconds


def _positive_duration(value: object) -> float:
    if (seconds := parse_duration(value)) <= 0:
        raise ValueError("must be longer than 0s, like 30s")
    return seconds


def _at_least_1s(seconds: float) -> float:
    if seconds < 1:
        raise ValueError("must be at least 1s; PostHog allows 480 requests/minute, try 60s")
    return seconds


def _keep_at_least_1s(seconds: float) -> float:
    if seconds < 1:
        raise ValueError("must be at least 1s; delivered entries are the audit trail, try 7d")
    return seconds


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _listify(value: object) -> object:
    return [value] if isinstance(value, str | int | float) else value


def _not_empty(fix: str) -> Callable[[list[Any]], list[Any]]:
    def check(items: list[Any]) -> list[Any]:
        if not items:
            raise ValueError(f"is empty; {fix}")
        return list(dict.fromkeys(items))

    return check


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or bracket
        valid = False
    if not valid:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _origin(value: str) -> str:
    parts = urlsplit(_http_url(value))
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            "must be an http(s) origin without a path, like https://us.posthog.com, "
            "https://eu.posthog.com or your self-hosted https://posthog.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _api_url(value: str) -> str:
    return _http_url(value).rstrip("/") + "/"


def _whsec(value: str) -> str:
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not value.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ValueError(_WHSEC_HELP)
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Text = Annotated[str, Field(min_length=1)]
Url = Annotated[str, AfterValidator(_http_url)]
Duration = Annotated[float, BeforeValidator(_positive_duration)]
Durationish = Annotated[float, BeforeValidator(parse_duration)]  # zero allowed
# Lists accept a single value too, must not be empty, and drop duplicates.
ProjectIds = Annotated[
    list[Annotated[Int, Field(gt=0)]],
    BeforeValidator(_listify),
    AfterValidator(_not_empty("list one project id or more, like [12345]")),
]
Statuses = Annotated[
    list[Text],
    BeforeValidator(_listify),
    AfterValidator(_not_empty("list statuses, or omit the key for the default listing")),
]
SinkNames = Annotated[
    list[Text], BeforeValidator(_listify), AfterValidator(_not_empty("name a sink from sinks:"))
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PostHogModel(_Model):
    host: Annotated[str, AfterValidator(_origin)]
    api_key: Text
    project_ids: ProjectIds
    api_path: st.ApiPath = "auto"
    page_size: Annotated[Int, Field(ge=1, le=10000)] = 1000
    timeout: Duration = 30.0
    statuses: Statuses | None = None
    requests_per_minute: Annotated[Int, Field(ge=1)] = 360
    requests_per_hour: Annotated[Int, Field(ge=1)] = 3600


class PollModel(_Model):
    interval: Annotated[Durationish, AfterValidator(_at_least_1s)] = 60.0
    jitter: Durationish = 5.0
    deadline: Duration | None = None
    full_sync_every: Durationish = 3600.0
    overlap: Durationish = 60.0
    concurrency: Annotated[Int, Field(ge=1, le=32)] = 4


class StateModel(_Model):
    path: Text = "./notifier-state.db"


class DeliveryModel(_Model):
    give_up_after: Duration = 24 * 3600.0
    backoff_initial: Duration = 5.0
    backoff_max: Duration = 3600.0
    keep_delivered: Annotated[Duration, AfterValidator(_keep_at_least_1s)] = 7 * 24 * 3600.0


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


class HttpModel(_Model):
    listen: Annotated[str | None, BeforeValidator(_listen)] = st.DEFAULT_LISTEN


def _unique(items: list[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


class SelfAlertsModel(_Model):
    after: Durationish = 15 * 60.0
    # None (omitted or null): every sink; []: self-alerts off. Names are checked on the raw dict.
    sinks: Annotated[list[Text], BeforeValidator(_listify), AfterValidator(_unique)] | None = None


class SlackSink(_Model):
    type: Literal["slack"]
    token: Text
    channel: Text
    api_url: Annotated[str, AfterValidator(_api_url)] = "https://slack.com/api/"
    timeout: Duration = 15.0


class SlackWebhookSink(_Model):
    type: Literal["slack_webhook"]
    url: Url
    timeout: Duration = 15.0


class WebhookSink(_Model):
    type: Literal["webhook"]
    url: Url
    secret: Annotated[str, AfterValidator(_whsec)] | None = None
    headers: dict[Text, str] = Field(default_factory=dict)
    timeout: Duration = 10.0


class ConsoleSink(_Model):
    type: Literal["console"]


AnySink = Annotated[
    SlackSink | SlackWebhookSink | WebhookSink | ConsoleSink, Field(discriminator="type")
]


class RuleModel(_Model):
    name: Text
    match: Any = None  # checked and compiled by _compile_match
    sinks: SinkNames
    stop: bool = False


class ConfigModel(_Model):
    posthog: PostHogModel
    poll: PollModel = Field(default_factory=PollModel)
    state: StateModel = Field(default_factory=StateModel)
    first_run: st.FirstRun = "baseline"
    delivery: DeliveryModel = Field(default_factory=DeliveryModel)
    sinks: dict[str, AnySink] = Field(default_factory=dict)
    rules: list[RuleModel] = Field(default_factory=list)
    http: HttpModel = Field(default_factory=HttpModel)
    self_alerts: SelfAlertsModel = Field(default_factory=SelfAlertsModel)


_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "posthog": PostHogModel,
    "poll": PollModel,
    "state": StateModel,
    "delivery": DeliveryModel,
    "http": HttpModel,
    "self_alerts": SelfAlertsModel,
}
_SINKS: Final[dict[str, type[BaseModel]]] = {
    "slack": SlackSink,
    "slack_webhook": SlackWebhookSink,
    "webhook": WebhookSink,
    "console": ConsoleSink,
}
#: Keys that also accept ``<key>_file``, per section or sink type.
_SECRETS: Final = {
    "posthog": ("api_key",),
    "slack": ("token",),
    "slack_webhook": ("url",),
    "webhook": ("url", "secret"),
}
_TOP: Final = list(ConfigModel.model_fields)
#: Our words for pydantic's error types; the others keep pydantic's message (never the input).
_MESSAGES: Final = {
    "missing": "required key is missing; add it",
    "model_type": "must be a mapping of keys to values",
    "model_attributes_type": "must be a mapping of keys to values",
    "dict_type": "must be a mapping of keys to values",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true/false",
    "bool_parsing": "must be true/false",
    "list_type": "must be a list, like [a, b]",
    "string_type": "must be text; quote it",
    "string_too_short": "must not be empty",
}


def _sink_blocks(raw: dict[Any, Any]) -> list[tuple[str, Any, str | None]]:
    """``(name, body, type)`` for each sink; type is None when missing or unknown."""
    sinks = raw.get("sinks")
    found = []
    for name, body in sinks.items() if isinstance(sinks, dict) else ():
        kind = body.get("type") if isinstance(body, dict) else None
        found.append((str(name), body, kind if isinstance(kind, str) and kind in _SINKS else None))
    return found


def _unknown_keys(raw: dict[Any, Any]) -> list[Problem]:
    """Keys no model knows, with a "did you mean" when one is close (checked on the raw dict)."""

    def allowed(model: type[BaseModel], secrets: tuple[str, ...] = ()) -> list[str]:
        return [*model.model_fields, *(f"{key}_file" for key in secrets)]

    blocks: list[tuple[Loc, Any, list[str]]] = [((), raw, _TOP)]
    for section, model in _SECTIONS.items():
        blocks.append(((section,), raw.get(section), allowed(model, _SECRETS.get(section, ()))))
    for name, body, kind in _sink_blocks(raw):
        kinds = [kind] if kind else list(_SINKS)  # type unknown: any sink's key is plausible
        keys = [key for t in kinds for key in allowed(_SINKS[t], _SECRETS.get(t, ()))]
        blocks.append((("sinks", name), body, list(dict.fromkeys(keys))))
    rules = raw.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        blocks.append((("rules", index), rule, allowed(RuleModel)))
    problems: list[Problem] = []
    for loc, block, known in blocks:
        for key in (k for k in block if k not in known) if isinstance(block, dict) else ():
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(known)}"
            problems.append(((*loc, str(key)), f"unknown key ({hint})"))
    return problems


def _secret_values(raw: dict[Any, Any]) -> list[str]:
    """Every secret-looking value in the raw document, longest first, for scrubbing messages."""
    posthog = raw.get("posthog")
    found = [posthog.get("api_key")] if isinstance(posthog, dict) else []
    for _, body, _ in _sink_blocks(raw):
        if isinstance(body, dict):
            found += [body.get("token"), body.get("url"), body.get("secret")]
            headers = body.get("headers")
            found += list(headers.values()) if isinstance(headers, dict) else []
    texts = {s for v in found if isinstance(v, str) for s in (v, v.strip()) if len(s) >= 6}
    return sorted(texts, key=len, reverse=True)


def _check_rules(raw: dict[Any, Any]) -> tuple[dict[int, Match], list[Problem]]:
    """Sink names, rule names, sink references and match blocks, on the raw dict."""
    problems: list[Problem] = []
    rules = raw.get("rules")
    texts = [
        text
        for rule in (rules if isinstance(rules, list) else [])
        if isinstance(rule, dict)
        for text in regex_texts(rule.get("match"))
    ]
    # Each pattern's own limit is checked by compile_regex; this is the sum, checked before any
    # is compiled, since compiling is the cost being avoided.
    compile_matches = sum(min(regex_size(t), REGEX_MAX_SIZE + 1) for t in texts) <= _REGEX_TOTAL_MAX
    if not compile_matches:
        why = "the regexes of all rules together are too large to compile; shorten them"
        problems.append((("rules",), why))
    defined = [name for name, _, _ in _sink_blocks(raw)]
    check_sinks = isinstance(raw.get("sinks", {}), dict)  # else the type error says it all
    for sink in (s for s in defined if not _SINK_NAME.fullmatch(s)):
        problems.append((("sinks", sink), "invalid sink name; use letters, digits, '_', '.', '-'"))
    matches, names = {}, dict[str, int]()
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        loc, name = ("rules", index), rule.get("name")
        name = name.strip() if isinstance(name, str) else None
        if name is not None and name in names:
            why = f"duplicate rule name {name!r} (also rules[{names[name]}]); rename one"
            problems.append(((*loc, "name"), why))
        elif name is not None:
            names[name] = index
        sinks = rule.get("sinks")
        sinks = [sinks] if isinstance(sinks, str) else sinks if isinstance(sinks, list) else []
        for i, sink in enumerate(sinks):
            if check_sinks and isinstance(sink, str) and sink.strip() not in [*defined, ""]:
                hint = choices(sink.strip(), defined, "defined") if defined else "none defined"
                problems.append(((*loc, "sinks", i), f"unknown sink {sink.strip()!r} ({hint})"))
        block = {} if rule.get("match") is None else rule["match"]  # none: every event
        if not compile_matches:
            continue
        match = compile_match(block, (*loc, "match"), problems, fields_only=False)
        if match is not None:
            matches[index] = match
    return matches, problems


def _check_self_alerts(raw: dict[Any, Any]) -> list[Problem]:
    """``self_alerts.sinks`` must name defined sinks (like a rule's sinks)."""
    section = raw.get("self_alerts")
    sinks = section.get("sinks") if isinstance(section, dict) else None
    sinks = [sinks] if isinstance(sinks, str) else sinks if isinstance(sinks, list) else []
    if not isinstance(raw.get("sinks", {}), dict):
        return []  # the type error says it all
    defined = [name for name, _, _ in _sink_blocks(raw)]
    problems: list[Problem] = []
    for i, sink in enumerate(sinks):
        if isinstance(sink, str) and sink.strip() not in [*defined, ""]:
            hint = choices(sink.strip(), defined, "defined") if defined else "none defined"
            problems.append(
                (("self_alerts", "sinks", i), f"unknown sink {sink.strip()!r} ({hint})")
            )
    return problems


def _pydantic_problems(error: ValidationError) -> list[Problem]:
    """pydantic errors → problems, from ``loc``, ``type`` and our own words: never the input."""
    problems: list[Problem] = []
    for err in error.errors(include_input=False, include_url=False):
        loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx", {})
        if loc[:1] == ("sinks",) and len(loc) > 2 and loc[2] in _SINKS:
            loc = loc[:2] + loc[3:]  # drop the discriminator's tag
        msg = _MESSAGES.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
        if kind == "extra_forbidden":
            continue  # reported by _unknown_keys, with a suggestion
        if kind == "union_tag_invalid":
            loc, msg = (
                (*loc, "type"),
                f"unknown sink type {ctx['tag']!r} ({choices(ctx['tag'], list(_SINKS))})",
            )
        elif kind == "union_tag_not_found":
            loc, msg = (*loc, "type"), f"required key is missing; one of {', '.join(_SINKS)}"
        elif kind == "literal_error":
            msg = f"must be one of {ctx['expected']}"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
        problems.append((loc, msg))
    return problems


def _sink(name: str, model: BaseModel) -> st.SinkSettings:
    if isinstance(model, SlackSink):
        return st.SlackSinkSettings(name, model.token, model.channel, model.api_url, model.timeout)
    if isinstance(model, SlackWebhookSink):
        return st.SlackWebhookSinkSettings(name, model.url, model.timeout)
    if isinstance(model, WebhookSink):
        headers = MappingProxyType(dict(model.headers))
        return st.WebhookSinkSettings(name, model.url, model.secret, headers, model.timeout)
    return st.ConsoleSinkSettings(name)


def _warnings(model: ConfigModel, rules: tuple[Rule, ...]) -> list[str]:
    """Valid but unwise: printed by ``check`` and logged at start."""
    poll, delivery, used = model.poll, model.delivery, {s for r in rules for s in r.sinks}
    alerting = model.self_alerts.sinks
    used |= set(alerting or ())  # a sink only for the notifier's own notices is in use
    found = [
        f"sinks.{name}: no rule sends to it; add it to a rule's sinks or remove it"
        for name in model.sinks
        if name not in used
    ]
    if not rules:
        found.append("rules: there are none, so nothing will be sent; add a rule")
    if poll.interval < 10:
        found.append(
            f"poll.interval: {_shown(poll.interval)} is under 10s; every cycle lists "
            "every project and PostHog allows 480 requests/minute; try 60s"
        )
    if "jitter" in poll.model_fields_set and poll.jitter > poll.interval:
        found.append(f"poll.jitter: longer than poll.interval; using {_shown(poll.interval)}")
    if delivery.backoff_max < delivery.backoff_initial:
        found.append("delivery.backoff_max: shorter than backoff_initial; using backoff_initial")
    if alerting is not None and len(alerting) == 1 and len(model.sinks) > 1:
        found.append(
            f"self_alerts.sinks: only {alerting[0]!r}, so its own failures cannot be reported; "
            "add a second sink"
        )
    if model.posthog.host.startswith("http://"):
        found.append("posthog.host: http:// sends the API key unencrypted; use https://")
    return found


def _build(
    model: ConfigModel, matches: dict[int, Match], source: str, base_dir: Path | None
) -> st.Settings:
    ph, poll, delivery = model.posthog, model.poll, model.delivery
    state_path = Path(model.state.path).expanduser()
    if base_dir is not None and not state_path.is_absolute():
        state_path = base_dir / state_path
    rules = tuple(
        Rule(r.name, matches[i], tuple(r.sinks), r.stop) for i, r in enumerate(model.rules)
    )
    statuses = tuple(ph.statuses) if ph.statuses is not None else None
    return st.Settings(
        posthog=st.PostHogSettings(
            ph.host,
            ph.api_key,
            tuple(ph.project_ids),
            ph.api_path,
            ph.page_size,
            ph.timeout,
            statuses,
            ph.requests_per_minute,
            ph.requests_per_hour,
        ),
        sinks=MappingProxyType({name: _sink(name, s) for name, s in model.sinks.items()}),
        rules=rules,
        poll=st.PollSettings(
            poll.interval,
            min(poll.jitter, poll.interval),
            poll.deadline,
            poll.full_sync_every,
            poll.overlap,
            poll.concurrency,
        ),
        state=st.StateSettings(state_path),
        delivery=st.DeliverySettings(
            delivery.give_up_after,
            delivery.backoff_initial,
            max(delivery.backoff_max, delivery.backoff_initial),
            delivery.keep_delivered,
        ),
        http=st.HttpSettings(model.http.listen),
        self_alerts=st.SelfAlertSettings(
            model.self_alerts.after,
            None if model.self_alerts.sinks is None else tuple(model.self_alerts.sinks),
        ),
        first_run=model.first_run,
        source=source,
        warnings=tuple(_warnings(model, rules)),
    )


def _sort_key(problem: Problem) -> tuple[int, list[tuple[int, int, str]]]:
    """File order for sections, then by path (list indexes as numbers)."""
    loc = problem[0]
    head = _TOP.index(loc[0]) if loc and loc[0] in _TOP else -1
    return head, [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in loc[1:]]


def parse_config(
    text: str,
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> st.Settings:
    """Parse configuration text; raise ``ConfigError`` listing every problem found.

    ``env`` defaults to ``os.environ``; relative paths (state, secret files) are relative to
    ``base_dir`` when given, else to the working directory.
    """
    raw = load_yaml(text, source)
    early: list[Problem] = []
    raw = expand_env(raw, os.environ if env is None else env, (), early)
    blocked = read_secret_files(
        raw.get("posthog"), _SECRETS["posthog"], ("posthog",), base_dir, early
    )
    for name, body, kind in _sink_blocks(raw):
        blocked |= read_secret_files(
            body, _SECRETS.get(str(kind), ()), ("sinks", name), base_dir, early
        )
    blocked |= {loc for loc, _ in early}  # a value that could not be expanded: no more noise
    later = _unknown_keys(raw)
    model: ConfigModel | None = None
    try:
        model = ConfigModel.model_validate(raw)
    except ValidationError as exc:
        later += _pydantic_problems(exc)
    matches, rule_problems = _check_rules(raw)
    rule_problems += _check_self_alerts(raw)
    later = [
        p
        for p in later + rule_problems
        if not any(p[0][:n] in blocked for n in range(1, len(p[0]) + 1))
    ]
    problems = sorted(dict.fromkeys(early + later), key=_sort_key)
    if problems or model is None:
        messages = [f"{format_loc(loc)}: {msg}" for loc, msg in problems] or ["invalid"]
        for secret in _secret_values(raw):
            messages = [m.replace(secret, "***") for m in messages]
        raise ConfigError(messages, source)
    return _build(model, matches, source, base_dir)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> st.Settings:
    """Read and parse a configuration file; relative paths in it are relative to its folder."""
    file = Path(path)
    return parse_config(read_text(file), source=str(path), env=env, base_dir=file.absolute().parent)
