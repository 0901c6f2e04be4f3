"""Tests for notifier.config.load: YAML → Settings, and every problem reported with its key path."""

from __future__ import annotations

import copy
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifier.config.checks import TEMPLATES_MAX_CHARS, TEMPLATES_MAX_COUNT
from notifier.config.load import (
    load_config,
    parse_config,
    parse_duration,
)
from notifier.config.settings import (
    DeliverySettings,
    PollSettings,
    PostHogSettings,
    RuleSettings,
    SelfAlertSettings,
    Settings,
    SlackSinkSettings,
    SlackWebhookSinkSettings,
    StateSettings,
    WebhookSinkSettings,
)
from notifier.config.sinks import TemplateModel
from notifier.config.types import inputs
from notifier.core.errors import ConfigError
from notifier.core.events import EventType
from notifier.core.report import Links, Report
from notifier.core.rules import Condition, Match, Op
from notifier.render.templates import render, sample_event

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, base64
EXAMPLE_ENV = {
    "POSTHOG_PERSONAL_API_KEY": "phx_example_key",
    "SLACK_BOT_TOKEN": "xoxb-example-token",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "WEBHOOK_SECRET": WHSEC,
}
DELETE = object()  # in a patch: remove the key

BASE: dict[str, Any] = {
    "posthog": {"host": "https://us.posthog.com", "api_key": "phx_test_key", "project_ids": [1]},
    "sinks": {
        "product-channel": {"type": "slack", "token": "xoxb-test-token", "channel": "C1"},
        "team-hook": {"type": "slack_webhook", "url": "https://hooks.slack.com/services/x"},
    },
    "rules": [
        {"name": "r0", "match": {"status": "ready"}, "sinks": ["product-channel"]},
        {"name": "r1", "sinks": ["team-hook"]},
    ],
}


def merged(base: Any, patch: Any) -> Any:
    """``base`` with ``patch`` deep-merged into its mappings; lists and scalars replace."""
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def parse(patch: dict[str, Any] | None = None, env: dict[str, str] | None = None, **kw: Any) -> Any:
    text = yaml.safe_dump(merged(BASE, patch or {}), sort_keys=False)
    return parse_config(text, source="test.yaml", env=env or {}, **kw)


def problems(patch: dict[str, Any], env: dict[str, str] | None = None, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(patch, env, **kw)
    assert caught.value.source == "test.yaml"
    return caught.value.problems


def text_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="t.yaml", env={})
    return caught.value.problems


# --- the example ---------------------------------------------------------------------------


def test_example_loads() -> None:
    """config.example.yaml loads with its environment variables set, without warnings."""
    settings = load_config(EXAMPLE, EXAMPLE_ENV)
    assert settings.posthog.host == "https://us.posthog.com"
    assert settings.posthog.api_key.get_secret_value() == "phx_example_key"
    assert settings.posthog.project_ids == (12345,)
    assert settings.poll.interval == 60
    assert settings.poll.jitter == 5
    assert settings.state.path == EXAMPLE.parent / "notifier-state.db"
    assert settings.delivery.give_up_after == 24 * 3600
    assert list(settings.sinks) == ["product-channel", "team-hook", "incident-bridge", "stdout"]
    bridge = settings.sinks["incident-bridge"]
    assert isinstance(bridge, WebhookSinkSettings)
    assert bridge.secret is not None
    assert bridge.secret.get_secret_value() == WHSEC
    assert [rule.name for rule in settings.rules] == [
        "ready for the team",
        "needs input",
        "resolved",
    ]
    assert settings.rules[0].match == Match(
        events=frozenset({EventType.NEW, EventType.STATUS_CHANGED}),
        conditions=(
            Condition("status", Op.EQ, "ready"),
            Condition("actionability", Op.IN, ("immediately_actionable", "requires_human_input")),
        ),
    )
    assert settings.rules[0].match.previous is None
    assert settings.source == str(EXAMPLE)
    assert settings.warnings == ()


def test_example_needs_its_environment() -> None:
    """Without the environment variables, the example names each one with its key path."""
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, {})
    assert caught.value.problems == [
        "posthog.api_key: environment variable POSTHOG_PERSONAL_API_KEY is not set "
        "(export it, or use ${POSTHOG_PERSONAL_API_KEY:-...})",
        "sinks.incident-bridge.secret: environment variable WEBHOOK_SECRET is not set "
        "(export it, or use ${WEBHOOK_SECRET:-...})",
        "sinks.product-channel.token: environment variable SLACK_BOT_TOKEN is not set "
        "(export it, or use ${SLACK_BOT_TOKEN:-...})",
        "sinks.team-hook.url: environment variable SLACK_WEBHOOK_URL is not set "
        "(export it, or use ${SLACK_WEBHOOK_URL:-...})",
    ]


@pytest.mark.parametrize(
    "model",
    [
        Settings,
        PostHogSettings,
        PollSettings,
        StateSettings,
        DeliverySettings,
        RuleSettings,
        SelfAlertSettings,
        TemplateModel,
    ],
)
def test_example_documents_every_key(model: type[Any]) -> None:
    """Every key a section accepts appears in config.example.yaml, set or commented out."""
    text = EXAMPLE.read_text()
    for key in inputs(model):
        assert re.search(rf"^\s*#?\s*-?\s*{key}:", text, re.MULTILINE), key


def test_example_documents_every_sink_key() -> None:
    """Every sink key and every <key>_file variant is documented in the example."""
    text = EXAMPLE.read_text()
    models = (SlackSinkSettings, SlackWebhookSinkSettings, WebhookSinkSettings)
    keys = [k for m in models for k in inputs(m)]
    assert {"digest_after", "enrich", "template", "batch"} <= set(keys)
    for key in keys:
        assert re.search(rf"^\s*#?\s*{key}:", text, re.MULTILINE), key
    for key in ["api_key_file", "token_file", "url_file", "secret_file"]:
        assert key in text, key


# --- exact messages, one problem each ------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            {"rules": [BASE["rules"][0], {"name": "r1", "sinks": ["pager"]}]},
            ["rules[1].sinks[0]: unknown sink 'pager' (defined: product-channel, team-hook)"],
            id="unknown-sink",
        ),
        pytest.param(
            {"rules": [BASE["rules"][0], {"name": "r1", "sinks": ["team-hok"]}]},
            [
                "rules[1].sinks[0]: unknown sink 'team-hok' "
                "(did you mean 'team-hook'? defined: product-channel, team-hook)"
            ],
            id="unknown-sink-close",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"title": {"regex": "("}}, "sinks": ["team-hook"]}]},
            ["rules[0].match.title.regex: invalid regex: missing ) at position 1"],
            id="invalid-regex",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"title": {"regex": 5}}, "sinks": ["team-hook"]}]},
            ["rules[0].match.title.regex: must be a regular expression in quotes"],
            id="regex-not-text",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"type": DELETE, "typ": "slack_webhook"}}},
            [
                "sinks.team-hook.typ: unknown key (did you mean 'type'?)",
                "sinks.team-hook.type: required key is missing; one of slack, slack_webhook, "
                "webhook, console",
            ],
            id="sink-key-typo",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"type": "slack_hook"}}},
            [
                "sinks.team-hook.type: unknown sink type 'slack_hook' (did you mean "
                "'slack_webhook'? valid: slack, slack_webhook, webhook, console)"
            ],
            id="unknown-sink-type",
        ),
        pytest.param(
            {"sink": {}},
            ["sink: unknown key (did you mean 'sinks'?)"],
            id="top-level-typo",
        ),
        pytest.param(
            {"posthog": {"zzz": 1}},
            [
                "posthog.zzz: unknown key (valid: host, api_key, project_ids, api_path, "
                "page_size, timeout, statuses, requests_per_minute, "
                "requests_per_hour, api_key_file)"
            ],
            id="unknown-key-no-suggestion",
        ),
        pytest.param(
            {"sinks": {"product-channel": {"webhook": "https://x.example"}}},
            [
                "sinks.product-channel.webhook: unknown key (valid: mute_during, active_during, "
                "on_mute, type, token, channel, api_url, timeout, digest_after, enrich, template, "
                "actions, token_file)"
            ],
            id="key-of-another-sink-type",
        ),
        pytest.param(
            {"rules": [BASE["rules"][0], {"name": "r0", "sinks": ["team-hook"]}]},
            ["rules[1].name: duplicate rule name 'r0' (also rules[0]); rename one"],
            id="duplicate-rule-name",
        ),
        pytest.param(
            {"rules": [{"match": {}, "sinks": ["team-hook", "product-channel"]}]},
            ["rules[0].name: required key is missing; add it"],
            id="rule-without-name",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "sinks": []}]},
            ["rules[0].sinks: is empty; name a sink from sinks:"],
            id="rule-without-sinks",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "sinks": ["team-hook", "product-channel"], "stop": "maybe"}]},
            ["rules[0].stop: must be true/false (got 'maybe')"],
            id="stop-not-bool",
        ),
        pytest.param(
            {"poll": {"interval": "five minutes"}},
            [
                "poll.interval: invalid duration (got 'five minutes'); use a number of seconds or "
                "500ms, 90s, 5m, 1h, 1d"
            ],
            id="bad-duration",
        ),
        pytest.param(
            {"delivery": {"give_up_after": "0s"}},
            ["delivery.give_up_after: must be longer than 0s, like 30s (got '0s')"],
            id="zero-duration",
        ),
        pytest.param(
            {"delivery": {"keep_delivered": "500ms"}},
            [
                "delivery.keep_delivered: must be at least 1s (got '500ms'); delivered entries are "
                "the audit trail, try 7d"
            ],
            id="keep-delivered-under-1s",
        ),
        pytest.param(
            {"delivery": {"keep_delivered": "a week"}},
            [
                "delivery.keep_delivered: invalid duration (got 'a week'); use a number of seconds "
                "or 500ms, 90s, 5m, 1h, 1d"
            ],
            id="keep-delivered-not-a-duration",
        ),
        pytest.param(
            {"poll": {"interval": "500ms"}},
            [
                "poll.interval: must be at least 1s (got '500ms'); PostHog allows 480 "
                "requests/minute, try 60s"
            ],
            id="interval-under-1s",
        ),
        pytest.param(
            {"posthog": {"timeout": True}},
            [
                "posthog.timeout: invalid duration (got true); use a number of seconds or 500ms, "
                "90s, 5m, 1h, 1d"
            ],
            id="duration-bool",
        ),
        pytest.param(
            {"sinks": {"hook": {"type": "webhook", "url": "https://h.example", "secret": "abc"}}},
            [
                "sinks.hook.secret: must be 'whsec_' followed by base64 of 24-64 random bytes; "
                "generate one with: python -c \"import base64,os; print('whsec_' + "
                'base64.b64encode(os.urandom(32)).decode())"'
            ],
            id="webhook-secret-prefix",
        ),
        pytest.param(
            {
                "sinks": {
                    "hook": {"type": "webhook", "url": "https://h.example", "secret": "whsec_YWJj"}
                }
            },
            [
                "sinks.hook.secret: must be 'whsec_' followed by base64 of 24-64 random bytes; "
                "generate one with: python -c \"import base64,os; print('whsec_' + "
                'base64.b64encode(os.urandom(32)).decode())"'
            ],
            id="webhook-secret-too-short",
        ),
        pytest.param(
            {"sinks": {"hook": {"type": "webhook", "url": "ftp://h.example"}}},
            ["sinks.hook.url: must be an http:// or https:// URL"],
            id="webhook-url-scheme",
        ),
        pytest.param(
            {
                "sinks": {
                    "hook": {"type": "webhook", "url": "https://h.example", "headers": {"X": 1}}
                }
            },
            ["sinks.hook.headers.X: must be text; quote it"],
            id="header-not-text",
        ),
        pytest.param(
            {
                "sinks": {
                    "hook": {
                        "type": "webhook",
                        "url": "https://h.example",
                        "headers": {"X-Team": "ops\r\nX-Injected: 1"},
                    }
                }
            },
            [
                "sinks.hook.headers.X-Team: contains a carriage return (U+000D) at character 4; "
                "a header value must be printable ASCII on one line: remove it (check for a "
                "trailing newline in the variable or file it comes from)"
            ],
            id="header-control-character",
        ),
        pytest.param(
            {"posthog": {"host": "https://us.posthog.com/api"}},
            [
                "posthog.host: must be an http(s) origin without a path, like "
                "https://us.posthog.com, https://eu.posthog.com or your self-hosted "
                "https://posthog.example.com (got 'https://us.posthog.com/api')"
            ],
            id="host-with-path",
        ),
        pytest.param(
            {"posthog": {"host": "us.posthog.com"}},
            ["posthog.host: must be an http:// or https:// URL (got 'us.posthog.com')"],
            id="host-without-scheme",
        ),
        pytest.param(
            {"posthog": {"project_ids": []}},
            ["posthog.project_ids: is empty; list one project id or more, like [12345]"],
            id="empty-project-ids",
        ),
        pytest.param(
            {"posthog": {"project_ids": [0]}},
            ["posthog.project_ids[0]: input should be greater than 0 (got 0)"],
            id="project-id-zero",
        ),
        pytest.param(
            {"posthog": {"project_ids": [1, True]}},
            ["posthog.project_ids[1]: must be a number, not true/false (got true)"],
            id="project-id-bool",
        ),
        pytest.param(
            {"posthog": {"project_ids": ["abc"]}},
            ["posthog.project_ids[0]: must be a whole number (got 'abc')"],
            id="project-id-text",
        ),
        pytest.param(
            {"posthog": {"page_size": 10001}},
            ["posthog.page_size: input should be less than or equal to 10000 (got 10001)"],
            id="page-size",
        ),
        pytest.param(
            {"posthog": {"api_path": "reports"}},
            [
                "posthog.api_path: must be one of 'auto', 'signal_reports' or 'signals/reports' "
                "(got 'reports'); did you mean 'signal_reports'?"
            ],
            id="api-path",
        ),
        pytest.param(
            {"posthog": {"statuses": []}},
            ["posthog.statuses: is empty; list statuses, or omit the key for the default listing"],
            id="empty-statuses",
        ),
        pytest.param(
            {"posthog": {"statuses": ["ready", "deleted"]}},
            [
                "posthog.statuses: lists 'deleted', which PostHog refuses as a filter (400); "
                "remove it: deleted reports are announced as 'removed' events without it"
            ],
            id="deleted-status",
        ),
        pytest.param(
            {"posthog": {"statuses": ["ready", "redy"]}},
            [
                "posthog.statuses: item 2 ('redy') is not a PostHog status; did you mean 'ready'? "
                "valid: potential, candidate, in_progress, pending_input, ready, resolved, failed, "
                "suppressed"
            ],
            id="unknown-status",
        ),
        pytest.param(
            {"first_run": "always"},
            ["first_run: must be one of 'baseline' or 'notify' (got 'always')"],
            id="first-run",
        ),
        pytest.param(
            {"posthog": DELETE},
            ["posthog: required key is missing; add it"],
            id="no-posthog",
        ),
        pytest.param(
            {"posthog": {"api_key": DELETE}},
            ["posthog.api_key: required key is missing; add it"],
            id="no-api-key",
        ),
        pytest.param(
            {"posthog": {"api_key": ""}},
            ["posthog.api_key: must not be empty"],
            id="empty-api-key",
        ),
        pytest.param(
            {"poll": "60s"},
            ["poll: must be a mapping of keys to values (got '60s')"],
            id="section-not-mapping",
        ),
        pytest.param(
            {"sinks": {"my sink": {"type": "console"}}},
            ["sinks.my sink: invalid sink name; use letters, digits, '_', '.', '-'"],
            id="sink-name",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"weight": {"gt3": 1}}, "sinks": ["team-hook"]}]},
            [
                "rules[0].match.weight.gt3: unknown operator (did you mean 'gt'? valid: eq, ne, "
                "gt, gte, lt, lte, in, equals, contains, regex)"
            ],
            id="unknown-operator",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"weight": {"gte": [1]}}, "sinks": ["team-hook"]}]},
            ["rules[0].match.weight.gte: must be a number (or text) to compare with, like 1.0"],
            id="compare-with-list",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"weight": {}}, "sinks": ["team-hook"]}]},
            [
                "rules[0].match.weight: must be a value, a list of values or {operator: value}, "
                "like {gte: 1}"
            ],
            id="empty-operator-block",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"priority": []}, "sinks": ["team-hook"]}]},
            ["rules[0].match.priority: must be a non-empty list of values, like [P0, P1]"],
            id="empty-list",
        ),
        pytest.param(
            {
                "rules": [
                    {"name": "r0", "match": {"event": ["new", "create"]}, "sinks": ["team-hook"]}
                ]
            },
            [
                "rules[0].match.event[1]: unknown event 'create' "
                "(valid: new, status_changed, updated, removed)"
            ],
            id="unknown-event",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"event": "updatd"}, "sinks": ["team-hook"]}]},
            [
                "rules[0].match.event: unknown event 'updatd' "
                "(did you mean 'updated'? valid: new, status_changed, updated, removed)"
            ],
            id="unknown-event-close",
        ),
        pytest.param(
            {
                "rules": [
                    {"name": "r0", "match": {"previous": {"event": "new"}}, "sinks": ["team-hook"]}
                ]
            },
            [
                "rules[0].match.previous.event: is not allowed here: previous holds field "
                "conditions only"
            ],
            id="event-in-previous",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"not": "ready"}, "sinks": ["team-hook"]}]},
            ["rules[0].match.not: must be a mapping of conditions, like {status: ready}"],
            id="not-not-a-mapping",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": ["ready"], "sinks": ["team-hook"]}]},
            ["rules[0].match: must be a mapping of conditions, like {status: ready}"],
            id="match-not-a-mapping",
        ),
        pytest.param(
            {"posthog": {"api_key": "${POSTHOG_PERSONAL_API_KEY}"}},
            [
                "posthog.api_key: environment variable POSTHOG_PERSONAL_API_KEY is not set "
                "(export it, or use ${POSTHOG_PERSONAL_API_KEY:-...})"
            ],
            id="unset-variable",
        ),
        pytest.param(
            {"rules": [{"name": "r0", "match": {"status": "${STATUS}"}, "sinks": ["team-hook"]}]},
            [
                "rules[0].match.status: environment variable STATUS is not set "
                "(export it, or use ${STATUS:-...})"
            ],
            id="unset-variable-in-rule",
        ),
        pytest.param(
            {"posthog": {"api_key": "${1BAD}"}},
            [
                "posthog.api_key: invalid reference '${1BAD}': use ${NAME} or ${NAME:-default}, "
                "and $$ for a literal $"
            ],
            id="bad-reference",
        ),
        pytest.param(
            {"posthog": {"api_key": "abc${OPEN"}},
            [
                "posthog.api_key: invalid reference '${': use ${NAME} or ${NAME:-default}, "
                "and $$ for a literal $"
            ],
            id="unterminated-reference",
        ),
        pytest.param(
            {"posthog": {"api_key_file": "/x"}},
            ["posthog.api_key_file: both api_key and api_key_file are set; keep one"],
            id="key-and-key-file",
        ),
    ],
)
def test_problem_message(patch: dict[str, Any], expected: list[str]) -> None:
    """Each kind of mistake is reported alone, with its key path, the problem and the fix."""
    assert problems(patch) == expected


def test_many_problems_at_once() -> None:
    """Type errors, unknown keys, rule errors and env problems all come in one ConfigError."""
    found = problems(
        {
            "posthog": {"host": "ftp://x", "project_ids": [], "timeot": "5s"},
            "poll": {"interval": "soon"},
            "sinks": {"team-hook": {"url": "${HOOK_URL}"}},
            "rules": [
                {"name": "r0", "match": {"title": {"regex": "("}}, "sinks": ["pager"]},
                {"name": "r0", "sinks": ["team-hook"]},
            ],
        }
    )
    assert found == [
        "posthog.host: must be an http:// or https:// URL (got 'ftp://x')",
        "posthog.project_ids: is empty; list one project id or more, like [12345]",
        "posthog.timeot: unknown key (did you mean 'timeout'?)",
        "poll.interval: invalid duration (got 'soon'); use a number of seconds or 500ms, 90s, "
        "5m, 1h, 1d",
        "sinks.team-hook.url: environment variable HOOK_URL is not set "
        "(export it, or use ${HOOK_URL:-...})",
        "rules[0].match.title.regex: invalid regex: missing ) at position 1",
        "rules[0].sinks[0]: unknown sink 'pager' (defined: product-channel, team-hook)",
        "rules[1].name: duplicate rule name 'r0' (also rules[0]); rename one",
    ]


def test_error_text_lists_every_problem() -> None:
    """str(ConfigError) names the source and the count, then one line per problem."""
    with pytest.raises(ConfigError) as caught:
        parse({"first_run": "x", "poll": {"jiter": 1}})
    assert str(caught.value) == (
        "test.yaml: 2 problems:\n"
        "  - poll.jiter: unknown key (did you mean 'jitter'?)\n"
        "  - first_run: must be one of 'baseline' or 'notify' (got 'x')"
    )


def test_rule_checks_run_when_types_fail() -> None:
    """Semantic checks on the rules still run when pydantic rejects other sections."""
    found = problems({"posthog": DELETE, "rules": [{"name": "r0", "sinks": ["pager"]}]})
    assert found == [
        "posthog: required key is missing; add it",
        "rules[0].sinks[0]: unknown sink 'pager' (defined: product-channel, team-hook)",
    ]


def test_rule_checks_tolerate_garbage() -> None:
    """A rules section of the wrong shape gives type problems, not a crash."""
    assert problems({"rules": {"r0": 1}}) == ["rules: must be a list, like [a, b]"]
    assert problems({"rules": [5]}) == ["rules[0]: must be a mapping of keys to values (got 5)"]
    assert problems({"sinks": ["x"], "rules": []}) == ["sinks: must be a mapping of keys to values"]


# --- secrets never in messages -------------------------------------------------------------

SECRET = "SUPERSECRET-7f3a9c"


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"posthog": {"api_key": SECRET, "project_ids": []}}, id="api-key"),
        pytest.param({"posthog": {"api_key": [SECRET]}}, id="api-key-wrong-type"),
        pytest.param({"posthog": {"timeout": SECRET}}, id="secret-in-duration"),
        pytest.param({"posthog": {"page_size": SECRET}}, id="secret-in-number"),
        pytest.param({"posthog": {"host": f"https://user:{SECRET}@x.example"}}, id="host"),
        pytest.param({"sinks": {"product-channel": {"token": SECRET, "type": "slak"}}}, id="token"),
        pytest.param({"sinks": {"team-hook": {"url": f"hxxps://{SECRET}"}}}, id="hook-url"),
        pytest.param(
            {"sinks": {"h": {"type": "webhook", "url": "https://x.example", "secret": SECRET}}},
            id="webhook-secret",
        ),
        pytest.param(
            {"sinks": {"h": {"type": "webhook", "url": "x", "headers": {"Authorization": SECRET}}}},
            id="header",
        ),
        pytest.param({"first_run": SECRET}, id="literal"),
        pytest.param({"state": {"path": [SECRET]}}, id="list"),
    ],
)
def test_secrets_never_in_error_text(patch: dict[str, Any]) -> None:
    """A secret in an invalid configuration appears in no message, whatever the mistake."""
    with pytest.raises(ConfigError) as caught:
        parse(patch)
    assert caught.value.problems
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.problems)


def test_secret_from_environment_never_in_error_text() -> None:
    """A secret that came from ${VAR} is not echoed by a type error either."""
    with pytest.raises(ConfigError) as caught:
        parse({"sinks": {"h": {"type": "webhook", "url": "x", "secret": "${S}"}}}, {"S": SECRET})
    assert SECRET not in str(caught.value)


# --- environment expansion -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "xyz"}, "xyz"),
        ("pre-${A}-post", {"A": "xyz"}, "pre-xyz-post"),
        ("${A}${B}", {"A": "x", "B": "y"}, "xy"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-with spaces: and colons}", {}, "with spaces: and colons"),
        ("$${A}", {"A": "xyz"}, "${A}"),
        ("cost $$5", {}, "cost $5"),
        ("a$b", {}, "a$b"),
        ("end$", {}, "end$"),
        ("C1", {"A": "x"}, "C1"),
    ],
)
def test_env_expansion(value: str, env: dict[str, str], expected: str) -> None:
    """${VAR}, ${VAR:-default} and $$ expand in string values; a lone $ stays."""
    settings = parse({"sinks": {"product-channel": {"channel": value}}}, env)
    sink = settings.sinks["product-channel"]
    assert isinstance(sink, SlackSinkSettings)
    assert sink.channel == expected


def test_env_expands_everywhere() -> None:
    """Numbers, durations and rule values can come from the environment too."""
    env = {"PROJECT": "42", "EVERY": "2m", "STATUS": "ready"}
    settings = parse(
        {
            "posthog": {"project_ids": "${PROJECT}"},
            "poll": {"interval": "${EVERY}"},
            "rules": [{"name": "r0", "match": {"status": "${STATUS}"}, "sinks": ["team-hook"]}],
            "sinks": {"product-channel": DELETE},
        },
        env,
    )
    assert settings.posthog.project_ids == (42,)
    assert settings.poll.interval == 120
    assert settings.rules[0].match.conditions == (Condition("status", Op.EQ, "ready"),)


def test_env_defaults_to_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit env, os.environ is used."""
    monkeypatch.setenv("NOTIFIER_TEST_KEY", "phx_from_environ")
    text = yaml.safe_dump(merged(BASE, {"posthog": {"api_key": "${NOTIFIER_TEST_KEY}"}}))
    assert parse_config(text, source="x").posthog.api_key.get_secret_value() == "phx_from_environ"


def test_keys_are_not_expanded() -> None:
    """Only values are expanded: a key with ${...} is an unknown key, not a lookup."""
    assert problems({"posthog": {"${K}": 1}}, {"K": "timeout"})[0].startswith(
        "posthog.${K}: unknown key"
    )


# --- secrets from files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sink", "key"),
    [
        ({"type": "slack", "channel": "C1"}, "token"),
        ({"type": "slack_webhook"}, "url"),
        ({"type": "webhook"}, "url"),
        ({"type": "webhook", "url": "https://h.example"}, "secret"),
    ],
)
def test_sink_secret_files(tmp_path: Path, sink: dict[str, str], key: str) -> None:
    """Each sink secret accepts <key>_file: the file's content, whitespace stripped."""
    value = {"token": "xoxb-from-file", "url": "https://from.file/x", "secret": WHSEC}[key]
    (tmp_path / "secret").write_text(f"  {value}\n")
    body = {**sink, f"{key}_file": str(tmp_path / "secret")}
    settings = parse({"sinks": {"s": body}, "rules": [{"name": "r", "sinks": ["s"]}]})
    assert getattr(settings.sinks["s"], key).get_secret_value() == value


def test_api_key_file_relative_to_config(tmp_path: Path) -> None:
    """A relative *_file path is relative to the configuration file's folder."""
    (tmp_path / "key.txt").write_text("phx_in_a_file\n")
    config = merged(BASE, {"posthog": {"api_key": DELETE, "api_key_file": "key.txt"}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert (
        load_config(tmp_path / "config.yaml", {}).posthog.api_key.get_secret_value()
        == "phx_in_a_file"
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read {path}: No such file or directory; check the path and permissions"),
        ("  \n", "{path} is empty, not UTF-8 text or over 64 KiB; put the secret in it"),
        (b"\xff\xfe", "{path} is empty, not UTF-8 text or over 64 KiB; put the secret in it"),
    ],
)
def test_unreadable_secret_file(tmp_path: Path, content: str | bytes | None, reason: str) -> None:
    """An unreadable, empty or binary secret file is one problem naming the path."""
    path = tmp_path / "key"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    found = problems({"posthog": {"api_key": DELETE, "api_key_file": str(path)}})
    assert found == [f"posthog.api_key_file: {reason.format(path=path)}"]


def test_secret_file_wrong_type() -> None:
    """A *_file that is not a path says so."""
    found = problems({"posthog": {"api_key": DELETE, "api_key_file": 5}})
    assert found == ["posthog.api_key_file: must be the path of a file holding the secret"]


# --- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        (" 10 s ", 10.0),
        ("45", 45.0),
        (30, 30.0),
        (2.5, 2.5),
        (0, 0.0),
        ("0s", 0.0),
    ],
)
def test_duration(value: object, seconds: float) -> None:
    """Durations are seconds, or a number with ms, s, m, h or d."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["5 minutes", "1h30m", "-1s", "s", "", "1w", "1e3", True, None, [1], float("inf")]
)
def test_invalid_duration(value: object) -> None:
    """Anything else is a ValueError with the accepted forms."""
    with pytest.raises(ValueError, match="invalid duration; use a number of seconds"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("poll", "interval", "jitter"),
    [
        ({}, 60.0, 5.0),
        ({"interval": "2s"}, 2.0, 2.0),
        ({"interval": 30, "jitter": 0}, 30.0, 0.0),
        ({"interval": "1m", "jitter": "90s"}, 60.0, 60.0),
        ({"interval": 1}, 1.0, 1.0),
    ],
)
def test_poll_jitter_capped(poll: dict[str, Any], interval: float, jitter: float) -> None:
    """The jitter defaults to 5s and never exceeds the interval."""
    settings = parse({"poll": poll})
    assert (settings.poll.interval, settings.poll.jitter) == (interval, jitter)


def test_durations_in_settings() -> None:
    """Every duration key is parsed into seconds."""
    settings = parse(
        {
            "posthog": {"timeout": "10s"},
            "poll": {"deadline": "2m"},
            "delivery": {
                "give_up_after": "1d",
                "backoff_initial": "500ms",
                "backoff_max": "5m",
                "keep_delivered": "36h",
            },
            "sinks": {"product-channel": {"timeout": 3}},
        }
    )
    assert settings.delivery.keep_delivered == 36 * 3600
    assert parse({"delivery": {"keep_delivered": 1}}).delivery.keep_delivered == 1
    assert settings.posthog.timeout == 10
    assert settings.poll.deadline == 120
    assert (settings.delivery.give_up_after, settings.delivery.backoff_initial) == (86400, 0.5)
    assert settings.delivery.backoff_max == 300
    assert settings.sinks["product-channel"].timeout == 3


# --- YAML safety ---------------------------------------------------------------------------

BILLION_LAUGHS = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_rejected_quickly() -> None:
    """Aliases are refused at the first one, before anything can expand."""
    start = time.process_time()  # CPU time: the work done, whatever else the machine runs
    found = text_problems(BILLION_LAUGHS)
    assert time.process_time() - start < 1.0
    assert found == [
        "line 3, column 8: YAML aliases (*name) are not supported; write the value out instead"
    ]


def test_any_alias_rejected() -> None:
    """Even a harmless alias is refused, with a clear message."""
    config = yaml.safe_dump(BASE) + "x: &anchor 1\ny: *anchor\n"
    assert "YAML aliases (*name) are not supported" in text_problems(config)[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "posthog:\n  host: https://x\n  api_key: [unclosed\nsinks: {}\n",
            "line 4, column 6: expected ',' or ']', but got ':' "
            "(while parsing a flow sequence); check indentation and quoting",
        ),
        (
            "posthog:\n  host: x\n bad: 2\n",
            "line 3, column 2: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block mapping); check indentation and quoting",
        ),
        (
            "a: 1\n b: 2\n",
            "line 2, column 3: mapping values are not allowed here; check indentation and quoting",
        ),
        (
            "posthog: {}\nposthog: {}\n",
            "line 2, column 1: duplicate key 'posthog'; the later one would silently win, "
            "remove one",
        ),
        (
            "posthog: {host: https://x, api_key: ${KEY}, project_ids: [1]}\n",
            "line 1, column 38: expected ',' or '}', but got '{' (while parsing a flow mapping); "
            'inside { } or [ ], quote a ${VAR} value: api_key: "${VAR}"',
        ),
        ("on: 1\n", "line 1, column 1: the key 'on' is read as bool, not text; quote it"),
        (
            "sinks:\n  404: {type: console}\n",
            "line 2, column 3: the key '404' is read as int, not text; quote it",
        ),
        ("", "the file is empty; start from config.example.yaml"),
        ("- posthog\n", "the top level must be a mapping (posthog:, sinks:, rules: ...)"),
    ],
)
def test_yaml_errors(text: str, expected: str) -> None:
    """YAML that cannot be read is one problem naming line and column."""
    assert text_problems(text) == [expected]


def test_size_cap(tmp_path: Path) -> None:
    """Files over 1 MiB are refused before parsing."""
    big = "# " + "x" * (1024 * 1024) + "\n"
    assert text_problems(big) == ["the file is larger than 1 MiB; is it the right file?"]
    (tmp_path / "big.yaml").write_text(big)
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(tmp_path / "big.yaml", {})


def test_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read is a ConfigError naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.source == str(path)
    assert caught.value.problems == ["cannot read the file: No such file or directory"]


def test_deep_nesting() -> None:
    """Absurd nesting is a ConfigError, not a RecursionError."""
    with pytest.raises(ConfigError):
        parse_config("a: " + "[" * 50_000 + "]" * 50_000, source="x", env={})


# --- warnings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({}, ()),
        (
            {"poll": {"interval": "5s"}},
            (
                "poll.interval: 5s is under 10s; every cycle lists every project and PostHog "
                "allows 480 requests/minute; try 60s",
            ),
        ),
        (
            {"sinks": {"stdout": {"type": "console"}}},
            ("sinks.stdout: no rule sends to it; add it to a rule's sinks or remove it",),
        ),
        (
            {"sinks": DELETE, "rules": DELETE},
            ("rules: there are none, so nothing will be sent; add a rule",),
        ),
        (
            {"poll": {"interval": "30s", "jitter": "1m"}},
            ("poll.jitter: longer than poll.interval; using 30s",),
        ),
        (
            {"delivery": {"backoff_initial": "1m", "backoff_max": "10s"}},
            ("delivery.backoff_max: shorter than backoff_initial; using backoff_initial",),
        ),
        (
            {"posthog": {"host": "http://localhost:8000"}},
            ("posthog.host: http:// sends the API key unencrypted; use https://",),
        ),
    ],
)
def test_warnings(patch: dict[str, Any], expected: tuple[str, ...]) -> None:
    """Valid but unwise settings load, with a warning each."""
    assert parse(patch).warnings == expected


# --- what the rules and settings compile into ----------------------------------------------

NEW, CHANGED, UPDATED = EventType.NEW, EventType.STATUS_CHANGED, EventType.UPDATED


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, Match()),
        (None, Match()),
        ({"event": "updated"}, Match(events=frozenset({UPDATED}))),
        ({"event": ["new", "status_changed"]}, Match(events=frozenset({NEW, CHANGED}))),
        ({"status": "ready"}, Match(conditions=(Condition("status", Op.EQ, "ready"),))),
        ({"project_id": 7}, Match(conditions=(Condition("project_id", Op.EQ, 7),))),
        (
            {"priority": ["P0", "P1"]},
            Match(conditions=(Condition("priority", Op.IN, ("P0", "P1")),)),
        ),
        (
            {"total_weight": {"gte": 1.0, "lt": 5}},
            Match(
                conditions=(
                    Condition("total_weight", Op.GTE, 1.0),
                    Condition("total_weight", Op.LT, 5),
                )
            ),
        ),
        (
            {"title": {"contains": "pay", "ne": "x", "equals": "y", "eq": None, "in": ["a"]}},
            Match(
                conditions=(
                    Condition("title", Op.CONTAINS, "pay"),
                    Condition("title", Op.NE, "x"),
                    Condition("title", Op.EQUALS, "y"),
                    Condition("title", Op.EQ, None),
                    Condition("title", Op.IN, ("a",)),
                )
            ),
        ),
        (
            {"previous": {"status": "candidate"}, "not": {"event": "new", "priority": "P3"}},
            Match(
                previous=Match(conditions=(Condition("status", Op.EQ, "candidate"),)),
                negate=Match(
                    events=frozenset({NEW}), conditions=(Condition("priority", Op.EQ, "P3"),)
                ),
            ),
        ),
    ],
)
def test_match_compiles(match: Any, expected: Match) -> None:
    """Match blocks compile to Match/Condition; no event key leaves events None."""
    settings = parse({"rules": [{"name": "r", "match": match, "sinks": ["team-hook"]}]})
    assert settings.rules[0].match == expected


def test_regex_compiled() -> None:
    """A regex condition holds the compiled pattern."""
    settings = parse(
        {
            "rules": [{"name": "r", "match": {"title": {"regex": "(?i)checkout"}}, "sinks": ["x"]}],
            "sinks": {"x": {"type": "console"}, "product-channel": DELETE, "team-hook": DELETE},
        }
    )
    (condition,) = settings.rules[0].match.conditions
    assert condition.op is Op.REGEX
    assert condition.value.search("CHECKOUT flow")


def test_rule_shape() -> None:
    """A rule keeps its name, sinks (a single name accepted) and stop flag."""
    settings = parse(
        {
            "rules": [{"name": " r ", "sinks": "team-hook", "stop": True}],
            "sinks": {"product-channel": DELETE},
        }
    )
    (rule,) = settings.rules
    assert (rule.name, rule.sinks, rule.stop) == ("r", ("team-hook",), True)


def test_normalised_values(tmp_path: Path) -> None:
    """Host loses its trailing slash, api_url gains one, a single project id is a tuple."""
    settings = parse(
        {
            "posthog": {"host": "https://eu.posthog.com/", "project_ids": 7, "statuses": "ready"},
            "sinks": {"product-channel": {"api_url": "http://localhost:9000/api"}},
            "state": {"path": "/var/lib/notifier/state.db"},
            "http": {"listen": " 127.0.0.1:9000 "},
        },
        base_dir=tmp_path,
    )
    assert settings.posthog.host == "https://eu.posthog.com"
    assert settings.posthog.project_ids == (7,)
    assert settings.posthog.statuses == ("ready",)
    sink = settings.sinks["product-channel"]
    assert isinstance(sink, SlackSinkSettings)
    assert sink.api_url == "http://localhost:9000/api/"
    assert settings.state.path == Path("/var/lib/notifier/state.db")
    assert settings.http.listen == "127.0.0.1:9000"


def test_postgresql_state(tmp_path: Path) -> None:
    """state.url selects PostgreSQL; its password comes from password, ${VAR} or password_file
    and is a secret like the others; lease_ttl defaults to 30s."""
    (tmp_path / "pw").write_text("db-password-from-file\n")
    url = "postgresql://notifier@db.example:5432/notifier"
    settings = parse({"state": {"url": url, "password_file": str(tmp_path / "pw")}})
    assert settings.state.backend == "postgresql"
    assert settings.state.url == url
    assert settings.state.password is not None
    assert settings.state.password.get_secret_value() == "db-password-from-file"
    assert "db-password-from-file" in settings.secrets()
    assert settings.state.lease_ttl == 30
    assert parse().state.backend == "sqlite"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            {"url": "postgresql://notifier:s3cret-in-url@db/notifier"},
            "state.url: holds a password; remove it from the URL and put it in state.password "
            "(or ${VAR}, or state.password_file)",
        ),
        (
            {"url": "postgresql://notifier@db/notifier?password=s3cret-in-query"},
            "state.url: holds a password; remove it from the URL and put it in state.password "
            "(or ${VAR}, or state.password_file)",
        ),
        (
            {"url": "mysql://db/notifier"},
            "state.url: must be a PostgreSQL URL like postgresql://notifier@db.example:5432/"
            "notifier (the password in state.password, ${VAR} or state.password_file, not in "
            "the URL) (got 'mysql://db/notifier')",
        ),
        (
            {"url": "postgresql://db/n", "path": "s.db"},
            "state: set either path (SQLite: one instance) or url (PostgreSQL: replicas), not both",
        ),
        (
            {"password": "pw-without-url"},
            "state: password is for url (PostgreSQL); remove it or set url",
        ),
        (
            {"url": "postgresql://db/n", "lease_ttl": "0.5s"},
            "state.lease_ttl: must be at least 1s: leases are renewed a few times within it "
            "(got '0.5s'); try 30s (a replica that dies is replaced within it)",
        ),
    ],
)
def test_postgresql_state_problems(state: dict[str, Any], expected: str) -> None:
    """Each wrong state section gets its key path and a fix, never the password."""
    assert problems({"state": state}) == [expected]


def test_relative_state_path(tmp_path: Path) -> None:
    """A relative state path is relative to the config file's folder, not the cwd."""
    settings = parse({"state": {"path": "data/state.db"}}, base_dir=tmp_path)
    assert settings.state.path == tmp_path / "data" / "state.db"
    assert parse({"state": {"path": "s.db"}}).state.path == Path("s.db")


def test_settings_defaults() -> None:
    """Omitted sections take the documented defaults."""
    settings = parse()
    assert settings.posthog.api_path == "auto"
    assert settings.posthog.page_size == 1000
    assert settings.posthog.timeout == 30
    assert settings.posthog.statuses is None
    assert (settings.posthog.requests_per_minute, settings.posthog.requests_per_hour) == (
        360,
        3600,
    )
    assert settings.poll.deadline is None
    assert (settings.poll.full_sync_every, settings.poll.overlap) == (3600, 60)
    assert settings.poll.concurrency == 4
    assert settings.first_run == "baseline"
    assert settings.delivery.backoff_initial == 5
    assert settings.delivery.backoff_max == 3600
    assert settings.delivery.keep_delivered == 7 * 86400
    assert settings.sinks["product-channel"].api_url == "https://slack.com/api/"
    assert settings.secrets() == (
        "phx_test_key",
        "xoxb-test-token",
        "https://hooks.slack.com/services/x",
    )


def test_settings_never_show_a_secret() -> None:
    """The loaded settings are the pydantic models with every secret a SecretStr: printing,
    formatting or dumping them (as a log line or a debugger would) never shows one."""
    hook = {**HOOK, "secret": WHSEC, "headers": {"Authorization": "Bearer hdr-secret-value"}}
    settings = parse({"sinks": {"team-hook": hook}})
    secrets = settings.secrets()
    assert {"phx_test_key", "xoxb-test-token", WHSEC, "Bearer hdr-secret-value"} <= set(secrets)
    shown = [repr(settings), str(settings), f"{settings}", settings.model_dump_json()]
    shown.append(str(settings.model_dump()))
    for text in shown:
        assert "**********" in text
        assert not [secret for secret in secrets if secret in text]


# --- Slack messages: reply_broadcast, templates, digest_after, batch, enrich ----------------

LINKS = Links("https://us.posthog.com")
HOOK = {"type": "webhook", "url": "https://h.example/in"}


def _uncommented(text: str, key: str, indent: str, after: str) -> str:
    """The first commented-out ``key:`` block at ``indent`` after the line ``after`` in the
    example, uncommented."""
    lines = text.splitlines()
    start = lines.index(f"{indent}# {key}:", lines.index(after))
    block = [f"{indent}{key}:"]
    for line in lines[start + 1 :]:
        if not line.startswith(f"{indent}#   "):
            break
        block.append(indent + line.removeprefix(f"{indent}# "))
    return "\n".join(block)


def test_example_templates_compile_when_uncommented() -> None:
    """The example's commented-out rule and sink templates are valid as written: uncommented,
    they load, and the rule's renders the sample event."""
    text = EXAMPLE.read_text()
    rule_block = _uncommented(text, "template", "    ", "    reply_broadcast: true")
    sink_block = _uncommented(text, "template", "    ", "  product-channel:")
    assert sink_block.count("\n") == 1
    assert "title:" in rule_block
    assert "body:" in rule_block
    assert "text:" in rule_block
    patched = text.replace(
        "    reply_broadcast: true\n", f"    reply_broadcast: true\n{rule_block}\n"
    )
    patched = patched.replace(
        "    channel: C0123456789\n", f"    channel: C0123456789\n{sink_block}\n"
    )
    settings = parse_config(patched, source="example", env=EXAMPLE_ENV)
    sink = settings.sinks["product-channel"]
    assert isinstance(sink, SlackSinkSettings)
    assert sink.templates is not None
    assert sink.templates.title is not None
    templates = settings.rules[0].templates
    assert templates is not None
    assert templates.title is not None
    assert templates.body is not None
    assert templates.text is not None
    rendered = render(templates, sample_event(), ("ready for the team",), LINKS)
    assert rendered.body is not None
    assert "Open in PostHog" in rendered.body
    assert rendered.title is not None
    assert "weight 2.35" in rendered.title


def test_example_sets_reply_broadcast() -> None:
    """The example's first rule (status: ready, to the bot sink) broadcasts its thread replies."""
    settings = load_config(EXAMPLE, EXAMPLE_ENV)
    assert [rule.reply_broadcast for rule in settings.rules] == [True, False, False]


def test_message_keys_default() -> None:
    """Without the new keys: no broadcast, no templates, digest after 5, no batch, no enrich."""
    settings = parse(
        {"sinks": {"hook": HOOK}, "rules": [*BASE["rules"], {"name": "h", "sinks": "hook"}]}
    )
    assert [r.reply_broadcast for r in settings.rules] == [False, False, False]
    assert [r.templates for r in settings.rules] == [None, None, None]
    slack, team, hook = (settings.sinks[n] for n in ("product-channel", "team-hook", "hook"))
    assert isinstance(slack, SlackSinkSettings)
    assert isinstance(team, SlackWebhookSinkSettings)
    assert isinstance(hook, WebhookSinkSettings)
    assert (slack.digest_after, slack.enrich, slack.templates) == (5, (), None)
    assert (team.digest_after, team.enrich, team.templates) == (5, (), None)
    assert (hook.digest_after, hook.enrich, hook.batch) == (5, (), False)


def test_message_keys_parse() -> None:
    """Every new key lands in its settings field; enrich accepts one value and drops repeats."""
    settings = parse(
        {
            "sinks": {
                "product-channel": {
                    "digest_after": 0,
                    "enrich": ["artefacts", "artefacts"],
                    "template": {"title": "{{ report.title }}!"},
                },
                "team-hook": {"digest_after": 12, "enrich": "artefacts"},
                "hook": {**HOOK, "batch": True, "digest_after": 3, "enrich": ["artefacts"]},
            },
            "rules": [
                {
                    "name": "ready reports",
                    "match": {"status": "ready"},
                    "sinks": ["product-channel", "hook"],
                    "reply_broadcast": True,
                    "template": {"body": "*{{ report.signal_count }}* signals", "text": "t"},
                },
                {"name": "r1", "sinks": ["team-hook", "product-channel"]},
            ],
        }
    )
    ready = settings.rules[0]
    assert ready.reply_broadcast is True
    assert ready.templates is not None
    assert ready.templates.where == 'rules[0] "ready reports"'
    assert ready.templates.title is None
    rendered = render(ready.templates, sample_event(), ("ready reports",), LINKS)
    assert (rendered.body, rendered.text) == ("*7* signals", "t")
    slack = settings.sinks["product-channel"]
    assert isinstance(slack, SlackSinkSettings)
    assert (slack.digest_after, slack.enrich) == (0, ("artefacts",))
    assert slack.templates is not None
    assert slack.templates.where == "sinks.product-channel"
    title = render(slack.templates, sample_event(), (), LINKS).title
    assert title == "Checkout button unresponsive on Safari &amp; iOS!"
    team = settings.sinks["team-hook"]
    assert isinstance(team, SlackWebhookSinkSettings)
    assert (team.digest_after, team.enrich) == (12, ("artefacts",))
    hook = settings.sinks["hook"]
    assert isinstance(hook, WebhookSinkSettings)
    assert (hook.batch, hook.digest_after, hook.enrich) == (True, 3, ("artefacts",))
    assert settings.warnings == ()


def test_template_whitespace_is_kept() -> None:
    """Template sources are not stripped (line numbers in errors stay those of the source)."""
    found = problems(
        {"rules": [{"name": "r", "sinks": ["team-hook"], "template": {"body": "\n\n{{ x }}"}}]}
    )
    assert len(found) == 1
    assert found[0].startswith('rules[0] "r".template.body, line 3: ')


def one_rule(**rule: Any) -> dict[str, Any]:
    return {"rules": [{"name": "ready reports", "sinks": ["product-channel"], **rule}]}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(
            {"sinks": {"product-channel": {"enrich": ["artefact"]}}},
            [
                "sinks.product-channel.enrich[0]: unknown enrichment 'artefact' (did you mean "
                "'artefacts'? valid: artefacts)"
            ],
            id="enrich-typo",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"enrich": "artifacts"}}},
            [
                "sinks.team-hook.enrich[0]: unknown enrichment 'artifacts' (did you mean "
                "'artefacts'? valid: artefacts)"
            ],
            id="enrich-american",
        ),
        pytest.param(
            {"sinks": {"product-channel": {"enrich": ["recordings"]}}},
            ["sinks.product-channel.enrich[0]: unknown enrichment 'recordings' (valid: artefacts)"],
            id="enrich-unknown",
        ),
        pytest.param(
            {"sinks": {"product-channel": {"enrich": {"artefacts": True}}}},
            ["sinks.product-channel.enrich: must be a list, like [a, b]"],
            id="enrich-mapping",
        ),
        pytest.param(
            {"sinks": {"product-channel": {"batch": True}}},
            [
                "sinks.product-channel.batch: only webhook sinks batch; a Slack sink already "
                "sends one digest message when more than digest_after events arrive at once: "
                "remove batch (tune digest_after instead)"
            ],
            id="batch-on-slack",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"batch": False}}},
            [
                "sinks.team-hook.batch: only webhook sinks batch; a Slack sink already "
                "sends one digest message when more than digest_after events arrive at once: "
                "remove batch (tune digest_after instead)"
            ],
            id="batch-on-slack-webhook",
        ),
        pytest.param(
            {"sinks": {"hook": {**HOOK, "batch": "sometimes"}}},
            ["sinks.hook.batch: must be true/false (got 'sometimes')"],
            id="batch-not-bool",
        ),
        pytest.param(
            {"sinks": {"product-channel": {"digest_after": -1}}},
            [
                "sinks.product-channel.digest_after: must be 0 or more: more events than this "
                "for the sink at once go out as one digest message (got -1); 0 never digests; "
                "default 5"
            ],
            id="digest-after-negative",
        ),
        pytest.param(
            {"sinks": {"hook": {**HOOK, "digest_after": "many"}}},
            ["sinks.hook.digest_after: must be a whole number (got 'many')"],
            id="digest-after-text",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"digest_after": True}}},
            ["sinks.team-hook.digest_after: must be a number, not true/false (got true)"],
            id="digest-after-bool",
        ),
        pytest.param(
            {"sinks": {"hook": {**HOOK, "template": {"body": "{{ report.title }}"}}}},
            [
                "sinks.hook.template: templates shape Slack messages only (slack and "
                "slack_webhook sinks); a webhook sink receives the report as JSON: remove "
                "template here (a rule's template does not apply to this sink either)"
            ],
            id="template-on-webhook",
        ),
        pytest.param(
            {"sinks": {"stdout": {"type": "console", "enrich": ["artefacts"]}}},
            ["sinks.stdout.enrich: a console sink prints every event as it comes; remove it"],
            id="enrich-on-console",
        ),
        pytest.param(
            one_rule(reply_broadcast="maybe"),
            ["rules[0].reply_broadcast: must be true/false (got 'maybe')"],
            id="reply-broadcast-not-bool",
        ),
        pytest.param(
            one_rule(template="{{ report.title }}"),
            [
                "rules[0].template: must be a mapping of title, body and/or text, like "
                "{body: '{{ report.summary }}'} (got '{{ report.title }}')"
            ],
            id="template-not-a-mapping",
        ),
        pytest.param(
            one_rule(template={}),
            ["rules[0].template: is empty; set title, body or text, or remove template"],
            id="template-empty",
        ),
        pytest.param(
            one_rule(template={"titel": "{{ report.title }}"}),
            ["rules[0].template.titel: unknown key (did you mean 'title'?)"],
            id="template-key-typo",
        ),
        pytest.param(
            {"sinks": {"team-hook": {"template": {"bdy": "x"}}}},
            ["sinks.team-hook.template.bdy: unknown key (did you mean 'body'?)"],
            id="sink-template-key-typo",
        ),
        pytest.param(
            one_rule(template={"title": 5}),
            ["rules[0].template.title: must be text (got 5); quote it"],
            id="template-part-not-text",
        ),
        pytest.param(
            one_rule(template={"body": ""}),
            ["rules[0].template.body: must not be empty"],
            id="template-part-empty",
        ),
        pytest.param(
            one_rule(template={"body": "${MISSING_VAR}"}),
            [
                "rules[0].template.body: environment variable MISSING_VAR is not set "
                "(export it, or use ${MISSING_VAR:-...})"
            ],
            id="template-env-unset",
        ),
    ],
)
def test_message_key_problems(patch: dict[str, Any], expected: list[str]) -> None:
    """Each mistake in the new keys alone, with its key path, the problem and the fix."""
    assert problems(patch) == expected


def test_template_syntax_error_names_rule_and_line() -> None:
    """A template that does not compile: the rule's index and name, the part, the line, Jinja's
    message and what to check."""
    (found,) = problems(one_rule(template={"body": "Ready:\n{% if report.title %}"}))
    assert found.startswith('rules[0] "ready reports".template.body, line 2: Unexpected end ')
    assert "close every {% if %}/{% for %}" in found


def test_template_undefined_name_is_caught_against_the_sample() -> None:
    """A misspelt name fails when rendered against the sample event, at load time."""
    (found,) = problems(one_rule(template={"body": "x\n{{ reprot.title }}"}))
    assert found.startswith(
        "rules[0] \"ready reports\".template.body, line 2: 'reprot' is undefined — the names "
        "are event, report, previous, changes, project, rule, rules, links"
    )


def test_template_that_fails_only_for_new_reports() -> None:
    """previous is none for a new report: a template that assumes it fails the new sample."""
    (found,) = problems(one_rule(template={"title": "was {{ previous.status }}"}))
    assert found.startswith('rules[0] "ready reports".template.title, line 1: ')
    assert found.endswith("(sample new event)")


def test_sink_template_problem_names_the_sink() -> None:
    """A sink's template problem carries the sink's key path."""
    (found,) = problems({"sinks": {"team-hook": {"template": {"text": "{{ nope }}"}}}})
    assert found.startswith("sinks.team-hook.template.text, line 1: 'nope' is undefined")


def test_template_filter_unknown_lists_the_filters() -> None:
    """An unknown filter names the ones there are."""
    (found,) = problems(one_rule(template={"body": "{{ report.title | safe }}"}))
    assert found.startswith('rules[0] "ready reports".template.body, line 1: ')
    assert "filters: " in found
    assert "truncate" in found


def test_every_template_problem_at_once() -> None:
    """Broken templates on several rules and a sink, and other mistakes: all reported, each
    with its key path and name, in file order."""
    found = problems(
        {
            "sinks": {"product-channel": {"template": {"title": "{{ x", "body": "ok"}}},
            "rules": [
                {"name": "a", "sinks": ["product-channel"], "template": {"body": "{{ 1/0 }}"}},
                {"name": "b", "sinks": ["pager"], "template": {"text": "{% for %}"}},
                {"name": "c", "sinks": ["team-hook"], "template": {"title": "{{ reprot }}"}},
            ],
        }
    )
    assert [f.split(",")[0].split(":")[0] for f in found] == [
        "sinks.product-channel.template.title",
        'rules[0] "a".template.body',
        "rules[1].sinks[0]",
        'rules[1] "b".template.text',
        'rules[2] "c".template.title',
    ]
    assert "ZeroDivisionError" in found[1]


def test_template_problems_sit_in_the_error_text() -> None:
    """The ConfigError text (what `check` prints) lists template problems like any other."""
    with pytest.raises(ConfigError) as caught:
        parse(one_rule(template={"body": "{{ reprot }}"}))
    assert "  - rules[0] \"ready reports\".template.body, line 1: 'reprot' is undefined" in str(
        caught.value
    )


def test_templates_together_are_bounded() -> None:
    """So many templates that checking them would take long: one problem, before compiling."""
    rules = [
        {"name": f"r{i}", "sinks": ["team-hook"], "template": {"body": "{{ report.title }}"}}
        for i in range(TEMPLATES_MAX_COUNT + 1)
    ]
    started = time.process_time()
    found = problems({"rules": rules})
    assert time.process_time() - started < 2
    assert found == [
        f"rules: the templates together are too large to check (at most {TEMPLATES_MAX_COUNT} "
        f"templates and {TEMPLATES_MAX_CHARS:,} characters); share a sink's template instead "
        "of repeating it on every rule, and shorten them"
    ]
    long_body = "x" * 9_000
    many = [
        {"name": f"r{i}", "sinks": ["team-hook"], "template": {"body": long_body}}
        for i in range(TEMPLATES_MAX_CHARS // 9_000 + 1)
    ]
    assert problems({"rules": many})[0].startswith("rules: the templates together are too large")


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            {
                "sinks": {"hook": HOOK},
                "rules": [{"name": "h", "sinks": ["hook", "team-hook"], "reply_broadcast": True}],
            },
            (
                "sinks.product-channel: no rule sends to it; add it to a rule's sinks or remove it",
                'rules[0] "h".reply_broadcast: none of its sinks (hook, team-hook) is a slack '
                "(bot token) sink, the only kind that keeps one message per report with thread "
                "replies; it has no effect",
            ),
        ),
        (
            one_rule(reply_broadcast=True, match={"event": "new"})
            | {"sinks": {"team-hook": DELETE}},
            (
                'rules[0] "ready reports".reply_broadcast: the rule sees only new reports, whose '
                "message starts the thread; it has no effect (match status_changed or updated "
                "events)",
            ),
        ),
        (
            {
                "sinks": {"hook": HOOK, "team-hook": DELETE},
                "rules": [
                    {"name": "p", "sinks": ["product-channel"]},
                    {"name": "h", "sinks": ["hook"], "template": {"body": "x"}},
                ],
            },
            (
                'rules[1] "h".template: none of its sinks (hook) is a slack or slack_webhook '
                "sink, so the template is never used (webhooks receive the report as JSON)",
            ),
        ),
        (
            {
                "sinks": {"hook": {**HOOK, "batch": True, "digest_after": 0}},
                "rules": [*BASE["rules"], {"name": "h", "sinks": ["hook"]}],
            },
            (
                "sinks.hook.batch: digest_after is 0, so events are never batched; set "
                "digest_after (like 5) or remove batch",
            ),
        ),
        (
            {
                "sinks": {"hook": {**HOOK, "digest_after": 10}},
                "rules": [*BASE["rules"], {"name": "h", "sinks": ["hook"]}],
            },
            (
                "sinks.hook.digest_after: has no effect without batch: true (each event is its "
                "own request); add batch: true or remove digest_after",
            ),
        ),
        (
            {
                "sinks": {"team-hook": {"template": {"title": "{{ report.title }}"}}},
                "rules": [
                    BASE["rules"][0],
                    {"name": "r1", "sinks": ["team-hook"], "template": {"body": "b"}},
                ],
            },
            (
                "sinks.team-hook.template: every rule sending to it has its own template, which "
                "replaces this one whole, so this one is never used",
            ),
        ),
    ],
)
def test_message_key_warnings(patch: dict[str, Any], expected: tuple[str, ...]) -> None:
    """Valid but pointless combinations load, with a warning each."""
    assert parse(patch).warnings == expected


def test_template_needing_a_recent_posthog_field_is_a_warning() -> None:
    """`report.priority` unguarded works on a recent PostHog but not for a report with only
    the fields every version sends: a warning naming the part; guarded, no warning."""
    only = {"sinks": {"team-hook": DELETE}}
    title = "{{ report.priority }}: {{ report.title }}"
    fragile = parse(one_rule(template={"title": title}) | only)
    assert len(fragile.warnings) == 1
    warning = fragile.warnings[0]
    assert warning.startswith('rules[0] "ready reports".template.title: ')
    assert "priority" in warning
    assert "guard optional fields" in warning
    guarded = "{{ report.priority ~ ': ' if report.priority is defined }}{{ report.title }}"
    assert parse(one_rule(template={"title": guarded}) | only).warnings == ()
    body = {"template": {"body": "{{ report.actionability }}"}}
    sink = parse({"sinks": {"product-channel": body}})
    assert [w.split(":")[0] for w in sink.warnings] == ["sinks.product-channel.template.body"]


def test_sensible_message_keys_warn_nothing() -> None:
    """reply_broadcast on a rule with a bot sink among others, a sink template some rules use,
    batch with the default digest_after: no warning."""
    settings = parse(
        {
            "sinks": {
                "hook": {**HOOK, "batch": True},
                "team-hook": {"template": {"text": "{{ event.title }}"}},
            },
            "rules": [
                {
                    "name": "ready",
                    "match": {"status": "ready"},
                    "sinks": ["product-channel", "hook"],
                    "reply_broadcast": True,
                    "template": {"body": "{{ report.summary }}"},
                },
                {"name": "r1", "sinks": ["team-hook"]},
                {"name": "r2", "sinks": ["team-hook"], "template": {"body": "b"}},
            ],
        }
    )
    assert settings.warnings == ()


README = EXAMPLE.parent / "README.md"


def _readme_yaml(after: str) -> str:
    """The first ```yaml block after the line ``after`` in the README."""
    text = README.read_text()
    start = text.index("```yaml\n", text.index(after)) + len("```yaml\n")
    return text[start : text.index("```", start)]


def test_readme_cookbook_loads_and_its_template_renders() -> None:
    """Every rule of the README's cookbook loads as written, without warnings, and the ready
    rule's template renders the sample (and a report that lacks the optional fields)."""
    cookbook = yaml.safe_load(_readme_yaml("## Rule cookbook"))
    used = {sink for rule in cookbook["rules"] for sink in rule["sinks"]}
    slack = {"type": "slack", "token": "xoxb-test-token", "channel": "C1"}
    sinks = {name: dict(slack if "channel" in name else HOOK) for name in used}
    doc = {"posthog": BASE["posthog"], "sinks": sinks, "rules": cookbook["rules"]}
    settings = parse_config(yaml.safe_dump(doc), source="README", env={})
    assert settings.warnings == ()
    ready = settings.rules[0]
    assert (ready.name, ready.reply_broadcast) == ("ready", True)
    assert ready.templates is not None
    rendered = render(ready.templates, sample_event(), ("ready",), LINKS)
    assert rendered.title == "Checkout button unresponsive on Safari &amp; iOS · weight 2.35"
    assert rendered.body is not None
    assert rendered.body.startswith("*Ready for the team* — Users on Safari 17")
    sparse = sample_event()
    bare = replace(sparse, report=Report.from_api({"id": "r", "status": "ready"}))
    rendered = render(ready.templates, bare, ("ready",), LINKS)
    assert rendered.title == "Untitled report · weight —"
    assert (
        rendered.body
        == "*Ready for the team* — \n<https://us.posthog.com/project/1/inbox/reports/r|Open in "
        "PostHog>"
    )


def test_readme_template_error_example_is_real() -> None:
    """The error the README shows for a misspelt name is the one `check` gives."""
    text = README.read_text()
    shown = next(
        line.strip().removeprefix("- ")
        for line in text.splitlines()
        if 'rules[0] "ready".template.body, line 2:' in line
    )
    found = problems(
        {
            "rules": [
                {
                    "name": "ready",
                    "sinks": ["product-channel"],
                    "template": {"body": "x\n{{ reprot.title }}"},
                },
                {"name": "r1", "sinks": ["team-hook"]},
            ]
        }
    )
    assert found == [shown]
