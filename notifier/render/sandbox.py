"""The Jinja2 sandbox that message templates run in: what a template may do, and how much.

Jinja's immutable sandbox, tightened: every ``{{ … }}`` output is escaped for Slack as its last
step (``&<>``; entities already there are kept, so nothing is escaped twice), and only the
template's own literal text and the output of macros, ``caller()`` and ``{% set %}`` blocks pass
as written. No ``|raw``: it would let a report title ping ``<!channel>``. Strict undefined: a
missing name or field fails, except under ``is defined`` and ``| default(…)``. A work budget
(loop steps, calls, text built, text read) and refused amplifiers (``'x' * 10**9``, padding
methods, range over 1,000) bound the time and memory of any template. Reading text costs a unit
per ``READ_CHARS`` characters, and a filter that looks at a bounded part of its input
(``default``, ``first``, ``length``, ``truncate``…) pays only for what it returns: the README's
templates work on a 1 MB summary, and a loop reading it again and again is still stopped.

``compile_source`` compiles one template, ``generate`` renders it within the budget, and
``describe`` turns any failure into one line a person can act on. ``notifier.render.templates``
builds on these. Pure: no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_eval_context
from jinja2.visitor import NodeTransformer

from notifier.render import text as txt

MAX_SOURCE: Final = 10_000  # characters of one template
WORK_BUDGET: Final = 250_000  # per part: a loop step or call costs _STEP, text its length
MAX_RANGE: Final = 1_000
MAX_PIECE: Final = 20_000  # characters one {{ … }} may print
READ_CHARS: Final = 8  # reading text (a filter's or a str method's input) costs a unit per 8
_STEP: Final = 10
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
#: Filters that look at a bounded part of their input whatever its size: they pay a step and
#: the text they return (a default, an item, a length, the first characters).
_BOUNDED: Final = frozenset(
    ("abs", "attr", "count", "d", "default", "first", "last", "length", "round", "truncate")
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
        text = getattr(obj, "__self__", None)  # a str method reads its whole string
        read = len(text) // READ_CHARS if isinstance(text, str) else 0
        _spend((10 * _STEP if own else _STEP) + read)  # Jinja's macro calls are slow: ~0.1 ms
        result = super().call(context, obj, *args, **kwargs)
        return _Safe(result) if own and isinstance(result, str) else result


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _Limit(f"range() of {len(numbers):,} numbers (at most {MAX_RANGE:,})")
    return numbers


def _read(value: Any) -> int:
    """What reading ``value`` costs: its text at ``READ_CHARS`` a unit, a unit per item."""
    if isinstance(value, str):
        return len(value) // READ_CHARS
    return len(value) if isinstance(value, list | tuple | Mapping) else 0


def _charged(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that pays a step plus reading its text and sequence inputs, or, when it looks at
    a bounded part of them (``_BOUNDED``), the new text it returns."""
    bounded = name in _BOUNDED

    @functools.wraps(func)  # keeps Jinja's pass_context/pass_eval_context marks
    def charged(*args: Any, **kwargs: Any) -> Any:
        inputs = (*args, *kwargs.values())
        _spend(_STEP + (0 if bounded else sum(_read(a) for a in inputs)))
        result = func(*args, **kwargs)
        if bounded and not any(result is a for a in inputs):
            _spend(_read(result) if isinstance(result, str) else 0)
        return result

    return charged


@pass_eval_context
def _join(ctx: Any, value: Any, d: str = "", attribute: str | int | None = None) -> str:
    items = list(value)
    _spend(_size(items) + len(d) * len(items))
    return str(FILTERS["join"](ctx, items, d, attribute))


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text, count = str(value), -1 if count is None else count
    found = text.count(old) if count < 0 else min(count, text.count(old))
    read = 0 if isinstance(value, str) else _read(text)  # a str was charged as every input
    _spend(read + found * max(len(new) - len(old), 0))
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
    env.filters = {name: _charged(name, func) for name, func in filters.items()}
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


def compile_source(source: str) -> jinja2.Template:
    """Parse and compile one template for the sandbox; raises what Jinja or the limits raise."""
    if len(source) > MAX_SOURCE:
        raise _Limit(f"the template has {len(source):,} characters (at most {MAX_SOURCE:,})")
    tree = _ENV.parse(source)
    for kind, tag in _UNSUPPORTED.items():
        if (found := tree.find(kind)) is not None:
            raise jinja2.TemplateSyntaxError(f"{tag} is not supported", found.lineno)
    _Guard().visit(tree)
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


def describe(where: str, exc: Exception) -> str:
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


def generate(template: jinja2.Template, context: dict[str, Any], enough: int) -> Iterator[str]:
    """Render ``template`` piece by piece within the work budget; the caller stops once it
    has ``enough`` characters (the rest could not show)."""
    token = _BUDGET.set([WORK_BUDGET])
    try:
        size = 0
        for piece in template.generate(context):
            yield piece
            size += len(piece)
            if size > enough:
                return
    finally:
        _BUDGET.reset(token)
