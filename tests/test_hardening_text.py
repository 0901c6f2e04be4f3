"""Issue 16 item 7, text: report text cannot draw Slack formatting, ordinary templates work on a
1 MB summary (hostile ones are still stopped), ``/metrics`` status labels are bounded, a header
value with a control character is refused at ``check``, and report ids cannot forge a text log
line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from notifier.config.load import parse_config
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError
from notifier.core.events import Enrichment, Event, EventType, Recording
from notifier.render.blocks import SlackMessage
from notifier.render.digest import digest_message
from notifier.render.slack import slack_message, text_only
from notifier.render.templates import TemplateError, Templates, compile_templates, render
from notifier.render.text import STATUS_EMOJI
from notifier.render.thread import thread_reply
from notifier.runtime import logs
from tests.factories import LINKS, PROJECT, World, new
from tests.helpers import running, wait_for
from tests.slack_checks import assert_block_kit_limits, texts

# -- 1. report text cannot draw formatting in Slack ------------------------------------------

#: What a report's text may carry to pose as the card's own bold fields, code or lines, and
#: what must not reach Slack of it.
DRAWINGS = [
    pytest.param("All good.\n*Status:* resolved ✅", ["*Status:*"], id="bold-field"),
    pytest.param("see ```rm -rf /``` now", ["```"], id="code-fence"),
    pytest.param("run `deploy` _now_ or ~never~", ["`deploy`", "_now_", "~never~"], id="inline"),
    pytest.param("fine\u2028*Status:* resolved", ["\u2028", "*Status:*"], id="line-separator"),
    pytest.param("fine\u2029*Owner:* @ops", ["\u2029", "*Owner:*"], id="paragraph-separator"),
]


def _every_text(event: Event) -> Iterator[tuple[str, str]]:
    """(where, text) of every message a Slack sink can send about ``event``."""
    enrichment = Enrichment(
        recordings=(Recording(session_id="s1", text=event.report.summary),),
        priority_explanation=event.report.summary,
    )
    removed = Event.create(EventType.REMOVED, 1, event.report, event.report, {})
    messages: dict[str, SlackMessage] = {
        "card": slack_message(event, ["rule"], LINKS, enrichment=enrichment),
        "removed card": slack_message(removed, ["rule"], LINKS),
        "thread reply": thread_reply(event, ["rule"], LINKS),
        "digest": digest_message([(event, ["rule"]), (removed, ["rule"])], LINKS),
    }
    for where, message in messages.items():
        assert_block_kit_limits(message)
        for text in texts(message):
            yield where, text
    yield "text only", text_only(event, LINKS)


@pytest.mark.parametrize(("drawing", "forbidden"), DRAWINGS)
def test_report_text_cannot_draw_formatting_in_slack(drawing: str, forbidden: list[str]) -> None:
    """A summary, title, priority or recording text holding mrkdwn marks reaches Slack without
    them: no bold field, code, strike or line break of its own; the words still read."""
    event = new(
        title=f"Checkout {drawing}", summary=drawing, priority=drawing, status="in_progress"
    )
    shown = list(_every_text(event))
    for where, text in shown:
        for mark in forbidden:
            assert mark not in text, f"{where}: {text!r}"
    word = max(re.findall(r"[A-Za-z]+", drawing), key=len)
    assert any(word in text for where, text in shown if where == "card"), "the words still read"
    # what is not a drawing is untouched: our bold status name and a word_with_underscores
    card = slack_message(new(summary="a snake_case name, 2*3", status="in_progress"), [], LINKS)
    assert "*Researching*" in " ".join(texts(card))  # our own bold status word, in words
    assert "a snake_case name, 2*3" in " ".join(texts(card))


# -- 2. ordinary templates work on a 1 MB summary; hostile ones are still stopped -------------

MB_SUMMARY = ("Users tap Pay and nothing happens. " * 30 + "\n") * 1_000  # ~1 MB, 1,000 lines
assert len(MB_SUMMARY) > 1_000_000

#: The README's own rule template (rules: ready) and other ordinary ones.
ORDINARY = [
    pytest.param(
        {
            "title": "{{ event.title }} · weight "
            "{{ report.total_weight | default(none) | number }}",
            "body": "*Ready for the team* — "
            '{{ report.summary | default("", true) | truncate(300) }}'
            "\n{% if report.priority is defined %}Priority {{ report.priority }} · {% endif %}"
            "<{{ links.report }}|Open in PostHog>",
        },
        id="readme-ready",
    ),
    pytest.param({"body": "{{ report.summary.splitlines() | first }}"}, id="first-line"),
    pytest.param({"body": "{{ report.summary | trim | truncate(200) }}"}, id="trim-truncate"),
    pytest.param({"body": "{{ report.summary[:200] }}…"}, id="slice"),
    pytest.param({"body": "{{ report.summary | wordcount }} words"}, id="wordcount"),
    pytest.param(
        {"body": "{{ report.summary | replace('\\n', ' ') | truncate(100) }}"}, id="replace"
    ),
]


@pytest.mark.parametrize("sources", ORDINARY)
def test_ordinary_templates_work_on_a_1mb_summary(sources: dict[str, str]) -> None:
    event = new(summary=MB_SUMMARY, priority="P1")
    started = time.perf_counter()
    rendered = render(compile_templates(Templates(**sources), "rules[0]"), event, ["r"], LINKS)
    assert time.perf_counter() - started < 2
    assert rendered.body is not None
    assert len(rendered.body) <= 3000
    assert "Users tap Pay" in rendered.body or "words" in rendered.body


HOSTILE_ON_BIG = [
    pytest.param(
        "{% for i in range(1000) %}{{ report.summary | wordcount }}{% endfor %}", id="filter-loop"
    ),
    pytest.param(
        "{% for i in range(1000) %}{% if report.summary.upper() %}x{% endif %}{% endfor %}",
        id="method-loop",
    ),
    pytest.param(
        "{% for i in range(1000) %}{{ report.summary.split() | length }}{% endfor %}",
        id="split-loop",
    ),
]


@pytest.mark.parametrize("source", HOSTILE_ON_BIG)
def test_reading_a_big_text_over_and_over_is_still_stopped(source: str) -> None:
    """Reading the 1 MB summary once is cheap; a loop reading it a thousand times is refused
    early, not run for seconds."""
    event = new(summary=MB_SUMMARY)
    started = time.perf_counter()
    with pytest.raises(TemplateError) as caught:
        render(compile_templates(Templates(body=source), "rules[0]"), event, ["r"], LINKS)
    assert "units of work" in caught.value.problems[0]
    assert time.perf_counter() - started < 1


# -- 3. /metrics status labels are bounded ---------------------------------------------------


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def test_unknown_statuses_are_counted_as_other_in_metrics(
    world: World, load: Callable[[Path], Settings]
) -> None:
    """Statuses PostHog invents (or a hostile one: 300 distinct values) do not each become a
    series: they add up under ``status="other"``; known statuses keep their own."""
    world.posthog.add_report(PROJECT, title="known", status="ready")
    for n in range(30):
        world.posthog.add_report(
            PROJECT, title=f"odd {n}", status=f"x{n}" + '"}} 1\n{"' + "s" * 200
        )
    config = world.make_config(first_run="baseline", extra="self_alerts: {sinks: []}")
    with running(load(config)) as notifier:
        assert notifier.http is not None
        url = notifier.http.url + "/metrics"

        def reports() -> dict[str, float]:
            found = _samples(httpx.get(url, timeout=5).text)
            return {lab["status"]: v for name, lab, v in found if name == "notifier_reports"}

        wait_for(lambda: reports().get("other") == 30, 10, "30 reports counted as other")
        assert set(reports()) <= {*STATUS_EMOJI, "other"}
        assert reports()["ready"] == 1


# -- 4. a header value with a control character is refused at check --------------------------


def _problems(headers: dict[str, Any]) -> list[str]:
    sinks = {"hook": {"type": "webhook", "url": "https://h.example", "headers": headers}}
    doc = {
        "posthog": {"host": "https://us.posthog.com", "api_key": "phx_x", "project_ids": [1]},
        "sinks": sinks,
        "rules": [{"name": "all", "sinks": ["hook"]}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(doc), source="config.yaml", env={})
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("Bearer abc\r\nX-Injected: 1", "a carriage return (U+000D) at character 11"),
        ("abc\nX-Injected: 1", "a line feed (U+000A) at character 4"),
        ("abc\x00def", "a NUL (U+0000) at character 4"),
        ("abc\x1b[2Jdef", "a control character (U+001B) at character 4"),
        ("tête", "a non-ASCII character (U+00EA) at character 2"),
    ],
)
def test_header_value_with_a_control_character_is_refused(value: str, what: str) -> None:
    """The key path, what is wrong and where, and the fix; never the value itself."""
    assert _problems({"X-Team": value}) == [
        f"sinks.hook.headers.X-Team: contains {what}; a header value must be printable "
        "ASCII on one line: remove it (check for a trailing newline in the variable or file "
        "it comes from)"
    ]


# -- 5. report ids cannot forge a text log line ----------------------------------------------


@pytest.fixture
def text_log(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    """Each call (re)installs ``logs.setup`` text logging and returns what stderr got since the
    last call (called from the test, where stderr is captured); the root logger as it was
    afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def start() -> str:
        logs.setup("INFO", fmt="text")
        return capsys.readouterr().err

    try:
        yield start
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    "report_id",
    [
        "r1\n2026-01-01T00:00:00 ERROR   notifier: all reports deleted",
        "r1\r2026-01-01T00:00:00 ERROR   forged",
        "r1\x1b[2K\x1b[1Ggone",
        "r1\u2028forged",
        "r1\u202eDEELETED",
    ],
)
def test_report_ids_cannot_forge_a_text_log_line(
    text_log: Callable[[], str], report_id: str
) -> None:
    text_log()
    logging.getLogger("notifier.test").warning("report %s is missing from the listing", report_id)
    try:
        raise ValueError(f"bad report {report_id}")
    except ValueError:
        logging.getLogger("notifier.test").exception("while reading report %s", report_id)
    out = text_log()
    first, second, third = out.split("\n")[:3]
    assert re.fullmatch(
        r"\S+ WARNING +notifier\.test: report r1\\.* is missing from the listing", first
    )
    assert re.fullmatch(r"\S+ ERROR +notifier\.test: while reading report r1\\.*", second)
    assert third == "Traceback (most recent call last):"  # a traceback keeps its lines
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f\u2028\u2029\u202e]", out)  # but no CR, ESC…
