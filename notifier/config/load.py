"""YAML → ``Settings``, reporting every problem at once, each with its key path and a fix.

The pipeline: read the document (``yamlload``: size cap, no aliases, ``${VAR}``, ``*_file``
secrets) → check unknown keys, the rules and the message templates on the raw dict
(``checks``) → validate types with the pydantic models (``model``; value types in ``types``,
sinks and templates in ``sinks``) → build the frozen ``Settings``. Problems from every step
land in one ``ConfigError``. Messages come from key paths and our own words, never from input
values, and any secret value is scrubbed from them anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from notifier.config import settings as st
from notifier.config.checks import (
    SECRETS,
    TOP,
    check_rules,
    check_self_alerts,
    pydantic_problems,
    secret_values,
    sink_blocks,
    unknown_keys,
)
from notifier.config.model import ConfigModel
from notifier.config.sinks import (
    build_sink,
    check_raw_templates,
    sink_warnings,
)
from notifier.config.types import (
    parse_duration,
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
from notifier.core.rules import Match
from notifier.core.times import format_span
from notifier.render.templates import CompiledTemplates

__all__ = ["ConfigModel", "load_config", "parse_config", "parse_duration"]


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


def _state_path(model: ConfigModel, base_dir: Path | None) -> Path:
    """``state.path``, relative to the config file's folder when it is relative."""
    path = Path(model.state.path).expanduser()
    return base_dir / path if base_dir is not None and not path.is_absolute() else path


def _rules(
    model: ConfigModel, matches: dict[int, Match], templates: Mapping[Loc, CompiledTemplates]
) -> tuple[st.RuleSettings, ...]:
    return tuple(
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


def _build(
    model: ConfigModel,
    matches: dict[int, Match],
    templates: Mapping[Loc, CompiledTemplates],
    source: str,
    base_dir: Path | None,
) -> st.Settings:
    ph, poll, delivery = model.posthog, model.poll, model.delivery
    rules = _rules(model, matches, templates)
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
        state=st.StateSettings(_state_path(model, base_dir)),
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
    head = TOP.index(loc[0]) if loc and loc[0] in TOP else -1
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
        raw.get("posthog"), SECRETS["posthog"], ("posthog",), base_dir, early
    )
    for name, body, kind in sink_blocks(raw):
        blocked |= read_secret_files(
            body, SECRETS.get(str(kind), ()), ("sinks", name), base_dir, early
        )
    blocked |= {loc for loc, _ in early}  # a value that could not be expanded: no more noise
    later = unknown_keys(raw)
    model: ConfigModel | None = None
    try:
        model = ConfigModel.model_validate(raw)
    except ValidationError as exc:
        later += pydantic_problems(exc)
    matches, rule_problems = check_rules(raw)
    rule_problems += check_self_alerts(raw)
    templates, template_problems = check_raw_templates(raw, sink_blocks(raw))
    rule_problems += template_problems
    later = [
        p
        for p in later + rule_problems
        if not any(p[0][:n] in blocked for n in range(1, len(p[0]) + 1))
    ]
    problems = sorted(dict.fromkeys(early + later), key=_sort_key)
    if problems or model is None:
        messages = [format_problem(loc, msg) for loc, msg in problems] or ["invalid"]
        for secret in secret_values(raw):
            messages = [m.replace(secret, "***") for m in messages]
        raise ConfigError(messages, source)
    return _build(model, matches, templates, source, base_dir)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> st.Settings:
    """Read and parse a configuration file; relative paths in it are relative to its folder."""
    file = Path(path)
    return parse_config(read_text(file), source=str(path), env=env, base_dir=file.absolute().parent)
