"""YAML → ``Settings``, reporting every problem at once, each with its key path and a fix.

The pipeline: read the document (``yamlload``: size cap, no aliases, ``${VAR}``, ``*_file``
secrets) → check unknown keys, the rules and the message templates on the raw dict → validate
types with the pydantic models below (value types in ``config.types``, sinks and templates in
``config.sinks``) → build the frozen ``Settings``. Problems from every step land in one
``ConfigError``. Messages come from key paths and our own words, never from input values, and
any secret value is scrubbed from them anyway.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError

from notifier.config import settings as st
from notifier.config.match import choices, compile_match, regex_texts
from notifier.config.sinks import (
    SINK_SECRETS,
    SINKS,
    AnySink,
    Template,
    TemplateModel,
    build_sink,
    check_raw_templates,
    misplaced,
    sink_warnings,
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
    parse_duration,
    unique,
)
from notifier.config.yamlload import (
    Loc,
    Problem,
    expand_env,
    format_problem,
    load_yaml,
    read_secret_files,
    read_text,
)
from notifier.core.errors import ConfigError
from notifier.core.rules import REGEX_MAX_SIZE, Match, regex_size
from notifier.core.times import format_span
from notifier.render.templates import CompiledTemplates

__all__ = ["load_config", "parse_config", "parse_duration"]

_SINK_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
#: All rule regexes together, in ``rules.regex_size`` units: compiling is memory and time.
_REGEX_TOTAL_MAX: Final = 5 * REGEX_MAX_SIZE


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


_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "posthog": PostHogModel,
    "poll": PollModel,
    "state": StateModel,
    "delivery": DeliveryModel,
    "http": HttpModel,
    "self_alerts": SelfAlertsModel,
}
#: Keys that also accept ``<key>_file``, per section or sink type.
_SECRETS: Final = {"posthog": ("api_key",), **SINK_SECRETS}
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
        found.append((str(name), body, kind if isinstance(kind, str) and kind in SINKS else None))
    return found


def _unknown_keys(raw: dict[Any, Any]) -> list[Problem]:
    """Keys no model knows, with a "did you mean" when one is close (checked on the raw dict)."""

    def allowed(model: type[BaseModel], secrets: tuple[str, ...] = ()) -> list[str]:
        return [*model.model_fields, *(f"{key}_file" for key in secrets)]

    blocks: list[tuple[Loc, Any, list[str], str | None]] = [((), raw, _TOP, None)]
    for section, model in _SECTIONS.items():
        known = allowed(model, _SECRETS.get(section, ()))
        blocks.append(((section,), raw.get(section), known, None))
    templates = allowed(TemplateModel)
    for name, body, kind in _sink_blocks(raw):
        kinds = [kind] if kind else list(SINKS)  # type unknown: any sink's key is plausible
        keys = [key for t in kinds for key in allowed(SINKS[t], _SECRETS.get(t, ()))]
        blocks.append((("sinks", name), body, list(dict.fromkeys(keys)), kind))
        if isinstance(body, dict) and "template" in keys:
            blocks.append((("sinks", name, "template"), body.get("template"), templates, None))
    rules = raw.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        blocks.append((("rules", index), rule, allowed(RuleModel), None))
        if isinstance(rule, dict):
            blocks.append((("rules", index, "template"), rule.get("template"), templates, None))
    problems: list[Problem] = []
    for loc, block, known, kind in blocks:
        for key in (k for k in block if k not in known) if isinstance(block, dict) else ():
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(known)}"
            said = misplaced(kind, str(key)) or f"unknown key ({hint})"
            problems.append(((*loc, str(key)), said))
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
        if loc[:1] == ("sinks",) and len(loc) > 2 and loc[2] in SINKS:
            loc = loc[:2] + loc[3:]  # drop the discriminator's tag
        msg = _MESSAGES.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
        if kind == "extra_forbidden":
            continue  # reported by _unknown_keys, with a suggestion
        if kind == "union_tag_invalid":
            loc, msg = (
                (*loc, "type"),
                f"unknown sink type {ctx['tag']!r} ({choices(ctx['tag'], list(SINKS))})",
            )
        elif kind == "union_tag_not_found":
            loc, msg = (*loc, "type"), f"required key is missing; one of {', '.join(SINKS)}"
        elif kind == "literal_error":
            msg = f"must be one of {ctx['expected']}"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
        problems.append((loc, msg))
    return problems


def _warnings(
    model: ConfigModel, sinks: Mapping[str, st.SinkSettings], rules: tuple[st.RuleSettings, ...]
) -> list[str]:
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
    interval = format_span(poll.interval, "config")
    if poll.interval < 10:
        found.append(
            f"poll.interval: {interval} is under 10s; every cycle lists "
            "every project and PostHog allows 480 requests/minute; try 60s"
        )
    if "jitter" in poll.model_fields_set and poll.jitter > poll.interval:
        found.append(f"poll.jitter: longer than poll.interval; using {interval}")
    if delivery.backoff_max < delivery.backoff_initial:
        found.append("delivery.backoff_max: shorter than backoff_initial; using backoff_initial")
    if alerting is not None and len(alerting) == 1 and len(model.sinks) > 1:
        found.append(
            f"self_alerts.sinks: only {alerting[0]!r}, so its own failures cannot be reported; "
            "add a second sink"
        )
    if model.posthog.host.startswith("http://"):
        found.append("posthog.host: http:// sends the API key unencrypted; use https://")
    return found + sink_warnings(sinks, model.sinks, rules)


def _build(
    model: ConfigModel,
    matches: dict[int, Match],
    templates: Mapping[Loc, CompiledTemplates],
    source: str,
    base_dir: Path | None,
) -> st.Settings:
    ph, poll, delivery = model.posthog, model.poll, model.delivery
    state_path = Path(model.state.path).expanduser()
    if base_dir is not None and not state_path.is_absolute():
        state_path = base_dir / state_path
    rules = tuple(
        st.RuleSettings(
            r.name,
            matches[i],
            tuple(r.sinks),
            r.stop,
            reply_broadcast=r.reply_broadcast,
            templates=templates.get(("rules", i, "template")),
        )
        for i, r in enumerate(model.rules)
    )
    sinks = MappingProxyType(
        {
            name: build_sink(name, s, templates.get(("sinks", name, "template")))
            for name, s in model.sinks.items()
        }
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
        sinks=sinks,
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
        warnings=tuple(_warnings(model, sinks, rules)),
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
    templates, template_problems = check_raw_templates(raw, _sink_blocks(raw))
    rule_problems += template_problems
    later = [
        p
        for p in later + rule_problems
        if not any(p[0][:n] in blocked for n in range(1, len(p[0]) + 1))
    ]
    problems = sorted(dict.fromkeys(early + later), key=_sort_key)
    if problems or model is None:
        messages = [format_problem(loc, msg) for loc, msg in problems] or ["invalid"]
        for secret in _secret_values(raw):
            messages = [m.replace(secret, "***") for m in messages]
        raise ConfigError(messages, source)
    return _build(model, matches, templates, source, base_dir)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> st.Settings:
    """Read and parse a configuration file; relative paths in it are relative to its folder."""
    file = Path(path)
    return parse_config(read_text(file), source=str(path), env=env, base_dir=file.absolute().parent)
