"""Message templates: context, automatic Slack escaping, strict undefined, limits, the sandbox."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from notifier.core.errors import ConfigError, NotifierError
from notifier.core.events import Event, EventType
from notifier.core.report import Links, Report
from notifier.render.templates import (
    LIMITS,
    CompiledTemplates,
    RenderedText,
    TemplateError,
    Templates,
    check_templates,
    compile_templates,
    render,
    sample_event,
)

LINKS = Links("https://us.posthog.com")
WHERE = 'rules[2] "ready reports"'
RAW: dict[str, Any] = {
    "id": "r-1",
    "title": "Checkout broken",
    "summary": "Users tap Pay and nothing happens.",
    "status": "ready",
    "total_weight": "2.5",  # numeric strings are parsed, as Report.from_api does
    "signal_count": 7,
    "created_at": "2026-01-14T09:12:03Z",
    "updated_at": "2026-01-15T16:40:11Z",
    "repo_slug": "acme/web",
}
INJECTIONS = ("<!channel>", "<!here>", "<@U1>", "<#C1>", "<https://evil|x>", "<!subteam^S1>")


def report(**fields: Any) -> Report:
    return Report.from_api({**RAW, **fields})


def new_event(**fields: Any) -> Event:
    return Event.create(EventType.NEW, 7, report(**fields), None, {})


def compiled(**sources: str) -> CompiledTemplates:
    return compile_templates(Templates(**sources), WHERE)


def body(source: str, event: Event | None = None, rules: tuple[str, ...] = ("ready",)) -> str:
    rendered = render(compiled(body=source), event or sample_event(), rules, LINKS)
    assert rendered.body is not None
    return rendered.body


def failure(source: str, part: str = "body", event: Event | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        render(compiled(**{part: source}), event or sample_event(), ("ready",), LINKS)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


# -- the context --------------------------------------------------------------------------------


def test_context_exposes_the_event() -> None:
    """event, report, previous, changes, project, rule, rules and links hold the event's data."""
    source = (
        "{{ event.type }}|{{ event.status }}|{{ event.emoji }}|{{ event.headline }}|"
        "{{ event.title }}|{{ report.status }}|{{ previous.status }}|{{ project.id }}|"
        "{{ rule }}|{{ rules|join(',') }}|{{ changes.status.before }}>{{ changes.status.after }}|"
        "{{ report.signals_at_run }}|{{ report.source_products|join }}"
    )
    assert body(source, rules=("ready", "all")) == (
        "status_changed|ready|🟢|Researching → Ready for review|"
        "Checkout button unresponsive on Safari &amp; iOS|"
        "ready|in_progress|1|ready|ready,all|in_progress>ready|10|session_replay"
    )


def test_report_fields_are_parsed_and_raw_ones_kept() -> None:
    """Known fields are parsed (a numeric string becomes a number); unknown ones stay raw."""
    event = new_event()
    assert body("{{ report.total_weight + 1 }} {{ report.repo_slug }}", event) == "3.5 acme/web"
    assert body("{{ previous is none }} {{ changes|length }}", event) == "True 0"


def test_links_are_quoted_urls() -> None:
    """links.report is the report's page; links.recording(id) a replay, odd ids percent-encoded."""
    event = new_event(id="r 1|x")
    assert body("{{ links.report }}", event) == (
        "https://us.posthog.com/project/7/inbox/reports/r%201%7Cx"
    )
    assert body("{{ links.recording('s|1 2') }}", event) == (
        "https://us.posthog.com/project/7/replay/s%7C1%202"
    )


def test_removed_event_says_removed() -> None:
    """A removed event's status is "removed"; its report is the last known copy."""
    event = Event.create(EventType.REMOVED, 1, report(), report(), {})
    assert body("{{ event.status }} {{ report.status }} {{ event.emoji }}", event) == (
        "removed ready 🗑️"
    )


def test_extra_filters() -> None:
    """number, value, label and emoji format like the default rendering."""
    source = (
        "{{ 1204|number }} {{ none|value }} {{ 'total_weight'|label }} {{ 'ready'|emoji }}"
        " {{ 'zzz'|emoji }}"
    )
    assert body(source) == "1,204 — weight 🟢 🔘"


def test_null_prints_nothing() -> None:
    """A JSON null prints as nothing, not "None"."""
    assert body("[{{ report.title }}]", new_event(title=None)) == "[]"


# -- escaping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("injection", INJECTIONS)
def test_untrusted_text_is_escaped_in_every_part(injection: str) -> None:
    """A report title that would ping or disguise a link renders escaped in title, body, text."""
    event = new_event(title=f"{injection} & more", summary=injection)
    templates = compiled(
        title="{{ report.title }}",
        body="{{ report.summary }} {{ event.title }}",
        text="{{ report.title }}",
    )
    rendered = render(templates, event, ("ready",), LINKS)
    escaped = injection.replace("<", "&lt;").replace(">", "&gt;")
    assert rendered.title == rendered.text == f"{escaped} &amp; more"
    assert rendered.body == f"{escaped} {escaped} &amp; more"


def test_template_literal_markup_passes_through() -> None:
    """The template's own mrkdwn, mentions and links are kept; only values are escaped."""
    source = "<!here> *{{ report.title }}* <{{ links.report }}|Open>"
    event = new_event(title="A<b>")
    assert body(source, event) == (
        "<!here> *A&lt;b&gt;* <https://us.posthog.com/project/7/inbox/reports/r-1|Open>"
    )


def test_filters_and_concatenation_do_not_escape_anything_out() -> None:
    """Whatever a value goes through (filters, ~, lists), the printed result is escaped."""
    event = new_event(title="<!channel>")
    assert body("{{ report.title|upper }}", event) == "&lt;!CHANNEL&gt;"
    assert body("{{ '<' ~ report.title ~ '>' }}", event) == "&lt;&lt;!channel&gt;&gt;"
    assert body("{{ [report.title] }}", event) == "['&lt;!channel&gt;']"
    assert body("{{ report.title|replace('&lt;', '<') }}", event) == "&lt;!channel&gt;"


def test_macros_and_captures_keep_markup_and_escape_once() -> None:
    """Macro, caller() and {% set %} output keeps its literal markup; values stay escaped once."""
    event = new_event(title="A & <B>")
    macro = "{% macro link(r) %}<{{ links.report }}|{{ r.title }}>{% endmacro %}{{ link(report) }}"
    assert (
        body(macro, event)
        == "<https://us.posthog.com/project/7/inbox/reports/r-1|A &amp; &lt;B&gt;>"
    )
    capture = "{% set x %}*{{ report.title }}*{% endset %}{{ x }}"
    assert body(capture, event) == "*A &amp; &lt;B&gt;*"
    caller = (
        "{% macro b() %}*{{ caller() }}*{% endmacro %}{% call b() %}{{ report.title }}{% endcall %}"
    )
    assert body(caller, event) == "*A &amp; &lt;B&gt;*"
    assert body("{% set x %}{{ report.title }}{% endset %}{{ x|lower }}", event) == (
        "a &amp; &lt;b&gt;"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ _Safe(report.title) }}",
        "{{ [report.title]|map('_Safe')|first }}",
        "{{ [report.title]|map('_notifier_captured')|first }}",
        "{{ report.title|_notifier_captured }}",
        "{% set x %}{{ report.title }}{% endset %}{{ x|replace('&lt;', '<') }}",
        "{% macro m() %}{{ report.title }}{% endmacro %}{{ m()|replace('&lt;', '<') }}",
        "{% set x | replace('&lt;', '<') %}{{ report.title }}{% endset %}{{ x }}",
        "{% set ns = namespace() %}{% set ns.x %}{{ report.title }}{% endset %}{{ ns.x }}",
        "{% for x in [report.title] recursive %}{{ x }}{% endfor %}",
        "{{ report.title|attr('upper')() }}",
    ],
)
def test_no_way_to_print_a_value_unescaped(source: str) -> None:
    """Internal hooks cannot be named and re-escaping follows every transformation."""
    event = new_event(title="<!channel>")
    try:
        printed = body(source, event)
    except TemplateError:
        return
    assert "<!" not in printed
    assert "&lt;!" in printed or "&LT;!" in printed


def test_control_characters_are_dropped() -> None:
    """ANSI escapes and bidi overrides in untrusted text do not reach Slack."""
    event = new_event(title="\x1b[31mred\u202e!")
    assert body("{{ report.title }}", event) == "[31mred!"


# -- strict undefined ---------------------------------------------------------------------------


def test_missing_optional_field_with_is_defined_and_default() -> None:
    """A field the API did not send works under `is defined` and `| default`, chained too."""
    source = (
        "{% if report.priority is defined %}{{ report.priority }}{% else %}none{% endif %} "
        "{{ report.priority | default('-') }} {{ report.metrics.first | default('x') }}"
    )
    assert body(source, new_event()) == "none - x"
    assert body(source, new_event(priority="P1")) == "P1 P1 x"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("ok\n{{ nope }}", "line 2: 'nope' is undefined"),
        ("{{ report.priority }}", "line 1: 'dict object' has no attribute 'priority'"),
        ("{% if report.priority %}x{% endif %}", "no attribute 'priority'"),
        ("{{ report.a.b }}", "no attribute 'a'"),
        ("{% for x in report.nope %}{% endfor %}", "no attribute 'nope'"),
    ],
)
def test_undefined_fails_with_the_template_name(source: str, message: str) -> None:
    """Printing, testing or looping over an undefined name fails, naming template and line."""
    problem = failure(source, "title", new_event())
    assert problem.startswith(f"{WHERE} title, ")
    assert message in problem
    assert "`is defined`" in problem


# -- compile errors -----------------------------------------------------------------------------


def test_syntax_errors_name_every_part_line_and_fix() -> None:
    """compile_templates reports each broken part at once, with line, Jinja's message, a hint."""
    with pytest.raises(TemplateError) as caught:
        compiled(title="ok", body="line\n{% if x %}", text="{{ x ")
    problems = caught.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(f"{WHERE} body, line 2: Unexpected end of template")
    assert problems[1].startswith(f"{WHERE} text, line 1: unexpected end of template")
    assert all("{% if %}/{% for %}" in p for p in problems)
    assert isinstance(caught.value, ConfigError)


def test_unknown_filter_lists_the_available_ones() -> None:
    """A filter that does not exist (or is withheld, like |safe) names the available filters."""
    for source in ("{{ x|frobnicate }}", "{{ x|safe }}", "{{ x|e }}", "{{ x|format(1) }}"):
        with pytest.raises(TemplateError, match=r"No filter named .*filters: abs, .*number"):
            compiled(body=source)


@pytest.mark.parametrize(
    "source",
    [
        "{% include 'x' %}",
        "{% extends 'x' %}",
        "{% import 'x' as y %}",
        "{% from 'x' import y %}",
        "{% block b %}{% endblock %}",
        "{% filter upper %}x{% endfilter %}",
        "{% autoescape false %}x{% endautoescape %}",
    ],
)
def test_unsupported_tags_are_refused(source: str) -> None:
    """Tags that load other templates, change escaping or bypass finalize do not compile."""
    with pytest.raises(TemplateError, match="is not supported"):
        compiled(body=source)


def test_oversized_template_is_refused() -> None:
    """A template source over 10,000 characters does not compile."""
    with pytest.raises(TemplateError, match="at most 10,000"):
        compiled(body="x" * 10_001)


# -- output shape -------------------------------------------------------------------------------


def test_parts_are_stripped_and_cut_to_block_kit_limits() -> None:
    """Title ≤ 150 on one line, body and text ≤ 3,000, cut with … whatever the data."""
    event = new_event(title="word " * 2000)
    templates = compiled(
        title="  {{ report.title }}\n{{ report.title }}",
        body="\n {% for i in range(1000) %}{{ report.title }}{% endfor %}",
        text="{{ report.title * 3 }}",
    )
    rendered = render(templates, event, (), LINKS)
    assert rendered.title is not None
    assert rendered.body is not None
    assert rendered.text is not None
    assert len(rendered.title) <= LIMITS["title"] == 150
    assert "\n" not in rendered.title
    assert rendered.title.startswith("word word")
    assert rendered.title.endswith("…")
    assert len(rendered.body) <= 3000
    assert rendered.body.startswith("word")
    assert len(rendered.text) <= 3000
    assert rendered.text.endswith("…")


def test_cut_never_leaves_half_an_entity_or_an_open_link() -> None:
    """A cut in the middle of &amp; or of a <link|label> drops the partial markup."""
    event = new_event(title="&" * 500)
    title = render(compiled(title="{{ report.title }}"), event, (), LINKS).title
    assert title is not None
    assert title.endswith("&amp;…")
    assert len(title) <= 150
    long_link = "x" * 140 + "<{{ links.report }}|Open>"
    title = render(compiled(title=long_link), event, (), LINKS).title
    assert title == "x" * 140 + "…"


def test_blank_or_missing_parts_are_none() -> None:
    """A part without template, or rendering only whitespace, is None (default rendering)."""
    rendered = render(compiled(title="{% if false %}x{% endif %}\n  "), sample_event(), (), LINKS)
    assert rendered == RenderedText(title=None, body=None, text=None)


def test_block_tags_leave_no_blank_lines() -> None:
    """trim_blocks/lstrip_blocks: YAML block scalars with {% %} lines render without gaps."""
    source = (
        "*{{ report.title }}*\n"
        "  {% if report.priority is defined %}\n"
        "Priority {{ report.priority }}\n"
        "  {% endif %}\n"
        "{% for name, change in changes.items() %}\n"
        "• {{ name|label }}: {{ change.before|value }} → {{ change.after|value }}\n"
        "{% endfor %}\n"
    )
    assert body(source) == (
        "*Checkout button unresponsive on Safari &amp; iOS*\nPriority P1\n"
        "• status: in_progress → ready\n• weight: 1.85 → 2.35\n• signals: 5 → 7"
    )


# -- runtime errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 'a' + 1 }}", "TypeError"),
        ("{{ range(1, 2, 0) }}", "ValueError"),
        ("{% macro d() %}{{ d() }}{% endmacro %}{{ d() }}", "recurse too deeply"),
    ],
)
def test_runtime_errors_are_template_errors(source: str, message: str) -> None:
    """Any render failure is a TemplateError (a ConfigError, a NotifierError) naming the part."""
    with pytest.raises(TemplateError) as caught:
        render(compiled(text=source), sample_event(), (), LINKS)
    assert isinstance(caught.value, NotifierError)
    assert caught.value.problems[0].startswith(f"{WHERE} text, line 1: ")
    assert message in caught.value.problems[0]


# -- the sandbox --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ report|attr('__class__') }}",
        "{{ report.title['__class__'] }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ links._links.host }}",
        "{{ (1).__class__ }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ report.title.format_map({}) }}",
        "{{ '%s' % report }}",
        "{{ report.update(a=1) }}",
        "{% set l = [] %}{{ l.append(1) }}",
        "{{ report.title.encode() }}",
    ],
)
def test_sandbox_refuses_escapes_and_mutation(source: str) -> None:
    """Python internals, str.format, % formatting and mutating methods are refused."""
    problem = failure(source)
    assert "unsafe" in problem or "not available" in problem
    assert "Python internals" in problem


WORK = "units of work"
UNSAFE = "is unsafe"


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ 'x' * 10**9 }}", WORK),
        ("{{ [1] * 10**9 }}", WORK),
        ("{{ 2 ** 1000000000 }}", WORK),
        ("{% for i in range(10**8) %}x{% endfor %}", "(at most 1,000)"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", WORK),
        ("{% set l = [0] * 1000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}", WORK),
        (
            "{% set s = report.summary * 9 %}{% for a in s %}{% for b in s %}{% endfor %}"
            "{% endfor %}",
            WORK,
        ),
        (
            "{% set s = 'x' * 10000 %}{% set c %}{% for i in range(999) %}{% for j in range(999) %}"
            "{{ s }}{% endfor %}{% endfor %}{% endset %}{{ c|length }}",
            WORK,
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s|length }}",
            WORK,
        ),
        (
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}"
            "{% endfor %}{{ ns.l|length }}",
            WORK,
        ),
        ("{% set l = ['x' * 5000] * 1000 %}{{ l|join(l|join) }}", WORK),
        ("{{ ('x' * 5000)|replace('', 'y' * 5000) }}", WORK),
        ("{{ 'x'.ljust(10**9) }}", UNSAFE),
        ("{{ 'x'.center(10**9) }}", UNSAFE),
        ("{{ '%0999999999d' % 1 }}", "% formatting is not available"),
        ("{{ (1).to_bytes(10**9, 'big') }}", UNSAFE),
        (
            "{% macro d(n) %}{% if n %}{{ d(n-1) }}{{ d(n-1) }}{% endif %}{% endmacro %}"
            "{{ d(60) }}",
            WORK,
        ),
        ("{% for x in [1, 1] recursive %}{{ loop([1, 1, 1]) }}{% endfor %}", "recurse too deeply"),
        ("{{ lipsum(10**6) }}", "'lipsum' is undefined"),
    ],
)
def test_sandbox_bounds_time_and_memory(source: str, refusal: str) -> None:
    """Huge strings, numbers, loops and recursion fail fast instead of hanging or eating memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = failure(source)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refusal in problem
    assert elapsed < 5  # ~0.2 s at worst without tracemalloc
    assert peak < 20 * 2**20


def test_large_output_is_cut_rather_than_refused() -> None:
    """A loop that prints more than can show stops early and is cut, not failed."""
    source = "{% for i in range(1000) %}{{ report.summary }}\n{% endfor %}"
    assert len(body(source)) <= 3000


def test_budget_is_per_render_and_per_thread() -> None:
    """A template using most of the work budget renders again and again, also in parallel."""
    templates = compiled(body="{% for i in range(1000) %}{{ 'y' * 150 }}{% endfor %}x")
    for _ in range(3):
        assert render(templates, sample_event(), (), LINKS).body is not None
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: render(templates, sample_event(), (), LINKS), range(8)))
    assert all(r.body is not None and len(r.body) <= 3000 for r in results)


# -- check and the sample event -----------------------------------------------------------------


def test_sample_event_has_every_field() -> None:
    """The sample is a status_changed in_progress → ready event with every field present."""
    event = sample_event(42)
    assert event.type is EventType.STATUS_CHANGED
    assert event.project_id == 42
    assert event.previous is not None
    assert event.previous.status == "in_progress"
    assert event.report.status == "ready"
    assert event.changes["status"] == ("in_progress", "ready")
    # every optional field of a Report: title, summary, total_weight … created_at, updated_at
    optional = [f.name for f in dataclasses.fields(Report) if f.init and f.default is None]
    assert len(optional) >= 10  # the ten of today, and any added since
    for name in optional:
        assert getattr(event.report, name) is not None, name


def test_check_reports_every_problem_with_its_name() -> None:
    """check_templates compiles and renders everything, listing each problem once, never raising."""
    named = [
        ('rules[0] "good"', Templates(title="{{ report.title }}", body="{{ event.headline }}")),
        (
            'rules[1] "broken"',
            Templates(title="{{ previous.status }}", body="{{ x", text="{{ 1/0 }}"),
        ),
        ("sinks.slack", Templates(body="{{ changes.status.before }}")),
        ("sinks.big", Templates(text="{{ 'x' * 10**9 }}")),
    ]
    problems = check_templates(named, LINKS)
    assert len(problems) == 5
    assert problems[0].startswith('rules[1] "broken" title, line 1: ')
    assert "no attribute 'status'" in problems[0]
    assert problems[0].endswith("(sample new event)")
    assert problems[1].startswith('rules[1] "broken" body, line 1: unexpected end of template')
    assert problems[2].startswith('rules[1] "broken" text, line 1: ZeroDivisionError')
    assert problems[2].endswith("(sample status_changed event)")
    assert problems[3].startswith("sinks.slack body, line 1: ")
    assert "sample new event" in problems[3]
    assert problems[4].startswith("sinks.big text, line 1: the template does more than")


def test_check_of_good_templates_is_empty() -> None:
    """Templates that handle new, updated and removed events too pass the check."""
    source = (
        "{{ event.emoji }} {{ event.headline }}: <{{ links.report }}|{{ event.title }}>"
        "{% if previous %} (was {{ previous.status }}){% endif %}"
        "{% if changes.status is defined %} {{ changes.status.before }}{% endif %}"
    )
    assert (
        check_templates([("rules[0]", Templates(title=source, body=source, text=source))], LINKS)
        == []
    )
