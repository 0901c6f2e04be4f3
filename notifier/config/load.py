"""YAML → ``Settings``, reporting every problem at once, each with its key path and a fix.

The pipeline: read the document (``yamlload``: size cap, no aliases, ``${VAR}``, ``*_file``
secrets) → check unknown keys, the rules and the message templates on the raw dict
(``checks``) → validate it, with the compiled rules and templates put in place, against the
``Settings`` model (value types in ``types``, sinks in ``sinks``) → add what the loader knows
(the source, warnings from ``advice``, relative paths resolved, jitter and backoff capped).
Problems from every step land in one ``ConfigError``. Messages come from key paths and our own
words, with the value the user wrote (quoted, cut, escaped: ``checks.pydantic_problems``) except
where a secret goes or when it looks like one, and any secret value is scrubbed from them anyway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from notifier.config.advice import warnings
from notifier.config.checks import (
    SECRETS,
    TOP,
    check_raw_templates,
    check_rules,
    check_self_alerts,
    pydantic_problems,
    secret_values,
    sink_blocks,
    unknown_keys,
)
from notifier.config.interactivity import check_interactivity
from notifier.config.intervals import check_interval_names
from notifier.config.reminders import check_reminders
from notifier.config.settings import Settings
from notifier.config.types import parse_duration
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
from notifier.render.templates import CompiledTemplates

__all__ = ["load_config", "parse_config", "parse_duration"]


def _compiled(
    raw: dict[Any, Any], matches: Mapping[int, Match], templates: Mapping[Loc, CompiledTemplates]
) -> dict[Any, Any]:
    """The document with what the checks compiled in place: each rule's ``match`` and
    ``templates``, each sink's ``name`` and ``templates`` (a copy; ``raw`` is left as it is)."""
    found = dict(raw)

    def compiled(loc: Loc) -> dict[str, CompiledTemplates]:
        return {"templates": templates[loc]} if loc in templates else {}

    if isinstance(raw.get("rules"), list):
        found["rules"] = [
            {
                **rule,
                "match": matches.get(index, Match()),  # no Match: its problems are reported
                **compiled(("rules", index, "template")),
            }
            if isinstance(rule, dict)
            else rule
            for index, rule in enumerate(raw["rules"])
        ]
    if isinstance(raw.get("sinks"), dict):
        found["sinks"] = {
            name: {**body, "name": name, **compiled(("sinks", name, "template"))}
            if isinstance(body, dict)
            else body
            for name, body in raw["sinks"].items()
        }
    return found


def _finished(settings: Settings, source: str, base_dir: Path | None) -> Settings:
    """What the loader adds to validated settings: the source, the warnings, the state path
    relative to the config file's folder, and jitter and backoff_max capped."""
    poll, delivery, path = settings.poll, settings.delivery, settings.state.path
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return settings.model_copy(
        update={
            "poll": poll.model_copy(update={"jitter": min(poll.jitter, poll.interval)}),
            "delivery": delivery.model_copy(
                update={"backoff_max": max(delivery.backoff_max, delivery.backoff_initial)}
            ),
            "state": settings.state.model_copy(update={"path": path}),
            "source": source,
            "warnings": tuple(warnings(settings)),
        }
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
) -> Settings:
    """Parse configuration text; raise ``ConfigError`` listing every problem found.

    ``env`` defaults to ``os.environ``; relative paths (state, secret files) are relative to
    ``base_dir`` when given, else to the working directory.
    """
    raw = load_yaml(text, source)
    early: list[Problem] = []
    raw = expand_env(raw, os.environ if env is None else env, (), early)
    blocked: set[Loc] = set()
    for section in ("posthog", "state", "interactivity"):
        blocked |= read_secret_files(
            raw.get(section), SECRETS[section], (section,), base_dir, early
        )
    for name, body, kind in sink_blocks(raw):
        blocked |= read_secret_files(
            body, SECRETS.get(str(kind), ()), ("sinks", name), base_dir, early
        )
    blocked |= {loc for loc, _ in early}  # a value that could not be expanded: no more noise
    later = unknown_keys(raw)
    matches, rule_problems = check_rules(raw)
    rule_problems += check_self_alerts(raw)
    rule_problems += check_interactivity(raw)
    rule_problems += check_interval_names(raw)
    reminder_matches, reminder_problems = check_reminders(raw)
    rule_problems += reminder_problems
    templates, template_problems = check_raw_templates(raw, sink_blocks(raw))
    rule_problems += template_problems
    settings: Settings | None = None
    try:
        compiled = _compiled(raw, matches, templates)
        if isinstance(raw.get("reminders"), list):
            compiled["reminders"] = [
                {**item, "match": reminder_matches.get(i, Match())}
                if isinstance(item, dict)
                else item
                for i, item in enumerate(raw["reminders"])
            ]
        settings = Settings.model_validate(compiled)
    except ValidationError as exc:
        later += pydantic_problems(exc)
    later = [
        p
        for p in later + rule_problems
        if not any(p[0][:n] in blocked for n in range(1, len(p[0]) + 1))
    ]
    problems = sorted(dict.fromkeys(early + later), key=_sort_key)
    if problems or settings is None:
        messages = [format_problem(loc, msg) for loc, msg in problems] or ["invalid"]
        for secret in secret_values(raw):
            messages = [m.replace(secret, "***") for m in messages]
        raise ConfigError(messages, source)
    return _finished(settings, source, base_dir)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and parse a configuration file; relative paths in it are relative to its folder."""
    file = Path(path)
    return parse_config(read_text(file), source=str(path), env=env, base_dir=file.absolute().parent)
