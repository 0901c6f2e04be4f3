"""What the command modules share: the exit codes and the type of ``add_parser``'s ``sub``.

Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration, 65 the state file
is damaged (or emptied while ``first_run: notify``): restarting cannot fix it, a person must
restore a backup or move the file away (``RestartPreventExitStatus=2 65`` in the systemd unit).
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: sysexits' EX_DATAERR: the state database cannot be used as it is (``StateDamagedError``)
EXIT_BAD_STATE = 65

#: what ``ArgumentParser.add_subparsers`` returns; each command module adds its parser to it
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
