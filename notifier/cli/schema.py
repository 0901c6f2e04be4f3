"""`notifier schema`: print the configuration's JSON Schema (for editors); needs no config."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from notifier.cli.shared import EXIT_OK, Subparsers


def add_parser(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    sub.add_parser(
        "schema", parents=[common], help="print the configuration's JSON Schema (for editors)"
    )


def cmd_schema(out: TextIO) -> int:
    """Print the JSON Schema of the configuration file."""
    from notifier.config.schema import json_schema  # noqa: PLC0415

    out.write(json.dumps(json_schema(), indent=2) + "\n")
    return EXIT_OK
