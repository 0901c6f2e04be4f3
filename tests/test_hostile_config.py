"""Hostile configuration: whatever the YAML holds, loading it is bounded in time and memory, and
every mistake is a clear problem with its key path; through the command line, `check` and `run`
both exit 2 and start nothing (no request, no state file).

The single-problem messages (unknown keys, wrong types, unknown sinks, duplicate rule names, a
bad ``secret``, YAML syntax with line and column, aliases) are pinned in test_config.py; here
they go through the real command, and regexes get their own bounds: ``regex`` searches with a
timeout, and patterns whose compiling alone would be the attack are refused.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from notifier.cli.check import cmd_check
from notifier.config.load import parse_config
from notifier.config.settings import SlackSinkSettings
from notifier.config.yamlload import MAX_NODES
from notifier.core.errors import ConfigError, SinkError
from notifier.core.events import Event, EventType
from notifier.core.outbox import Delivery
from notifier.core.report import Links, Report
from notifier.core.rules import REGEX_MAX_SIZE, REGEX_TIMEOUT, regex_size, route
from notifier.demo.simulator import FakePostHog
from notifier.runtime.logs import RedactingFormatter
from notifier.sinks.slack.bot import SlackSink
from tests.factories import PROJECT, WEBHOOK_SECRET, World, leaked
from tests.fakes import FakeSlack, WebhookReceiver
from tests.helpers import inject

BASE: dict[str, Any] = {
    "posthog": {"host": "https://us.posthog.com", "api_key": "phx_test_key", "project_ids": [1]},
    "sinks": {"out": {"type": "console"}},
    "rules": [{"name": "r0", "sinks": ["out"]}],
}
EVIL_TITLE = "a" * 99 + "b"  # 100 characters: a near miss for (a+)+$ and (a|aa)+$


def config_text(*rules: dict[str, Any]) -> str:
    return yaml.safe_dump({**BASE, "rules": list(rules) or BASE["rules"]}, sort_keys=False)


def regex_rule(pattern: str, name: str = "r0", field: str = "title") -> dict[str, Any]:
    return {"name": name, "match": {field: {"regex": pattern}}, "sinks": ["out"]}


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="t.yaml", env={})
    return caught.value.problems


def new_event(title: str) -> Event:
    report = Report.from_api({"id": "r1", "status": "ready", "title": title})
    return Event.create(EventType.NEW, 1, report, None, {})


# --- regexes: bounded matching ---------------------------------------------------------------


def test_nested_quantifier_against_a_long_title_returns_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`(a+)+$`, exponential for Python's re on 'aaaa…b' (1.3 s at 25 characters, doubling
    with each one), is answered (no match) within the bound: compiled with `regex` at config
    time, it takes milliseconds and never reaches the timeout."""
    settings = parse_config(config_text(regex_rule("(a+)+$")), source="t.yaml", env={})
    caplog.set_level(logging.WARNING, logger="notifier.core.rules")
    started = time.perf_counter()
    routes = route(new_event(EVIL_TITLE), settings.rules)
    elapsed = time.perf_counter() - started
    assert routes == []
    assert elapsed < REGEX_TIMEOUT + 0.4, f"{elapsed:.3f}s"
    assert caplog.records == []  # answered, not timed out
    assert route(new_event("a" * 100), settings.rules)  # the pattern still works


@pytest.mark.parametrize("pattern", ["(a|aa)+$", "(a|a)+$", "(aa|a)+$"])
def test_catastrophic_regex_times_out_as_no_match(
    pattern: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A pattern that backtracks catastrophically even for `regex` gives up after
    REGEX_TIMEOUT: no match, a warning naming the pattern and the field, and later rules still
    see the event."""
    settings = parse_config(
        config_text(regex_rule(pattern), {"name": "all", "sinks": ["out"]}),
        source="t.yaml",
        env={},
    )
    caplog.set_level(logging.WARNING, logger="notifier.core.rules")
    started = time.perf_counter()
    routes = route(new_event(EVIL_TITLE), settings.rules)
    elapsed = time.perf_counter() - started
    assert [(r.sink, r.rules) for r in routes] == [("out", ("all",))]
    assert REGEX_TIMEOUT <= elapsed < REGEX_TIMEOUT + 0.9, f"{elapsed:.3f}s"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.name == "notifier.core.rules"
    message = record.getMessage()
    assert repr(pattern) in message
    assert "'title'" in message
    assert "100-character value" in message
    assert "counted as no match" in message


# --- regexes: bounded compiling --------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "a{1000000000}",  # regex expands it: gigabytes (Python's re would not)
        "(a{1000}){1000}",
        "((a{100}){100}){100}",
        "[ab]{20000}",
        "(?:x){10001,}",
        "(){100000}",  # empty groups repeated: quadratic compile time
    ],
)
def test_regex_that_expands_too_much_is_refused_quickly(pattern: str) -> None:
    """Counted repeats that would expand past REGEX_MAX_SIZE are refused before compiling."""
    # CPU time, not wall time: the bound is the work done, which a busy machine cannot lengthen
    started = time.process_time()
    found = problems(config_text(regex_rule(pattern)))
    assert time.process_time() - started < 1.0
    assert found == [
        "rules[0].match.title.regex: invalid regex: too large once its counted repeats are "
        f"expanded (over {REGEX_MAX_SIZE} characters); use smaller counts, e.g. {{1,}} "
        "instead of {1000,}"
    ]


@pytest.mark.parametrize("pattern", ["(?x)a { 3 }", "(?ix)checkout", "(?x:a # c\n{9})"])
def test_verbose_regex_is_refused(pattern: str) -> None:
    """In verbose mode spaces and comments may sit inside a repeat: not sized, so refused."""
    assert problems(config_text(regex_rule(pattern))) == [
        "rules[0].match.title.regex: invalid regex: verbose mode (?x) is not supported here; "
        "write the pattern without it"
    ]


@pytest.mark.parametrize(
    "pattern",
    [
        r"\d{4}-\d{2}-\d{2}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        r"(\d{1,3}\.){3}\d{1,3}",
        "(?i)checkout|payment",
        "x{1,1000000}",  # only the mandatory copies are expanded
        "a{9990}",
    ],
)
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    """Realistic patterns are nowhere near the limit."""
    settings = parse_config(config_text(regex_rule(pattern)), source="t.yaml", env={})
    assert settings.rules[0].match.conditions[0].value.pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "at_least"),
    [
        ("abc", 3),
        ("a{1000}", 1000),
        ("(a{10}){10}", 100),
        ("(?:ab){3}", 6),
        ("a|b{4}", 5),
        ("[]a]{3}", 3),
        (r"\p{L}{3}", 3),
        (r"\x{41}{7}", 7),
        ("(a)(?1){50}", 50),
        ("((a)", 1),  # unbalanced: regex refuses it, sizing must not crash
    ],
)
def test_regex_size_never_underestimates(pattern: str, at_least: int) -> None:
    """The estimate covers what the repeats expand to."""
    assert regex_size(pattern) >= at_least


def test_all_regexes_together_are_bounded() -> None:
    """Many patterns each under the limit still add up: the total is capped before any is
    compiled, and the other rule checks still run."""
    rules = [regex_rule("a{9000}", name=f"r{i}") for i in range(6)]
    rules.append({"name": "r0", "sinks": ["pager"]})
    assert problems(config_text(*rules)) == [
        "rules: the regexes of all rules together are too large to compile; shorten them",
        "rules[6].name: duplicate rule name 'r0' (also rules[0]); rename one",
        "rules[6].sinks[0]: unknown sink 'pager' (defined: out)",
    ]


# --- YAML that expands -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "posthog: &p {host: x}\nhttp: *p\n",
        "base: &b {type: console}\nsinks:\n  out:\n    <<: *b\n",
        "http: &a [1, 2]\nrules: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
    ],
)
def test_aliases_and_merge_keys_are_refused(text: str) -> None:
    """Every alias (a merge key needs one) is refused where it stands, line and column."""
    (problem,) = problems(text)
    assert problem.startswith("line ")
    assert "YAML aliases (*name) are not supported" in problem


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("http: [" + "1," * 500_000 + "1]\n", "line 1, column 40002"),  # just under 1 MiB
        ("http:\n" + "".join(f"  k{i}: v\n" for i in range(50_000)), "line 10000, column 10"),
    ],
)
def test_too_many_values_are_refused_quickly(text: str, where: str) -> None:
    """Under 1 MiB, half a million values would still take pure-Python YAML ~11 s and 370 MB:
    parsing stops at MAX_NODES values, with line and column."""
    started = time.process_time()
    assert problems(text) == [f"{where}: more than {MAX_NODES} values; is it the right file?"]
    assert time.process_time() - started < 3.0


def test_huge_flat_document_is_refused_before_parsing() -> None:
    """A document over 1 MiB is refused without being parsed, however it is built."""
    text = "http: [" + "1," * 600_000 + "1]\n"
    started = time.process_time()
    assert problems(text) == ["the file is larger than 1 MiB; is it the right file?"]
    assert time.process_time() - started < 1.0


# --- through the command line: exit 2, nothing started ---------------------------------------


HOSTILE: dict[str, tuple[dict[str, Any], tuple[str, str] | None, dict[str, str], str]] = {
    # case: (make_config arguments, text replacement, env override, expected in stderr)
    "invalid-yaml": (
        {},
        ("  jitter: 0s", "  jitter: [0s"),
        {},
        "line 11, column 6: expected ',' or ']', but got ':'",
    ),
    "alias-bomb": (
        {"extra": 'http: {a: &a ["lol", "lol"], b: [*a, *a, *a, *a]}'},
        None,
        {},
        "YAML aliases (*name) are not supported",
    ),
    "unknown-key": (
        {"posthog_extra": "timeot: 5s"},
        None,
        {},
        "posthog.timeot: unknown key (did you mean 'timeout'?)",
    ),
    "wrong-type": (
        {"posthog_extra": "page_size: lots"},
        None,
        {},
        "posthog.page_size: must be a whole number (got 'lots')",
    ),
    "unknown-sink-type": (
        {},
        ("type: webhook", "type: webhok"),
        {},
        "sinks.hook.type: unknown sink type 'webhok' (did you mean 'webhook'?",
    ),
    "unknown-sink": (
        {"rules": "- {name: r, sinks: [pager]}"},
        None,
        {},
        "rules[0].sinks[0]: unknown sink 'pager'",
    ),
    "duplicate-rule-name": (
        {"rules": "- {name: r, sinks: [slack]}\n- {name: r, sinks: [hook]}"},
        None,
        {},
        "rules[1].name: duplicate rule name 'r' (also rules[0]); rename one",
    ),
    "secret-not-whsec": (
        {},
        None,
        {"WEBHOOK_SECRET": "not-a-whsec-SECRET-value"},
        "sinks.hook.secret: must be 'whsec_' followed by base64 of 24-64 random bytes",
    ),
    "regex-too-large": (
        {"rules": '- {name: r, match: {title: {regex: "a{1000000000}"}}, sinks: [slack]}'},
        None,
        {},
        "rules[0].match.title.regex: invalid regex: too large",
    ),
    "keep-delivered-under-1s": (
        {},
        ("  backoff_max: 0.2s", "  backoff_max: 0.2s\n  keep_delivered: 0.5s"),
        {},
        "delivery.keep_delivered: must be at least 1s",
    ),
    "template-syntax": (
        {"rules": '- {name: ready reports, sinks: [slack], template: {body: "{% if x %}"}}'},
        None,
        {},
        'rules[0] "ready reports".template.body, line 1: Unexpected end of template',
    ),
    "template-undefined-name": (
        {"rules": '- {name: ready reports, sinks: [slack], template: {body: "{{ reprot }}"}}'},
        None,
        {},
        "rules[0] \"ready reports\".template.body, line 1: 'reprot' is undefined",
    ),
    "template-bomb": (
        {"rules": "- {name: r, sinks: [slack], template: {text: \"{{ 'x' * 10**9 }}\"}}"},
        None,
        {},
        'rules[0] "r".template.text, line 1: the template does more than',
    ),
    "template-on-webhook": (
        {},
        ("    secret: ${WEBHOOK_SECRET}", "    secret: ${WEBHOOK_SECRET}\n    template: {body: x}"),
        {},
        "sinks.hook.template: templates shape Slack messages only",
    ),
    "enrich-typo": (
        {},
        ("    channel: C0123456789", "    channel: C0123456789\n    enrich: [artefact]"),
        {},
        "sinks.slack.enrich[0]: unknown enrichment 'artefact' (did you mean 'artefacts'?",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_cli_check_and_run_exit_2_and_start_nothing(case: str, world: World) -> None:
    """`check` and `run` on a hostile config: exit 2, the problem with its key path on stderr,
    no traceback, no secret, no request anywhere and no state file."""
    arguments, replacement, env_override, expected = HOSTILE[case]
    path = world.make_config(**arguments)
    if replacement is not None:
        inject(path, *replacement)
    full_env = {**os.environ, **world.env, **env_override}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "notifier", command, "-c", str(path), "--log-level", "debug"],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in ("check", "run")
    ]
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        results.append((process.returncode, out, err))
    for code, out, err in results:
        assert code == 2, err
        assert expected in err, err
        assert err.startswith(f"error: {path}: "), err
        assert "Traceback" not in err
        assert not leaked(out + err), leaked(out + err)
        if "WEBHOOK_SECRET" in env_override:
            assert env_override["WEBHOOK_SECRET"] not in out + err
    assert world.posthog.requests == []
    assert world.slack.calls == []
    assert world.receiver.received == []
    assert not (path.parent / "state.db").exists()


def test_run_with_a_catastrophic_regex_still_delivers_the_rest(
    posthog: FakePostHog,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    once: Callable[..., int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """End to end: a report whose title makes a rule's regex time out is not sent by that rule
    but still by the next one; the cycle completes and exits 0."""
    posthog.add_report(PROJECT, title=EVIL_TITLE)
    rules = """
- {name: evil, match: {title: {regex: "(a|aa)+$"}}, sinks: [slack], stop: true}
- {name: rest, sinks: [hook]}
"""
    caplog.set_level(logging.WARNING, logger="notifier.core.rules")
    started = time.perf_counter()
    assert once(first_run="notify", rules=rules) == 0
    assert time.perf_counter() - started < 10
    assert slack.messages == []
    assert len(receiver.received) == 1
    assert receiver.bodies()[0]["data"]["rules"] == ["rest"]
    assert any("counted as no match" in r.getMessage() for r in caplog.records)


# --- templates: bounded checking --------------------------------------------------------------

TEMPLATE_ATTACKS = {
    "multiply": "{{ 'x' * 10**9 }}",
    "power": "{{ 2 ** 1000000000 }}",
    "range": "{% for i in range(10**9) %}x{% endfor %}",
    "nested-loops": "{% for a in range(999) %}{% for b in range(999) %}x{% endfor %}{% endfor %}",
    "recursion": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "format": "{{ '%0999999999d' % 1 }}",
    "python-internals": "{{ report.__class__.__mro__ }}",
    "huge-source": "x" * 20_000,
}


@pytest.mark.parametrize("name", list(TEMPLATE_ATTACKS))
def test_hostile_template_is_refused_quickly_at_load(name: str) -> None:
    """A template built to burn time or memory, or to reach Python internals, is a config error
    with its rule's name, found in well under a few seconds."""
    rule = {"name": "evil", "sinks": ["out"], "template": {"body": TEMPLATE_ATTACKS[name]}}
    text = yaml.safe_dump(
        {**BASE, "sinks": {"out": {"type": "slack", "token": "xoxb-t", "channel": "C1"}}}
        | {"rules": [rule]}
    )
    started = time.process_time()
    found = problems(text)
    assert time.process_time() - started < 5
    assert len(found) == 1
    assert found[0].startswith('rules[0] "evil".template.body')


# --- credentials inside URLs ---------------------------------------------------------------

URL_SECRETS = ("PASSWORDinURL", "TOKENinPATH", "TOKENinQUERY")


def test_check_shows_no_credentials_of_a_webhook_url(capsys: pytest.CaptureFixture[str]) -> None:
    """`check` shows a webhook sink's origin only: not user:password@, path or query."""
    text = yaml.safe_dump(
        {
            **BASE,
            "sinks": {
                "out": {
                    "type": "webhook",
                    "url": "https://bot:PASSWORDinURL@hooks.example.com:8443/TOKENinPATH"
                    "?t=TOKENinQUERY",
                }
            },
        }
    )
    assert cmd_check(parse_config(text, source="t.yaml", env={}), sys.stdout) == 0
    out = capsys.readouterr().out
    assert "POST https://hooks.example.com:8443/… (unsigned)" in out
    assert not [secret for secret in URL_SECRETS if secret in out]


def test_slack_errors_show_no_credentials_of_the_api_url() -> None:
    """A Slack api_url with user:password@ (a proxy) is named by host and port in errors."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    settings = SlackSinkSettings(
        name="s",
        token="xoxb-x",
        channel="C0123456789",
        api_url=f"http://proxy:PASSWORDinURL@127.0.0.1:{port}/api/",
        timeout=2.0,
    )
    sink = SlackSink(settings, Links("https://us.posthog.com"))
    try:
        with pytest.raises(SinkError) as caught:
            sink.send(Delivery(outbox_id=1, sink="s", event=new_event("t"), rules=("r",)))
    finally:
        sink.close()
    assert f"Slack (127.0.0.1:{port})" in str(caught.value)
    assert "PASSWORDinURL" not in str(caught.value)


def test_redacting_formatter_hides_the_parts_that_leak_alone() -> None:
    """The second line of defence: a URL's path, query and password, and a whsec_'s key,
    are redacted on their own too (a library may echo just the path)."""
    formatter = RedactingFormatter(
        "%(message)s",
        [
            "https://hooks.slack.com/services/T0/B0/SECRETwebhookPath",
            "https://bot:PASSWORDinURL@h.example/TOKENinPATH?t=TOKENinQUERY",
            WEBHOOK_SECRET,
        ],
    )
    message = (
        "POST /services/T0/B0/SECRETwebhookPath failed; TOKENinPATH?t=TOKENinQUERY "
        f"PASSWORDinURL {WEBHOOK_SECRET.removeprefix('whsec_')}"
    )
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, message, None, None)
    text = formatter.format(record)
    assert "SECRETwebhookPath" not in text
    assert not [secret for secret in URL_SECRETS if secret in text]
    assert not leaked(text)
    assert text.count("[redacted]") == 5
