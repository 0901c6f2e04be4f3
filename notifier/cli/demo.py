"""`notifier demo`: run against a built-in simulated PostHog; needs no config. With ``-c``, the
config's rules, templates and sinks run against it (its PostHog and its state are not used)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

from notifier.cli.shared import EXIT_USAGE, Subparsers
from notifier.config.load import load_config
from notifier.config.settings import Settings
from notifier.config.yamlload import load_yaml, read_text
from notifier.core.errors import ConfigError
from notifier.core.secrets import remember
from notifier.runtime.logs import RedactingFormatter

#: ``${NAME}`` and ``${NAME:-default}`` in a YAML string
_VARIABLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
#: stand-ins for the config's PostHog values, which the demo replaces anyway
_STAND_INS: Final = {"host": "https://posthog.invalid", "api_key": "phx_demo_stand_in_unused"}


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="run against a built-in simulated PostHog; no config (with -c: your rules and sinks)",
    )
    demo.add_argument("--cycles", type=int, default=8, help="polling cycles (default 8)")
    demo.add_argument(
        "--interval", type=float, default=2.0, help="seconds between cycles (default 2)"
    )
    demo.add_argument(
        "--yes",
        action="store_true",
        help="with -c: really send the made-up reports to the config's sinks (Slack channels, "
        "webhooks); without it the demo lists them and stops",
    )


def cmd_demo(args: argparse.Namespace, formatter: RedactingFormatter) -> int:
    """Simulated PostHog, real notifier: see what it does without a config or an API key, or
    what a config's rules and sinks do with believable reports."""
    from notifier.demo.run import run_demo  # noqa: PLC0415

    given = getattr(args, "config", None)
    if not given:
        return run_demo(cycles=args.cycles, interval=args.interval)
    try:
        config = _load(Path(given))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    remember(config.secrets())
    formatter.set_secrets(config.secrets())
    if not _may_send(config, yes=args.yes, out=sys.stdout):
        return EXIT_USAGE
    return run_demo(cycles=args.cycles, interval=args.interval, config=config)


def _load(path: Path) -> Settings:
    """The config, with stand-ins for the unset ``${VAR}``s of its PostHog ``host`` and
    ``api_key`` (not used by the demo) unless another section uses the same variable."""
    env = dict(os.environ)
    try:
        raw = load_yaml(read_text(path), str(path))
    except ConfigError:
        return load_config(path)  # says what is wrong with the file
    posthog = raw.get("posthog")
    if isinstance(posthog, dict):
        elsewhere = {
            name for key, value in raw.items() if key != "posthog" for name in _names(value)
        }
        for key, stand_in in _STAND_INS.items():
            for name in set(_names(posthog.get(key))) - elsewhere:
                if not env.get(name):
                    env[name] = stand_in
    return load_config(path, env=env)


def _names(value: Any) -> Iterator[str]:
    """The variables ``${NAME}`` a YAML value refers to."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _names(item)
    elif isinstance(value, str):
        yield from (found.group(1) for found in _VARIABLE.finditer(value))


def _may_send(config: Settings, *, yes: bool, out: TextIO) -> bool:
    """Say where the demo's messages go; False (and how to go ahead) when a sink other than
    the console would receive them without ``--yes``: made-up reports in a team's channel
    surprise people, and a scripted run must not send them by accident."""
    real = {name: sink for name, sink in config.sinks.items() if sink.type != "console"}
    if not real:
        return True
    lines = [f"  - {name} ({sink.type}): {sink.target()}" for name, sink in real.items()]
    if yes:
        out.write(
            "notifier demo: made-up reports WILL BE SENT for real to these sinks of "
            f"{config.source}, as its rules route them:\n" + "\n".join(lines) + "\n"
        )
        out.flush()
        return True
    sys.stderr.write(
        f"notifier demo: {config.source} sends to these sinks, and the demo would send them "
        "made-up reports for real:\n" + "\n".join(lines) + "\n"
        "Run again with --yes to go ahead, or point the config's sinks at a test channel or "
        "at a console sink (type: console) first.\n"
    )
    return False
