"""The configuration's JSON Schema stays in sync and true; logs are JSON lines with stable keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import yaml

from notifier.config.schema import json_schema
from notifier.demo.simulator import FakePostHog
from tests.factories import PROJECT

ROOT = Path(__file__).resolve().parent.parent


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((ROOT / "config.schema.json").read_text()))


def test_shipped_schema_is_in_sync() -> None:
    """config.schema.json is exactly what `notifier schema` generates (run it to regenerate)."""
    assert json.loads((ROOT / "config.schema.json").read_text()) == json_schema()


def test_schema_command_prints_it() -> None:
    """`notifier schema` prints the schema as JSON and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "notifier", "schema"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert json.loads(result.stdout) == json_schema()


@pytest.mark.parametrize("name", ["config.example.yaml", "deploy/config.yaml"])
def test_shipped_configs_satisfy_the_schema(name: str) -> None:
    """The example and the container config validate against the schema editors use."""
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} not shipped")
    validator().validate(yaml.safe_load(path.read_text()))


def test_example_points_editors_at_the_schema() -> None:
    """config.example.yaml starts with the yaml-language-server schema comment."""
    first = (ROOT / "config.example.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=./config.schema.json"


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"posthog": {"host": "https://x", "api_key": "k", "project_ids": [1]}, "pol": {}}, "pol"),
        ({"posthog": {"host": "https://x", "project_ids": [1]}}, "api_key"),
        (
            {
                "posthog": {"host": "https://x", "api_key": "k", "project_ids": [1]},
                "poll": {"interval": "soon"},
            },
            "soon",
        ),
        (
            {
                "posthog": {"host": "https://x", "api_key": "k", "project_ids": [1]},
                "sinks": {"s": {"type": "pager"}},
            },
            "pager",
        ),
    ],
)
def test_schema_flags_what_check_rejects(doc: dict[str, object], fragment: str) -> None:
    """Unknown keys, a missing secret, a bad duration, an unknown sink type fail the schema too."""
    errors = " ".join(e.message for e in validator().iter_errors(doc))
    assert errors
    assert fragment in errors or "required" in errors or "valid" in errors


@pytest.mark.parametrize(
    "extra",
    [
        {"api_key_file": "/run/secrets/key"},
        {"api_key": "k", "project_ids": 12345, "statuses": "ready", "timeout": "30s"},
    ],
)
def test_schema_accepts_the_loose_forms(extra: dict[str, object]) -> None:
    """`_file` secrets, a single value for a list, and duration strings are valid."""
    posthog = {"host": "https://x", "project_ids": [1], **extra}
    validator().validate({"posthog": posthog, "poll": {"interval": "90s", "jitter": 0}})


def test_logs_are_json_lines_with_stable_keys(
    posthog: FakePostHog, make_config: Callable[..., Path], env: dict[str, str]
) -> None:
    """Without a terminal, `once` logs one JSON object per line; the cycle summary carries
    event, project_id and duration_ms, deliveries carry sink and report_id."""
    posthog.add_report(PROJECT, title="x")
    path = make_config(first_run="notify", rules="- {name: all, match: {}, sinks: [hook]}")
    result = subprocess.run(
        [sys.executable, "-m", "notifier", "once", "-c", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert {"ts", "level", "logger", "event", "message"} <= line.keys()
    cycle = next(line for line in lines if line["event"] == "cycle")
    assert cycle["project_id"] == PROJECT
    assert isinstance(cycle["duration_ms"], int)
    delivery = next(line for line in lines if line["event"] == "delivery")
    assert delivery["sink"] == "hook"
    assert delivery["report_id"]


def test_text_logs_on_request(make_config: Callable[..., Path], env: dict[str, str]) -> None:
    """--log-format text gives readable lines, not JSON."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "notifier",
            "once",
            "--log-format",
            "text",
            "-c",
            str(make_config()),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert " INFO " in result.stderr
    assert not result.stderr.lstrip().startswith("{")
