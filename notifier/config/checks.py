"""Checks of the raw configuration document that pydantic cannot make: unknown keys (with "did
you mean"), sink and rule names, rule ``match`` blocks and their regexes, ``self_alerts.sinks``;
pydantic's own errors in our words, with the value the user wrote (``types.shown``) unless a
secret goes there (``holds_secret``: a ``SecretStr`` field, or a block holding one); and every
secret value in the document, so that no message can repeat one. Each check returns
``(key path, problem)`` pairs: ``load`` reports them all at once.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from types import UnionType
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from notifier.config.match import choices, compile_match, regex_texts, unknown_sinks
from notifier.config.settings import SECTIONS, RuleSettings, Settings
from notifier.config.sinks import SINK_SECRETS, SINKS, TEMPLATED, TemplateModel, misplaced
from notifier.config.types import inputs, shown
from notifier.config.yamlload import Loc, Problem, Said
from notifier.core.report import Links
from notifier.core.rules import REGEX_MAX_SIZE, Match, regex_size
from notifier.render.templates import (
    LIMITS,
    CompiledTemplates,
    Templates,
    check_templates,
    compile_templates,
)

_SINK_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
#: All rule regexes together, in ``rules.regex_size`` units: compiling is memory and time.
_REGEX_TOTAL_MAX: Final = 5 * REGEX_MAX_SIZE
#: Keys that also accept ``<key>_file``, per section or sink type.
SECRETS: Final = {
    "posthog": ("api_key",),
    "state": ("password",),
    "interactivity": ("app_token", "signing_secret"),
    **SINK_SECRETS,
}
TOP: Final = inputs(Settings)
#: All templates together, so that checking them at load stays well under a second or two.
TEMPLATES_MAX_CHARS: Final = 100_000
TEMPLATES_MAX_COUNT: Final = 200
#: The host templates are tried with when posthog.host is not usable.
PLACEHOLDER_HOST: Final = "https://us.posthog.com"
#: Our words for pydantic's error types; the others keep pydantic's message.
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
    "tuple_type": "must be a list, like [a, b]",
    "string_type": "must be text; quote it",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",  # a secret (SecretStr) that is empty
}


def sink_blocks(raw: dict[Any, Any]) -> list[tuple[str, Any, str | None]]:
    """``(name, body, type)`` for each sink; type is None when missing or unknown."""
    sinks = raw.get("sinks")
    found = []
    for name, body in sinks.items() if isinstance(sinks, dict) else ():
        kind = body.get("type") if isinstance(body, dict) else None
        found.append((str(name), body, kind if isinstance(kind, str) and kind in SINKS else None))
    return found


def unknown_keys(raw: dict[Any, Any]) -> list[Problem]:
    """Keys no model knows, with a "did you mean" when one is close (checked on the raw dict)."""

    def allowed(model: type[BaseModel], secrets: tuple[str, ...] = ()) -> list[str]:
        return [*inputs(model), *(f"{key}_file" for key in secrets)]

    blocks: list[tuple[Loc, Any, list[str], str | None]] = [((), raw, TOP, None)]
    for section, model in SECTIONS.items():
        known = allowed(model, SECRETS.get(section, ()))
        blocks.append(((section,), raw.get(section), known, None))
    templates = allowed(TemplateModel)
    for name, body, kind in sink_blocks(raw):
        kinds = [kind] if kind else list(SINKS)  # type unknown: any sink's key is plausible
        keys = [key for t in kinds for key in allowed(SINKS[t], SECRETS.get(t, ()))]
        blocks.append((("sinks", name), body, list(dict.fromkeys(keys)), kind))
        if isinstance(body, dict) and "template" in keys:
            blocks.append((("sinks", name, "template"), body.get("template"), templates, None))
    rules = raw.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        blocks.append((("rules", index), rule, allowed(RuleSettings), None))
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


def secret_values(raw: dict[Any, Any]) -> list[str]:
    """Every secret-looking value in the raw document, longest first, for scrubbing messages."""
    posthog = raw.get("posthog")
    found = [posthog.get("api_key")] if isinstance(posthog, dict) else []
    clicks = raw.get("interactivity")
    if isinstance(clicks, dict):
        found += [clicks.get("app_token"), clicks.get("signing_secret")]
    for _, body, _ in sink_blocks(raw):
        if isinstance(body, dict):
            found += [body.get("token"), body.get("url"), body.get("secret")]
            headers = body.get("headers")
            found += list(headers.values()) if isinstance(headers, dict) else []
    texts = {s for v in found if isinstance(v, str) for s in (v, v.strip()) if len(s) >= 6}
    return sorted(texts, key=len, reverse=True)


def check_rules(raw: dict[Any, Any]) -> tuple[dict[int, Match], list[Problem]]:
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
    defined = [name for name, _, _ in sink_blocks(raw)]
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
        if check_sinks:
            problems += unknown_sinks((*loc, "sinks"), rule.get("sinks"), defined)
        block = {} if rule.get("match") is None else rule["match"]  # none: every event
        if not compile_matches:
            continue
        match = compile_match(block, (*loc, "match"), problems, fields_only=False)
        if match is not None:
            matches[index] = match
    return matches, problems


def check_self_alerts(raw: dict[Any, Any]) -> list[Problem]:
    """``self_alerts.sinks`` must name defined sinks (like a rule's sinks)."""
    section = raw.get("self_alerts")
    sinks = section.get("sinks") if isinstance(section, dict) else None
    if not isinstance(raw.get("sinks", {}), dict):
        return []  # the type error says it all
    defined = [name for name, _, _ in sink_blocks(raw)]
    return unknown_sinks(("self_alerts", "sinks"), sinks, defined)


def pydantic_problems(error: ValidationError) -> list[Problem]:
    """pydantic errors → problems, from ``loc``, ``type`` and our own words, with the value
    written (``_echoed``) where no secret goes."""
    problems: list[Problem] = []
    for err in error.errors(include_url=False):
        loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx", {})
        if loc[:1] == ("sinks",) and len(loc) > 2 and loc[2] in SINKS:
            loc = loc[:2] + loc[3:]  # drop the discriminator's tag
        msg = _MESSAGES.get(kind) or err["msg"][:1].lower() + err["msg"][1:]
        if kind == "extra_forbidden":
            continue  # reported by unknown_keys, with a suggestion
        if kind == "union_tag_invalid":
            loc, msg = (
                (*loc, "type"),
                f"unknown sink type {ctx['tag']!r} ({choices(ctx['tag'], list(SINKS))})",
            )
        elif kind == "union_tag_not_found":
            loc, msg = (*loc, "type"), f"required key is missing; one of {', '.join(SINKS)}"
        elif kind == "literal_error":
            msg = f"must be one of {ctx['expected']}{_closest(err['input'], ctx['expected'])}"
        elif kind == "value_error":
            msg = err["msg"].removeprefix("Value error, ")
        if kind not in ("missing", "too_short", "string_too_short") and "union" not in kind:
            msg = _echoed(loc, kind, err["input"], msg)
        problems.append((loc, msg))
    return problems


def _closest(value: object, expected: str) -> str:
    """``; did you mean 'notify'?`` for a literal's closest value, if one is close."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, re.findall(r"'([^']*)'", expected), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _echoed(loc: Loc, kind: str, value: object, msg: str) -> str:
    """``msg`` with ``(got <value>)`` after its problem (before the first ``; ``, the fix), or
    as it is: where a secret goes, for a list or mapping where one goes (the message is about
    its items or keys), and when the message quotes the value already."""
    if holds_secret(loc) or (isinstance(value, dict | list) and _holds_many(loc)):
        return msg
    if isinstance(value, str) and value:
        quoted = repr(value[:40])[: -1 if len(value) > 40 else None]
        if quoted in msg or (len(value) >= 8 and value.strip() in msg):
            return msg  # our validator quotes it already
    if (said := shown(value)) is None:
        return msg
    problem, sep, fix = msg.partition("; ")
    return f"{problem} (got {said}){sep}{fix}"


def _kinds(annotation: Any) -> list[Any]:
    """The types a field's annotation allows, without ``Annotated`` and unions."""
    if get_origin(annotation) is Annotated:
        return _kinds(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [kind for arg in get_args(annotation) for kind in _kinds(arg)]
    return [annotation]


def _inner(annotation: Any, part: str | int) -> list[Any]:
    """What a value of ``annotation`` holds at ``part`` (a field, a mapping's value, an item)."""
    found = []
    for kind in _kinds(annotation):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(str(part))
            found += [] if field is None else [field.annotation]
        elif get_origin(kind) is dict:
            found.append(get_args(kind)[1])
        elif get_origin(kind) in (tuple, list):
            found.append(get_args(kind)[0])
    return found


def _secret_type(annotation: Any, depth: int = 0) -> bool:
    """Whether a value of ``annotation`` is or holds a ``SecretStr``."""
    for kind in _kinds(annotation):
        if isinstance(kind, type) and issubclass(kind, SecretStr):
            return True
        if isinstance(kind, type) and issubclass(kind, BaseModel) and depth < 8:
            fields = kind.model_fields.values()
            if any(_secret_type(field.annotation, depth + 1) for field in fields):
                return True
        args = get_args(kind) if get_origin(kind) in (dict, tuple, list) and depth < 8 else ()
        if any(_secret_type(arg, depth + 1) for arg in args if arg is not ...):
            return True
    return False


def _annotations(loc: Loc) -> list[Any]:
    """The annotations of what goes at ``loc`` in the settings (none: not a key of them)."""
    found: list[Any] = [Settings]
    for part in loc:
        found = [inner for annotation in found for inner in _inner(annotation, part)]
    return found


def _holds_many(loc: Loc) -> bool:
    """Whether a list or a mapping goes at ``loc`` (a section, a sink, a list of values)."""
    kinds = [kind for annotation in _annotations(loc) for kind in _kinds(annotation)]
    return any(
        get_origin(kind) in (dict, tuple, list)
        or (isinstance(kind, type) and issubclass(kind, BaseModel | dict | tuple | list))
        for kind in kinds
    )


def holds_secret(loc: Loc) -> bool:
    """Whether a secret goes at ``loc`` (a ``SecretStr`` field, or a block holding one), so that
    no message shows the value there; also when ``loc`` is not a key of the settings."""
    found = _annotations(loc)
    return not found or any(_secret_type(annotation) for annotation in found)


def rule_where(index: int, name: object) -> str:
    """``rules[2] "ready reports"``: a rule by index and name, for messages."""
    shown = json.dumps(name.strip(), ensure_ascii=False) if isinstance(name, str) else ""
    return f"rules[{index}] {shown}".rstrip()


def _templated_blocks(
    raw: dict[Any, Any], sinks: Sequence[tuple[str, Any, str | None]]
) -> list[tuple[Loc, str, Templates]]:
    """``(loc, where, sources)`` of every template block that can be checked: a mapping on a
    rule or on a Slack sink, its text parts (the other parts' types are pydantic's). ``where``
    names the rule (``rules[2] "ready"``) or sink (``sinks.team``) in problems and logs."""
    found: list[tuple[Loc, Any, str]] = []
    rules = raw.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            where = rule_where(index, rule.get("name"))
            found.append((("rules", index, "template"), rule.get("template"), where))
    for name, body, kind in sinks:
        if isinstance(body, dict) and kind in TEMPLATED:
            found.append((("sinks", name, "template"), body.get("template"), f"sinks.{name}"))
    blocks = []
    for loc, block, where in found:
        if not isinstance(block, dict):
            continue
        parts = {part: block.get(part) for part in LIMITS}
        texts = {part: v for part, v in parts.items() if isinstance(v, str) and v}
        if texts:
            blocks.append((loc, where, Templates(**texts)))
    return blocks


def _said(loc: Loc, where: str, problem: str) -> Problem:
    """A ``check_templates`` problem (``<where> body, line 1: …``) at its part's key path,
    worded ``<where>.template.body, line 1: …``."""
    for part in LIMITS:
        if problem.startswith(f"{where} {part}"):
            rest = problem.removeprefix(f"{where} {part}")
            return (*loc, part), Said(f"{where}.template.{part}{rest}")
    return loc, Said(problem)


def check_raw_templates(
    raw: dict[Any, Any], sinks: Sequence[tuple[str, Any, str | None]]
) -> tuple[dict[Loc, CompiledTemplates], list[Problem]]:
    """Compile every template and render it against the sample events; the compiled ones by
    their block's key path, and every problem (all of them, each at its part's key path)."""
    blocks = _templated_blocks(raw, sinks)
    sources = [s for _, _, t in blocks for s in (t.title, t.body, t.text) if s is not None]
    if len(blocks) > TEMPLATES_MAX_COUNT or sum(map(len, sources)) > TEMPLATES_MAX_CHARS:
        why = (
            f"the templates together are too large to check (at most {TEMPLATES_MAX_COUNT} "
            f"templates and {TEMPLATES_MAX_CHARS:,} characters); share a sink's template "
            "instead of repeating it on every rule, and shorten them"
        )
        return {}, [((blocks[0][0][0],), why)]
    posthog = raw.get("posthog")
    host = posthog.get("host") if isinstance(posthog, dict) else None
    links = Links(host if isinstance(host, str) and host.startswith("http") else PLACEHOLDER_HOST)
    compiled: dict[Loc, CompiledTemplates] = {}
    problems: list[Problem] = []
    for loc, where, templates in blocks:
        found = check_templates([(where, templates)], links)
        problems += [_said(loc, where, problem) for problem in found]
        if not found:
            compiled[loc] = compile_templates(templates, where)
    return compiled, problems
