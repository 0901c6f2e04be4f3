"""The command line: the argument parser (each command module adds its own subcommand) and
``main``, which loads the configuration, dispatches to the command and maps errors to exit
codes.

Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration, 65 a damaged state
file (``cli.shared``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from notifier import __version__
from notifier.cli import (
    actions,
    check,
    demo,
    dry_run,
    explain,
    healthcheck,
    outbox,
    preview,
    run,
    schema,
    silence,
    simulate,
    state,
    test_sink,
)
from notifier.cli.actions import cmd_actions
from notifier.cli.check import cmd_check
from notifier.cli.demo import cmd_demo
from notifier.cli.dry_run import cmd_dry_run
from notifier.cli.explain import cmd_explain
from notifier.cli.healthcheck import cmd_healthcheck
from notifier.cli.outbox import cmd_outbox
from notifier.cli.preview import cmd_preview
from notifier.cli.run import cmd_once, cmd_run
from notifier.cli.schema import cmd_schema
from notifier.cli.shared import EXIT_BAD_STATE, EXIT_FAILURE, EXIT_USAGE
from notifier.cli.silence import cmd_silence
from notifier.cli.simulate import cmd_simulate
from notifier.cli.state import cmd_state
from notifier.cli.test_sink import cmd_test_sink
from notifier.config.load import load_config
from notifier.config.settings import Settings
from notifier.core.errors import ConfigError, NotifierError, StateDamagedError, StateError
from notifier.core.secrets import remember
from notifier.runtime import logs

log = logging.getLogger("notifier")

#: the command modules, in the order `notifier --help` lists their commands
COMMANDS = (
    run,
    check,
    healthcheck,
    schema,
    dry_run,
    preview,
    explain,
    test_sink,
    demo,
    simulate,
    outbox,
    state,
    actions,
    silence,
)


def _common() -> argparse.ArgumentParser:
    """The options every command takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="the YAML file (default: $NOTIFIER_CONFIG, then ./config.yaml)",
    )
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="default INFO",
    )
    common.add_argument(
        "--log-format",
        default=argparse.SUPPRESS,
        choices=["json", "text"],
        help="default: text on a terminal, JSON lines otherwise",
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="notifier",
        description="Tells a product team in Slack and signed webhooks when PostHog Signals "
        "finds something.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"notifier {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    given = getattr(args, "config", None) or os.environ.get("NOTIFIER_CONFIG") or "config.yaml"
    return Path(given)


def _missing(path: Path) -> ConfigError:
    """No configuration file at ``path``: where it was looked for and the ways to give one."""
    return ConfigError(
        [
            f"no configuration file at {path.absolute()}; give one with -c PATH, or set "
            "$NOTIFIER_CONFIG to its path, or start from the example: "
            "cp config.example.yaml config.yaml (then run `notifier check`)"
        ],
        str(path),
    )


def _load(args: argparse.Namespace, formatter: logs.RedactingFormatter) -> Settings:
    path = _config_path(args)
    if not path.exists() and not path.is_symlink():
        raise _missing(path)
    settings = load_config(path)
    remember(settings.secrets())  # every error from here on is scrubbed of them
    formatter.set_secrets(settings.secrets())
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `notifier` console script."""
    args = _parser().parse_args(argv)
    level = getattr(args, "log_level", None)
    log_format = getattr(args, "log_format", None)
    if args.command == "schema":
        return cmd_schema(sys.stdout)
    if args.command == "simulate":
        logs.setup(level or "WARNING", fmt=log_format or "text")
        return cmd_simulate(args)
    if args.command == "demo":
        demo_formatter = logs.setup(level or "WARNING", fmt=log_format or "text")
        return cmd_demo(args, demo_formatter)
    formatter = logs.setup(level or "INFO", fmt=log_format)
    out = sys.stdout
    try:
        settings = _load(args, formatter)
        if args.command == "check":
            return cmd_check(settings, out, online=args.online, strict=args.strict)
        if args.command == "healthcheck":
            return cmd_healthcheck(settings, out)
        if args.command == "dry-run":
            return cmd_dry_run(settings, out)
        if args.command == "preview":
            return cmd_preview(
                settings,
                args.event,
                args.report,
                args.sink,
                out,
                sample=args.sample,
                sketch=args.sketch,
            )
        if args.command == "explain":
            return cmd_explain(settings, args, out)
        if args.command == "test-sink":
            return cmd_test_sink(settings, args.name, out)
        if args.command == "actions":
            return cmd_actions(settings, args.report, args.limit, out)
        if args.command == "outbox":
            return cmd_outbox(settings, args.action, args.sink, out)
        if args.command == "silence":
            return cmd_silence(settings, args, out)
        if args.command == "state":
            return cmd_state(settings, args, out)
        if args.command == "once":
            return cmd_once(settings, args.max_wait)
        return cmd_run(settings, _config_path(args), watch=args.watch_config, formatter=formatter)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        # Docker reserves health-check exit code 2: an unreadable config is simply unhealthy.
        return EXIT_FAILURE if args.command == "healthcheck" else EXIT_USAGE
    except StateDamagedError as exc:  # restarting cannot fix it: a status not restarted
        log.error("%s", exc)
        return EXIT_BAD_STATE
    except StateError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    except NotifierError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
