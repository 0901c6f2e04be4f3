"""User message templates: a rule or sink overrides the title, the body or the fallback text.

Jinja2, compiled once at config load and rendered per event in a sandbox. The context: ``event``
(id, type, status, emoji, headline, title), ``report`` and ``previous`` (every raw API field, the
known ones parsed; ``previous`` is None for a new report), ``changes`` (field → ``{before,
after}``), ``project`` (id), ``rule`` (first matching rule) and ``rules``, ``links``
(``links.report``, ``links.recording(session_id)``). Extra filters: number, value, label, emoji.

Escaping has no opt-out: every ``{{ … }}`` output is escaped for Slack as its last step (``&<>``;
entities already there are kept, so nothing is escaped twice). Only the template's own literal
text (``*bold*``, ``<https://x|link>``, ``<!here>``) passes as written, and so does the output of
macros, ``caller()`` and ``{% set %}`` blocks, built of the same two things. No ``|raw``: it
would let a report title ping ``<!channel>``. Strict undefined: a missing name or field fails,
except under ``is defined`` and ``| default(…)`` (``report.a.b | default('-')`` works too).
A work budget (loop steps, calls, text built) and refused amplifiers (``'x' * 10**9``, padding
methods, range over 1,000) bound the time and memory of any template. Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_eval_context
from jinja2.visitor import NodeTransformer

from notifier.core.errors import ConfigError
from notifier.core.models import Event, EventType, Links, Report
from notifier.render import text as txt

LIMITS: Final = {"title": 150, "body": 3000, "text": 3000}  # header plain_text; section text
MAX_SOURCE: Final = 10_000  # characters of one template
WORK_BUDGET: Final = 250_000  # per part: a loop step or call costs _STEP, text its length
MAX_RANGE: Final = 1_000
MAX_PIECE: Final = 20_000  # characters one {{ … }} may print
_STEP: Final = 10
_URL_SAFE: Final = ":/?#[]@!$&'()*+,;=%-._~"  # as render/slack.py: `|` and spaces get quoted
_STR_METHOD_NAMES: Final = (
    "capitalize casefold count endswith find index isalnum isalpha isdecimal isdigit islower "
    "isnumeric isspace istitle isupper lower lstrip partition removeprefix removesuffix rfind "
    "rindex rpartition rsplit rstrip split splitlines startswith strip swapcase title upper"
)
_STR_METHODS: Final = frozenset(_STR_METHOD_NAMES.split())
_FILTER_NAMES: Final = (
    "abs attr capitalize count d default dictsort first float groupby int items last length list "
    "lower map max min reject rejectattr reverse round select selectattr sort title trim truncate "
    "unique upper urlencode wordcount"
)
_UNSUPPORTED: Final = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from %}",
    nodes.Block: "{% block %}",
    nodes.FilterBlock: "{% filter %} (filter the value instead: {{ value|upper }})",
    nodes.EvalContextModifier: "{% autoescape %}",
}
_SPECIAL: Final = re.compile(r"&(?:amp|lt|gt);|[&<>]")
_ESCAPES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


class TemplateError(ConfigError):
    """A template does not compile or render. Each problem names the template, the line, Jinja's
    message and a fix; a caller that renders falls back to the default message and logs it."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(problems, source="templates")


@dataclass(frozen=True, slots=True)
class Templates:
    """The sources as configured; None keeps that part's default rendering."""

    title: str | None = None
    body: str | None = None
    text: str | None = None  # Slack's top-level fallback text


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """Templates ready to render; ``where`` (``rules[2] "ready"``) names them in errors."""

    where: str
    title: jinja2.Template | None = None
    body: jinja2.Template | None = None
    text: jinja2.Template | None = None


@dataclass(frozen=True, slots=True)
class RenderedText:
    """Escaped mrkdwn, stripped and cut to ``LIMITS``; ``title`` on one line. None: no template,
    or it rendered blank; render that part as usual."""

    title: str | None = None
    body: str | None = None
    text: str | None = None


class _Limit(SecurityError):
    """The sandbox refused something too big or too slow."""


class _Safe(str):
    """Output built only of template literals and escaped values (macros, captures)."""

    __slots__ = ()


class _Undefined(jinja2.ChainableUndefined, jinja2.StrictUndefined):
    """Strict (printing, testing or iterating it fails), chainable under ``default``."""

    __slots__ = ()


_BUDGET: ContextVar[list[int] | None] = ContextVar("notifier_template_budget", default=None)


def _spend(units: int) -> None:
    budget = _BUDGET.get()
    if budget is None:  # constant folding at compile time: Jinja then evaluates it at render
        raise _Limit("outside a render")
    budget[0] -= units
    if budget[0] < 0:
        raise _Limit(f"the template does more than {WORK_BUDGET:,} units of work")


def _size(value: Any, limit: int = WORK_BUDGET) -> int:
    """A quick upper bound of ``len(str(value))``, stopping once past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 4 * len(item) + 2
            stack.extend((*item.keys(), *item.values()))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 * len(item) + 2
            stack.extend(item)
        else:
            total += item.bit_length() // 3 + 2 if isinstance(item, int) else 32
    return total


def _escape(text: str) -> str:
    """Escape ``&<>`` for Slack, keeping ``&amp;``, ``&lt;`` and ``&gt;`` (idempotent)."""
    return _SPECIAL.sub(lambda m: m[0] if len(m[0]) > 1 else _ESCAPES[m[0]], text)


def _finalize(value: Any) -> str:
    """Every ``{{ … }}`` output: None prints nothing, the rest is cleaned and escaped."""
    if value is None:
        return ""
    if isinstance(value, jinja2.Undefined):
        return str(value)  # strict: raises
    if isinstance(value, _Safe):
        text = str.__str__(value)
    elif not isinstance(value, str) and _size(value, MAX_PIECE) > MAX_PIECE:
        raise _Limit(f"a value too large to print (over {MAX_PIECE:,} characters)")
    else:  # str.__str__: a str subclass's own methods would not escape
        plain = str.__str__(value)[:MAX_PIECE] if isinstance(value, str) else str(value)
        text = _escape(txt.strip_controls(plain))
    _spend(len(text))
    return text


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, amplifying operators charged and padding methods refused."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str):
            return attr in _STR_METHODS  # no ljust, zfill, replace, join, format, …
        if isinstance(obj, int | float):
            return False  # no to_bytes(10**9)
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is not None:  # runs before is_safe_attribute
            raise SecurityError("str.format is not available: join text with ~")
        return None

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        seq, ints = str | list | tuple, isinstance(left, int) and isinstance(right, int)
        cost = 1
        if operator == "*" and ints:
            cost += (abs(left).bit_length() + abs(right).bit_length()) // 3
        elif operator == "*" and isinstance(left, seq) and isinstance(right, int):
            cost += len(left) * max(right, 0)
        elif operator == "*" and isinstance(right, seq) and isinstance(left, int):
            cost += len(right) * max(left, 0)
        elif operator == "**" and ints and right > 0:
            cost += max(abs(left).bit_length(), 1) * right // 3
        elif operator == "+" and isinstance(left, seq) and isinstance(right, seq):
            cost += len(left) + len(right)
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("% formatting is not available: use |round, |number or ~")
        _spend(cost)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        own = isinstance(obj, Macro | LoopContext)  # a macro, caller() or a recursive loop()
        _spend(10 * _STEP if own else _STEP)  # Jinja's macro calls are slow: ~0.1 ms
        result = super().call(context, obj, *args, **kwargs)
        return _Safe(result) if own and isinstance(result, str) else result


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _Limit(f"range() of {len(numbers):,} numbers (at most {MAX_RANGE:,})")
    return numbers


def _charged(func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that pays a step plus the length of its text and sequence inputs."""

    @functools.wraps(func)  # keeps Jinja's pass_context/pass_eval_context marks
    def charged(*args: Any, **kwargs: Any) -> Any:
        inputs = (*args, *kwargs.values())
        _spend(_STEP + sum(len(a) for a in inputs if isinstance(a, str | list | tuple | Mapping)))
        return func(*args, **kwargs)

    return charged


@pass_eval_context
def _join(ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    _spend(_size(items) + len(d) * len(items))
    return str(FILTERS["join"](ctx, items, d, attribute))


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text, count = str(value), -1 if count is None else count
    found = text.count(old) if count < 0 else min(count, text.count(old))
    _spend(len(text) + found * max(len(new) - len(old), 0))
    return text.replace(old, new, count)


def _concat(items: list[Any]) -> str:
    _spend(sum(_size(item) for item in items))
    return "".join(map(str, items))


def _environment() -> _Sandbox:
    env = _Sandbox(
        undefined=_Undefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,  # YAML block scalars: a line holding only {% … %} leaves nothing
        lstrip_blocks=True,
    )
    extra = {"join": _join, "replace": _replace, "number": txt.format_number}
    extra |= {"value": txt.format_value, "label": txt.label, "emoji": txt.status_emoji}
    filters = {name: FILTERS[name] for name in _FILTER_NAMES.split()} | extra
    env.filters = {name: _charged(func) for name, func in filters.items()}
    env.globals["range"] = _range
    del env.globals["lipsum"]
    return env


_ENV: Final = _environment()


def _internal(function: str, arg: nodes.Expr, lineno: int) -> nodes.Call:
    """A call of one of this module's functions, which the template syntax cannot name (an
    internal filter could be reached by name, as ``|name`` or ``map('name')``)."""
    name = nodes.ImportedName(f"{__name__}.{function}", lineno=lineno)
    return nodes.Call(name, [arg], [], None, None, lineno=lineno)


class _Guard(NodeTransformer):
    """Charges each loop step and macro call for the literal text of its body; routes ``~``
    through a charged join; marks ``{% set %}`` captures as already escaped."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _internal("_concat", nodes.List(node.nodes, lineno=node.lineno), node.lineno)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node | list[nodes.Node]:
        self.generic_visit(node)
        if node.filter is not None or not isinstance(node.target, nodes.Name):
            return node  # {% set x | upper %} and {% set ns.x %} captures are escaped as text
        name, lineno = node.target.name, node.lineno
        safe = _internal("_Safe", nodes.Name(name, "load", lineno=lineno), lineno)
        return [node, nodes.Assign(nodes.Name(name, "store", lineno=lineno), safe, lineno=lineno)]

    def _charge(self, node: nodes.For | nodes.Macro | nodes.CallBlock) -> nodes.Node:
        self.generic_visit(node)
        literal = (n for top in node.body for n in (top, *top.find_all(nodes.TemplateData)))
        cost = _STEP + sum(len(n.data) for n in literal if isinstance(n, nodes.TemplateData))
        spend = _internal("_spend", nodes.Const(cost, lineno=node.lineno), node.lineno)
        node.body.insert(0, nodes.ExprStmt(spend, lineno=node.lineno))
        return node

    visit_For = visit_Macro = visit_CallBlock = _charge


def _compile(source: str) -> jinja2.Template:
    if len(source) > MAX_SOURCE:
        raise _Limit(f"the template has {len(source):,} characters (at most {MAX_SOURCE:,})")
    tree = _ENV.parse(source)
    for kind, tag in _UNSUPPORTED.items():
        if (found := tree.find(kind)) is not None:
            raise jinja2.TemplateSyntaxError(f"{tag} is not supported", found.lineno)
    _Guard().visit(tree)
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


def _describe(where: str, exc: Exception) -> str:
    """One problem: which template, which line, what Jinja said, what to do about it."""
    message, line, tb = str(exc), None, exc.__traceback__
    while tb is not None:  # Jinja rewrites render tracebacks to show the template's lines
        line = tb.tb_lineno if tb.tb_frame.f_code.co_filename == "<template>" else line
        tb = tb.tb_next
    if isinstance(exc, jinja2.TemplateSyntaxError):
        message, line = exc.message or message, exc.lineno
        hint = "check the {{ }} and {% %} pairs and close every {% if %}/{% for %}"
        if isinstance(exc, jinja2.TemplateAssertionError):  # an unknown filter or test
            hint = "filters: " + ", ".join(sorted(n for n in _ENV.filters if n[0] != "_"))
    elif isinstance(exc, _Limit | RecursionError):
        message = (
            "macros or loops recurse too deeply" if isinstance(exc, RecursionError) else message
        )
        hint = "keep templates small: a few loops over a few items, a few thousand characters"
    elif isinstance(exc, SecurityError):
        hint = "templates read the event's data, not Python internals or unsafe methods"
    elif isinstance(exc, jinja2.UndefinedError):
        hint = "the names are event, report, previous, changes, project, rule, rules, links; "
        hint += "test optional fields with `is defined` or `| default(...)`"
    else:
        message = f"{type(exc).__name__}: {message}"
        hint = "fields may be null or missing: `| default(...)`; join text with `~`"
    at = f", line {line}" if line is not None else ""
    return f"{where}{at}: {txt.one_line(message)[:300]} — {hint}"


def compile_templates(templates: Templates, where: str) -> CompiledTemplates:
    """Compile every part; ``TemplateError`` lists each part that does not compile."""
    compiled: dict[str, jinja2.Template] = {}
    problems: list[str] = []
    for part in LIMITS:
        if (source := getattr(templates, part)) is not None:
            try:
                compiled[part] = _compile(source)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a problem
                problems.append(_describe(f"{where} {part}", exc))
    if problems:
        raise TemplateError(problems)
    return CompiledTemplates(where=where, **compiled)


@dataclass(frozen=True, slots=True)
class _Links:
    report: str
    _links: Links
    _project_id: int

    def recording(self, session_id: object) -> str:
        return quote(self._links.recording(self._project_id, str(session_id)), safe=_URL_SAFE)


def _fields(report: Report) -> dict[str, Any]:
    """Every field the API sent (known ones parsed, ``Report.get``); absent ones stay undefined."""
    return {name: report.get(name) for name in report.raw} | {
        "id": report.id,
        "status": report.status,
    }


def _context(event: Event, rules: Sequence[str], links: Links) -> dict[str, Any]:
    report, previous = event.report, event.previous
    return {
        "event": {
            "id": event.id,
            "type": event.type.value,
            "status": txt.event_status(event),
            "emoji": txt.event_emoji(event),
            "headline": txt.headline(event),
            "title": txt.title_of(report),
        },
        "report": _fields(report),
        "previous": _fields(previous) if previous is not None else None,
        "changes": {k: {"before": b, "after": a} for k, (b, a) in event.changes.items()},
        "project": {"id": event.project_id},
        "rule": rules[0] if rules else None,
        "rules": tuple(rules),
        "links": _Links(
            quote(links.report(event.project_id, report.id), safe=_URL_SAFE),
            links,
            event.project_id,
        ),
    }


def _cut(text: str, limit: int) -> str:
    """Cut escaped mrkdwn without leaving half an entity (``&am``) or an open ``<link``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and len(cut) - amp < 5 and ";" not in cut[amp:]:
        cut = cut[:amp]
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut.rstrip() + txt.ELLIPSIS


def _render_part(template: jinja2.Template, part: str, context: dict[str, Any]) -> str | None:
    pieces: list[str] = []
    size, limit = 0, LIMITS[part]
    token = _BUDGET.set([WORK_BUDGET])
    try:
        for piece in template.generate(context):
            pieces.append(piece)
            size += len(piece)
            if size > 4 * limit:  # the rest could not show
                break
    finally:
        _BUDGET.reset(token)
    text = "".join(pieces).strip()
    return _cut(txt.one_line(text) if part == "title" else text, limit) or None


def render(
    compiled: CompiledTemplates, event: Event, rules: Sequence[str], links: Links
) -> RenderedText:
    """Render the compiled parts for ``event``; ``TemplateError`` on the first failure."""
    context = _context(event, rules, links)
    out: dict[str, str | None] = {}
    for part in LIMITS:
        if (template := getattr(compiled, part)) is not None:
            try:
                out[part] = _render_part(template, part, context)
            except Exception as exc:
                raise TemplateError([_describe(f"{compiled.where} {part}", exc)]) from exc
    return RenderedText(**out)


def _sample_events(project_id: int) -> tuple[Event, ...]:
    item = {
        "id": "0c9e7d1e-2b7a-4c1e-9a53-6f2f1d8b7a11",
        "title": "Checkout button unresponsive on Safari & iOS",
        "summary": "Users on Safari 17 tap the Pay button repeatedly and nothing happens.",
        "status": "ready",
        "total_weight": 2.35,
        "signal_count": 7,
        "relevant_user_count": 41,
        "artefact_count": 9,
        "signals_at_run": 10,
        "priority": "P1",
        "actionability": "immediately_actionable",
        "already_addressed": False,
        "source_products": ["session_replay"],
        "repo_slug": "acme/web",
        "assignee": None,
        "created_at": "2026-01-14T09:12:03.512345Z",
        "updated_at": "2026-01-15T16:40:11.004211Z",
    }
    ready = Report.from_api(item)
    before = Report.from_api(
        item | {"status": "in_progress", "total_weight": 1.85, "signal_count": 5}
    )
    changed = {
        "status": ("in_progress", "ready"),
        "total_weight": (1.85, 2.35),
        "signal_count": (5, 7),
    }
    later = Report.from_api(item | {"total_weight": 3.1, "updated_at": "2026-01-16T08:00:00Z"})
    return (
        Event.create(EventType.STATUS_CHANGED, project_id, ready, before, changed),
        Event.create(EventType.NEW, project_id, before, None, {}),
        Event.create(EventType.UPDATED, project_id, later, ready, {"total_weight": (2.35, 3.1)}),
        Event.create(EventType.REMOVED, project_id, ready, ready, {}),
    )


def sample_event(project_id: int = 1) -> Event:
    """A realistic event with every field, in_progress → ready (``check``, ``preview``)."""
    return _sample_events(project_id)[0]


#: The fields every PostHog version sends (V1's): a template that needs more must guard it.
_OLDEST_FIELDS: Final = (
    "id",
    "title",
    "summary",
    "status",
    "total_weight",
    "signal_count",
    "created_at",
    "updated_at",
)


def fragile_parts(compiled: CompiledTemplates, links: Links) -> list[str]:
    """The parts that fail for a report carrying only the fields every PostHog version sends
    (e.g. ``report.priority`` unguarded): at run time those fall back to the default message.
    A warning, not an error: on a recent PostHog they work."""
    full = sample_event(1)
    sparse = {k: v for k, v in full.report.to_json().items() if k in _OLDEST_FIELDS}
    report = Report.from_api(sparse)
    previous = Report.from_api({**sparse, "status": "in_progress"})
    event = Event.create(
        EventType.STATUS_CHANGED, 1, report, previous, {"status": ("in_progress", "ready")}
    )
    fragile = []
    for part in LIMITS:
        template = getattr(compiled, part)
        if template is None:
            continue
        try:
            render(CompiledTemplates(compiled.where, **{part: template}), event, ("rule",), links)
        except TemplateError as exc:
            fragile.append(f"{part}: {exc.problems[0]}")
    return fragile


def check_templates(named: Sequence[tuple[str, Templates]], links: Links) -> list[str]:
    """Every problem of every template, never raising: each part compiled, then rendered
    against sample status_changed, new, updated and removed events (one problem per part)."""
    problems: list[str] = []
    for where, templates in named:
        for part in LIMITS:
            try:
                compiled = compile_templates(Templates(**{part: getattr(templates, part)}), where)
            except TemplateError as exc:
                problems.extend(exc.problems)
                continue
            for event in _sample_events(1):
                try:
                    render(compiled, event, ("sample rule",), links)
                except TemplateError as exc:
                    problems.append(f"{exc.problems[0]} (sample {event.type} event)")
                    break
    return problems
