"""An invalid value is echoed in its error (issue 13, item 7): ``notifier check`` shows what the
user wrote, quoted, cut and escaped — except a secret, which is never shown, not even in part.

Every test runs the real ``notifier check -c FILE`` on a file in ``tmp_path`` and reads its
standard error; each pairs what must be echoed with what must not, so it fails while values
are not echoed at all.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import cli

#: A valid configuration (``check`` needs no network); each test puts its mistakes into it.
BASE: dict[str, Any] = {
    "posthog": {"host": "https://us.posthog.com", "api_key": "phx_test_key", "project_ids": [1]},
    "sinks": {
        "team": {"type": "slack", "token": "xoxb-test-token", "channel": "C1"},
        "hook": {"type": "webhook", "url": "https://hooks.example/notifier"},
    },
    "rules": [{"name": "all", "sinks": ["team", "hook"]}],
}
DURATION_FIX = "use a number of seconds or 500ms, 90s, 5m, 1h, 1d"


def check(tmp_path: Path, patch: dict[str, Any]) -> list[str]:
    """``notifier check`` on BASE with ``patch`` merged in (one level below the sections):
    it must fail with exit 2 and list its problems; returns the problem lines."""
    document = copy.deepcopy(BASE)
    for section, value in patch.items():
        if isinstance(value, dict) and isinstance(document.get(section), dict):
            for key, inner in value.items():
                merged = document[section].get(key)
                if isinstance(inner, dict) and isinstance(merged, dict):
                    document[section][key] = {**merged, **inner}
                else:
                    document[section][key] = inner
        else:
            document[section] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    result = cli("check", "-c", str(path), env={})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: {path}: "), result.stderr
    return [line.removeprefix("  - ") for line in lines[1:] if line.startswith("  - ")]


def test_durations_echo_what_was_written(tmp_path: Path) -> None:
    """The issue's example: both duration problems show the value, all at once, exit 2."""
    found = check(tmp_path, {"poll": {"interval": "fast", "jitter": -3}})
    assert found == [
        f"poll.interval: invalid duration (got 'fast'); {DURATION_FIX}",
        f"poll.jitter: invalid duration (got -3); {DURATION_FIX}",
    ]


def test_a_duration_under_its_minimum_echoes_it(tmp_path: Path) -> None:
    found = check(tmp_path, {"poll": {"interval": "500ms"}})
    assert found == [
        "poll.interval: must be at least 1s (got '500ms'); PostHog allows 480 requests/minute, "
        "try 60s"
    ]


def test_an_enum_echoes_the_value_and_suggests_the_closest(tmp_path: Path) -> None:
    found = check(tmp_path, {"first_run": "notify_all"})
    assert found == [
        "first_run: must be one of 'baseline' or 'notify' (got 'notify_all'); "
        "did you mean 'notify'?"
    ]


def test_an_enum_given_a_number_or_one_letter(tmp_path: Path) -> None:
    """A value that begins one of the quoted choices ('b' in 'baseline') is still echoed."""
    found = check(tmp_path, {"first_run": "b", "posthog": {"api_path": 5}})
    assert found == [
        "posthog.api_path: must be one of 'auto', 'signal_reports' or 'signals/reports' (got 5)",
        "first_run: must be one of 'baseline' or 'notify' (got 'b')",
    ]


def test_a_number_out_of_range_echoes_it(tmp_path: Path) -> None:
    found = check(tmp_path, {"posthog": {"page_size": 20000, "project_ids": [1, 0]}})
    assert found == [
        "posthog.page_size: input should be less than or equal to 10000 (got 20000)",
        "posthog.project_ids[1]: input should be greater than 0 (got 0)",
    ]


def test_a_list_or_mapping_shows_its_type_not_its_content(tmp_path: Path) -> None:
    """A list where text goes: "got a list", never the items."""
    found = check(
        tmp_path,
        {
            "sinks": {"team": {"channel": ["C1", "itemTEXT"]}},
            "http": {"listen": {"port": 9464}},
        },
    )
    assert found == [
        "sinks.team.channel: must be text (got a list); quote it",
        "http.listen: must be host:port, like 0.0.0.0:9464 (every interface), 127.0.0.1:9464 "
        "(this machine only) or [::]:9464 (got a mapping); port 0 picks a free one; null turns "
        "the listener off",
    ]


def test_an_unknown_status_in_a_list_names_the_item(tmp_path: Path) -> None:
    found = check(tmp_path, {"posthog": {"statuses": ["ready", "redy"]}})
    assert found == [
        "posthog.statuses: item 2 ('redy') is not a PostHog status; did you mean 'ready'? "
        "valid: potential, candidate, in_progress, pending_input, ready, resolved, failed, "
        "suppressed"
    ]


def test_a_long_value_is_cut(tmp_path: Path) -> None:
    value = "every-" + "x" * 200 + "-TAILend"
    (line,) = check(tmp_path, {"first_run": value})
    echoed = line.split("(got ", 1)[1].rsplit(")", 1)[0]
    assert echoed.startswith("'every-xxx"), line
    assert echoed.endswith("…'"), line
    assert 50 <= len(echoed) <= 64, echoed
    assert "TAILend" not in line


def test_control_characters_and_newlines_are_escaped(tmp_path: Path) -> None:
    """A newline in a value never breaks the error's one line per problem."""
    found = check(tmp_path, {"poll": {"interval": "5\nminutes"}, "first_run": "base\x1b[31mline"})
    assert found == [
        f"poll.interval: invalid duration (got '5\\nminutes'); {DURATION_FIX}",
        "first_run: must be one of 'baseline' or 'notify' (got 'base\\x1b[31mline'); "
        "did you mean 'baseline'?",
    ]


# --- secrets: never echoed, not even in part -----------------------------------------------

KEY = "phc_SECRETprojectKEY0123456789"
TOKEN = "xapp-1-A0SECRET-appTOKEN123"
WHSEC = "whsec_SECRETbutTOOshort"
QUERY = "SECRETinQUERY42"


def _no_secret(lines: list[str], *secrets: str) -> None:
    text = "\n".join(lines)
    for secret in secrets:
        assert secret not in text
        for part in (secret[:8], secret[-8:]):
            assert part not in text, part


def test_secret_fields_are_never_echoed(tmp_path: Path) -> None:
    """A bad api_key, Slack token, webhook secret and a URL with a token in its query: the
    problems are reported (with their hints) but say nothing of the value; the duration next
    to them is echoed."""
    found = check(
        tmp_path,
        {
            "posthog": {"api_key": KEY},
            "poll": {"interval": "fast"},
            "sinks": {
                "team": {"token": TOKEN},
                "hook": {"url": f"ftp://hooks.example/in?token={QUERY}", "secret": WHSEC},
            },
        },
    )
    _no_secret(found, KEY, TOKEN, WHSEC, QUERY)
    assert found[0].startswith("posthog.api_key: starts with phc_: that is the project API key")
    assert f"poll.interval: invalid duration (got 'fast'); {DURATION_FIX}" in found
    assert "sinks.hook.url: must be an http:// or https:// URL" in found
    assert any(line.startswith("sinks.hook.secret: must be 'whsec_' followed") for line in found)
    assert any(line.startswith("sinks.team.token: starts with xapp-") for line in found)
    assert not [line for line in found if "(got" in line and "poll.interval" not in line]


def test_urls_with_credentials_are_not_echoed(tmp_path: Path) -> None:
    """A URL in a field that is not secret is echoed, unless it carries userinfo or a query."""
    found = check(
        tmp_path,
        {
            "posthog": {"host": "https://bot:SECRETpassWORD@us.posthog.com/x"},
            "state": {"url": f"postgresql://notifier@db.example/n?password={QUERY}"},
            "sinks": {"team": {"api_url": "slack.example/api/"}},
        },
    )
    _no_secret(found, "SECRETpassWORD", QUERY)
    assert "sinks.team.api_url: must be an http:// or https:// URL (got 'slack.example/api/')" in (
        found
    )
    assert any(line.startswith("posthog.host: must be an http(s) origin") for line in found)
    assert any(line.startswith("state.url: holds a password") for line in found)


def test_a_credential_in_the_wrong_place_is_not_echoed(tmp_path: Path) -> None:
    """A key pasted under the wrong key (here a duration) is still a secret."""
    found = check(tmp_path, {"poll": {"interval": "phx_SECRETpersonalKEY123", "jitter": "soon"}})
    _no_secret(found, "phx_SECRETpersonalKEY123")
    assert found == [
        f"poll.interval: invalid duration; {DURATION_FIX}",
        f"poll.jitter: invalid duration (got 'soon'); {DURATION_FIX}",
    ]
