"""What the command modules share: the exit codes and the type of ``add_parser``'s ``sub``.

Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration.
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

#: what ``ArgumentParser.add_subparsers`` returns; each command module adds its parser to it
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
